// Scenarios across both ports: producers identify and register over real TCP
// (as nsqd does), then the HTTP API is asked what it knows. Time moves only
// through a ManualClock injected into the daemon.

import assert from "node:assert/strict";
import {
  eventually,
  expectEmpty,
  expectError,
  expectJson,
  ManualClock,
  peerBody,
  startDaemon,
  type TcpClient,
  type TestDaemon,
} from "../support/helpers.ts";
import { assertConsistent, membershipsOf } from "../../src/registry_testing.ts";

const INACTIVE_MS = 300_000;
const TOMBSTONE_MS = 45_000;
/** ManualClock's default start in Unix nanoseconds, as /debug prints it. */
const START_NS = "1800000000000000000";

interface Producer {
  readonly client: TcpClient;
  /** `ip:port` of the connection, as the daemon sees it. */
  readonly remote: string;
  /** The peer object of /lookup. */
  readonly peer: string;
  /** The node object of /nodes. */
  node(tombstones: boolean[], topics: string[]): string;
  /** The entry of /debug; `tombstonedAt` in unix ns, or undefined when never tombstoned. */
  debug(options?: { tombstonedAt?: string; lastUpdate?: string }): string;
}

/** Connects, sends the magic and an IDENTIFY like nsqd's, and describes the expected JSON. */
async function connectProducer(
  daemon: TestDaemon,
  fields: Record<string, string | number> = {},
): Promise<Producer> {
  const client = await daemon.connect();
  const reply = await client.identify(peerBody(fields));
  assert.equal(
    reply,
    `{"broadcast_address":"127.0.0.1","hostname":"testhost","http_port":${daemon.httpAddr.port},` +
      `"tcp_port":${daemon.tcpAddr.port},"version":"1.3.0"}`,
  );
  const info = {
    broadcast_address: "127.0.0.1",
    hostname: "h1",
    tcp_port: 4150,
    http_port: 4151,
    version: "1.3.0",
    topology_zone: "",
    topology_region: "",
    ...fields,
  };
  const remote = client.localAddress;
  const s = JSON.stringify;
  const peer = `{"remote_address":${s(remote)},"hostname":${s(info.hostname)},` +
    `"broadcast_address":${s(info.broadcast_address)},"tcp_port":${info.tcp_port},` +
    `"http_port":${info.http_port},"version":${s(info.version)},` +
    `"topology_zone":${s(info.topology_zone)},"topology_region":${s(info.topology_region)}`;
  return {
    client,
    remote,
    peer: `${peer}}`,
    node: (tombstones, topics) => `${peer},"tombstones":${s(tombstones)},"topics":${s(topics)}}`,
    debug: ({ tombstonedAt, lastUpdate = START_NS } = {}) =>
      `{"broadcast_address":${s(info.broadcast_address)},"hostname":${s(info.hostname)},` +
      `"http_port":${info.http_port},"id":${s(remote)},"last_update":${lastUpdate},` +
      `"tcp_port":${info.tcp_port},"tombstoned":${tombstonedAt !== undefined},` +
      `"tombstoned_at":${tombstonedAt ?? 0},"topology_region":${s(info.topology_region)},` +
      `"topology_zone":${s(info.topology_zone)},"version":${s(info.version)}}`,
  };
}

function lookup(channels: string[], producers: Producer[]): string {
  return `{"channels":${JSON.stringify(channels)},"producers":[${
    producers.map((p) => p.peer).join(",")
  }]}`;
}

/** Closes a producer's connection and waits until the daemon has dropped its registrations. */
async function disconnect(daemon: TestDaemon, producer: Producer): Promise<void> {
  producer.client.close();
  await eventually(() => membershipsOf(daemon.registry, producer.remote).length === 0);
}

function dbLines(daemon: TestDaemon): string[] {
  return daemon.logs.filter((line) => line.includes(" DB: "));
}

Deno.test("a producer registering a topic and channel shows the same in /nodes, /topics, /lookup, /channels and /debug", async () => {
  const clock = new ManualClock();
  await using daemon = startDaemon({}, { now: clock.now });
  const p = await connectProducer(daemon, {
    hostname: "vm",
    tcp_port: 14150,
    http_port: 14151,
    topology_zone: "zone-a",
    topology_region: "region-1",
  });
  assert.equal(await p.client.command("REGISTER t1 c1"), "OK");

  await expectJson(await daemon.get("/topics"), 200, '{"topics":["t1"]}');
  await expectJson(await daemon.get("/channels?topic=t1"), 200, '{"channels":["c1"]}');
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup(["c1"], [p]));
  await expectJson(
    await daemon.get("/nodes"),
    200,
    `{"producers":[${p.node([false], ["t1"])}]}`,
  );
  const entry = p.debug();
  await expectJson(
    await daemon.get("/debug"),
    200,
    `{"channel:t1:c1":[${entry}],"client::":[${entry}],"topic:t1:":[${entry}]}`,
  );
  assert.deepEqual(dbLines(daemon), [
    `INFO: DB: client(${p.remote}) REGISTER category:client key: subkey:`,
    `INFO: DB: client(${p.remote}) REGISTER category:channel key:t1 subkey:c1`,
    `INFO: DB: client(${p.remote}) REGISTER category:topic key:t1 subkey:`,
  ]);
});

Deno.test("the capture's t9 state: REGISTER t9 then REGISTER t9 c9 answers as the reference, plus topology fields", async () => {
  await using daemon = startDaemon();
  const p = await connectProducer(daemon, { hostname: "", tcp_port: 1, http_port: 2 });
  assert.equal(await p.client.command("REGISTER t9"), "OK");
  assert.equal(await p.client.command("REGISTER t9 c9"), "OK");
  await expectJson(
    await daemon.get("/lookup?topic=t9"),
    200,
    `{"channels":["c9"],"producers":[{"remote_address":"${p.remote}","hostname":"",` +
      `"broadcast_address":"127.0.0.1","tcp_port":1,"http_port":2,"version":"1.3.0",` +
      `"topology_zone":"","topology_region":""}]}`,
  );
  await expectJson(await daemon.get("/channels?topic=t9"), 200, '{"channels":["c9"]}');
});

Deno.test("a producer's disconnect removes it everywhere but keeps its topic and channel listed", async () => {
  const clock = new ManualClock();
  await using daemon = startDaemon({}, { now: clock.now });
  const p = await connectProducer(daemon);
  assert.equal(await p.client.command("REGISTER t1 c1"), "OK");
  await disconnect(daemon, p);

  await expectJson(await daemon.get("/topics"), 200, '{"topics":["t1"]}');
  await expectJson(await daemon.get("/channels?topic=t1"), 200, '{"channels":["c1"]}');
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup(["c1"], []));
  await expectJson(await daemon.get("/nodes"), 200, '{"producers":[]}');
  await expectJson(await daemon.get("/debug"), 200, "{}");
  const unregistered = dbLines(daemon).filter((l) => l.includes("UNREGISTER"));
  assert.deepEqual(unregistered.sort(), [
    `INFO: DB: client(${p.remote}) UNREGISTER category:channel key:t1 subkey:c1`,
    `INFO: DB: client(${p.remote}) UNREGISTER category:client key: subkey:`,
    `INFO: DB: client(${p.remote}) UNREGISTER category:topic key:t1 subkey:`,
  ]);
  assertConsistent(daemon.registry);
});

Deno.test("a producer's disconnect deletes ephemeral topics and channels it leaves without producers", async () => {
  await using daemon = startDaemon();
  const stays = await connectProducer(daemon, { tcp_port: 1 });
  const leaves = await connectProducer(daemon, { tcp_port: 2 });
  assert.equal(await stays.client.command("REGISTER t c1#ephemeral"), "OK");
  assert.equal(await leaves.client.command("REGISTER t c1#ephemeral"), "OK");
  assert.equal(await leaves.client.command("REGISTER t c2#ephemeral"), "OK");
  assert.equal(await leaves.client.command("REGISTER e#ephemeral"), "OK");
  await disconnect(daemon, leaves);
  await expectJson(await daemon.get("/topics"), 200, '{"topics":["t"]}');
  await expectJson(await daemon.get("/lookup?topic=t"), 200, lookup(["c1#ephemeral"], [stays]));
  await expectError(await daemon.get("/lookup?topic=e%23ephemeral"), 404, "TOPIC_NOT_FOUND");
  assertConsistent(daemon.registry);
});

Deno.test("UNREGISTER of a channel removes the producer from that channel only", async () => {
  const clock = new ManualClock();
  await using daemon = startDaemon({}, { now: clock.now });
  const p = await connectProducer(daemon);
  assert.equal(await p.client.command("REGISTER t1 c1"), "OK");
  assert.equal(await p.client.command("REGISTER t1 c2"), "OK");
  assert.equal(await p.client.command("UNREGISTER t1 c1"), "OK");
  assert.ok(
    daemon.logs.includes(
      `INFO: DB: client(${p.remote}) UNREGISTER category:channel key:t1 subkey:c1`,
    ),
    daemon.logs.join("\n"),
  );
  // The channel registration stays (not ephemeral); the producer still serves the topic.
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup(["c1", "c2"], [p]));
  const entry = p.debug();
  await expectJson(
    await daemon.get("/debug"),
    200,
    `{"channel:t1:c2":[${entry}],"client::":[${entry}],"topic:t1:":[${entry}]}`,
  );
});

Deno.test("UNREGISTER of an ephemeral channel deletes it with its last producer", async () => {
  await using daemon = startDaemon();
  const p = await connectProducer(daemon);
  assert.equal(await p.client.command("REGISTER t1 c#ephemeral"), "OK");
  await expectJson(await daemon.get("/channels?topic=t1"), 200, '{"channels":["c#ephemeral"]}');
  assert.equal(await p.client.command("UNREGISTER t1 c#ephemeral"), "OK");
  await expectJson(await daemon.get("/channels?topic=t1"), 200, '{"channels":[]}');
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup([], [p]));
});

Deno.test("UNREGISTER of a whole topic removes the producer from the topic and all its channels", async () => {
  const clock = new ManualClock();
  await using daemon = startDaemon({}, { now: clock.now });
  const p = await connectProducer(daemon);
  assert.equal(await p.client.command("REGISTER t1 c1"), "OK");
  assert.equal(await p.client.command("REGISTER t1 c2"), "OK");
  assert.equal(await p.client.command("REGISTER t2"), "OK");
  assert.equal(await p.client.command("UNREGISTER t1"), "OK");

  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup(["c1", "c2"], []));
  await expectJson(await daemon.get("/lookup?topic=t2"), 200, lookup([], [p]));
  await expectJson(await daemon.get("/topics"), 200, '{"topics":["t1","t2"]}');
  await expectJson(
    await daemon.get("/nodes"),
    200,
    `{"producers":[${p.node([false], ["t2"])}]}`,
  );
  const entry = p.debug();
  await expectJson(
    await daemon.get("/debug"),
    200,
    `{"client::":[${entry}],"topic:t2:":[${entry}]}`,
  );
  assert.ok(
    daemon.logs.includes(
      `WARNING: client(${p.remote}) unexpected UNREGISTER category:channel key:t1 subkey:c1`,
    ),
    daemon.logs.join("\n"),
  );
  assert.ok(
    daemon.logs.includes(`INFO: DB: client(${p.remote}) UNREGISTER category:topic key:t1 subkey:`),
    daemon.logs.join("\n"),
  );
});

Deno.test("a tombstone hides a producer for one topic only and expires by itself, while /debug keeps it", async () => {
  const clock = new ManualClock();
  await using daemon = startDaemon({}, { now: clock.now });
  const p = await connectProducer(daemon);
  assert.equal(await p.client.command("REGISTER t1"), "OK");
  assert.equal(await p.client.command("REGISTER t2"), "OK");
  clock.advance(1_000);
  await expectEmpty(await daemon.post("/topic/tombstone?topic=t1&node=127.0.0.1:4151"));
  assert.ok(
    daemon.logs.includes("INFO: DB: setting tombstone for producer@127.0.0.1:4151 of topic(t1)"),
    daemon.logs.join("\n"),
  );

  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup([], []));
  await expectJson(await daemon.get("/lookup?topic=t2"), 200, lookup([], [p]));
  await expectJson(
    await daemon.get("/nodes"),
    200,
    `{"producers":[${p.node([true, false], ["t1", "t2"])}]}`,
  );

  // Still hidden one millisecond before the lifetime ends, visible at its end.
  clock.advance(TOMBSTONE_MS - 1);
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup([], []));
  clock.advance(1);
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup([], [p]));
  await expectJson(
    await daemon.get("/nodes"),
    200,
    `{"producers":[${p.node([false, false], ["t1", "t2"])}]}`,
  );
  const entry = p.debug();
  const tombstoned = p.debug({ tombstonedAt: "1800000001000000000" });
  await expectJson(
    await daemon.get("/debug"),
    200,
    `{"client::":[${entry}],"topic:t1:":[${tombstoned}],"topic:t2:":[${entry}]}`,
  );
});

Deno.test("re-registering a tombstoned producer keeps its tombstone", async () => {
  const clock = new ManualClock();
  await using daemon = startDaemon({}, { now: clock.now });
  const p = await connectProducer(daemon);
  assert.equal(await p.client.command("REGISTER t1"), "OK");
  await expectEmpty(await daemon.post("/topic/tombstone?topic=t1&node=127.0.0.1:4151"));
  assert.equal(await p.client.command("REGISTER t1"), "OK");
  assert.equal(await p.client.command("REGISTER t1 c1"), "OK");
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup(["c1"], []));
});

Deno.test("the tombstone lifetime follows --tombstone-lifetime", async () => {
  const clock = new ManualClock();
  await using daemon = startDaemon({ tombstoneLifetimeMs: 5_000 }, { now: clock.now });
  const p = await connectProducer(daemon);
  assert.equal(await p.client.command("REGISTER t1"), "OK");
  await expectEmpty(await daemon.post("/topic/tombstone?topic=t1&node=127.0.0.1:4151"));
  clock.advance(4_999);
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup([], []));
  clock.advance(1);
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup([], [p]));
});

Deno.test("a producer silent past the inactive-producer timeout is hidden from /lookup and /nodes until it pings", async () => {
  const clock = new ManualClock();
  await using daemon = startDaemon({}, { now: clock.now });
  const p = await connectProducer(daemon);
  assert.equal(await p.client.command("REGISTER t1 c1"), "OK");

  clock.advance(INACTIVE_MS);
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup(["c1"], [p]));
  clock.advance(1);
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup(["c1"], []));
  await expectJson(await daemon.get("/nodes"), 200, '{"producers":[]}');
  // Still registered: /debug shows it with its old last_update.
  const stale = p.debug();
  await expectJson(
    await daemon.get("/debug"),
    200,
    `{"channel:t1:c1":[${stale}],"client::":[${stale}],"topic:t1:":[${stale}]}`,
  );

  assert.equal(await p.client.command("PING"), "OK");
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup(["c1"], [p]));
  await expectJson(
    await daemon.get("/nodes"),
    200,
    `{"producers":[${p.node([false], ["t1"])}]}`,
  );
  const fresh = p.debug({ lastUpdate: "1800000300001000000" });
  await expectJson(
    await daemon.get("/debug"),
    200,
    `{"channel:t1:c1":[${fresh}],"client::":[${fresh}],"topic:t1:":[${fresh}]}`,
  );
});

Deno.test("REGISTER does not refresh a producer's activity; only PING does", async () => {
  const clock = new ManualClock();
  await using daemon = startDaemon({}, { now: clock.now });
  const p = await connectProducer(daemon);
  clock.advance(INACTIVE_MS + 1);
  assert.equal(await p.client.command("REGISTER t1"), "OK");
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup([], []));
});

Deno.test("two producers on one topic are both listed, sorted, and one leaving keeps the other", async () => {
  const clock = new ManualClock();
  await using daemon = startDaemon({}, { now: clock.now });
  // Same broadcast address: tcp_port orders them numerically (9 before 10).
  const ten = await connectProducer(daemon, { tcp_port: 10, http_port: 20 });
  const nine = await connectProducer(daemon, { tcp_port: 9, http_port: 19 });
  assert.equal(await ten.client.command("REGISTER t1 c1"), "OK");
  assert.equal(await nine.client.command("REGISTER t1 c2"), "OK");

  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup(["c1", "c2"], [nine, ten]));
  await expectJson(
    await daemon.get("/nodes"),
    200,
    `{"producers":[${nine.node([false], ["t1"])},${ten.node([false], ["t1"])}]}`,
  );
  // Tombstoning one node hides only that producer.
  await expectEmpty(await daemon.post("/topic/tombstone?topic=t1&node=127.0.0.1:20"));
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup(["c1", "c2"], [nine]));

  await disconnect(daemon, nine);
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup(["c1", "c2"], []));
  clock.advance(TOMBSTONE_MS);
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup(["c1", "c2"], [ten]));
  await expectJson(
    await daemon.get("/debug"),
    200,
    `{"channel:t1:c1":[${ten.debug()}],"client::":[${ten.debug()}],"topic:t1:":[${
      ten.debug({ tombstonedAt: START_NS })
    }]}`,
  );
});

Deno.test("producers with the same broadcast address and TCP port are ordered by remote address", async () => {
  await using daemon = startDaemon();
  const a = await connectProducer(daemon);
  const b = await connectProducer(daemon);
  assert.equal(await a.client.command("REGISTER t1"), "OK");
  assert.equal(await b.client.command("REGISTER t1"), "OK");
  const sorted = [a, b].sort((x, y) => (x.remote < y.remote ? -1 : 1));
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup([], sorted));
});

Deno.test("/nodes tombstones and topics have equal lengths for every producer", async () => {
  await using daemon = startDaemon();
  const one = await connectProducer(daemon, { tcp_port: 1, http_port: 11 });
  const two = await connectProducer(daemon, { tcp_port: 2, http_port: 12 });
  await connectProducer(daemon, { tcp_port: 3, http_port: 13 }); // registers nothing
  for (const line of ["REGISTER a", "REGISTER b c", "REGISTER c#ephemeral x"]) {
    assert.equal(await one.client.command(line), "OK");
  }
  assert.equal(await two.client.command("REGISTER b"), "OK");
  assert.equal(await two.client.command("REGISTER d d"), "OK");
  assert.equal(await two.client.command("UNREGISTER d"), "OK");
  await expectEmpty(await daemon.post("/topic/tombstone?topic=b&node=127.0.0.1:11"));
  await expectEmpty(await daemon.post("/channel/delete?topic=b&channel=c"));

  const res = await daemon.get("/nodes");
  const text = await res.text();
  assert.equal(res.status, 200);
  const nodes = (JSON.parse(text) as { producers: { tombstones: boolean[]; topics: string[] }[] })
    .producers;
  assert.deepEqual(
    nodes.map((n) => [n.topics, n.tombstones]),
    [
      [["a", "b", "c#ephemeral"], [false, true, false]],
      [["b"], [false]],
      [[], []],
    ],
  );
  for (const node of nodes) assert.equal(node.tombstones.length, node.topics.length);
});

Deno.test("HTTP creations and deletions log the DB lines operators grep for", async () => {
  await using daemon = startDaemon();
  const p = await connectProducer(daemon);
  assert.equal(await p.client.command("REGISTER t1"), "OK");
  const before = dbLines(daemon).length;
  await expectEmpty(await daemon.post("/topic/create?topic=x1"));
  await expectEmpty(await daemon.post("/channel/create?topic=x1&channel=c1"));
  await expectEmpty(await daemon.post("/channel/create?topic=x1&channel=c2"));
  await expectEmpty(await daemon.post("/channel/delete?topic=x1&channel=c2"));
  await expectEmpty(await daemon.post("/topic/tombstone?topic=t1&node=127.0.0.1:4151"));
  await expectEmpty(await daemon.post("/topic/delete?topic=x1"));
  assert.deepEqual(dbLines(daemon).slice(before), [
    "INFO: DB: adding topic(x1)",
    "INFO: DB: adding channel(c1) in topic(x1)",
    "INFO: DB: adding topic(x1)",
    "INFO: DB: adding channel(c2) in topic(x1)",
    "INFO: DB: adding topic(x1)",
    "INFO: DB: removing channel(c2) from topic(x1)",
    "INFO: DB: setting tombstone for producer@127.0.0.1:4151 of topic(t1)",
    "INFO: DB: removing channel(c1) from topic(x1)",
    "INFO: DB: removing topic(x1)",
  ]);
});

Deno.test("deleting a topic over HTTP drops its live producers until they register again", async () => {
  await using daemon = startDaemon();
  const p = await connectProducer(daemon);
  assert.equal(await p.client.command("REGISTER t1 c1"), "OK");
  assert.equal(await p.client.command("REGISTER t2"), "OK");
  await expectEmpty(await daemon.post("/topic/delete?topic=t1"));

  await expectError(await daemon.get("/lookup?topic=t1"), 404, "TOPIC_NOT_FOUND");
  await expectJson(await daemon.get("/channels?topic=t1"), 200, '{"channels":[]}');
  await expectJson(await daemon.get("/topics"), 200, '{"topics":["t2"]}');
  await expectJson(
    await daemon.get("/nodes"),
    200,
    `{"producers":[${p.node([false], ["t2"])}]}`,
  );
  assertConsistent(daemon.registry);

  // nsqd re-registers on its next topic activity.
  assert.equal(await p.client.command("REGISTER t1 c1"), "OK");
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup(["c1"], [p]));
  // And the disconnect after all that leaves no trace of the producer.
  await disconnect(daemon, p);
  await expectJson(await daemon.get("/debug"), 200, "{}");
  assertConsistent(daemon.registry);
});

Deno.test("channels created over HTTP before any producer are listed once a producer registers the topic", async () => {
  const clock = new ManualClock();
  await using daemon = startDaemon({}, { now: clock.now });
  await expectEmpty(await daemon.post("/channel/create?topic=t1&channel=archive"));
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup(["archive"], []));
  const p = await connectProducer(daemon);
  assert.equal(await p.client.command("REGISTER t1"), "OK");
  await expectJson(await daemon.get("/lookup?topic=t1"), 200, lookup(["archive"], [p]));
  // The producer never registered the channel: /debug has no channel entry for it.
  const entry = p.debug();
  await expectJson(
    await daemon.get("/debug"),
    200,
    `{"client::":[${entry}],"topic:t1:":[${entry}]}`,
  );
});

Deno.test("a producer's hostname is Go-escaped in /lookup, /nodes and /debug", async () => {
  await using daemon = startDaemon();
  const p = await connectProducer(daemon, { hostname: "<vm>&'x'" });
  assert.equal(await p.client.command("REGISTER t1"), "OK");
  const escaped = `"hostname":"\\u003cvm\\u003e\\u0026'x'"`;
  for (const path of ["/lookup?topic=t1", "/nodes", "/debug"]) {
    const res = await daemon.get(path);
    const text = await res.text();
    assert.equal(res.status, 200);
    assert.ok(text.includes(escaped), `${path}: ${text}`);
    assert.doesNotThrow(() => JSON.parse(text), path);
  }
});

Deno.test("a producer without topology fields shows them as empty strings", async () => {
  await using daemon = startDaemon();
  const client = await daemon.connect();
  await client.identify(
    '{"broadcast_address":"127.0.0.1","tcp_port":1,"http_port":2,"version":"1.3.0"}',
  );
  assert.equal(await client.command("REGISTER t1"), "OK");
  await expectJson(
    await daemon.get("/lookup?topic=t1"),
    200,
    `{"channels":[],"producers":[{"remote_address":"${client.localAddress}","hostname":"",` +
      `"broadcast_address":"127.0.0.1","tcp_port":1,"http_port":2,"version":"1.3.0",` +
      `"topology_zone":"","topology_region":""}]}`,
  );
});
