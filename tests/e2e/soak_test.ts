// No leak: cycles of create/register/tombstone/unregister/delete, each with
// names and a peer no other cycle uses, leave nothing behind once nothing is
// registered, and memory after a full GC comes back to within 10% of where it
// was after a warm-up. The registry soak runs scripts/soak.ts (in a process of
// its own, so RSS is the registry's); `deno task soak` runs its 300,000
// cycles. SOAK_CYCLES (default 20,000) and SOAK_DAEMON_CYCLES (default 300)
// set the counts here.

import assert from "node:assert/strict";
import { registryInternals } from "../../src/registry.ts";
import { assertConsistent } from "../../src/registry_testing.ts";
import { soakCommand } from "../../scripts/soak.ts";
import { startDaemon, TcpClient, type TestDaemon, VALID_IDENTIFY } from "../support/helpers.ts";

const GROWTH_LIMIT = 1.1;

function envInt(name: string, fallback: number): number {
  const granted = Deno.permissions.querySync({ name: "env", variable: name }).state === "granted";
  const text = granted ? Deno.env.get(name) : undefined;
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : fallback;
}

Deno.test("registry: cycles of every change leave nothing behind; heap and RSS come back", async () => {
  const cycles = envInt("SOAK_CYCLES", 20_000);
  const out = await (await soakCommand(cycles)).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  assert.match(text, /^PASS /m, text);
  assert.doesNotMatch(text, /MISS/, text);
});

type Gc = (options?: { type: "major"; execution: "sync"; flavor: "last-resort" }) => void;

/** V8's gc(): --expose-gc's, else the same function exposed through node:v8. */
async function exposedGc(): Promise<Gc> {
  const exposed = (globalThis as { gc?: Gc }).gc;
  if (exposed !== undefined) return exposed;
  const { setFlagsFromString } = await import("node:v8");
  const { runInNewContext } = await import("node:vm");
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as Gc;
}

async function daemonCycle(daemon: TestDaemon, i: number): Promise<void> {
  const topic = `soak-${i}`;
  const client = await TcpClient.connect(daemon.tcpAddr.port);
  try {
    assert.match(await client.identify(VALID_IDENTIFY), /^\{"broadcast_address"/);
    assert.equal(await client.command(`REGISTER ${topic} c-${i}`), "OK");
    assert.equal(await client.command(`REGISTER ${topic}#ephemeral`), "OK");
    assert.equal(await client.command("PING"), "OK");
    assert.equal(await client.command(`UNREGISTER ${topic} c-${i}`), "OK");
  } finally {
    client.close();
  }
  const call = async (method: string, path: string, status = 200): Promise<void> => {
    const res = await fetch(daemon.httpUrl + path, { method });
    await res.arrayBuffer();
    assert.equal(res.status, status, `${method} ${path}`);
  };
  await call("POST", `/channel/create?topic=admin-${i}&channel=c`);
  await call("POST", `/topic/tombstone?topic=${topic}&node=127.0.0.1:4151`);
  await call("GET", `/channels?topic=${topic}`);
  await call("GET", "/nodes");
  await call("GET", "/topics");
  if (i % 50 === 0) {
    await call("GET", "/debug");
    await call("GET", "/metrics");
  }
  await call("POST", `/topic/delete?topic=admin-${i}`);
  await call("POST", `/topic/delete?topic=${topic}`);
  // Unknown paths share one metrics label: the label sets must not grow.
  await call("GET", `/no-such-path-${i}`, 404);
}

Deno.test("daemon: cycles over real sockets leave nothing behind, and the heap comes back", async () => {
  const cycles = envInt("SOAK_DAEMON_CYCLES", 300);
  const gc = await exposedGc();
  await using daemon = startDaemon({ logLevel: "warn" });
  const settled = async (): Promise<number> => {
    const deadline = Date.now() + 5_000;
    while (daemon.registry.stats().peers > 0 || daemon.tcpServer.connectionCount > 0) {
      assert.ok(Date.now() < deadline, "disconnects not processed");
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    gc({ type: "major", execution: "sync", flavor: "last-resort" });
    return Deno.memoryUsage().heapUsed;
  };
  // Long enough for the JIT, pools and caches to reach their size (about 3 MiB in all).
  const warmUp = 500;
  for (let i = 0; i < warmUp; i++) await daemonCycle(daemon, i);
  const start = await settled();
  for (let i = warmUp; i < warmUp + cycles; i++) await daemonCycle(daemon, i);
  const end = await settled();
  assertConsistent(daemon.registry);
  assert.equal(registryInternals(daemon.registry).topics.size, 0, "no topic entry left");
  assert.deepEqual(daemon.registry.entryCounts(), { client: 0, topic: 0, channel: 0 });
  // Heap only: this process is also the client, whose sockets and fetch pool move RSS
  // by tens of MiB either way (scripts/soak.ts measures RSS in a process of its own).
  const mib = (n: number): string => `${(n / 1048576).toFixed(2)} MiB`;
  assert.ok(end <= start * GROWTH_LIMIT, `heap ${mib(start)} -> ${mib(end)}`);
});
