// Protocol V1 over real sockets against an in-process daemon (or a bare
// TcpServer with a manual clock for the timeouts). Expected bytes come from
// ../../shared/reference/tcp-exchanges.txt, captured from the Go daemon.

import assert from "node:assert/strict";
import type { Registry } from "../../../src/registry.ts";
import {
  NOOP_TCP_OBSERVER,
  type RefusalReason,
  type TcpObserver,
} from "../../../src/tcp/observer.ts";
import { COMMANDS_PER_TURN, PENDING_REPLY_BYTES_PER_CONNECTION } from "../../../src/tcp/server.ts";
import { TurnScheduler } from "../../../src/tcp/turns.ts";
import {
  bin,
  concat,
  eventually,
  framed,
  identifyCommand,
  ManualClock,
  peerBody,
  show,
  sleep,
  startDaemon,
  startTcpServer,
  type TcpClient,
  type TestDaemon,
  VALID_IDENTIFY,
} from "../../support/helpers.ts";
import { assertConsistent, membershipsOf } from "../../../src/registry_testing.ts";
import { NetConn } from "../../support/net_conn.ts";

// ---- helpers ----

/** Bytes from the reference capture's hex dumps. */
function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Fails instead of hanging when the server never answers. */
async function bounded<T>(promise: Promise<T>, what: string, ms = 5_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads one frame and compares its bytes, header included. */
async function expectFrame(client: TcpClient, expected: string | Uint8Array): Promise<void> {
  const bytes = typeof expected === "string" ? framed(expected) : expected;
  assert.equal(show(await bounded(client.readFrameBytes(), "response")), show(bytes));
}

/** A fatal error: exactly this frame, then the server closes the connection. */
async function expectFatal(client: TcpClient, expected: string | Uint8Array): Promise<void> {
  await expectFrame(client, expected);
  await bounded(client.expectClosed(), "close");
}

/** The sweeper logs each connection it drops, synchronously: none so far. */
function assertNothingSwept(logs: string[]): void {
  assert.deepEqual(logs.filter((l) => l.includes("closing connection")), []);
}

const OK_HEX = "000000024f4b";
const MUST_IDENTIFY_HEX = "0000001e455f494e56414c494420636c69656e74206d757374204944454e54494659";

interface LookupBody {
  channels: string[];
  producers: Record<string, string | number>[];
}

async function lookup(daemon: TestDaemon, topic: string): Promise<LookupBody | number> {
  const res = await daemon.get(`/lookup?topic=${encodeURIComponent(topic)}`);
  if (res.status !== 200) {
    await res.body?.cancel();
    return res.status;
  }
  return await res.json() as LookupBody;
}

/** The /lookup body of a topic that must exist. */
async function lookupOk(daemon: TestDaemon, topic: string): Promise<LookupBody> {
  const body = await lookup(daemon, topic);
  assert.ok(typeof body !== "number", `lookup ${topic}: status ${body}`);
  return body;
}

async function producersOf(daemon: TestDaemon, topic: string): Promise<string[]> {
  return (await lookupOk(daemon, topic)).producers.map((p) => String(p.remote_address));
}

async function channelsOf(daemon: TestDaemon, topic: string): Promise<string[]> {
  const res = await daemon.get(`/channels?topic=${encodeURIComponent(topic)}`);
  return ((await res.json()) as { channels: string[] }).channels;
}

async function post(daemon: TestDaemon, path: string): Promise<void> {
  const res = await daemon.post(path);
  await res.body?.cancel();
  assert.equal(res.status, 200, path);
}

function identifyReply(daemon: TestDaemon): string {
  return `{"broadcast_address":"127.0.0.1","hostname":"testhost","http_port":${daemon.httpAddr.port},` +
    `"tcp_port":${daemon.tcpAddr.port},"version":"1.3.0"}`;
}

async function identified(daemon: TestDaemon, body: string = VALID_IDENTIFY): Promise<TcpClient> {
  const client = await daemon.connect();
  assert.equal(await client.identify(body), identifyReply(daemon));
  return client;
}

/**
 * Another producer, connected and registered before a test misbehaves; the
 * returned check asserts it still answers PING and is still in /lookup.
 */
async function bystander(daemon: TestDaemon): Promise<() => Promise<void>> {
  const client = await identified(daemon, peerBody({ broadcast_address: "bystander" }));
  assert.equal(await client.command("REGISTER keep c"), "OK");
  return async () => {
    await client.send("PING\n");
    await expectFrame(client, hex(OK_HEX));
    assert.deepEqual(await lookup(daemon, "keep"), {
      channels: ["c"],
      producers: [{
        remote_address: client.localAddress,
        hostname: "h1",
        broadcast_address: "bystander",
        tcp_port: 4150,
        http_port: 4151,
        version: "1.3.0",
        topology_zone: "",
        topology_region: "",
      }],
    });
  };
}

/** Every membership of `peer` is gone (the server cleans up after the socket closes). */
async function peerRemoved(daemon: { registry: Registry }, peer: string): Promise<void> {
  await eventually(() => membershipsOf(daemon.registry, peer).length === 0);
}

// ---- commands (section 2 command table) ----

Deno.test("PING before IDENTIFY is OK and keeps the connection open", async () => {
  await using daemon = startDaemon();
  const client = await daemon.connect();
  await client.magic();
  await client.send("PING\n");
  await expectFrame(client, hex(OK_HEX));
  await client.send("PING\n");
  await expectFrame(client, hex(OK_HEX));
  assert.equal(daemon.registry.stats().clientProducers, 0);
});

Deno.test("PING after IDENTIFY updates lastUpdate, keeping the producer active", async () => {
  const clock = new ManualClock();
  await using daemon = startDaemon({ inactiveProducerTimeoutMs: 300_000 }, { now: clock.now });
  const client = await identified(daemon);
  assert.equal(await client.command("REGISTER t"), "OK");
  const peer = membershipsOf(daemon.registry, client.localAddress)[0].producers.get(
    client.localAddress,
  )!.peer;
  assert.equal(peer.lastUpdate, clock.ms);
  clock.advance(300_001);
  // Past --inactive-producer-timeout since IDENTIFY: no longer listed.
  assert.deepEqual(await producersOf(daemon, "t"), []);
  await client.send("PING\n");
  await expectFrame(client, hex(OK_HEX));
  assert.equal(peer.lastUpdate, clock.ms);
  assert.deepEqual(await producersOf(daemon, "t"), [client.localAddress]);
  assert.ok(
    daemon.logs.includes(`INFO: CLIENT(${client.localAddress}): pinged (last ping 5m0.001s)`),
    daemon.logs.join("\n"),
  );
});

Deno.test("REGISTER does not refresh lastUpdate", async () => {
  const clock = new ManualClock();
  await using daemon = startDaemon({ inactiveProducerTimeoutMs: 300_000 }, { now: clock.now });
  const client = await identified(daemon);
  clock.advance(300_001);
  assert.equal(await client.command("REGISTER t"), "OK");
  assert.deepEqual(await producersOf(daemon, "t"), []);
});

Deno.test("IDENTIFY replies with broadcast address, hostname, bound ports and version", async () => {
  await using daemon = startDaemon();
  const client = await daemon.connect();
  await client.magic();
  await client.send(identifyCommand(VALID_IDENTIFY));
  const reply = identifyReply(daemon);
  await expectFrame(client, reply);
  // The ports are the real ones (the daemon listens on port 0).
  assert.notEqual(daemon.tcpAddr.port, 0);
  assert.deepEqual(Object.keys(JSON.parse(reply)), [
    "broadcast_address",
    "hostname",
    "http_port",
    "tcp_port",
    "version",
  ]);
  assert.equal(daemon.registry.stats().clientProducers, 1);
});

Deno.test("IDENTIFY stores the peer: /nodes lists it with topology fields", async () => {
  await using daemon = startDaemon();
  const client = await identified(
    daemon,
    peerBody({ topology_zone: "zone-a", topology_region: "region-1" }),
  );
  assert.equal(await client.command("REGISTER t"), "OK");
  const res = await daemon.get("/lookup?topic=t");
  assert.equal(
    await res.text(),
    `{"channels":[],"producers":[{"remote_address":"${client.localAddress}","hostname":"h1",` +
      `"broadcast_address":"127.0.0.1","tcp_port":4150,"http_port":4151,"version":"1.3.0",` +
      `"topology_zone":"zone-a","topology_region":"region-1"}]}`,
  );
});

Deno.test("IDENTIFY ignores remote_address in the body: the connection's address is used", async () => {
  await using daemon = startDaemon();
  const client = await identified(daemon, peerBody({ remote_address: "6.6.6.6:66" }));
  assert.equal(await client.command("REGISTER t"), "OK");
  const body = await lookup(daemon, "t");
  assert.ok(typeof body !== "number");
  assert.equal(body.producers[0].remote_address, client.localAddress);
  assert.deepEqual(membershipsOf(daemon.registry, "6.6.6.6:66"), []);
});

Deno.test("IDENTIFY matches JSON keys case-insensitively, as Go does", async () => {
  await using daemon = startDaemon();
  const client = await identified(
    daemon,
    '{"BROADCAST_ADDRESS":"b.example","Tcp_Port":11,"HTTP_PORT":12,"Version":"v9",' +
      '"HostName":"hn","TOPOLOGY_ZONE":"z"}',
  );
  assert.equal(await client.command("REGISTER t"), "OK");
  const body = await lookup(daemon, "t");
  assert.ok(typeof body !== "number");
  assert.deepEqual(body.producers[0], {
    remote_address: client.localAddress,
    hostname: "hn",
    broadcast_address: "b.example",
    tcp_port: 11,
    http_port: 12,
    version: "v9",
    topology_zone: "z",
    topology_region: "",
  });
});

Deno.test("IDENTIFY ignores unknown keys", async () => {
  await using daemon = startDaemon();
  await identified(
    daemon,
    peerBody({ extra: { nested: [1.5, "x"] }, tcp_port_x: "1", id: 5, lastUpdate: "x" }),
  );
  assert.equal(daemon.registry.stats().clientProducers, 1);
});

Deno.test("REGISTER topic adds the producer to the topic", async () => {
  await using daemon = startDaemon();
  const client = await identified(daemon);
  await client.send("REGISTER t1\n");
  await expectFrame(client, hex(OK_HEX));
  assert.deepEqual(await lookup(daemon, "t1"), {
    channels: [],
    producers: [{
      remote_address: client.localAddress,
      hostname: "",
      broadcast_address: "127.0.0.1",
      tcp_port: 1,
      http_port: 2,
      version: "1.3.0",
      topology_zone: "",
      topology_region: "",
    }],
  });
  assert.ok(
    daemon.logs.includes(
      `INFO: DB: client(${client.localAddress}) REGISTER category:topic key:t1 subkey:`,
    ),
  );
});

Deno.test("REGISTER topic channel adds the producer to the channel and the topic", async () => {
  await using daemon = startDaemon();
  const client = await identified(daemon);
  await client.send("REGISTER t1 c1\n");
  await expectFrame(client, hex(OK_HEX));
  assert.deepEqual(await channelsOf(daemon, "t1"), ["c1"]);
  assert.deepEqual(await producersOf(daemon, "t1"), [client.localAddress]);
  assert.deepEqual(membershipsOf(daemon.registry, client.localAddress).map((r) => r.name), [
    "channel:t1:c1",
    "client::",
    "topic:t1:",
  ]);
  const id = client.localAddress;
  for (
    const line of [
      `INFO: DB: client(${id}) REGISTER category:channel key:t1 subkey:c1`,
      `INFO: DB: client(${id}) REGISTER category:topic key:t1 subkey:`,
    ]
  ) assert.ok(daemon.logs.includes(line), line);
});

Deno.test("the reference's REGISTER/UNREGISTER sequence answers OK to each (capture 10)", async () => {
  await using daemon = startDaemon();
  const client = await identified(daemon);
  for (
    const line of ["REGISTER t1", "REGISTER t1 c1", "UNREGISTER t1 c1", "UNREGISTER t1", "PING"]
  ) {
    await client.send(line + "\n");
    await expectFrame(client, hex(OK_HEX));
  }
  // Registrations stay after their producer unregistered.
  assert.deepEqual(await lookup(daemon, "t1"), { channels: ["c1"], producers: [] });
});

Deno.test("UNREGISTER topic channel removes the producer; the channel stays", async () => {
  await using daemon = startDaemon();
  const client = await identified(daemon);
  assert.equal(await client.command("REGISTER t c"), "OK");
  assert.equal(await client.command("UNREGISTER t c"), "OK");
  assert.deepEqual(await channelsOf(daemon, "t"), ["c"]);
  assert.deepEqual(
    membershipsOf(daemon.registry, client.localAddress).map((r) => r.name),
    ["client::", "topic:t:"],
  );
  assert.ok(
    daemon.logs.includes(
      `INFO: DB: client(${client.localAddress}) UNREGISTER category:channel key:t subkey:c`,
    ),
  );
});

Deno.test("UNREGISTER of an ephemeral channel deletes it when its last producer leaves", async () => {
  await using daemon = startDaemon();
  const a = await identified(daemon);
  const b = await identified(daemon);
  assert.equal(await a.command("REGISTER t c#ephemeral"), "OK");
  assert.equal(await b.command("REGISTER t c#ephemeral"), "OK");
  assert.equal(await a.command("UNREGISTER t c#ephemeral"), "OK");
  assert.deepEqual(await channelsOf(daemon, "t"), ["c#ephemeral"]);
  assert.equal(await b.command("UNREGISTER t c#ephemeral"), "OK");
  assert.deepEqual(await channelsOf(daemon, "t"), []);
  // The topic itself is not ephemeral and stays.
  assert.deepEqual((await lookupOk(daemon, "t")).channels, []);
  assert.deepEqual(
    (await producersOf(daemon, "t")).sort(),
    [a.localAddress, b.localAddress].sort(),
  );
});

Deno.test("UNREGISTER topic removes the producer from every channel with a WARN each", async () => {
  await using daemon = startDaemon();
  const client = await identified(daemon);
  const other = await identified(daemon);
  for (const line of ["REGISTER t c1", "REGISTER t c2", "REGISTER u c1"]) {
    assert.equal(await client.command(line), "OK");
  }
  assert.equal(await other.command("REGISTER t c3"), "OK");
  assert.equal(await client.command("UNREGISTER t"), "OK");
  const id = client.localAddress;
  const warnings = daemon.logs.filter((l) => l.startsWith("WARNING:"));
  assert.deepEqual(warnings.sort(), [
    `WARNING: client(${id}) unexpected UNREGISTER category:channel key:t subkey:c1`,
    `WARNING: client(${id}) unexpected UNREGISTER category:channel key:t subkey:c2`,
  ]);
  assert.ok(
    daemon.logs.includes(`INFO: DB: client(${id}) UNREGISTER category:topic key:t subkey:`),
  );
  assert.deepEqual(
    membershipsOf(daemon.registry, id).map((r) => r.name),
    ["channel:u:c1", "client::", "topic:u:"],
  );
  // Registrations remain, with the other producer still in its own channel and the topic.
  assert.deepEqual((await lookupOk(daemon, "t")).channels, ["c1", "c2", "c3"]);
  assert.deepEqual(await producersOf(daemon, "t"), [other.localAddress]);
});

Deno.test("UNREGISTER of an ephemeral topic deletes it when its last producer leaves", async () => {
  await using daemon = startDaemon();
  const a = await identified(daemon);
  const b = await identified(daemon);
  assert.equal(await a.command("REGISTER e#ephemeral"), "OK");
  assert.equal(await b.command("REGISTER e#ephemeral"), "OK");
  assert.equal(await a.command("UNREGISTER e#ephemeral"), "OK");
  assert.deepEqual(await producersOf(daemon, "e#ephemeral"), [b.localAddress]);
  assert.equal(await b.command("UNREGISTER e#ephemeral"), "OK");
  assert.equal(await lookup(daemon, "e#ephemeral"), 404);
  // A non-ephemeral topic stays when emptied.
  assert.equal(await a.command("REGISTER n"), "OK");
  assert.equal(await a.command("UNREGISTER n"), "OK");
  assert.deepEqual(await lookup(daemon, "n"), { channels: [], producers: [] });
});

Deno.test("UNREGISTER of something never registered is OK (capture 13)", async () => {
  await using daemon = startDaemon();
  const client = await identified(daemon);
  await client.send("UNREGISTER nosuch\n");
  await expectFrame(client, hex(OK_HEX));
  await client.send("UNREGISTER nosuch c\n");
  await expectFrame(client, hex(OK_HEX));
  assert.ok(!daemon.logs.some((l) => l.includes(" UNREGISTER ")), daemon.logs.join("\n"));
});

Deno.test("re-REGISTER is a no-op that keeps the producer's tombstone", async () => {
  await using daemon = startDaemon();
  const client = await identified(daemon);
  assert.equal(await client.command("REGISTER t c"), "OK");
  await post(daemon, "/topic/tombstone?topic=t&node=127.0.0.1:2");
  assert.deepEqual(await producersOf(daemon, "t"), []);
  const logged = daemon.logs.length;
  assert.equal(await client.command("REGISTER t c"), "OK");
  assert.equal(await client.command("REGISTER t"), "OK");
  // Still tombstoned, and nothing registered anew.
  assert.deepEqual(await producersOf(daemon, "t"), []);
  const nodes = await (await daemon.get("/nodes")).json() as {
    producers: { topics: string[]; tombstones: boolean[] }[];
  };
  assert.deepEqual(nodes.producers.map((p) => [p.topics, p.tombstones]), [[["t"], [true]]]);
  assert.deepEqual(
    daemon.logs.slice(logged).filter((l) => l.includes(" REGISTER ")),
    [],
  );
});

Deno.test("PING with extra arguments is OK (capture 19)", async () => {
  await using daemon = startDaemon();
  const client = await daemon.connect();
  await client.send(concat("  V1", "PING x\n"));
  await expectFrame(client, hex(OK_HEX));
  await client.send("PING  x y\n");
  await expectFrame(client, hex(OK_HEX));
});

Deno.test("\\r\\n line endings work (capture 16)", async () => {
  await using daemon = startDaemon();
  const client = await identified(daemon);
  await client.send("PING\r\n");
  await expectFrame(client, hex(OK_HEX));
  await client.send("REGISTER t c\r\n");
  await expectFrame(client, hex(OK_HEX));
  assert.deepEqual(await channelsOf(daemon, "t"), ["c"]);
});

Deno.test("REGISTER t with two spaces before a channel registers the topic only", async () => {
  // "REGISTER t  c" splits into "t", "", "c": the reference reads the empty channel as none.
  await using daemon = startDaemon();
  const client = await identified(daemon);
  await client.send("REGISTER t  c\n");
  await expectFrame(client, hex(OK_HEX));
  assert.deepEqual((await lookupOk(daemon, "t")).channels, []);
  assert.deepEqual(await producersOf(daemon, "t"), [client.localAddress]);
});

// ---- errors (section 2 error table): exact bytes, then closed; others unaffected ----

Deno.test("unknown command is E_INVALID invalid command and closes (capture 7)", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await daemon.connect();
  await client.magic();
  await client.send("FOO\n");
  await expectFatal(
    client,
    hex("0000001d455f494e56414c494420696e76616c696420636f6d6d616e6420464f4f"),
  );
  await unaffected();
});

Deno.test("lowercase ping is an unknown command (capture 17)", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await daemon.connect();
  await client.magic();
  await client.send("ping\n");
  await expectFatal(
    client,
    hex("0000001e455f494e56414c494420696e76616c696420636f6d6d616e642070696e67"),
  );
  await unaffected();
});

Deno.test("empty line is E_INVALID invalid command with a trailing space (capture 18)", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await daemon.connect();
  await client.magic();
  await client.send("\n");
  await expectFatal(client, hex("0000001a455f494e56414c494420696e76616c696420636f6d6d616e6420"));
  await unaffected();
});

Deno.test("an unknown command from an identified producer closes it and unregisters it", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await identified(daemon);
  assert.equal(await client.command("REGISTER mine c2"), "OK");
  await client.send("NOPE\n");
  await expectFatal(client, "E_INVALID invalid command NOPE");
  await peerRemoved(daemon, client.localAddress);
  assert.deepEqual(await lookup(daemon, "mine"), { channels: ["c2"], producers: [] });
  await unaffected();
});

Deno.test("REGISTER before IDENTIFY is E_INVALID and closes (capture 2)", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await daemon.connect();
  await client.magic();
  await client.send("REGISTER t1\n");
  await expectFatal(client, hex(MUST_IDENTIFY_HEX));
  assert.equal(await lookup(daemon, "t1"), 404);
  await unaffected();
});

Deno.test("REGISTER of a bad topic before IDENTIFY is E_INVALID client must IDENTIFY (capture 6b)", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await daemon.connect();
  await client.magic();
  await client.send("REGISTER bad!topic\n");
  await expectFatal(client, hex(MUST_IDENTIFY_HEX));
  await unaffected();
});

Deno.test("UNREGISTER before IDENTIFY is E_INVALID and closes (capture 14)", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await daemon.connect();
  await client.magic();
  await client.send("UNREGISTER t1\n");
  await expectFatal(client, hex(MUST_IDENTIFY_HEX));
  await unaffected();
});

Deno.test("REGISTER with no params is E_INVALID insufficient number of params (capture 11)", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await identified(daemon);
  await client.send("REGISTER\n");
  await expectFatal(
    client,
    hex(
      "00000030455f494e56414c494420524547495354455220696e73756666696369656e74206e756d626572206f6620706172616d73",
    ),
  );
  await peerRemoved(daemon, client.localAddress);
  await unaffected();
});

Deno.test("UNREGISTER with no params is E_INVALID insufficient number of params", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await identified(daemon);
  await client.send("UNREGISTER \n");
  await expectFatal(client, "E_INVALID UNREGISTER insufficient number of params");
  await unaffected();
});

Deno.test("REGISTER of an invalid topic is E_BAD_TOPIC and closes (capture 6)", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await identified(daemon);
  await client.send("REGISTER bad!topic\n");
  await expectFatal(
    client,
    hex(
      "00000038455f4241445f544f50494320524547495354455220746f706963206e616d65202762616421746f70696327206973206e6f742076616c6964",
    ),
  );
  assert.equal(await lookup(daemon, "bad!topic"), 404);
  await unaffected();
});

Deno.test("UNREGISTER of an invalid topic is E_BAD_TOPIC UNREGISTER", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await identified(daemon);
  await client.send("UNREGISTER t/1\n");
  await expectFatal(client, "E_BAD_TOPIC UNREGISTER topic name 't/1' is not valid");
  await unaffected();
});

Deno.test("REGISTER of an invalid channel is E_BAD_CHANNEL and closes (capture 12)", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await identified(daemon);
  await client.send("REGISTER t1 bad!ch\n");
  await expectFatal(
    client,
    hex(
      "00000039455f4241445f4348414e4e454c205245474953544552206368616e6e656c206e616d65202762616421636827206973206e6f742076616c6964",
    ),
  );
  // Nothing was registered: the channel is checked before anything is added.
  assert.equal(await lookup(daemon, "t1"), 404);
  await unaffected();
});

Deno.test("UNREGISTER of an invalid channel is E_BAD_CHANNEL UNREGISTER", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await identified(daemon);
  await client.send("UNREGISTER t c:1\n");
  await expectFatal(client, "E_BAD_CHANNEL UNREGISTER channel name 'c:1' is not valid");
  await unaffected();
});

Deno.test("two spaces before the topic make it empty: E_BAD_TOPIC with ''", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await identified(daemon);
  await client.send("REGISTER  t\n");
  await expectFatal(client, "E_BAD_TOPIC REGISTER topic name '' is not valid");
  await unaffected();
});

Deno.test("second IDENTIFY is E_INVALID cannot IDENTIFY again (capture 3+4)", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await identified(daemon);
  await client.send(identifyCommand(VALID_IDENTIFY));
  await expectFatal(
    client,
    hex("0000001f455f494e56414c49442063616e6e6f74204944454e5449465920616761696e"),
  );
  await peerRemoved(daemon, client.localAddress);
  await unaffected();
});

Deno.test("IDENTIFY with missing fields is E_BAD_BODY IDENTIFY missing fields (capture 5)", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await daemon.connect();
  await client.magic();
  await client.send(
    hex(
      "4944454e544946590a000000217b2262726f6164636173745f61646472657373223a223132372e302e302e31227d",
    ),
  );
  await expectFatal(
    client,
    hex("00000022455f4241445f424f4459204944454e54494659206d697373696e67206669656c6473"),
  );
  await unaffected();
});

Deno.test("IDENTIFY with each required field missing, empty or zero is missing fields", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const bodies = [
    peerBody({ broadcast_address: "" }),
    peerBody({ tcp_port: 0 }),
    peerBody({ http_port: 0 }),
    peerBody({ version: "" }),
    peerBody({ version: null }),
    '{"tcp_port":1,"http_port":2,"version":"1"}',
    "{}",
    "null",
  ];
  for (const body of bodies) {
    const client = await daemon.connect();
    await client.magic();
    await client.send(identifyCommand(body));
    await expectFatal(client, "E_BAD_BODY IDENTIFY missing fields");
  }
  assert.equal(daemon.registry.stats().clientProducers, 1);
  await unaffected();
});

Deno.test("IDENTIFY with invalid JSON is E_BAD_BODY failed to decode JSON body (capture 15)", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await daemon.connect();
  await client.magic();
  await client.send(hex("4944454e544946590a000000097b6e6f74206a736f6e"));
  await expectFatal(
    client,
    hex(
      "0000002e455f4241445f424f4459204944454e54494659206661696c656420746f206465636f6465204a534f4e20626f6479",
    ),
  );
  await unaffected();
});

Deno.test("IDENTIFY with wrong JSON types is E_BAD_BODY failed to decode JSON body", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const bodies = [
    peerBody({ tcp_port: "1" }),
    peerBody({ http_port: 1.5 }),
    peerBody({ tcp_port: [1] }),
    peerBody({ version: ["1.3.0"] }),
    peerBody({ broadcast_address: 127 }),
    peerBody({ hostname: {} }),
    peerBody({ topology_zone: true }),
    "[]",
    `[${VALID_IDENTIFY}]`,
    "42",
    '"{}"',
    "",
  ];
  for (const body of bodies) {
    const client = await daemon.connect();
    await client.magic();
    await client.send(identifyCommand(body));
    await expectFatal(client, "E_BAD_BODY IDENTIFY failed to decode JSON body");
  }
  assert.equal(daemon.registry.stats().clientProducers, 1);
  await unaffected();
});

Deno.test("EOF before the IDENTIFY body size is E_BAD_BODY failed to read body size", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  for (const partial of ["", "\x00\x00"]) {
    const client = await daemon.connect();
    await client.send(concat("  V1IDENTIFY\n", bin(partial)));
    await client.conn.closeWrite();
    await expectFatal(client, "E_BAD_BODY IDENTIFY failed to read body size");
  }
  await unaffected();
});

Deno.test("EOF inside the IDENTIFY body is E_BAD_BODY failed to read body", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await daemon.connect();
  await client.send(concat("  V1IDENTIFY\n", bin("\x00\x00\x00\x4e"), VALID_IDENTIFY.slice(0, 40)));
  await client.conn.closeWrite();
  await expectFatal(client, "E_BAD_BODY IDENTIFY failed to read body");
  assert.equal(daemon.registry.stats().clientProducers, 1);
  await unaffected();
});

Deno.test("EOF inside a command line closes silently", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await daemon.connect();
  await client.send("  V1PING");
  await client.conn.closeWrite();
  await bounded(client.expectClosed(), "close");
  await unaffected();
});

Deno.test("wrong magic '  V2' is E_BAD_PROTOCOL and closes (capture 8)", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await daemon.connect();
  await client.send("  V2");
  await expectFatal(client, hex("0000000e455f4241445f50524f544f434f4c"));
  await unaffected();
});

Deno.test("wrong magic followed by a command is E_BAD_PROTOCOL (capture 8b)", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await daemon.connect();
  await client.send("XXXXPING\n");
  await expectFatal(client, hex("0000000e455f4241445f50524f544f434f4c"));
  await unaffected();
});

Deno.test("PING as the first bytes is taken as magic: E_BAD_PROTOCOL (capture 9)", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await daemon.connect();
  await client.send("PING\n");
  await expectFatal(client, hex("0000000e455f4241445f50524f544f434f4c"));
  await unaffected();
  assert.ok(
    daemon.logs.includes(`ERROR: client(${client.localAddress}) bad protocol magic 'PING'`),
    daemon.logs.join("\n"),
  );
});

// ---- [beyond] bounded input ----

Deno.test("a command line of exactly 4096 bytes is accepted", async () => {
  await using daemon = startDaemon();
  const client = await identified(daemon);
  const line = "REGISTER t c " + "x".repeat(4096 - 13);
  assert.equal(line.length, 4096);
  await client.send(line + "\n");
  await expectFrame(client, hex(OK_HEX));
  assert.deepEqual(await channelsOf(daemon, "t"), ["c"]);
  // The 4096 bytes may arrive without their newline yet.
  await client.send("PING " + "y".repeat(4091));
  await client.send("\n");
  await expectFrame(client, hex(OK_HEX));
});

Deno.test("a 4097-byte line without newline is E_INVALID and closes", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await daemon.connect();
  await client.magic();
  await client.send("PING " + "y".repeat(4092));
  await expectFatal(client, "E_INVALID command line exceeds 4096 bytes");
  await unaffected();
});

Deno.test("a long line from a producer is refused before its end and unregisters it", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await identified(daemon);
  assert.equal(await client.command("REGISTER gone"), "OK");
  await client.send("x".repeat(4097));
  await expectFatal(client, "E_INVALID command line exceeds 4096 bytes");
  await peerRemoved(daemon, client.localAddress);
  await unaffected();
});

Deno.test("IDENTIFY with a negative length is E_BAD_BODY invalid body size and closes", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await daemon.connect();
  // The 17 bytes that make the reference panic (make([]byte, -17)).
  const killer = bin("  V1IDENTIFY\n\xff\xff\xff\xef");
  assert.equal(killer.length, 17);
  await client.send(killer);
  await expectFatal(client, "E_BAD_BODY IDENTIFY invalid body size -17");
  await unaffected();
  // The daemon is still serving new connections.
  const next = await identified(daemon);
  await next.send("PING\n");
  await expectFrame(next, hex(OK_HEX));
});

Deno.test("IDENTIFY longer than --max-identify-size is refused before reading it", async () => {
  await using daemon = startDaemon({ maxIdentifySize: 1024 });
  const unaffected = await bystander(daemon);
  const client = await daemon.connect();
  // Only the size is sent: the refusal must come without waiting for 1025 bytes.
  await client.send(bin("  V1IDENTIFY\n\x00\x00\x04\x01"));
  await expectFatal(client, "E_BAD_BODY IDENTIFY invalid body size 1025");
  const huge = await daemon.connect();
  await huge.send(bin("  V1IDENTIFY\n\x7f\xff\xff\xff"));
  await expectFatal(huge, "E_BAD_BODY IDENTIFY invalid body size 2147483647");
  // A body of exactly the limit is accepted.
  const atLimit = await identified(daemon, VALID_IDENTIFY.padEnd(1024, " "));
  await atLimit.send("PING\n");
  await expectFrame(atLimit, hex(OK_HEX));
  await unaffected();
});

Deno.test("peers that close without a byte are logged as Go does, at most one line a second, the rest counted", async () => {
  // Thousands of them end together when an attacker lets go: one log write
  // (and two turns) each would hold the thread for everyone else.
  await using s = startTcpServer({ logLevel: "error" });
  const eofLines = (): string[] =>
    s.logs.filter((l) => l.startsWith("ERROR: failed to read protocol version - EOF"));
  const first = await s.connect();
  await eventually(() => s.server.connectionCount === 1);
  first.close();
  await eventually(() => eofLines().length === 1);
  assert.deepEqual(eofLines(), ["ERROR: failed to read protocol version - EOF"]);
  const burst = await Promise.all(Array.from({ length: 5 }, () => s.connect()));
  await eventually(() => s.server.connectionCount === 5);
  for (const client of burst) client.close();
  await eventually(() => s.server.connectionCount === 0);
  assert.equal(eofLines().length, 1, "a burst within the second is not logged line by line");
  s.clock.advance(1_000);
  const next = await s.connect();
  await eventually(() => s.server.connectionCount === 1);
  next.close();
  await eventually(() => eofLines().length === 2);
  assert.equal(
    eofLines()[1],
    "ERROR: failed to read protocol version - EOF (5 more since the last such line, not logged)",
  );
  // A peer that did send something is unaffected: its EOF is the session's to report.
  const partial = await s.connect();
  await partial.send("  V");
  await eventually(() => s.server.connectionCount === 1);
  partial.close();
  await eventually(() => s.server.connectionCount === 0);
});

Deno.test("while many connections are silent, accepting is paced; once they speak it is not", async () => {
  const sleeps: number[] = [];
  await using s = startTcpServer({
    server: {
      acceptPacing: { silentThreshold: 2, perSecond: 100 },
      sleep: (ms) => {
        sleeps.push(ms);
        return Promise.resolve();
      },
    },
  });
  const first = await s.connect();
  await eventually(() => s.server.connectionCount === 1);
  assert.deepEqual(sleeps, [], "below the threshold, no pause");
  const second = await s.connect();
  await eventually(() => s.server.connectionCount === 2);
  // From the threshold on, each next accept waits its 1/100 s (the manual clock
  // stands still, so the waits add up).
  const more = [await s.connect(), await s.connect()];
  await eventually(() => s.server.connectionCount === 4);
  await eventually(() => sleeps.length === 3);
  assert.deepEqual(sleeps, [10, 20, 30]);
  assert.equal(s.server.stats.pacedAccepts, 3);
  const quiet = [first, second];
  // They all speak: nobody is silent, accepting goes at full speed again.
  for (const client of [...quiet, ...more]) {
    await client.send("  V1PING\n");
    await expectFrame(client, hex(OK_HEX));
  }
  const paused = sleeps.length;
  for (let i = 0; i < 3; i++) {
    const client = await s.connect();
    await client.send("  V1PING\n");
    await expectFrame(client, hex(OK_HEX));
  }
  assert.equal(sleeps.length, paused, "no pause while connections identify themselves");
});

// ---- [beyond] timeouts, driven by sweep(now) with a manual clock ----

Deno.test("a connection without protocol magic within 10 s is closed", async () => {
  await using s = startTcpServer();
  const silent = await s.connect();
  const partial = await s.connect();
  await partial.send("  V");
  const started = await s.connect();
  await started.send("  V1PING\n");
  await expectFrame(started, hex(OK_HEX));
  await eventually(() => s.server.connectionCount === 3);
  const t0 = s.clock.ms;
  s.server.sweep(t0 + 10_000);
  assertNothingSwept(s.logs);
  s.server.sweep(t0 + 10_001);
  await bounded(silent.expectClosed(), "close");
  await bounded(partial.expectClosed(), "close");
  await started.send("PING\n");
  await expectFrame(started, hex(OK_HEX));
  assert.equal(s.server.connectionCount, 1);
  assert.ok(
    s.logs.includes(
      `WARNING: CLIENT(${silent.localAddress}): closing connection - no protocol magic within 10s`,
    ),
    s.logs.join("\n"),
  );
});

Deno.test("a connection silent for longer than the inactive timeout is closed and unregistered", async () => {
  await using s = startTcpServer({ idleTimeoutMs: 300_000 });
  const ghost = await s.connect();
  await ghost.identify(peerBody());
  assert.equal(await ghost.command("REGISTER t c"), "OK");
  assert.equal(await ghost.command("REGISTER e#ephemeral c#ephemeral"), "OK");
  const alive = await s.connect();
  await alive.identify(peerBody());
  assert.equal(await alive.command("REGISTER t"), "OK");
  const id = ghost.localAddress;

  s.clock.advance(200_000);
  // Any bytes reset the idle time, not only PING.
  assert.equal(await ghost.command("REGISTER t"), "OK");
  s.clock.advance(200_000);
  assert.equal(await alive.command("PING"), "OK");
  s.server.sweep();
  s.clock.advance(100_000);
  s.server.sweep(); // exactly the timeout: still open
  assertNothingSwept(s.logs);
  s.clock.advance(1);
  s.server.sweep();
  await bounded(ghost.expectClosed(), "close");
  await peerRemoved(s, id);
  assert.ok(
    s.logs.includes(`WARNING: CLIENT(${id}): closing connection - no data for 5m0s`),
    s.logs.join("\n"),
  );
  assert.ok(s.logs.includes(`INFO: DB: client(${id}) UNREGISTER category:channel key:t subkey:c`));
  // Registrations remain, ephemeral ones left empty are gone; the other producer stays.
  assert.deepEqual(s.registry.topics(), ["t"]);
  assert.deepEqual(s.registry.channels("t"), ["c"]);
  assert.deepEqual(s.registry.lookup("t")?.producers.map((p) => p.id), [alive.localAddress]);
  assert.equal(await alive.command("PING"), "OK");
  assertConsistent(s.registry);
});

Deno.test("the daemon closes connections idle past --inactive-producer-timeout", async () => {
  await using daemon = startDaemon({ inactiveProducerTimeoutMs: 60_000 });
  const unaffected = await bystander(daemon);
  const ghost = await identified(daemon);
  assert.equal(await ghost.command("REGISTER t"), "OK");
  await unaffected();
  // The sweeper's real clock is performance.now(); pass it a time in the future.
  daemon.tcpServer.sweep(performance.now() + 59_000);
  assertNothingSwept(daemon.logs);
  assert.equal(await ghost.command("PING"), "OK");
  await unaffected();
  daemon.tcpServer.sweep(performance.now() + 60_001);
  await bounded(ghost.expectClosed(), "close");
  await peerRemoved(daemon, ghost.localAddress);
  assert.deepEqual(await lookup(daemon, "t"), { channels: [], producers: [] });
});

Deno.test("a client that stops reading its responses is closed after the write timeout", async () => {
  // warn: no per-PING log lines for the flood.
  await using s = startTcpServer({
    idleTimeoutMs: 1e12,
    server: { writeTimeoutMs: 10_000 },
    logLevel: "warn",
  });
  const client = await s.connect();
  await client.identify(peerBody());
  assert.equal(await client.command("REGISTER t"), "OK");
  const id = client.localAddress;
  const chunk = new TextEncoder().encode("PING\n".repeat(13_000));
  let floodError: unknown;
  const flood = (async () => {
    try {
      for (;;) await client.send(chunk);
    } catch (error) {
      floodError = error;
    }
  })();
  // The server reads the clock on every read and write; once it stops while we are still
  // sending, it is stuck writing to us (and so no longer reading). If a sweep finds it
  // not writing after all (merely descheduled), nothing is dropped and we keep waiting.
  const t0 = s.clock.ms;
  let last = -1;
  let quiet = 0;
  await eventually(() => {
    const reads = s.clockReads();
    quiet = reads === last ? quiet + 1 : 0;
    last = reads;
    if (quiet < 10) return false;
    s.server.sweep(t0 + 10_000);
    assertNothingSwept(s.logs);
    s.server.sweep(t0 + 10_001);
    return s.logs.some((l) => l.includes("closing connection"));
  }, 30_000);
  await bounded(flood, "end of the flood");
  assert.ok(
    floodError instanceof Deno.errors.ConnectionReset ||
      floodError instanceof Deno.errors.BrokenPipe,
    String(floodError),
  );
  await peerRemoved(s, id);
  assert.equal(s.server.connectionCount, 0);
  assert.ok(
    s.logs.includes(`WARNING: CLIENT(${id}): closing connection - responses unread for 10s`),
    s.logs.join("\n"),
  );
  assert.deepEqual(s.registry.lookup("t")?.producers, []);
});

// ---- end of connection ----

Deno.test("when a connection ends the peer leaves every registration, which remain", async () => {
  await using daemon = startDaemon();
  const unaffected = await bystander(daemon);
  const client = await identified(daemon);
  for (const line of ["REGISTER t c", "REGISTER t d", "REGISTER keep", "REGISTER u"]) {
    assert.equal(await client.command(line), "OK");
  }
  const id = client.localAddress;
  client.close();
  await peerRemoved(daemon, id);
  await eventually(() =>
    daemon.logs.includes(`INFO: DB: client(${id}) UNREGISTER category:topic key:u subkey:`)
  );
  const exiting = daemon.logs.indexOf(`INFO: PROTOCOL(V1): [${id}] exiting ioloop`);
  assert.notEqual(exiting, -1, daemon.logs.join("\n"));
  const unregistered = daemon.logs.slice(exiting + 1).filter((l) => l.includes(" UNREGISTER "));
  assert.deepEqual(unregistered.sort(), [
    `INFO: DB: client(${id}) UNREGISTER category:channel key:t subkey:c`,
    `INFO: DB: client(${id}) UNREGISTER category:channel key:t subkey:d`,
    `INFO: DB: client(${id}) UNREGISTER category:client key: subkey:`,
    `INFO: DB: client(${id}) UNREGISTER category:topic key:keep subkey:`,
    `INFO: DB: client(${id}) UNREGISTER category:topic key:t subkey:`,
    `INFO: DB: client(${id}) UNREGISTER category:topic key:u subkey:`,
  ]);
  assert.deepEqual(await lookup(daemon, "t"), { channels: ["c", "d"], producers: [] });
  assert.deepEqual(await lookup(daemon, "u"), { channels: [], producers: [] });
  const nodes = await (await daemon.get("/nodes")).json() as { producers: unknown[] };
  assert.equal(nodes.producers.length, 1);
  await unaffected();
  assertConsistent(daemon.registry);
});

Deno.test("a disconnect deletes ephemeral topics and channels it leaves empty", async () => {
  await using daemon = startDaemon();
  const stays = await identified(daemon);
  assert.equal(await stays.command("REGISTER shared#ephemeral x#ephemeral"), "OK");
  const client = await identified(daemon);
  for (
    const line of [
      "REGISTER e#ephemeral c#ephemeral",
      "REGISTER e#ephemeral plain",
      "REGISTER t c#ephemeral",
      "REGISTER t plain",
      "REGISTER shared#ephemeral x#ephemeral",
    ]
  ) assert.equal(await client.command(line), "OK");
  client.close();
  await peerRemoved(daemon, client.localAddress);
  // The ephemeral topic is gone; its non-ephemeral channel remains (as with UNREGISTER).
  assert.equal(await lookup(daemon, "e#ephemeral"), 404);
  assert.deepEqual(await channelsOf(daemon, "e#ephemeral"), ["plain"]);
  assert.deepEqual(await lookup(daemon, "t"), { channels: ["plain"], producers: [] });
  // Ephemeral registrations that still have a producer stay.
  assert.deepEqual((await lookupOk(daemon, "shared#ephemeral")).channels, ["x#ephemeral"]);
  assert.deepEqual(await producersOf(daemon, "shared#ephemeral"), [stays.localAddress]);
  assertConsistent(daemon.registry);
});

Deno.test("a connection that never identified leaves nothing behind", async () => {
  await using daemon = startDaemon();
  const client = await daemon.connect();
  await client.magic();
  assert.equal(await client.command("PING"), "OK");
  const id = client.localAddress;
  client.close();
  await eventually(() => daemon.logs.includes(`INFO: PROTOCOL(V1): [${id}] exiting ioloop`));
  await eventually(() => daemon.tcpServer.connectionCount === 0);
  assert.ok(!daemon.logs.some((l) => l.includes("UNREGISTER")), daemon.logs.join("\n"));
});

// ---- chunking ----

Deno.test("commands pipelined in one write or sent byte by byte give identical responses", async () => {
  await using daemon = startDaemon();
  const script = concat(
    "  V1",
    identifyCommand(VALID_IDENTIFY),
    "REGISTER t c\n",
    "PING\r\n",
    "REGISTER t2\n",
    "UNREGISTER t c\n",
    "UNREGISTER t2\n",
    "PING x\n",
    "FOO\n",
  );
  const expected = concat(
    framed(identifyReply(daemon)),
    hex(OK_HEX),
    hex(OK_HEX),
    hex(OK_HEX),
    hex(OK_HEX),
    hex(OK_HEX),
    hex(OK_HEX),
    framed("E_INVALID invalid command FOO"),
  );
  const readAll = async (client: TcpClient): Promise<Uint8Array> => {
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 8; i++) frames.push(await client.readFrameBytes());
    await client.expectClosed();
    return concat(...frames);
  };

  const pipelined = await daemon.connect();
  await pipelined.send(script);
  assert.equal(show(await readAll(pipelined)), show(expected));

  const trickled = await daemon.connect();
  trickled.conn.setNoDelay(true);
  for (let i = 0; i < script.length; i++) await trickled.send(script.subarray(i, i + 1));
  assert.equal(show(await readAll(trickled)), show(expected));
});

// ---- log lines operators grep for (section 5) ----

Deno.test("TCP log lines are the reference's, verbatim", async () => {
  const clock = new ManualClock();
  await using daemon = startDaemon({}, { now: clock.now });
  const client = await daemon.connect();
  const id = client.localAddress;
  await client.identify(
    peerBody({ broadcast_address: "b.example", tcp_port: 4150, version: "1.2.1" }),
  );
  assert.equal(await client.command("REGISTER t c"), "OK");
  clock.advance(15_000);
  assert.equal(await client.command("PING"), "OK");
  client.close();
  await peerRemoved(daemon, id);
  await eventually(() => daemon.logs.some((l) => l.includes("UNREGISTER category:topic")));
  const mine = daemon.logs.filter((l) => l.includes(id));
  assert.deepEqual(mine.slice(0, 7), [
    `INFO: TCP: new client(${id})`,
    `INFO: CLIENT(${id}): desired protocol magic '  V1'`,
    `INFO: CLIENT(${id}): IDENTIFY Address:b.example TCP:4150 HTTP:4151 Version:1.2.1`,
    `INFO: DB: client(${id}) REGISTER category:client key: subkey:`,
    `INFO: DB: client(${id}) REGISTER category:channel key:t subkey:c`,
    `INFO: DB: client(${id}) REGISTER category:topic key:t subkey:`,
    `INFO: CLIENT(${id}): pinged (last ping 15s)`,
  ]);
  assert.equal(mine[7], `INFO: PROTOCOL(V1): [${id}] exiting ioloop`);
  assert.deepEqual(mine.slice(8).sort(), [
    `INFO: DB: client(${id}) UNREGISTER category:channel key:t subkey:c`,
    `INFO: DB: client(${id}) UNREGISTER category:client key: subkey:`,
    `INFO: DB: client(${id}) UNREGISTER category:topic key:t subkey:`,
  ]);
});

Deno.test("an error is logged with the client's address and the error text", async () => {
  await using daemon = startDaemon();
  const client = await daemon.connect();
  await client.send("  V1FOO\n");
  await expectFatal(client, "E_INVALID invalid command FOO");
  await eventually(() =>
    daemon.logs.includes(`ERROR: [${client.localAddress}] - E_INVALID invalid command FOO`)
  );
});

// ---- [beyond] staying available: turns, admission, bounded replies ----

/** The next frame from a client of another loopback address; fails if it closes first. */
async function frameOf(conn: NetConn): Promise<string> {
  const payload = await bounded(conn.readFrame(), "frame");
  assert.ok(payload !== null, "closed before a frame");
  return payload;
}

/** Everything a client of another loopback address received and left unread, once the server closed it. */
async function untilClosed(conn: NetConn): Promise<string> {
  await bounded(conn.closed, "the server to close the connection");
  return conn.peekText();
}

/** Counts what the server reports about refused and evicted connections. */
function countingObserver(): TcpObserver & { refusals: RefusalReason[] } {
  const refusals: RefusalReason[] = [];
  return {
    ...NOOP_TCP_OBSERVER,
    refusals,
    connectionRefused: (reason) => void refusals.push(reason),
  };
}

Deno.test("a peer pipelining a burst does not delay a quiet peer: connections take turns, one batch each", async () => {
  // One unit per slice: after each batch of commands the event loop runs, so the
  // quiet peer's bytes are read and its turn queued behind at most the batch in progress.
  const turns = new TurnScheduler({ maxUnitsPerSlice: 1, sliceMs: 1e9 });
  try {
    await using s = startTcpServer({ logLevel: "warn", server: { turns } });
    const busy = await s.connect();
    await busy.identify(peerBody({ broadcast_address: "busy" }));
    const quiet = await s.connect();
    await quiet.identify(peerBody({ broadcast_address: "quiet" }));
    // 20,000 REGISTERs of distinct topics, each registered in order: how many the
    // server executed tells how many of the busy peer's turns came first. All of
    // it is in the kernel's buffers before the server reads any.
    const burst = Array.from({ length: 20_000 }, (_, i) => `REGISTER b${i}\n`).join("");
    const sending = busy.send(burst);
    await quiet.send("REGISTER quiet\n");
    assert.equal(await bounded(quiet.readFrame(), "the quiet peer's reply"), "OK");
    const executed = s.registry.topics().filter((t) => t.startsWith("b")).length;
    // Without turns the server reads and executes the whole burst (20,000) first.
    assert.ok(executed <= 3 * 128, `${executed} of the burst executed first`);
    await sending;
    for (let i = 0; i < 20_000; i++) assert.equal(await busy.readFrame(), "OK");
    assert.equal(s.registry.topics().length, 20_001);
  } finally {
    turns.close();
  }
});

Deno.test("at the connection cap a newcomer replaces the longest-silent client without magic, then one without IDENTIFY; never an identified peer", async () => {
  const observer = countingObserver();
  await using s = startTcpServer({
    logLevel: "warn",
    server: { maxConnections: 4, maxPerRemote: 100, observer },
  });
  const nsqd = await s.connect();
  await nsqd.identify(peerBody({ broadcast_address: "nsqd" }));
  const started = await s.connect();
  await started.magic();
  assert.equal(await started.command("PING"), "OK");
  const silentOld = await s.connect();
  s.clock.advance(1_000);
  const silentNew = await s.connect();
  await eventually(() => s.server.connectionCount === 4);
  assert.deepEqual(s.server.stats.byStanding, { silent: 2, started: 1, identified: 1 });

  const first = await s.connect();
  await bounded(silentOld.expectClosed(), "the oldest silent client to go");
  await first.magic();
  assert.equal(await first.command("PING"), "OK");
  const second = await s.connect();
  await bounded(silentNew.expectClosed(), "the other silent client to go");
  await second.identify(peerBody({ broadcast_address: "second" }));
  // No silent client left: the one that never identified goes next.
  const third = await s.connect();
  await bounded(started.expectClosed(), "the unidentified client to go");
  await third.identify(peerBody({ broadcast_address: "third" }));
  await first.identify(peerBody({ broadcast_address: "first" }));
  // Every slot identified: a newcomer is turned away, the nsqd peers stay.
  const refused = await s.connect();
  await bounded(refused.expectClosed(), "the newcomer to be refused");
  for (const client of [nsqd, first, second, third]) {
    assert.equal(await client.command("PING"), "OK");
  }
  assert.equal(s.server.evictedCount, 3);
  assert.equal(s.server.refusedCount, 1);
  assert.deepEqual(observer.refusals, ["evicted", "evicted", "evicted", "limit"]);
  // Rate-limited: one line per reason for the burst (the manual clock stood still).
  assert.equal(s.logs.filter((l) => l.includes("to admit client(")).length, 1, s.logs.join("\n"));
  assert.equal(s.logs.filter((l) => l.includes("(the limit), none replaceable")).length, 1);
});

Deno.test("one host holds at most its share; its own least-proven connection makes room; other hosts still get in", async () => {
  const observer = countingObserver();
  await using s = startTcpServer({
    logLevel: "warn",
    server: { maxConnections: 100, maxPerRemote: 2, observer },
  });
  const port = s.server.addr.port;
  const a1 = await NetConn.open("127.0.0.2", port);
  const a2 = await NetConn.open("127.0.0.2", port);
  await a1.write(concat("  V1", identifyCommand(peerBody({ broadcast_address: "a1" }))));
  await frameOf(a1);
  await eventually(() => s.server.connectionCount === 2);
  // 127.0.0.2 is at its share: a third connection replaces its silent a2, not a1.
  const a3 = await NetConn.open("127.0.0.2", port);
  assert.equal(await untilClosed(a2), "");
  await a3.write(concat("  V1", identifyCommand(peerBody({ broadcast_address: "a3" }))));
  await frameOf(a3);
  // Both identified now: a fourth from the same host is refused...
  const a4 = await NetConn.open("127.0.0.2", port);
  assert.equal(await untilClosed(a4), "");
  // ...while another host connects and registers.
  const b = await NetConn.open("127.0.0.3", port);
  await b.write(
    concat("  V1", identifyCommand(peerBody({ broadcast_address: "b" })), "REGISTER t\n"),
  );
  await frameOf(b);
  assert.equal(await frameOf(b), "OK");
  assert.deepEqual(observer.refusals, ["evicted", "per_remote"]);
  assert.equal(s.server.connectionCount, 3);
  for (const c of [a1, a2, a3, a4, b]) c.close();
  await Promise.all([a1, a2, a3, a4, b].map((c) => c.closed));
});

Deno.test("the access-control hook refuses before anything is read: the policy's frame, EOF, one log line per interval", async () => {
  const observer = countingObserver();
  const frame = framed("E_UNAUTHORIZED not allowed");
  const asked: string[] = [];
  await using s = startTcpServer({
    logLevel: "warn",
    server: {
      observer,
      admit: (remote) => {
        asked.push(remote.hostname);
        return remote.hostname === "127.0.0.4"
          ? { frame, reason: "not in the allow list" }
          : undefined;
      },
    },
  });
  const port = s.server.addr.port;
  for (let i = 0; i < 3; i++) {
    const refused = await NetConn.open("127.0.0.4", port);
    // Sent at once, and never read: the refusal does not depend on it.
    await refused.write(concat("  V1", identifyCommand(peerBody())));
    assert.equal(await untilClosed(refused), "\x00\x00\x00\x1aE_UNAUTHORIZED not allowed");
  }
  const allowed = await NetConn.open("127.0.0.5", port);
  await allowed.write("  V1PING\n");
  assert.equal(await frameOf(allowed), "OK");
  assert.deepEqual(asked, ["127.0.0.4", "127.0.0.4", "127.0.0.4", "127.0.0.5"]);
  assert.deepEqual(observer.refusals, ["admit", "admit", "admit"]);
  assert.equal(s.server.stats.refused.admit, 3);
  assert.equal(s.server.stats.bytesRead, 4 + 5, "only the allowed client's bytes were read");
  const lines = s.logs.filter((l) => l.includes("not in the allow list"));
  assert.equal(lines.length, 1, s.logs.join("\n"));
  assert.match(
    lines[0],
    /^WARNING: TCP: refused client\(127\.0\.0\.4:\d+\) - not in the allow list \(1 refused so far\)$/,
  );
  allowed.close();
  await allowed.closed;
});

Deno.test("all blocked writes together hold at most maxPendingReplyBytes: past it the longest-blocked client is closed", async () => {
  await using s = startTcpServer({
    logLevel: "warn",
    idleTimeoutMs: 1e12,
    server: { maxPendingReplyBytes: 500 },
  });
  const flood = new TextEncoder().encode("PING\n".repeat(20_000));
  /** Sends PINGs and never reads: once the kernel's buffers fill, the server's write blocks. */
  const floodWithoutReading = async (client: TcpClient): Promise<void> => {
    await client.magic();
    try {
      for (;;) await client.send(flood);
    } catch {
      // closed by the server or by the test
    }
  };
  const older = await s.connect();
  const olderFlood = floodWithoutReading(older);
  // Blocked for good: a write pending and nothing more read for 300 ms.
  let last = -1;
  let steady = 0;
  await eventually(async () => {
    await sleep(100);
    const { bytesRead, blockedWrites } = s.server.stats;
    steady = bytesRead === last && blockedWrites === 1 ? steady + 1 : 0;
    last = bytesRead;
    return steady >= 3;
  }, 15_000);
  assert.ok(s.server.stats.pendingReplyBytes <= PENDING_REPLY_BYTES_PER_CONNECTION);
  // A turn of PINGs is a 456- or 768-byte batch: one held batch fits 500 bytes, two do not.
  // The second writer's batch takes the total past 500 bytes: the older one goes.
  const newer = await s.connect();
  const newerFlood = floodWithoutReading(newer);
  await eventually(
    () => s.logs.some((l) => l.includes("closing connection - responses unread while")),
    15_000,
  );
  assert.ok(
    s.logs.some((l) =>
      l.startsWith(
        `WARNING: CLIENT(${older.localAddress}): closing connection - responses unread while`,
      )
    ),
    s.logs.join("\n"),
  );
  await bounded(olderFlood, "the older client's writes to fail");
  assert.ok(s.server.stats.pendingReplyBytes <= PENDING_REPLY_BYTES_PER_CONNECTION);
  newer.close();
  await newerFlood;
  await eventually(() => s.server.connectionCount === 0);
  assert.equal(s.server.stats.pendingReplyBytes, 0);
});

Deno.test("IDENTIFY nested deep inside an ignored member answers like the reference: accepted up to Go's 10,000 levels, E_BAD_BODY beyond, never a silent close", async () => {
  await using s = startTcpServer({ logLevel: "warn" });
  const fields = '"broadcast_address":"a","tcp_port":1,"http_port":2,"version":"1"';
  const nested = (depth: number): string =>
    `{"x":${"[".repeat(depth)}${"]".repeat(depth)},${fields}}`;
  const accepted = await s.connect();
  assert.equal(await accepted.identify(nested(4_000)), "{}");
  const edge = await s.connect();
  assert.equal(await edge.identify(nested(9_999)), "{}");
  for (const depth of [10_000, 30_000]) {
    const refused = await s.connect();
    await refused.magic();
    await refused.send(identifyCommand(nested(depth)));
    await expectFatal(refused, "E_BAD_BODY IDENTIFY failed to decode JSON body");
  }
});

Deno.test("a storm of newcomers at the cap waits in the backlog while evictions complete: none refused, the last one served", async () => {
  const observer = countingObserver();
  await using s = startTcpServer({
    logLevel: "warn",
    server: { maxConnections: 4, maxPerRemote: 1_000, observer },
  });
  const held: TcpClient[] = [];
  for (let i = 0; i < 4; i++) held.push(await s.connect());
  await eventually(() => s.server.connectionCount === 4);
  // 150 silent newcomers at once, each displacing an older silent one: far more
  // evictions than may be in flight, all already in the kernel's backlog.
  const storm = await Promise.all(
    Array.from(
      { length: 150 },
      () => Deno.connect({ hostname: "127.0.0.1", port: s.server.addr.port }),
    ),
  );
  const last = await s.connect();
  await last.identify(peerBody({ broadcast_address: "last" }));
  assert.equal(await last.command("REGISTER t"), "OK");
  assert.equal(s.server.refusedCount, 0, JSON.stringify(s.server.stats.refused));
  assert.equal(s.server.evictedCount, 151);
  for (const conn of storm) conn.close();
  for (const client of held) client.close();
});

Deno.test("one read full of pipelined commands is executed over several turns of at most COMMANDS_PER_TURN commands", async () => {
  let units = 0;
  class CountingTurns extends TurnScheduler {
    override run<T>(work: () => T): Promise<T> {
      units++;
      return super.run(work);
    }
  }
  const turns = new CountingTurns();
  try {
    await using s = startTcpServer({ logLevel: "warn", server: { turns } });
    const client = await s.connect();
    await client.magic();
    await client.send("PING\n".repeat(5_000));
    for (let i = 0; i < 5_000; i++) assert.equal(await client.readFrame(), "OK");
    // However the kernel split the 25 KB into reads, no turn ran more than 128 PINGs.
    assert.equal(COMMANDS_PER_TURN, 128);
    assert.ok(units >= Math.ceil(5_000 / 128), `${units} turns`);
  } finally {
    turns.close();
  }
});

/** A scheduler of `units` units a slice whose slices end only when slice() is called. */
function handTurnedScheduler(units: number): { turns: TurnScheduler; slice: () => void } {
  let nextSlice: (() => void) | undefined;
  const turns = new TurnScheduler({
    maxUnitsPerSlice: units,
    sliceMs: 1e9,
    defer: (fn) => {
      nextSlice = fn;
      return () => nextSlice = undefined;
    },
  });
  const slice = (): void => {
    const fn = nextSlice;
    nextSlice = undefined;
    fn?.();
  };
  return { turns, slice };
}

Deno.test("peers that leave together are closed a slice at a time, each close in a turn, not all in the event loop's turn that saw them leave", async () => {
  const { turns, slice } = handTurnedScheduler(4);
  const pump = setInterval(slice, 1);
  try {
    await using s = startTcpServer({ logLevel: "warn", server: { turns } });
    const peers = await Promise.all(Array.from({ length: 40 }, () => s.connect()));
    await eventually(() => s.server.connectionCount === 40);
    await eventually(() => turns.queued === 0);
    clearInterval(pump);
    for (const peer of peers) peer.close();
    // Every handler saw its EOF; their closes wait for turns (without turns: none waits).
    await eventually(() => s.server.connectionCount === 0);
    await eventually(() => turns.queued >= 40 - 4);
    const queued = turns.queued;
    slice();
    assert.equal(turns.queued, queued - 4, "one slice closes its four");
    while (turns.queued > 0) slice();
  } finally {
    clearInterval(pump);
    turns.close();
  }
});

Deno.test("the server's own scheduler pauses between slices through a loopback turn, in which every socket is polled", async () => {
  await using s = startTcpServer({ logLevel: "warn" });
  const client = await s.connect();
  await client.magic();
  // The loopback connection opens in the background: until it does, slices
  // pause by timer. Rounds of 1,000 PINGs (each several slices) until one
  // pause went through it.
  for (let round = 0; round < 50 && s.server.stats.loopbackTurns === 0; round++) {
    await client.send("PING\n".repeat(1_000));
    for (let i = 0; i < 1_000; i++) assert.equal(await client.readFrame(), "OK");
  }
  assert.ok(s.server.stats.loopbackTurns > 0, `${s.server.stats.loopbackTurns} loopback turns`);
});

Deno.test("a sweep that drops many connections at once closes them a slice at a time, each close in a turn", async () => {
  const { turns, slice } = handTurnedScheduler(4);
  let pump = setInterval(slice, 1);
  try {
    await using s = startTcpServer({ logLevel: "error", server: { turns } });
    const peers = await Promise.all(Array.from({ length: 40 }, () => s.connect()));
    await eventually(() => s.server.connectionCount === 40);
    await eventually(() => turns.queued === 0);
    clearInterval(pump);
    // All 40 past the magic timeout in one sweep: closing them all now would
    // be one long piece of work (a thousand in a real sweep).
    s.server.sweep(s.clock.ms + 10_001);
    assert.ok(turns.queued >= 40 - 4, `${turns.queued} closes waiting for turns`);
    pump = setInterval(slice, 1);
    for (const peer of peers) await bounded(peer.expectClosed(), "close");
    await eventually(() => s.server.connectionCount === 0 && turns.queued === 0);
  } finally {
    clearInterval(pump);
    turns.close();
  }
});
