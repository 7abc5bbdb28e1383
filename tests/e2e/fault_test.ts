// Faults: a producer that goes silent without closing (the half-open peer of a
// crashed host), an exception inside one connection's handling, SIGTERM in
// the middle of a registration storm, and running out of file descriptors.

import assert from "node:assert/strict";
import {
  connectionLimits,
  DEFAULT_DESCRIPTORS_NEEDED,
  openFilesLimit,
  probeDescriptorHeadroom,
} from "../../src/ops/limits.ts";
import { type PeerInfo, Registry, type RemovedMembership } from "../../src/registry.ts";
import { ACCEPT_BACKOFF_MAX_MS, ACCEPT_BACKOFF_MIN_MS } from "../../src/gocompat/accept_loop.ts";
import { TcpServer } from "../../src/tcp/server.ts";
import { writeAll } from "../support/harness.ts";
import {
  type BareTcpServer,
  captureLogger,
  concat,
  eventually,
  freePort,
  identifyCommand,
  peerBody,
  sleep,
  spawnDaemon,
  startDaemon,
  startTcpServer,
  TcpClient,
  withTimeout,
} from "../support/helpers.ts";
import { assertConsistent, membershipsOf } from "../../src/registry_testing.ts";

const encoder = new TextEncoder();

function metric(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

Deno.test("a producer that stops sending without closing is removed by the daemon's own sweeper after --inactive-producer-timeout", async () => {
  await using daemon = startDaemon({ inactiveProducerTimeoutMs: 400, logLevel: "warn" });
  const good = await daemon.connect();
  await good.identify(peerBody({ broadcast_address: "good" }));
  assert.equal(await good.command("REGISTER t c"), "OK");
  const ghost = await daemon.connect();
  await ghost.identify(peerBody({ broadcast_address: "ghost" }));
  assert.equal(await ghost.command("REGISTER t c"), "OK");
  const ghostId = ghost.localAddress;
  // The ghost's host "crashed": its socket stays open and says nothing more. The good
  // producer pings, as nsqd does.
  let pinging = true;
  const pings = (async () => {
    while (pinging) {
      assert.equal(await good.command("PING"), "OK");
      await sleep(50);
    }
  })();
  const started = performance.now();
  // No sweep() call here: the timer the daemon runs must do it.
  await withTimeout(ghost.expectClosed(), 5_000, "the ghost to be disconnected");
  const elapsed = performance.now() - started;
  pinging = false;
  await pings;
  assert.ok(elapsed >= 300, `closed after ${elapsed.toFixed(0)} ms, before the timeout`);
  await eventually(() => membershipsOf(daemon.registry, ghostId).length === 0);
  const lookup = await (await daemon.get("/lookup?topic=t")).json() as {
    producers: { broadcast_address: string }[];
  };
  assert.deepEqual(lookup.producers.map((p) => p.broadcast_address), ["good"]);
  const metrics = await (await daemon.get("/metrics")).text();
  assert.equal(metric(metrics, 'nsqlookupd_producers_removed_total{reason="idle_timeout"}'), 3);
  assert.equal(metric(metrics, "nsqlookupd_tcp_connections"), 1);
  assert.ok(
    daemon.logs.some((l) => l.includes(`CLIENT(${ghostId}): closing connection - no data`)),
  );
});

/**
 * A registry that fails like a bug would: registering topic BOOM throws, and
 * so does removing a peer that registered topic CLEANUP.
 */
class FaultyRegistry extends Registry {
  readonly #failCleanup = new Set<string>();

  override registerTopic(peer: PeerInfo, topic: string): boolean {
    if (topic === "BOOM") throw new Error("injected fault");
    if (topic === "CLEANUP") this.#failCleanup.add(peer.id);
    return super.registerTopic(peer, topic);
  }

  override *removePeerInSteps(
    peerId: string,
    perStep: number,
  ): Generator<RemovedMembership[], void, undefined> {
    yield* super.removePeerInSteps(peerId, perStep);
    if (this.#failCleanup.has(peerId)) throw new Error("injected cleanup fault");
  }
}

/** A TcpServer over a FaultyRegistry, with captured logs. */
function startFaultyServer(): BareTcpServer & { faulty: FaultyRegistry } {
  const faulty = new FaultyRegistry({
    now: Date.now,
    inactiveProducerTimeoutMs: 300_000,
    tombstoneLifetimeMs: 45_000,
  });
  return Object.assign(startTcpServer({ logLevel: "warn", server: { registry: faulty } }), {
    faulty,
  });
}

Deno.test("an exception inside one connection's handling closes that connection only", async () => {
  await using server = startFaultyServer();
  const s = { ...server, registry: server.faulty };
  const others: TcpClient[] = [];
  for (let i = 0; i < 5; i++) {
    const client = await s.connect();
    await client.identify(peerBody({ broadcast_address: `other${i}` }));
    assert.equal(await client.command("REGISTER t"), "OK");
    others.push(client);
  }
  const victim = await s.connect();
  await victim.identify(peerBody({ broadcast_address: "victim" }));
  assert.equal(await victim.command("REGISTER t"), "OK");
  await victim.send("REGISTER u\nREGISTER BOOM\n");
  await withTimeout(victim.expectClosed(), 5_000, "the victim to be closed");
  await eventually(() => membershipsOf(s.registry, victim.localAddress).length === 0);
  assert.ok(
    s.logs.some((l) =>
      l.includes(`client(${victim.localAddress}) - internal error: Error: injected fault`)
    ),
    s.logs.join("\n"),
  );
  // A fault in the cleanup itself is contained too.
  const second = await s.connect();
  await second.identify(peerBody({ broadcast_address: "second" }));
  assert.equal(await second.command("REGISTER CLEANUP"), "OK");
  await second.send("REGISTER BOOM\n");
  await withTimeout(second.expectClosed(), 5_000, "the second victim to be closed");
  await eventually(() =>
    s.logs.some((l) => l.includes("cleanup failed: Error: injected cleanup fault"))
  );
  // Everyone else is still connected, registered and answered; newcomers are accepted.
  for (const client of others) assert.equal(await client.command("PING"), "OK");
  const newcomer = await s.connect();
  await newcomer.magic();
  assert.equal(await newcomer.command("PING"), "OK");
  assert.equal(s.registry.lookup("t")?.producers.length, 5);
  assert.equal(s.server.connectionCount, 6);
  assertConsistent(s.registry);
});

Deno.test("accept() failures (out of descriptors) back off, doubling up to 1 s, instead of spinning", async () => {
  const { logger, logs } = captureLogger("warn");
  const pauses: number[] = [];
  let failures = 12;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = new TcpServer({
    listener,
    registry: new Registry({ now: Date.now, inactiveProducerTimeoutMs: 1, tombstoneLifetimeMs: 1 }),
    logger,
    maxIdentifySize: 1024,
    identifyResponse: "{}",
    idleTimeoutMs: 300_000,
    sweepIntervalMs: 0,
    accept: (l) => {
      if (failures-- > 0) return Promise.reject(new Error("Too many open files (os error 24)"));
      return l.accept();
    },
    sleep: (ms) => {
      pauses.push(ms);
      return Promise.resolve();
    },
  });
  server.start();
  try {
    const client = await TcpClient.connect(server.addr.port);
    await client.magic();
    assert.equal(await client.command("PING"), "OK");
    client.close();
    assert.deepEqual(pauses, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000]);
    assert.equal(pauses[0], ACCEPT_BACKOFF_MIN_MS);
    assert.equal(Math.max(...pauses), ACCEPT_BACKOFF_MAX_MS);
    assert.equal(logs.filter((l) => l.includes("accept() failure")).length, 12);
  } finally {
    await server.close();
  }
});

Deno.test("SIGTERM during a registration storm exits 0 promptly, without error noise", async () => {
  await using daemon = await spawnWithPorts(["--log-level=warn"]);
  let storming = true;
  let registered = 0;
  const stormUntil = performance.now() + 30_000;
  const storm = async (i: number): Promise<void> => {
    while (storming && performance.now() < stormUntil) {
      let conn: Deno.TcpConn | undefined;
      try {
        conn = await Deno.connect({ hostname: "127.0.0.1", port: daemon.tcpPort });
        const lines = Array.from({ length: 50 }, (_, k) => `REGISTER storm${k} c${i}\n`).join("");
        const body = peerBody({ broadcast_address: `storm${i}` });
        await writeAll(
          conn,
          concat(encoder.encode("  V1"), identifyCommand(body), encoder.encode(lines)),
        );
        const buffer = new Uint8Array(64 * 1024);
        // Read some replies, then hang up and do it again.
        const n = await conn.read(buffer);
        if (n !== null) registered++;
      } catch {
        // Refused or reset once the daemon shuts down: back off as nsqd does. (A loop
        // of instant refusals would starve this process's event loop.)
        await sleep(20);
      } finally {
        try {
          conn?.close();
        } catch {
          // already closed
        }
      }
    }
  };
  // Producers that stay connected, as nsqd does, while the storm goes on.
  const steady: Deno.TcpConn[] = [];
  for (let i = 0; i < 100; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: daemon.tcpPort });
    await writeAll(
      conn,
      concat(
        encoder.encode("  V1"),
        identifyCommand(peerBody({ broadcast_address: `steady${i}` })),
        encoder.encode(`REGISTER steady c${i}\n`),
      ),
    );
    steady.push(conn);
  }
  const stormers = Array.from({ length: 200 }, (_, i) => storm(i));
  await eventually(() => registered >= 400, 15_000);
  const stopped = await daemon.stop("SIGTERM", 10_000);
  storming = false;
  await Promise.all(stormers);
  for (const conn of steady) conn.close();
  assert.equal(stopped.code, 0, stopped.lines.join("\n"));
  assert.ok(stopped.elapsedMs < 3_000, `exited ${stopped.elapsedMs.toFixed(0)} ms after SIGTERM`);
  const noise = stopped.lines.filter((l) =>
    /error:|Uncaught|unhandled|panicked|ERROR:|internal error/i.test(l)
  );
  assert.deepEqual(noise, []);
});

Deno.test("the connection caps fit the descriptor limit: defaults when unknown or large enough, shares when small", () => {
  assert.deepEqual(connectionLimits(undefined), { tcp: 16_384, http: 1024, openFiles: undefined });
  assert.equal(DEFAULT_DESCRIPTORS_NEEDED, 16_384 + 1024 + 64);
  assert.deepEqual(connectionLimits(1_048_576), { tcp: 16_384, http: 1024, openFiles: 1_048_576 });
  for (const limit of [128, 1024, 4096, 17_471]) {
    const { tcp, http } = connectionLimits(limit);
    assert.ok(tcp + http + 64 <= limit, `${limit}: ${tcp} + ${http}`);
    assert.ok(http <= (limit - 64) / 4 + 1);
  }
  assert.equal(
    openFilesLimit(() =>
      "Max open files            128                  4096                 files\n"
    ),
    128,
  );
  assert.equal(
    openFilesLimit(() =>
      "Max open files            unlimited            unlimited            files\n"
    ),
    undefined,
  );
  assert.equal(
    openFilesLimit(() => {
      throw new Deno.errors.NotCapable("refused");
    }),
    undefined,
  );
});

Deno.test("where /proc/self/limits is refused, the limit is the headroom measured by opening descriptors", () => {
  const refused = (): string => {
    throw new Deno.errors.NotCapable("Requires all access");
  };
  // The probe is asked for just enough for the defaults, no more.
  const asked: number[] = [];
  assert.equal(
    openFilesLimit({ read: refused, probe: (enough) => (asked.push(enough), 300), os: "linux" }),
    300,
  );
  assert.deepEqual(asked, [DEFAULT_DESCRIPTORS_NEEDED]);
  const { tcp, http } = connectionLimits(300);
  assert.ok(tcp + http + 64 <= 300);
  // /proc wins when readable; Windows has no such limit to measure.
  assert.equal(
    openFilesLimit({ read: () => "Max open files 2048 4096 files\n", probe: () => 1, os: "linux" }),
    2048,
  );
  assert.equal(openFilesLimit({ read: refused, probe: () => 1, os: "windows" }), undefined);
});

Deno.test("the headroom probe stops at EMFILE, closes everything it opened, and stops at enough", () => {
  let open = 0;
  let closed = 0;
  const file = (): { close(): void } => {
    if (open - closed >= 37) throw new Error("Too many open files (os error 24)");
    open++;
    return { close: () => void closed++ };
  };
  assert.equal(probeDescriptorHeadroom(1000, file), 37);
  assert.equal(closed, open);
  assert.equal(probeDescriptorHeadroom(10, file), 10);
  assert.equal(closed, open);
  assert.equal(
    probeDescriptorHeadroom(10, () => {
      throw new Deno.errors.NotFound("/dev/null");
    }),
    undefined,
  );
  // The real probe: this process can open at least a few descriptors.
  assert.equal(probeDescriptorHeadroom(8), 8);
});

/** spawnDaemon on ports picked here, so that the log level may hide the listening lines. */
function spawnWithPorts(args: string[]): ReturnType<typeof spawnDaemon> {
  const tcp = freePort();
  const http = freePort();
  return spawnDaemon([
    `--tcp-address=127.0.0.1:${tcp}`,
    `--http-address=127.0.0.1:${http}`,
    ...args,
  ], {
    ports: { tcp, http },
  });
}

Deno.test({
  name:
    "with only 128 file descriptors, 300 TCP and 300 HTTP connections neither crash nor wedge the daemon",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    // The documented permissions only: the sandbox refuses /proc/self/limits, so the
    // daemon measures its headroom (limits.ts) and sizes its caps to 128 descriptors.
    await using daemon = await spawnDaemon(["--log-level=warn"], {
      ports: "free",
      descriptorLimit: 128,
    });
    const { tcpPort: tcp, url } = daemon;
    const conns: Deno.TcpConn[] = [];
    try {
      for (const port of [tcp, daemon.httpPort]) {
        for (let i = 0; i < 300; i++) {
          try {
            conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
          } catch {
            // the backlog may refuse some; that is fine
          }
        }
      }
      await sleep(500);
      // Still alive and answering while the connections are held...
      const during = await fetch(`${url}/ping`);
      assert.equal(await during.text(), "OK");
      for (const c of conns.splice(0)) {
        try {
          c.close();
        } catch {
          // closed by the daemon
        }
      }
      // ...and once they are gone, everything works again.
      await eventually(async () => {
        try {
          const res = await fetch(`${url}/ping`);
          return (await res.text()) === "OK";
        } catch {
          return false;
        }
      }, 5_000);
      const client = await TcpClient.connect(tcp);
      await client.magic();
      assert.equal(await client.command("PING"), "OK");
      client.close();
    } finally {
      for (const c of conns) c.close();
    }
    const stopped = await daemon.stop();
    const text = stopped.lines.join("\n");
    assert.equal(stopped.code, 0, text);
    assert.doesNotMatch(text, /Uncaught|panicked|Too many open files/, text);
  },
});

/** Whether a listener on 127.0.0.1:9229 (the inspector's port) belongs to `pid`. */
async function debuggerOf(pid: number): Promise<string | undefined> {
  try {
    const res = await fetch("http://127.0.0.1:9229/json/list", {
      signal: AbortSignal.timeout(2_000),
    });
    const text = await res.text();
    return text.includes(`[pid: ${pid}]`) ? text : undefined;
  } catch {
    return undefined; // nothing listens there
  }
}

Deno.test({
  name:
    "signals that would kill a Deno process leave the daemon serving, and SIGUSR1 opens no debugger",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await using daemon = await spawnDaemon([
      "--tcp-address=127.0.0.1:0",
      "--http-address=127.0.0.1:0",
    ]);
    const { pid } = daemon.child;
    // At once after the listening lines: the runtime's own SIGUSR1 hook is not set up yet.
    Deno.kill(pid, "SIGUSR1");
    await sleep(800);
    for (
      const signal of [
        "SIGUSR1",
        "SIGUSR2",
        "SIGALRM",
        "SIGVTALRM",
        "SIGPROF",
        "SIGXCPU",
        "SIGIO",
        "SIGHUP",
        "SIGPIPE",
      ] as const
    ) {
      Deno.kill(pid, signal);
      await sleep(50);
    }
    await sleep(300);
    const res = await fetch(`http://127.0.0.1:${daemon.httpPort}/ping`);
    assert.equal(await res.text(), "OK", daemon.lines.join("\n"));
    const client = await TcpClient.connect(daemon.tcpPort);
    await client.identify(peerBody());
    assert.equal(await client.command("PING"), "OK");
    client.close();
    const banner = daemon.lines.find((l) => l.includes("Debugger listening"));
    const listed = await debuggerOf(pid);
    assert.ok(
      banner === undefined && listed === undefined,
      `the runtime (Deno ${Deno.version.deno}) opened a debugger on SIGUSR1: ${banner ?? listed}`,
    );
    const stopped = await daemon.stop("SIGTERM");
    assert.equal(stopped.code, 0, stopped.lines.join("\n"));
  },
});

Deno.test("SIGTERM while answers are blocked on clients that do not read exits 0 within 5 s", async () => {
  await using daemon = await spawnWithPorts(["--log-level=warn"]);
  // Clients pipelining 100,000 requests each and reading nothing: once the socket
  // buffers are full the daemon's writes to them block, so the HTTP shutdown would
  // wait its whole 5 s grace for them; the hard deadline ends the process before.
  const request = encoder.encode("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n".repeat(100_000));
  const clients: Deno.TcpConn[] = [];
  const sending: Promise<void>[] = [];
  for (let i = 0; i < 5; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: daemon.httpPort });
    sending.push(writeAll(conn, request).catch(() => {}));
    clients.push(conn);
  }
  await sleep(1_500);
  // Still serving meanwhile.
  const res = await fetch(`http://127.0.0.1:${daemon.httpPort}/ping`);
  assert.equal(await res.text(), "OK");
  const stopped = await daemon.stop("SIGTERM", 10_000);
  for (const conn of clients) conn.close();
  await Promise.all(sending);
  assert.equal(stopped.code, 0, stopped.lines.join("\n"));
  assert.ok(stopped.elapsedMs < 5_000, `exited ${stopped.elapsedMs.toFixed(0)} ms after SIGTERM`);
});
