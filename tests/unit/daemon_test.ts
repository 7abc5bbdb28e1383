// src/daemon.ts: what a start-up sets up, and what it leaves for later.

import assert from "node:assert/strict";
import { createAccess } from "../../src/access/access.ts";
import { parseNetworkList } from "../../src/access/networks.ts";
import { startDaemon } from "../../src/daemon.ts";
import { connectionLimits } from "../../src/ops/limits.ts";
import { accessRequested, defaultOptions } from "../../src/options.ts";
import { captureLogger, eventually, HOSTNAME, testOptions } from "../support/helpers.ts";

/** Connections to `port` that the test holds, and how many of them the daemon has closed. */
class Flood {
  readonly #conns: Deno.TcpConn[] = [];
  readonly #ends: Promise<void>[] = [];
  closed = 0;

  static async open(port: number, count: number): Promise<Flood> {
    const flood = new Flood();
    for (let i = 0; i < count; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      flood.#conns.push(conn);
      flood.#ends.push(flood.#untilClosed(conn));
    }
    return flood;
  }

  /** Reads until the daemon closes the connection (the test's own close is not counted). */
  async #untilClosed(conn: Deno.TcpConn): Promise<void> {
    const buffer = new Uint8Array(256);
    try {
      while (await conn.read(buffer) !== null);
      this.closed++;
    } catch {
      // closed by the test (BadResource) or reset by the daemon: neither matters here
    }
  }

  async close(): Promise<void> {
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch {
        // closed already
      }
    }
    await Promise.all(this.#ends);
  }
}

Deno.test("the caps start at the defaults and shrink to the descriptor limit once it is known", async () => {
  // 128 descriptors: TCP 48 connections, 12 per host; HTTP 16, 4 per host (25 %).
  assert.deepEqual(connectionLimits(128), { tcp: 48, http: 16, openFiles: 128 });
  const tcpShare = 12;
  const httpShare = 4;
  let known!: (limit: number) => void;
  const limit = new Promise<number>((resolve) => known = resolve);
  const { logger } = captureLogger("warn");
  const daemon = startDaemon(testOptions(), {
    logger,
    hostname: HOSTNAME,
    descriptorLimit: () => limit,
  });
  const floods: Flood[] = [];
  try {
    // Serving before the limit is known, with the defaults (4,096 and 256 per host).
    const tcpBefore = await Flood.open(daemon.tcpAddr.port, tcpShare + 8);
    const httpBefore = await Flood.open(daemon.httpAddr.port, httpShare + 4);
    floods.push(tcpBefore, httpBefore);
    await eventually(() =>
      daemon.tcpServer.connectionCount === tcpShare + 8 &&
      daemon.httpServer.connectionCount === httpShare + 4
    );
    assert.equal(tcpBefore.closed + httpBefore.closed, 0);
    await tcpBefore.close();
    await httpBefore.close();
    await eventually(() =>
      daemon.tcpServer.connectionCount === 0 && daemon.httpServer.connectionCount === 0
    );

    known(128);
    await new Promise((resolve) => setTimeout(resolve, 0));
    const tcpAfter = await Flood.open(daemon.tcpAddr.port, tcpShare + 8);
    const httpAfter = await Flood.open(daemon.httpAddr.port, httpShare + 4);
    floods.push(tcpAfter, httpAfter);
    // Settled once every connection is either held or closed.
    await eventually(() =>
      daemon.tcpServer.connectionCount + tcpAfter.closed === tcpShare + 8 &&
      daemon.httpServer.connectionCount + httpAfter.closed === httpShare + 4
    );
    const held = [daemon.tcpServer.connectionCount, daemon.httpServer.connectionCount];
    assert.deepEqual(held, [tcpShare, httpShare], `TCP and HTTP connections held: ${held}`);
  } finally {
    known(128);
    for (const flood of floods) await flood.close();
    await daemon.shutdown();
  }
});

Deno.test("the access rules are loaded for exactly the options that turn one on", () => {
  const { logger } = captureLogger();
  const networks = parseNetworkList("10.0.0.0/8");
  assert.ok(networks.ok);
  const none = defaultOptions(HOSTNAME);
  const cases = [
    none,
    { ...none, producerNetworks: networks.value },
    { ...none, adminNetworks: networks.value },
    { ...none, adminNetworks: [] },
    { ...none, authHttpAddresses: ["auth:4181"] },
  ];
  for (const options of cases) {
    assert.equal(accessRequested(options), createAccess(options, { logger }) !== undefined);
  }
  assert.equal(accessRequested(none), false);
});

Deno.test("a running daemon measures its event-loop lag into /metrics from the start, and stops at shutdown", async () => {
  const { logger } = captureLogger("warn");
  const daemon = startDaemon(testOptions(), {
    logger,
    hostname: HOSTNAME,
    descriptorLimit: () => Promise.resolve(undefined),
  });
  const ticks = (): number =>
    Number(daemon.metrics.render().match(/^nsqlookupd_event_loop_lag_seconds_count (\d+)$/m)?.[1]);
  try {
    await eventually(() => ticks() >= 3);
  } finally {
    await daemon.shutdown();
  }
  const after = ticks();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(ticks(), after, "no tick after the shutdown");
});
