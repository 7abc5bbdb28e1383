// The HTTP API (spec section 3), mostly through the handler itself against a
// Registry on a ManualClock, plus a few requests over a real socket for what
// only the server adds (Content-Length, HEAD, redirects as sent).

import assert from "node:assert/strict";
import { createHttpApi, MAX_BODY_BYTES } from "../../../src/http/api.ts";
import type { LogLevel } from "../../../src/ops/logger.ts";
import { type PeerInfo, Registry } from "../../../src/registry.ts";
import {
  captureLogger,
  expectEmpty,
  expectError,
  expectJson,
  JSON_CONTENT_TYPE,
  ManualClock,
  NSQ_V1_CONTENT_TYPE,
  startDaemon,
  testPeer,
} from "../../support/helpers.ts";
import { type WebHandler, webHandler } from "../../support/web_api.ts";
import { assertConsistent } from "../../../src/registry_testing.ts";

const INACTIVE_MS = 300_000;
const TOMBSTONE_MS = 45_000;
/** ManualClock's default start, in Unix nanoseconds as /debug prints it. */
const START_NS = "1800000000000000000";

interface Api {
  readonly registry: Registry;
  readonly clock: ManualClock;
  readonly logs: string[];
  readonly handler: WebHandler;
  get(pathAndQuery: string, init?: RequestInit): Promise<Response>;
  post(pathAndQuery: string, init?: RequestInit): Promise<Response>;
  request(method: string, pathAndQuery: string, init?: RequestInit): Promise<Response>;
  /** A peer as IDENTIFY would store it (lastUpdate = now), already in the `client` registration. */
  peer(fields: Partial<PeerInfo> & { remoteAddress: string }): PeerInfo;
}

function api(level: LogLevel = "debug"): Api {
  const clock = new ManualClock();
  const registry = new Registry({
    now: clock.now,
    inactiveProducerTimeoutMs: INACTIVE_MS,
    tombstoneLifetimeMs: TOMBSTONE_MS,
  });
  const { logger, logs } = captureLogger(level);
  const handler = webHandler(createHttpApi({ registry, logger }));
  const request = async (method: string, path: string, init?: RequestInit): Promise<Response> =>
    await handler(new Request(`http://x${path}`, { method, ...init }));
  return {
    registry,
    clock,
    logs,
    handler,
    request,
    get: (path, init) => request("GET", path, init),
    post: (path, init) => request("POST", path, init),
    peer: (fields) => {
      const peer = testPeer({ lastUpdate: clock.now(), ...fields });
      registry.identify(peer);
      return peer;
    },
  };
}

/** A peer object's fields in the wire order of spec section 1 (plain ASCII values only). */
function peerFields(p: PeerInfo): string {
  return `"remote_address":"${p.remoteAddress}","hostname":"${p.hostname}",` +
    `"broadcast_address":"${p.broadcastAddress}","tcp_port":${p.tcpPort},` +
    `"http_port":${p.httpPort},"version":"${p.version}",` +
    `"topology_zone":"${p.topologyZone}","topology_region":"${p.topologyRegion}"`;
}

function lookupBody(channels: string[], producers: PeerInfo[]): string {
  return `{"channels":${JSON.stringify(channels)},"producers":[${
    producers.map((p) => `{${peerFields(p)}}`).join(",")
  }]}`;
}

/** Lower-cased header names, sorted. */
function headerNames(res: Response): string[] {
  return [...res.headers.keys()].sort();
}

const GET_ROUTES = ["/ping", "/info", "/topics", "/channels", "/lookup", "/nodes", "/debug"];
const POST_ROUTES = [
  "/topic/create",
  "/topic/delete",
  "/channel/create",
  "/channel/delete",
  "/topic/tombstone",
];

// ---- /ping and /info ----

Deno.test("GET /ping is 200 OK as text/plain, without the NSQ content-type header", async () => {
  const res = await api().get("/ping");
  assert.equal(await res.text(), "OK");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(res.headers.get("x-nsq-content-type"), null);
});

Deno.test('GET /info is {"version":"1.3.0"}', async () => {
  const res = await api().get("/info");
  assert.deepEqual(headerNames(res), ["content-type", "x-nsq-content-type"]);
  await expectJson(res, 200, '{"version":"1.3.0"}');
});

// ---- /topics ----

Deno.test('GET /topics of an empty registry is {"topics":[]}', async () => {
  await expectJson(await api().get("/topics"), 200, '{"topics":[]}');
});

Deno.test("GET /topics lists every topic sorted by name", async () => {
  const a = api();
  const p = a.peer({ remoteAddress: "127.0.0.1:5000" });
  a.registry.registerTopic(p, "zeta");
  a.registry.createTopic("alpha");
  a.registry.registerChannel(p, "mid", "c");
  a.registry.registerTopic(p, "mid");
  a.registry.createTopic("Beta");
  await expectJson(await a.get("/topics"), 200, '{"topics":["Beta","alpha","mid","zeta"]}');
});

// ---- /channels ----

Deno.test("GET /channels without topic is 400 MISSING_ARG_TOPIC", async () => {
  await expectError(await api().get("/channels"), 400, "MISSING_ARG_TOPIC");
});

Deno.test("GET /channels of an unknown topic is an empty list", async () => {
  await expectJson(await api().get("/channels?topic=nosuch"), 200, '{"channels":[]}');
});

Deno.test("GET /channels?topic= (present but empty) is an empty list, not 400", async () => {
  await expectJson(await api().get("/channels?topic="), 200, '{"channels":[]}');
});

Deno.test("GET /channels lists the topic's channels sorted by name and no other topic's", async () => {
  const a = api();
  a.registry.createChannel("t", "zz");
  a.registry.createChannel("t", "aa#ephemeral");
  a.registry.createChannel("t", "mm");
  a.registry.createChannel("other", "bb");
  await expectJson(
    await a.get("/channels?topic=t"),
    200,
    '{"channels":["aa#ephemeral","mm","zz"]}',
  );
});

// ---- /lookup ----

Deno.test("GET /lookup without topic is 400 MISSING_ARG_TOPIC", async () => {
  await expectError(await api().get("/lookup"), 400, "MISSING_ARG_TOPIC");
});

Deno.test("GET /lookup of an unknown topic is 404 TOPIC_NOT_FOUND", async () => {
  await expectError(await api().get("/lookup?topic=missing"), 404, "TOPIC_NOT_FOUND");
});

Deno.test("GET /lookup?topic= (present but empty) is 404 TOPIC_NOT_FOUND, not 400", async () => {
  await expectError(await api().get("/lookup?topic="), 404, "TOPIC_NOT_FOUND");
});

Deno.test("GET /lookup?topic=bad!name is 404 TOPIC_NOT_FOUND (the name is not validated)", async () => {
  await expectError(await api().get("/lookup?topic=bad!name"), 404, "TOPIC_NOT_FOUND");
});

Deno.test("GET /lookup of a topic created over HTTP has no producers", async () => {
  const a = api();
  a.registry.createTopic("t");
  await expectJson(await a.get("/lookup?topic=t"), 200, '{"channels":[],"producers":[]}');
});

Deno.test("GET /lookup lists channels and producers with peer keys in the spec's order", async () => {
  const a = api();
  const p = a.peer({
    remoteAddress: "127.0.0.1:33138",
    hostname: "vm",
    tcpPort: 14150,
    httpPort: 14151,
    topologyZone: "z1",
    topologyRegion: "r1",
  });
  a.registry.registerChannel(p, "t9", "c9");
  a.registry.registerTopic(p, "t9");
  await expectJson(
    await a.get("/lookup?topic=t9"),
    200,
    '{"channels":["c9"],"producers":[{"remote_address":"127.0.0.1:33138","hostname":"vm",' +
      '"broadcast_address":"127.0.0.1","tcp_port":14150,"http_port":14151,"version":"1.3.0",' +
      '"topology_zone":"z1","topology_region":"r1"}]}',
  );
});

Deno.test("GET /lookup lists a topic's empty channels too", async () => {
  const a = api();
  const p = a.peer({ remoteAddress: "127.0.0.1:5000" });
  a.registry.registerTopic(p, "t");
  a.registry.createChannel("t", "b");
  a.registry.createChannel("t", "a");
  await expectJson(await a.get("/lookup?topic=t"), 200, lookupBody(["a", "b"], [p]));
});

Deno.test("GET /lookup sorts producers by broadcast_address, then tcp_port, then remote_address", async () => {
  const a = api();
  const peers = [
    a.peer({ remoteAddress: "127.0.0.1:7", broadcastAddress: "b.example", tcpPort: 9 }),
    a.peer({ remoteAddress: "127.0.0.1:6", broadcastAddress: "a.example", tcpPort: 10 }),
    a.peer({ remoteAddress: "127.0.0.1:5", broadcastAddress: "a.example", tcpPort: 9 }),
    a.peer({ remoteAddress: "127.0.0.1:4", broadcastAddress: "a.example", tcpPort: 10 }),
  ];
  for (const p of peers) a.registry.registerTopic(p, "t");
  const [b9, a10r6, a9, a10r4] = peers;
  // tcp_port compares as a number (9 before 10), remote_address as a string.
  await expectJson(await a.get("/lookup?topic=t"), 200, lookupBody([], [a9, a10r4, a10r6, b9]));
});

Deno.test("GET /lookup hides a tombstoned producer until the tombstone lifetime has passed", async () => {
  const a = api();
  const kept = a.peer({ remoteAddress: "127.0.0.1:5001", httpPort: 1001 });
  const gone = a.peer({ remoteAddress: "127.0.0.1:5002", httpPort: 1002 });
  a.registry.registerTopic(kept, "t");
  a.registry.registerTopic(gone, "t");
  await expectEmpty(await a.post("/topic/tombstone?topic=t&node=127.0.0.1:1002"));
  await expectJson(await a.get("/lookup?topic=t"), 200, lookupBody([], [kept]));
  a.clock.advance(TOMBSTONE_MS - 1);
  await expectJson(await a.get("/lookup?topic=t"), 200, lookupBody([], [kept]));
  a.clock.advance(1);
  await expectJson(await a.get("/lookup?topic=t"), 200, lookupBody([], [kept, gone]));
});

Deno.test("GET /lookup hides a producer silent for longer than the inactive-producer timeout", async () => {
  const a = api();
  const p = a.peer({ remoteAddress: "127.0.0.1:5000" });
  a.registry.registerTopic(p, "t");
  a.clock.advance(INACTIVE_MS);
  await expectJson(await a.get("/lookup?topic=t"), 200, lookupBody([], [p]));
  a.clock.advance(1);
  await expectJson(await a.get("/lookup?topic=t"), 200, lookupBody([], []));
  a.registry.touch(p);
  await expectJson(await a.get("/lookup?topic=t"), 200, lookupBody([], [p]));
});

Deno.test("GET /lookup with a repeated topic parameter uses its first value", async () => {
  const a = api();
  a.registry.createChannel("first", "c1");
  a.registry.createTopic("first");
  a.registry.createTopic("second");
  await expectJson(
    await a.get("/lookup?topic=first&topic=second"),
    200,
    '{"channels":["c1"],"producers":[]}',
  );
  await expectError(await a.get("/lookup?topic=missing&topic=first"), 404, "TOPIC_NOT_FOUND");
});

// ---- /nodes ----

Deno.test('GET /nodes with no producers is {"producers":[]}', async () => {
  await expectJson(await api().get("/nodes"), 200, '{"producers":[]}');
});

Deno.test("GET /nodes lists each peer's fields, then tombstones and topics (sorted, same length)", async () => {
  const a = api();
  const p = a.peer({
    remoteAddress: "127.0.0.1:33138",
    hostname: "vm",
    tcpPort: 14150,
    httpPort: 14151,
    topologyZone: "z",
    topologyRegion: "r",
  });
  a.registry.registerTopic(p, "t2");
  a.registry.registerChannel(p, "t1", "c");
  a.registry.registerTopic(p, "t1");
  await expectJson(
    await a.get("/nodes"),
    200,
    '{"producers":[{"remote_address":"127.0.0.1:33138","hostname":"vm",' +
      '"broadcast_address":"127.0.0.1","tcp_port":14150,"http_port":14151,"version":"1.3.0",' +
      '"topology_zone":"z","topology_region":"r","tombstones":[false,false],"topics":["t1","t2"]}]}',
  );
});

Deno.test("GET /nodes lists a peer that registered nothing with empty topics and tombstones", async () => {
  const a = api();
  const p = a.peer({ remoteAddress: "127.0.0.1:5000" });
  await expectJson(
    await a.get("/nodes"),
    200,
    `{"producers":[{${peerFields(p)},"tombstones":[],"topics":[]}]}`,
  );
});

Deno.test("GET /nodes keeps a tombstoned producer and marks only the tombstoned topic", async () => {
  const a = api();
  const p = a.peer({ remoteAddress: "127.0.0.1:5000" });
  for (const t of ["a", "b", "c"]) a.registry.registerTopic(p, t);
  a.registry.tombstone("b", "127.0.0.1:4151");
  const body = (tombstones: string): string =>
    `{"producers":[{${peerFields(p)},"tombstones":[${tombstones}],"topics":["a","b","c"]}]}`;
  await expectJson(await a.get("/nodes"), 200, body("false,true,false"));
  a.clock.advance(TOMBSTONE_MS);
  await expectJson(await a.get("/nodes"), 200, body("false,false,false"));
});

Deno.test("GET /nodes omits a producer silent for longer than the inactive-producer timeout", async () => {
  const a = api();
  const old = a.peer({ remoteAddress: "127.0.0.1:5001", tcpPort: 1 });
  a.clock.advance(INACTIVE_MS);
  const fresh = a.peer({ remoteAddress: "127.0.0.1:5002", tcpPort: 2 });
  const node = (p: PeerInfo): string => `{${peerFields(p)},"tombstones":[],"topics":[]}`;
  await expectJson(await a.get("/nodes"), 200, `{"producers":[${node(old)},${node(fresh)}]}`);
  a.clock.advance(1);
  await expectJson(await a.get("/nodes"), 200, `{"producers":[${node(fresh)}]}`);
});

Deno.test("GET /nodes sorts producers by broadcast_address, tcp_port, remote_address", async () => {
  const a = api();
  const z = a.peer({ remoteAddress: "127.0.0.1:1", broadcastAddress: "z" });
  const a2 = a.peer({ remoteAddress: "127.0.0.1:3", broadcastAddress: "a", tcpPort: 2 });
  const a1 = a.peer({ remoteAddress: "127.0.0.1:2", broadcastAddress: "a", tcpPort: 1 });
  const node = (p: PeerInfo): string => `{${peerFields(p)},"tombstones":[],"topics":[]}`;
  await expectJson(
    await a.get("/nodes"),
    200,
    `{"producers":[${[a1, a2, z].map(node).join(",")}]}`,
  );
});

// ---- /debug ----

Deno.test("GET /debug of an empty registry is {}", async () => {
  await expectJson(await api().get("/debug"), 200, "{}");
});

Deno.test("GET /debug keys registrations category:key:subkey, sorted, entries with sorted keys", async () => {
  const a = api();
  const p = a.peer({
    remoteAddress: "127.0.0.1:46620",
    hostname: "",
    tcpPort: 1,
    httpPort: 2,
    topologyZone: "z",
    topologyRegion: "r",
  });
  a.registry.registerChannel(p, "t9", "c9");
  a.registry.registerTopic(p, "t9");
  a.registry.createChannel("empty", "c"); // no producers: absent from /debug
  a.registry.createTopic("empty");
  const entry = '{"broadcast_address":"127.0.0.1","hostname":"","http_port":2,' +
    `"id":"127.0.0.1:46620","last_update":${START_NS},"tcp_port":1,"tombstoned":false,` +
    '"tombstoned_at":0,"topology_region":"r","topology_zone":"z","version":"1.3.0"}';
  await expectJson(
    await a.get("/debug"),
    200,
    `{"channel:t9:c9":[${entry}],"client::":[${entry}],"topic:t9:":[${entry}]}`,
  );
});

Deno.test("GET /debug shows a tombstone (unix ns) even after it expired", async () => {
  const a = api();
  const p = a.peer({ remoteAddress: "127.0.0.1:5000" });
  a.registry.registerTopic(p, "t");
  a.clock.advance(1_500);
  a.registry.tombstone("t", "127.0.0.1:4151");
  const entry = (tombstoned: boolean, at: string): string =>
    '{"broadcast_address":"127.0.0.1","hostname":"h1","http_port":4151,' +
    `"id":"127.0.0.1:5000","last_update":${START_NS},"tcp_port":4150,` +
    `"tombstoned":${tombstoned},"tombstoned_at":${at},"topology_region":"",` +
    '"topology_zone":"","version":"1.3.0"}';
  const body = `{"client::":[${entry(false, "0")}],"topic:t:":[${
    entry(true, "1800000001500000000")
  }]}`;
  await expectJson(await a.get("/debug"), 200, body);
  a.clock.advance(TOMBSTONE_MS * 2);
  await expectJson(await a.get("/debug"), 200, body);
});

Deno.test("GET /debug shows last_update of the latest PING and inactive producers too", async () => {
  const a = api();
  const p = a.peer({ remoteAddress: "127.0.0.1:5000" });
  a.clock.advance(INACTIVE_MS * 2);
  a.registry.touch(p);
  a.clock.advance(INACTIVE_MS * 2);
  const res = await a.get("/debug");
  await expectJson(
    res,
    200,
    '{"client::":[{"broadcast_address":"127.0.0.1","hostname":"h1","http_port":4151,' +
      '"id":"127.0.0.1:5000","last_update":1800000600000000000,"tcp_port":4150,' +
      '"tombstoned":false,"tombstoned_at":0,"topology_region":"","topology_zone":"",' +
      '"version":"1.3.0"}]}',
  );
});

Deno.test("GET /debug sorts the producers of a registration", async () => {
  const a = api();
  const second = a.peer({ remoteAddress: "127.0.0.1:2", tcpPort: 2 });
  const first = a.peer({ remoteAddress: "127.0.0.1:1", tcpPort: 1 });
  a.registry.registerTopic(second, "t");
  a.registry.registerTopic(first, "t");
  const res = await a.get("/debug");
  const body = await res.text();
  assert.equal(res.status, 200);
  const ids = [...body.matchAll(/"id":"([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(ids, ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "127.0.0.1:2"]);
});

// ---- Go JSON escaping ----

Deno.test("peer strings are escaped as Go does (<, >, & as \\u003c \\u003e \\u0026)", async () => {
  const a = api();
  const p = a.peer({
    remoteAddress: "127.0.0.1:5000",
    hostname: '<b>&"x"\\\u2028',
    topologyZone: "a<z",
  });
  a.registry.registerTopic(p, "t");
  const hostname = '"\\u003cb\\u003e\\u0026\\"x\\"\\\\\\u2028"';
  const lookup = await a.get("/lookup?topic=t");
  const lookupText = await lookup.text();
  assert.ok(lookupText.includes(`"hostname":${hostname},`), lookupText);
  assert.ok(lookupText.includes('"topology_zone":"a\\u003cz"'), lookupText);
  for (const path of ["/nodes", "/debug"]) {
    const text = await (await a.get(path)).text();
    assert.ok(text.includes(`"hostname":${hostname},`), `${path}: ${text}`);
  }
});

// ---- /topic/create ----

Deno.test("POST /topic/create creates the topic, answers an empty 200 and logs DB: adding topic", async () => {
  const a = api();
  const res = await a.post("/topic/create?topic=x1");
  assert.deepEqual(headerNames(res), ["x-nsq-content-type"]);
  await expectEmpty(res);
  assert.deepEqual(a.registry.topics(), ["x1"]);
  assert.ok(a.logs.includes("INFO: DB: adding topic(x1)"), a.logs.join("\n"));
  await expectJson(await a.get("/topics"), 200, '{"topics":["x1"]}');
  await expectJson(await a.get("/lookup?topic=x1"), 200, '{"channels":[],"producers":[]}');
});

Deno.test("POST /topic/create of an existing topic is 200 and keeps its producers", async () => {
  const a = api();
  const p = a.peer({ remoteAddress: "127.0.0.1:5000" });
  a.registry.registerTopic(p, "t");
  await expectEmpty(await a.post("/topic/create?topic=t"));
  await expectJson(await a.get("/lookup?topic=t"), 200, lookupBody([], [p]));
});

Deno.test("POST /topic/create without topic is 400 MISSING_ARG_TOPIC", async () => {
  const a = api();
  await expectError(await a.post("/topic/create"), 400, "MISSING_ARG_TOPIC");
  assert.deepEqual(a.registry.topics(), []);
});

Deno.test("POST /topic/create of an invalid name is 400 INVALID_ARG_TOPIC", async () => {
  const a = api();
  for (const topic of ["bad!name", "", "a".repeat(65), "a%20b", "t%23ephemeralx", "%23ephemeral"]) {
    await expectError(await a.post(`/topic/create?topic=${topic}`), 400, "INVALID_ARG_TOPIC");
  }
  assert.deepEqual(a.registry.topics(), []);
});

Deno.test("POST /topic/create accepts 64-character and #ephemeral names", async () => {
  const a = api();
  const long = "a".repeat(64);
  await expectEmpty(await a.post(`/topic/create?topic=${long}`));
  await expectEmpty(await a.post("/topic/create?topic=t.-_9%23ephemeral"));
  assert.deepEqual(a.registry.topics(), [long, "t.-_9#ephemeral"]);
});

// ---- /topic/delete ----

Deno.test("POST /topic/delete deletes the topic and every channel, logging each", async () => {
  const a = api();
  const p = a.peer({ remoteAddress: "127.0.0.1:5000" });
  a.registry.registerChannel(p, "t", "c2");
  a.registry.registerChannel(p, "t", "c1");
  a.registry.registerTopic(p, "t");
  a.registry.registerTopic(p, "other");
  a.logs.length = 0;
  await expectEmpty(await a.post("/topic/delete?topic=t"));
  assert.deepEqual(a.logs.filter((l) => l.includes("DB:")), [
    "INFO: DB: removing channel(c1) from topic(t)",
    "INFO: DB: removing channel(c2) from topic(t)",
    "INFO: DB: removing topic(t)",
  ]);
  await expectJson(await a.get("/topics"), 200, '{"topics":["other"]}');
  await expectJson(await a.get("/channels?topic=t"), 200, '{"channels":[]}');
  await expectError(await a.get("/lookup?topic=t"), 404, "TOPIC_NOT_FOUND");
  // The producer itself stays identified, now registered for "other" only.
  await expectJson(
    await a.get("/nodes"),
    200,
    `{"producers":[{${peerFields(p)},"tombstones":[false],"topics":["other"]}]}`,
  );
  assertConsistent(a.registry);
});

Deno.test("POST /topic/delete of an absent topic is 200 and logs no DB line", async () => {
  const a = api();
  await expectEmpty(await a.post("/topic/delete?topic=nosuch"));
  assert.deepEqual(a.logs.filter((l) => l.includes("DB:")), []);
});

Deno.test("POST /topic/delete does not validate the name", async () => {
  await expectEmpty(await api().post("/topic/delete?topic=bad!name"));
});

Deno.test("POST /topic/delete without topic is 400 MISSING_ARG_TOPIC", async () => {
  const a = api();
  a.registry.createTopic("t");
  await expectError(await a.post("/topic/delete?channel=t"), 400, "MISSING_ARG_TOPIC");
  assert.deepEqual(a.registry.topics(), ["t"]);
});

// ---- /channel/create and /channel/delete ----

Deno.test("POST /channel/create creates the channel and its topic, logging both", async () => {
  const a = api();
  await expectEmpty(await a.post("/channel/create?topic=x1&channel=c1"));
  assert.deepEqual(a.logs.filter((l) => l.includes("DB:")), [
    "INFO: DB: adding channel(c1) in topic(x1)",
    "INFO: DB: adding topic(x1)",
  ]);
  await expectJson(await a.get("/channels?topic=x1"), 200, '{"channels":["c1"]}');
  await expectJson(await a.get("/topics"), 200, '{"topics":["x1"]}');
  await expectJson(await a.get("/lookup?topic=x1"), 200, '{"channels":["c1"],"producers":[]}');
});

/** Queries and the error each must produce, in the order the reference checks them. */
const TOPIC_CHANNEL_ERRORS: [string, string][] = [
  ["", "MISSING_ARG_TOPIC"],
  ["channel=c1", "MISSING_ARG_TOPIC"],
  ["channel=bad!ch", "MISSING_ARG_TOPIC"],
  ["topic=bad!name", "INVALID_ARG_TOPIC"],
  ["topic=bad!name&channel=bad!ch", "INVALID_ARG_TOPIC"],
  ["topic=", "INVALID_ARG_TOPIC"],
  ["topic=&channel=", "INVALID_ARG_TOPIC"],
  ["topic=x1", "MISSING_ARG_CHANNEL"],
  ["topic=x1&node=c1", "MISSING_ARG_CHANNEL"],
  ["topic=x1&channel=bad!ch", "INVALID_ARG_CHANNEL"],
  ["topic=x1&channel=", "INVALID_ARG_CHANNEL"],
  [`topic=x1&channel=${"c".repeat(65)}`, "INVALID_ARG_CHANNEL"],
];

Deno.test("POST /channel/create checks topic presence, topic name, channel presence, channel name in that order", async () => {
  const a = api();
  for (const [query, code] of TOPIC_CHANNEL_ERRORS) {
    await expectError(await a.post(`/channel/create?${query}`), 400, code);
  }
  assert.deepEqual(a.registry.topics(), []);
  assert.deepEqual(a.registry.channels("x1"), []);
});

Deno.test("POST /channel/delete checks topic presence, topic name, channel presence, channel name in that order", async () => {
  const a = api();
  a.registry.createChannel("x1", "c1");
  for (const [query, code] of TOPIC_CHANNEL_ERRORS) {
    await expectError(await a.post(`/channel/delete?${query}`), 400, code);
  }
  assert.deepEqual(a.registry.channels("x1"), ["c1"]);
});

Deno.test("POST /channel/delete of a missing channel is 404 CHANNEL_NOT_FOUND", async () => {
  const a = api();
  a.registry.createTopic("x1");
  a.registry.createChannel("x1", "other");
  await expectError(await a.post("/channel/delete?topic=x1&channel=c1"), 404, "CHANNEL_NOT_FOUND");
  await expectError(
    await a.post("/channel/delete?topic=nosuch&channel=c1"),
    404,
    "CHANNEL_NOT_FOUND",
  );
  assert.deepEqual(a.logs.filter((l) => l.includes("DB:")), []);
});

Deno.test("POST /channel/delete deletes only that channel and keeps the topic", async () => {
  const a = api();
  const p = a.peer({ remoteAddress: "127.0.0.1:5000" });
  a.registry.registerChannel(p, "x1", "c1");
  a.registry.registerChannel(p, "x1", "c2");
  a.registry.registerTopic(p, "x1");
  await expectEmpty(await a.post("/channel/delete?topic=x1&channel=c1"));
  assert.ok(a.logs.includes("INFO: DB: removing channel(c1) from topic(x1)"), a.logs.join("\n"));
  await expectJson(await a.get("/lookup?topic=x1"), 200, lookupBody(["c2"], [p]));
  await expectError(await a.post("/channel/delete?topic=x1&channel=c1"), 404, "CHANNEL_NOT_FOUND");
  assertConsistent(a.registry);
});

// ---- /topic/tombstone ----

Deno.test("POST /topic/tombstone without topic is 400 MISSING_ARG_TOPIC, checked before node", async () => {
  const a = api();
  await expectError(await a.post("/topic/tombstone"), 400, "MISSING_ARG_TOPIC");
  await expectError(await a.post("/topic/tombstone?node=1.2.3.4:5"), 400, "MISSING_ARG_TOPIC");
});

Deno.test("POST /topic/tombstone without node is 400 MISSING_ARG_NODE", async () => {
  await expectError(await api().post("/topic/tombstone?topic=t1"), 400, "MISSING_ARG_NODE");
});

Deno.test("POST /topic/tombstone with no matching producer is 200 and changes nothing", async () => {
  const a = api();
  const p = a.peer({ remoteAddress: "127.0.0.1:5000" });
  a.registry.registerTopic(p, "t1");
  // tcp_port does not match: the node is broadcast_address:http_port.
  await expectEmpty(await a.post("/topic/tombstone?topic=t1&node=127.0.0.1:4150"));
  await expectEmpty(await a.post("/topic/tombstone?topic=t1&node=1.2.3.4:5"));
  await expectEmpty(await a.post("/topic/tombstone?topic=nosuch&node=127.0.0.1:4151"));
  await expectEmpty(await a.post("/topic/tombstone?topic=t1&node="));
  await expectJson(await a.get("/lookup?topic=t1"), 200, lookupBody([], [p]));
  assert.ok(
    a.logs.includes("INFO: DB: setting tombstone for producer@1.2.3.4:5 of topic(t1)"),
    a.logs.join("\n"),
  );
});

Deno.test("POST /topic/tombstone tombstones every producer of the topic at that node", async () => {
  const a = api();
  const one = a.peer({ remoteAddress: "127.0.0.1:5001", tcpPort: 1 });
  const two = a.peer({ remoteAddress: "127.0.0.1:5002", tcpPort: 2 });
  const other = a.peer({ remoteAddress: "127.0.0.1:5003", broadcastAddress: "other" });
  for (const p of [one, two, other]) a.registry.registerTopic(p, "t");
  await expectEmpty(await a.post("/topic/tombstone?topic=t&node=127.0.0.1:4151"));
  assert.ok(
    a.logs.includes("INFO: DB: setting tombstone for producer@127.0.0.1:4151 of topic(t)"),
    a.logs.join("\n"),
  );
  await expectJson(await a.get("/lookup?topic=t"), 200, lookupBody([], [other]));
});

// ---- router: 404, 405, OPTIONS, HEAD, redirects ----

Deno.test("an unknown path is 404 NOT_FOUND", async () => {
  const a = api();
  for (const path of ["/nonexistent", "/", "/lookup/x", "/topic", "/topics/create", "/metricsx"]) {
    await expectError(await a.get(path), 404, "NOT_FOUND");
    await expectError(await a.post(path), 404, "NOT_FOUND");
  }
});

Deno.test("/debug/pprof routes are 404 NOT_FOUND", async () => {
  const a = api();
  for (
    const path of ["/debug/pprof", "/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile"]
  ) {
    await expectError(await a.get(path), 404, "NOT_FOUND");
  }
});

Deno.test("GET on a POST route is 405 METHOD_NOT_ALLOWED with Allow: OPTIONS, POST", async () => {
  const a = api();
  for (const path of POST_ROUTES) {
    const res = await a.get(`${path}?topic=x2&channel=c&node=n`);
    assert.equal(res.headers.get("allow"), "OPTIONS, POST", path);
    await expectError(res, 405, "METHOD_NOT_ALLOWED");
  }
  assert.deepEqual(a.registry.topics(), []);
});

Deno.test("POST on a GET route is 405 METHOD_NOT_ALLOWED with Allow: GET, OPTIONS", async () => {
  const a = api();
  for (const path of GET_ROUTES) {
    const res = await a.post(path);
    assert.equal(res.headers.get("allow"), "GET, OPTIONS", path);
    await expectError(res, 405, "METHOD_NOT_ALLOWED");
  }
});

Deno.test("PUT, DELETE and PATCH on a known path are 405 with its Allow", async () => {
  const a = api();
  for (const method of ["PUT", "DELETE", "PATCH"]) {
    const get = await a.request(method, "/lookup?topic=t");
    assert.equal(get.headers.get("allow"), "GET, OPTIONS");
    await expectError(get, 405, "METHOD_NOT_ALLOWED");
    const post = await a.request(method, "/topic/create?topic=t");
    assert.equal(post.headers.get("allow"), "OPTIONS, POST");
    await expectError(post, 405, "METHOD_NOT_ALLOWED");
  }
});

Deno.test("HEAD on /ping is 405 with Allow: GET, OPTIONS (HEAD is not special)", async () => {
  const res = await api().request("HEAD", "/ping");
  assert.equal(res.headers.get("allow"), "GET, OPTIONS");
  await expectError(res, 405, "METHOD_NOT_ALLOWED");
});

Deno.test("OPTIONS on a known path is 200 with an empty body and the path's Allow", async () => {
  const a = api();
  for (const path of [...GET_ROUTES, ...POST_ROUTES]) {
    const res = await a.request("OPTIONS", path);
    assert.equal(await res.text(), "");
    assert.equal(res.status, 200);
    assert.deepEqual(headerNames(res), ["allow"]);
    assert.equal(
      res.headers.get("allow"),
      GET_ROUTES.includes(path) ? "GET, OPTIONS" : "OPTIONS, POST",
    );
  }
});

Deno.test("OPTIONS on an unknown path is 404 NOT_FOUND", async () => {
  await expectError(await api().request("OPTIONS", "/nonexistent"), 404, "NOT_FOUND");
});

Deno.test("GET /lookup/ and /LOOKUP are 301 to /lookup, keeping the query", async () => {
  const a = api();
  for (const path of ["/lookup/", "/LOOKUP", "/Lookup/"]) {
    const res = await a.get(`${path}?topic=t&x=%2F`);
    assert.equal(
      await res.text(),
      '<a href="/lookup?topic=t&amp;x=%2F">Moved Permanently</a>.\n\n',
    );
    assert.equal(res.status, 301, path);
    assert.equal(res.headers.get("location"), "/lookup?topic=t&x=%2F");
    assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
  }
  const bare = await a.get("/TOPICS/");
  assert.equal(await bare.text(), '<a href="/topics">Moved Permanently</a>.\n\n');
  assert.equal(bare.status, 301);
  assert.equal(bare.headers.get("location"), "/topics");
});

Deno.test("a wrong-case path redirects only when the canonical path serves that method", async () => {
  const a = api();
  // httprouter keeps one tree per method: no POST /lookup, no GET /topic/create.
  await expectError(await a.post("/LOOKUP?topic=t"), 404, "NOT_FOUND");
  await expectError(await a.get("/Topic/Create?topic=t"), 404, "NOT_FOUND");
  await expectError(await a.request("OPTIONS", "/lookup/"), 404, "NOT_FOUND");
  await expectError(await a.request("HEAD", "/PING"), 404, "NOT_FOUND");
  const post = await a.post("/Topic/Create?topic=t");
  assert.equal(await post.text(), "");
  assert.ok(post.status === 307 || post.status === 308, String(post.status));
  assert.equal(post.headers.get("location"), "/topic/create?topic=t");
  assert.deepEqual(a.registry.topics(), []);
});

// ---- query strings ----

Deno.test("an invalid percent-escape in the query is 400 INVALID_REQUEST", async () => {
  const a = api();
  await expectError(await a.get("/lookup?topic=%zz"), 400, "INVALID_REQUEST");
  await expectError(await a.get("/channels?topic=t&x=%4"), 400, "INVALID_REQUEST");
  await expectError(await a.post("/topic/create?topic=t%"), 400, "INVALID_REQUEST");
  assert.deepEqual(a.registry.topics(), []);
});

Deno.test("a ; separator in the query is 400 INVALID_REQUEST", async () => {
  const a = api();
  a.registry.createTopic("t");
  await expectError(await a.get("/lookup?topic=t;x=1"), 400, "INVALID_REQUEST");
  await expectError(await a.post("/topic/create?topic=u;"), 400, "INVALID_REQUEST");
  await expectError(await a.post("/topic/delete?topic=t;"), 400, "INVALID_REQUEST");
  await expectError(await a.post("/topic/tombstone?topic=t&node=a;b"), 400, "INVALID_REQUEST");
  assert.deepEqual(a.registry.topics(), ["t"]);
});

Deno.test("the query is checked before the arguments: a bad query without topic is INVALID_REQUEST", async () => {
  await expectError(await api().get("/lookup?x=%zz"), 400, "INVALID_REQUEST");
});

Deno.test("endpoints without parameters ignore the query, malformed or not", async () => {
  const a = api();
  const ping = await a.get("/ping?x=%zz;y");
  assert.equal(await ping.text(), "OK");
  assert.equal(ping.status, 200);
  await expectJson(await a.get("/info?a;b"), 200, '{"version":"1.3.0"}');
  await expectJson(await a.get("/topics?%"), 200, '{"topics":[]}');
  await expectJson(await a.get("/nodes?;"), 200, '{"producers":[]}');
  await expectJson(await a.get("/debug?%zz"), 200, "{}");
});

Deno.test("percent-escapes in parameters are decoded (%23ephemeral)", async () => {
  const a = api();
  await expectEmpty(await a.post("/channel/create?topic=t%23ephemeral&channel=c%23ephemeral"));
  await expectJson(
    await a.get("/channels?topic=t%23ephemeral"),
    200,
    '{"channels":["c#ephemeral"]}',
  );
});

Deno.test("a query longer than 16 KiB is 414 URI_TOO_LONG", async () => {
  await expectError(
    await api().get(`/lookup?topic=t&pad=${"x".repeat(16 * 1024)}`),
    414,
    "URI_TOO_LONG",
  );
});

// ---- headers clients send ----

Deno.test("Authorization: Bearer is accepted and ignored", async () => {
  const a = api();
  const headers = { Authorization: "Bearer x" };
  await expectEmpty(await a.post("/topic/create?topic=t", { headers }));
  await expectJson(await a.get("/topics", { headers }), 200, '{"topics":["t"]}');
});

Deno.test("Accept: application/vnd.nsq; version=1.0 gets the same unwrapped v1 bodies", async () => {
  const a = api();
  const headers = { Accept: "application/vnd.nsq; version=1.0" };
  a.registry.createChannel("t1", "c");
  a.registry.createTopic("t1");
  await expectJson(
    await a.get("/lookup?topic=t1", { headers }),
    200,
    '{"channels":["c"],"producers":[]}',
  );
  await expectJson(await a.get("/topics", { headers }), 200, '{"topics":["t1"]}');
  await expectError(await a.get("/lookup?topic=missing", { headers }), 404, "TOPIC_NOT_FOUND");
  await expectEmpty(await a.post("/topic/create?topic=t2", { headers }));
});

// ---- request bodies ----

Deno.test("a request body over 1 MiB is 413 PAYLOAD_TOO_LARGE and nothing is done", async () => {
  const a = api();
  const res = await a.post("/topic/create?topic=t", { body: new Uint8Array(MAX_BODY_BYTES + 1) });
  await expectError(res, 413, "PAYLOAD_TOO_LARGE");
  assert.deepEqual(a.registry.topics(), []);
  assert.ok(
    a.logs.some((l) => /^INFO: 413 POST \/topic\/create\?topic=t \(-\) /.test(l)),
    a.logs.join("\n"),
  );
});

Deno.test("a request body of exactly 1 MiB is read and ignored", async () => {
  const a = api();
  await expectEmpty(
    await a.post("/topic/create?topic=t", { body: new Uint8Array(MAX_BODY_BYTES) }),
  );
  assert.deepEqual(a.registry.topics(), ["t"]);
});

Deno.test("parameters in a POST body do not count: only the query does", async () => {
  const a = api();
  const res = await a.post("/topic/create", {
    body: "topic=t",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
  });
  await expectError(res, 400, "MISSING_ARG_TOPIC");
});

// ---- request log ----

const ELAPSED = String.raw`\d+(\.\d+)?(ns|µs|ms|s)`;

Deno.test("each request is logged at INFO as STATUS METHOD URI (REMOTE_ADDR) ELAPSED", async () => {
  const a = api();
  const info = (hostname: string, port: number) => ({
    remoteAddr: { transport: "tcp" as const, hostname, port },
  });
  const send = async (url: string, method: string, remote: ReturnType<typeof info>) =>
    await (await a.handler(new Request(`http://x${url}`, { method }), remote)).text();
  await send("/lookup?topic=t", "GET", info("127.0.0.1", 33138));
  await send("/topic/create?topic=t", "POST", info("::ffff:10.0.0.1", 5));
  await send("/nope", "GET", info("::1", 6));
  await send("/ping", "POST", info("127.0.0.1", 7));
  const requests = a.logs.filter((l) => /^INFO: \d{3} /.test(l));
  const expected = [
    String.raw`404 GET /lookup\?topic=t \(127\.0\.0\.1:33138\)`,
    String.raw`200 POST /topic/create\?topic=t \(10\.0\.0\.1:5\)`,
    String.raw`404 GET /nope \(\[::1\]:6\)`,
    String.raw`405 POST /ping \(127\.0\.0\.1:7\)`,
  ];
  assert.equal(requests.length, expected.length, requests.join("\n"));
  expected.forEach((pattern, i) => {
    assert.match(requests[i], new RegExp(`^INFO: ${pattern} ${ELAPSED}$`));
  });
});

Deno.test("the request log is not written when the log level is above INFO", async () => {
  const a = api("warn");
  await (await a.get("/ping")).text();
  assert.deepEqual(a.logs, []);
});

// ---- over a real socket ----

Deno.test("over HTTP, a JSON answer carries exactly Content-Type, X-NSQ-Content-Type and Content-Length", async () => {
  await using daemon = startDaemon();
  const res = await daemon.get("/info");
  assert.deepEqual(headerNames(res), [
    "content-length",
    "content-type",
    "date",
    "x-nsq-content-type",
  ]);
  assert.equal(res.headers.get("content-length"), "19");
  await expectJson(res, 200, '{"version":"1.3.0"}');
});

Deno.test("over HTTP, an empty success has X-NSQ-Content-Type and Content-Length: 0 but no Content-Type", async () => {
  await using daemon = startDaemon();
  const res = await daemon.post("/topic/create?topic=x1");
  assert.deepEqual(headerNames(res), ["content-length", "date", "x-nsq-content-type"]);
  assert.equal(res.headers.get("content-length"), "0");
  assert.equal(res.headers.get("x-nsq-content-type"), NSQ_V1_CONTENT_TYPE);
  await expectEmpty(res);
});

Deno.test("over HTTP, /ping is OK with Content-Length: 2 and text/plain", async () => {
  await using daemon = startDaemon();
  const res = await daemon.get("/ping");
  assert.equal(await res.text(), "OK");
  assert.deepEqual(headerNames(res), ["content-length", "content-type", "date"]);
  assert.equal(res.headers.get("content-length"), "2");
  assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
});

Deno.test("over HTTP, an error carries the JSON headers and its Content-Length", async () => {
  await using daemon = startDaemon();
  const res = await daemon.get("/nonexistent");
  assert.equal(res.headers.get("content-length"), "23");
  await expectError(res, 404, "NOT_FOUND");
});

Deno.test("over HTTP, HEAD /ping is 405 with Allow and the error's headers but no body", async () => {
  await using daemon = startDaemon();
  const res = await daemon.get("/ping", { method: "HEAD" });
  assert.equal(await res.text(), "");
  assert.equal(res.status, 405);
  assert.equal(res.headers.get("allow"), "GET, OPTIONS");
  assert.equal(res.headers.get("content-type"), JSON_CONTENT_TYPE);
  assert.equal(res.headers.get("x-nsq-content-type"), NSQ_V1_CONTENT_TYPE);
  assert.equal(res.headers.get("content-length"), "32");
});

Deno.test("over HTTP, GET on a POST route is 405 with Allow: OPTIONS, POST", async () => {
  await using daemon = startDaemon();
  const res = await daemon.get("/topic/create?topic=x2");
  assert.equal(res.headers.get("allow"), "OPTIONS, POST");
  assert.equal(res.headers.get("content-length"), "32");
  await expectError(res, 405, "METHOD_NOT_ALLOWED");
});

Deno.test("over HTTP, OPTIONS is 200 with Allow and Content-Length: 0 only", async () => {
  await using daemon = startDaemon();
  const res = await daemon.get("/topic/delete", { method: "OPTIONS" });
  assert.equal(await res.text(), "");
  assert.equal(res.status, 200);
  assert.deepEqual(headerNames(res), ["allow", "content-length", "date"]);
  assert.equal(res.headers.get("allow"), "OPTIONS, POST");
  assert.equal(res.headers.get("content-length"), "0");
});

Deno.test("over HTTP, /LOOKUP is 301 with Location keeping the query", async () => {
  await using daemon = startDaemon();
  const res = await daemon.get("/LOOKUP?topic=t1", { redirect: "manual" });
  assert.equal(await res.text(), '<a href="/lookup?topic=t1">Moved Permanently</a>.\n\n');
  assert.equal(res.status, 301);
  assert.equal(res.headers.get("location"), "/lookup?topic=t1");
});

Deno.test("over HTTP, a body with Content-Length over 1 MiB is 413", async () => {
  await using daemon = startDaemon();
  const res = await daemon.post("/topic/create?topic=t", {
    body: new Uint8Array(MAX_BODY_BYTES + 1),
  });
  await expectError(res, 413, "PAYLOAD_TOO_LARGE");
  assert.deepEqual(daemon.registry.topics(), []);
});

Deno.test("over HTTP, the request log shows the client's ip:port", async () => {
  await using daemon = startDaemon();
  await (await daemon.get("/lookup?topic=t1")).text();
  await (await daemon.post("/topic/create?topic=t1")).text();
  const lines = daemon.logs.filter((l) => /^INFO: \d{3} /.test(l));
  assert.equal(lines.length, 2, daemon.logs.join("\n"));
  assert.match(
    lines[0],
    new RegExp(String.raw`^INFO: 404 GET /lookup\?topic=t1 \(127\.0\.0\.1:\d+\) ${ELAPSED}$`),
  );
  assert.match(
    lines[1],
    new RegExp(
      String.raw`^INFO: 200 POST /topic/create\?topic=t1 \(127\.0\.0\.1:\d+\) ${ELAPSED}$`,
    ),
  );
});
