// The serialized /lookup and /topics answers are cached; every way an answer
// can change must be seen by the next request.

import assert from "node:assert/strict";
import { createHttpApi } from "../../../src/http/api.ts";
import { AnswerCache } from "../../../src/http/cache.ts";
import { createLogger } from "../../../src/ops/logger.ts";
import { type PeerInfo, Registry } from "../../../src/registry.ts";
import { ManualClock, testPeer } from "../../support/helpers.ts";
import { webHandler } from "../../support/web_api.ts";

const INACTIVE_MS = 1000;
const TOMBSTONE_MS = 500;

function setup(): {
  clock: ManualClock;
  registry: Registry;
  lookup: (topic: string) => Promise<string[] | number>;
  topics: () => Promise<string[]>;
  peer: (n: number) => PeerInfo;
} {
  const clock = new ManualClock();
  const registry = new Registry({
    now: clock.now,
    inactiveProducerTimeoutMs: INACTIVE_MS,
    tombstoneLifetimeMs: TOMBSTONE_MS,
  });
  const handler = webHandler(createHttpApi({
    registry,
    logger: createLogger({ level: "fatal", prefix: "", sink: () => {} }),
  }));
  const get = async (path: string): Promise<Response> =>
    await handler(new Request(`http://x${path}`));
  return {
    clock,
    registry,
    lookup: async (topic) => {
      const res = await get(`/lookup?topic=${topic}`);
      if (res.status !== 200) {
        await res.body?.cancel();
        return res.status;
      }
      const body = await res.json() as { producers: { remote_address: string }[] };
      return body.producers.map((p) => p.remote_address);
    },
    topics: async () => ((await (await get("/topics")).json()) as { topics: string[] }).topics,
    peer: (n) => {
      const peer = testPeer({
        remoteAddress: `10.0.0.${n}:1`,
        hostname: "h",
        broadcastAddress: `n${n}`,
        lastUpdate: clock.now(),
      });
      registry.identify(peer);
      return peer;
    },
  };
}

Deno.test("a cached /lookup sees a producer registering and leaving", async () => {
  const { registry, lookup, peer } = setup();
  const a = peer(1);
  registry.registerTopic(a, "t");
  assert.deepEqual(await lookup("t"), ["10.0.0.1:1"]);
  const b = peer(2);
  registry.registerTopic(b, "t");
  assert.deepEqual(await lookup("t"), ["10.0.0.1:1", "10.0.0.2:1"]);
  registry.unregisterTopic(a.id, "t");
  assert.deepEqual(await lookup("t"), ["10.0.0.2:1"]);
  registry.removePeer(b.id);
  assert.deepEqual(await lookup("t"), []);
});

Deno.test("a cached /lookup sees a tombstone and its expiry", async () => {
  const { clock, registry, lookup, peer } = setup();
  registry.registerTopic(peer(1), "t");
  assert.deepEqual(await lookup("t"), ["10.0.0.1:1"]);
  registry.tombstone("t", "n1:4151");
  assert.deepEqual(await lookup("t"), []);
  clock.advance(TOMBSTONE_MS - 1);
  assert.deepEqual(await lookup("t"), []);
  clock.advance(1);
  assert.deepEqual(await lookup("t"), ["10.0.0.1:1"]);
});

Deno.test("a cached /lookup sees a producer going inactive and coming back with PING", async () => {
  const { clock, registry, lookup, peer } = setup();
  const a = peer(1);
  registry.registerTopic(a, "t");
  assert.deepEqual(await lookup("t"), ["10.0.0.1:1"]);
  clock.advance(INACTIVE_MS);
  assert.deepEqual(await lookup("t"), ["10.0.0.1:1"]);
  clock.advance(1);
  assert.deepEqual(await lookup("t"), []);
  registry.touch(a);
  assert.deepEqual(await lookup("t"), ["10.0.0.1:1"]);
});

Deno.test("a cached /lookup sees channels created and deleted", async () => {
  const { registry, peer } = setup();
  const handler = webHandler(createHttpApi({
    registry,
    logger: createLogger({ level: "fatal", prefix: "", sink: () => {} }),
  }));
  const channels = async (): Promise<string[]> =>
    ((await (await handler(new Request("http://x/lookup?topic=t"))).json()) as {
      channels: string[];
    }).channels;
  registry.registerTopic(peer(1), "t");
  assert.deepEqual(await channels(), []);
  registry.createChannel("t", "c");
  assert.deepEqual(await channels(), ["c"]);
  registry.deleteChannel("t", "c");
  assert.deepEqual(await channels(), []);
});

Deno.test("a cached /lookup sees its topic deleted and created again", async () => {
  const { registry, lookup, peer } = setup();
  registry.registerTopic(peer(1), "t");
  assert.deepEqual(await lookup("t"), ["10.0.0.1:1"]);
  registry.deleteTopic("t");
  assert.equal(await lookup("t"), 404);
  registry.createTopic("t");
  assert.deepEqual(await lookup("t"), []);
});

Deno.test("a cached /topics sees topics created and deleted", async () => {
  const { registry, topics, peer } = setup();
  assert.deepEqual(await topics(), []);
  registry.registerTopic(peer(1), "b");
  assert.deepEqual(await topics(), ["b"]);
  registry.createTopic("a");
  assert.deepEqual(await topics(), ["a", "b"]);
  registry.deleteTopic("b");
  assert.deepEqual(await topics(), ["a"]);
  registry.createChannel("z", "c");
  assert.deepEqual(await topics(), ["a"], "a channel alone does not make a topic");
});

Deno.test("the topic version changes with every change a /lookup answer shows", () => {
  const { clock, registry, peer } = setup();
  const a = peer(1);
  const versions: number[] = [];
  const note = (): void => {
    versions.push(registry.topicVersion("t")!);
  };
  registry.createTopic("t");
  note();
  registry.registerTopic(a, "t");
  note();
  registry.createChannel("t", "c");
  note();
  registry.tombstone("t", "n1:4151");
  note();
  clock.advance(INACTIVE_MS + 1);
  registry.touch(a);
  note();
  registry.unregisterTopic(a.id, "t");
  note();
  assert.equal(new Set(versions).size, versions.length, `versions repeat: ${versions}`);
  registry.registerChannel(a, "t", "c");
  assert.equal(registry.topicVersion("t"), versions.at(-1), "channel membership is not shown");
});

Deno.test("a cached /nodes follows registrations, tombstones, inactivity and deletes", async () => {
  const { clock, registry, peer } = setup();
  const handler = webHandler(createHttpApi({
    registry,
    logger: createLogger({ level: "fatal", prefix: "", sink: () => {} }),
  }));
  const nodes = async (): Promise<string> => {
    const body = (await (await handler(new Request("http://x/nodes"))).json()) as {
      producers: { remote_address: string; topics: string[]; tombstones: boolean[] }[];
    };
    return body.producers.map((p) =>
      `${p.remote_address}:${p.topics.map((t, i) => t + (p.tombstones[i] ? "!" : "")).join("+")}`
    ).join(" ");
  };
  const a = peer(1);
  assert.equal(await nodes(), "10.0.0.1:1:");
  registry.registerTopic(a, "t");
  assert.equal(await nodes(), "10.0.0.1:1:t");
  registry.registerChannel(a, "t", "c");
  registry.registerTopic(peer(2), "u");
  assert.equal(await nodes(), "10.0.0.1:1:t 10.0.0.2:1:u");
  registry.tombstone("t", "n1:4151");
  assert.equal(await nodes(), "10.0.0.1:1:t! 10.0.0.2:1:u");
  clock.advance(TOMBSTONE_MS);
  assert.equal(await nodes(), "10.0.0.1:1:t 10.0.0.2:1:u");
  clock.advance(INACTIVE_MS - TOMBSTONE_MS + 1);
  assert.equal(await nodes(), "");
  registry.touch(a);
  assert.equal(await nodes(), "10.0.0.1:1:t");
  registry.deleteTopic("t");
  assert.equal(await nodes(), "10.0.0.1:1:");
  registry.removePeer(a.id);
  assert.equal(await nodes(), "");
});

Deno.test("an entry serves only at its version and through its validThrough", () => {
  const cache = new AnswerCache(1000);
  cache.set("t", { version: 3, validThrough: 50, body: "{}" });
  assert.equal(cache.get("t", 3, 50)?.body, "{}");
  assert.equal(cache.get("t", 3, 51), undefined);
  assert.equal(cache.size, 0, "a stale entry is dropped when found stale");
  cache.set("t", { version: 3, validThrough: 50, body: "{}" });
  assert.equal(cache.get("t", 4, 0), undefined);
  assert.equal(cache.get("t", undefined, 0), undefined);
  assert.equal(cache.size, 0);
});

Deno.test("the cache holds at most its budget of body characters, dropping the oldest first", () => {
  const cache = new AnswerCache(10);
  cache.set("a", { version: 1, validThrough: Infinity, body: "aaaa" });
  cache.set("b", { version: 1, validThrough: Infinity, body: "bbbb" });
  cache.set("c", { version: 1, validThrough: Infinity, body: "cccc" });
  assert.equal(cache.get("a", 1, 0), undefined);
  assert.equal(cache.get("b", 1, 0)?.body, "bbbb");
  assert.equal(cache.get("c", 1, 0)?.body, "cccc");
  assert.equal(cache.chars, 8);
  cache.set("huge", { version: 1, validThrough: Infinity, body: "x".repeat(11) });
  assert.equal(cache.get("huge", 1, 0), undefined, "a body over the whole budget is not kept");
  assert.equal(cache.chars, 8);
});

Deno.test("entries of keys that are gone leave within a few insertions, live ones stay", () => {
  const topics = new Set(["live-1", "live-2"]);
  const cache = new AnswerCache(1 << 20, { live: (key) => topics.has(key) });
  const entry = { version: 1, validThrough: Infinity, body: "{}" };
  cache.set("live-1", entry);
  cache.set("live-2", entry);
  // Topic create, lookup, delete, over and over: nothing asks for a deleted one again.
  for (let i = 0; i < 1_000; i++) {
    topics.add(`t${i}`);
    cache.set(`t${i}`, entry);
    topics.delete(`t${i}`);
  }
  assert.ok(cache.size <= 4, `${cache.size} entries held`);
  assert.equal(cache.get("live-1", 1, 0)?.body, "{}");
  assert.equal(cache.get("live-2", 1, 0)?.body, "{}");
});

Deno.test("an entry's overhead counts against the budget, so tiny answers cannot pile up", () => {
  const cache = new AnswerCache(1_000, { entryOverhead: 200 });
  for (let i = 0; i < 100; i++) cache.set(`t${i}`, { version: 1, validThrough: 0, body: "x" });
  assert.equal(cache.size, 4, "1,000 / (1 + 200)");
  assert.equal(cache.chars, 4 * 201);
  cache.delete("t99");
  assert.equal(cache.chars, 3 * 201);
});
