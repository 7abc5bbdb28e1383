import assert from "node:assert/strict";
import {
  COMPACT_SLACK,
  compareRegistrations,
  type PeerInfo,
  Registry,
  registryInternals,
  type RemovedMembership,
  SMALL_PRODUCER_LIMIT,
} from "../../src/registry.ts";
import { assertConsistent, membershipsOf } from "../../src/registry_testing.ts";
import { ManualClock } from "../support/helpers.ts";
import { ModelRegistry } from "../support/registry_model.ts";

const INACTIVE_MS = 300_000;
const TOMBSTONE_MS = 45_000;

function setup(): { clock: ManualClock; registry: Registry } {
  const clock = new ManualClock();
  const registry = new Registry({
    now: clock.now,
    inactiveProducerTimeoutMs: INACTIVE_MS,
    tombstoneLifetimeMs: TOMBSTONE_MS,
  });
  return { clock, registry };
}

/** Options for a registry and its twin (or model) fed the same operations. */
function twinOptions(): ConstructorParameters<typeof Registry>[0] {
  const clock = new ManualClock();
  return { now: clock.now, inactiveProducerTimeoutMs: INACTIVE_MS, tombstoneLifetimeMs: 1 };
}

function peer(
  registry: Registry,
  id: string,
  fields: Partial<PeerInfo> = {},
): PeerInfo {
  const info: PeerInfo = {
    id,
    remoteAddress: id,
    hostname: "h",
    broadcastAddress: "b",
    tcpPort: 4150,
    httpPort: 4151,
    version: "1.3.0",
    topologyZone: "",
    topologyRegion: "",
    lastUpdate: registry.now(),
    ...fields,
  };
  registry.identify(info);
  return info;
}

/** The /lookup answer without its cache bookkeeping. */
function lookupOf(
  registry: Registry,
  topic: string,
): { channels: string[]; producers: PeerInfo[] } | undefined {
  const answer = registry.lookup(topic);
  return answer && { channels: answer.channels, producers: answer.producers };
}

function lookupIds(registry: Registry, topic: string): string[] | undefined {
  return registry.lookup(topic)?.producers.map((p) => p.id);
}

Deno.test("identify adds the peer to the client registration once", () => {
  const { registry } = setup();
  const p = peer(registry, "1.1.1.1:1");
  assert.equal(registry.identify(p), false);
  assert.deepEqual(registry.nodes().map((n) => n.peer.id), ["1.1.1.1:1"]);
  assert.deepEqual(registry.debug().map((d) => d.name), ["client::"]);
  assertConsistent(registry);
});

Deno.test("REGISTER topic channel adds the producer to the channel and the topic", () => {
  const { registry } = setup();
  const p = peer(registry, "1.1.1.1:1");
  assert.equal(registry.registerChannel(p, "t", "c"), true);
  assert.equal(registry.registerTopic(p, "t"), true);
  assert.equal(registry.registerTopic(p, "t"), false, "re-registering is a no-op");
  assert.deepEqual(registry.topics(), ["t"]);
  assert.deepEqual(registry.channels("t"), ["c"]);
  assert.deepEqual(lookupOf(registry, "t"), { channels: ["c"], producers: [p] });
  assert.deepEqual(registry.debug().map((d) => d.name), ["channel:t:c", "client::", "topic:t:"]);
  assertConsistent(registry);
});

Deno.test("re-registering keeps the existing entry and its tombstone", () => {
  const { registry } = setup();
  const p = peer(registry, "1.1.1.1:1", { broadcastAddress: "n", httpPort: 1 });
  registry.registerTopic(p, "t");
  assert.equal(registry.tombstone("t", "n:1"), 1);
  registry.registerTopic(p, "t");
  assert.deepEqual(lookupIds(registry, "t"), []);
  assert.deepEqual(registry.nodes()[0].tombstones, [true]);
});

Deno.test("removing a peer keeps its registrations and cleans the peer index", () => {
  const { registry } = setup();
  const p = peer(registry, "1.1.1.1:1");
  registry.registerChannel(p, "t", "c");
  registry.registerTopic(p, "t");
  const removed = registry.removePeer(p.id);
  assert.deepEqual(removed.map((r) => `${r.category}:${r.key}:${r.subkey}`), [
    "channel:t:c",
    "client::",
    "topic:t:",
  ]);
  assert.deepEqual(registry.topics(), ["t"]);
  assert.deepEqual(registry.channels("t"), ["c"]);
  assert.deepEqual(lookupOf(registry, "t"), { channels: ["c"], producers: [] });
  assert.deepEqual(registry.nodes(), []);
  assert.deepEqual(registry.debug(), []);
  assert.deepEqual(membershipsOf(registry, p.id), []);
  assert.equal(registry.stats().peers, 0);
  assertConsistent(registry);
});

Deno.test("ephemeral registrations go away with their last producer on disconnect", () => {
  const { registry } = setup();
  const a = peer(registry, "1.1.1.1:1");
  const b = peer(registry, "1.1.1.1:2");
  registry.registerChannel(a, "e#ephemeral", "c#ephemeral");
  registry.registerTopic(a, "e#ephemeral");
  registry.registerChannel(a, "t", "c#ephemeral");
  registry.registerChannel(b, "t", "c#ephemeral");
  registry.registerTopic(a, "t");
  registry.removePeer(a.id);
  assert.deepEqual(registry.topics(), ["t"], "ephemeral topic deleted, t stays");
  assert.deepEqual(registry.channels("e#ephemeral"), []);
  assert.deepEqual(registry.channels("t"), ["c#ephemeral"], "still has producer b");
  registry.removePeer(b.id);
  assert.deepEqual(registry.channels("t"), []);
  assert.deepEqual(registry.topics(), ["t"]);
  assertConsistent(registry);
});

Deno.test("UNREGISTER of a channel removes only that channel membership", () => {
  const { registry } = setup();
  const p = peer(registry, "1.1.1.1:1");
  registry.registerChannel(p, "t", "c");
  registry.registerChannel(p, "t", "d");
  registry.registerTopic(p, "t");
  assert.equal(registry.unregisterChannel(p.id, "t", "c"), true);
  assert.equal(registry.unregisterChannel(p.id, "t", "c"), false);
  assert.equal(registry.unregisterChannel(p.id, "nosuch", "c"), false);
  assert.deepEqual(registry.channels("t"), ["c", "d"], "the registration stays");
  assert.deepEqual(
    membershipsOf(registry, p.id).map((r) => r.name),
    ["channel:t:d", "client::", "topic:t:"],
  );
  assertConsistent(registry);
});

Deno.test("UNREGISTER of an ephemeral channel deletes it with its last producer", () => {
  const { registry } = setup();
  const a = peer(registry, "1.1.1.1:1");
  const b = peer(registry, "1.1.1.1:2");
  registry.registerChannel(a, "t", "c#ephemeral");
  registry.registerChannel(b, "t", "c#ephemeral");
  registry.unregisterChannel(a.id, "t", "c#ephemeral");
  assert.deepEqual(registry.channels("t"), ["c#ephemeral"]);
  registry.unregisterChannel(b.id, "t", "c#ephemeral");
  assert.deepEqual(registry.channels("t"), []);
  assertConsistent(registry);
});

Deno.test("UNREGISTER of a topic removes the producer from all its channels and the topic", () => {
  const { registry } = setup();
  const p = peer(registry, "1.1.1.1:1");
  const other = peer(registry, "1.1.1.1:2");
  registry.registerChannel(p, "t", "b");
  registry.registerChannel(p, "t", "a");
  registry.registerTopic(p, "t");
  registry.registerTopic(other, "t");
  registry.registerTopic(p, "u");
  assert.deepEqual(registry.unregisterTopic(p.id, "t"), { channels: ["a", "b"], topic: true });
  assert.deepEqual(registry.unregisterTopic(p.id, "t"), { channels: [], topic: false });
  assert.deepEqual(lookupIds(registry, "t"), ["1.1.1.1:2"]);
  assert.deepEqual(lookupIds(registry, "u"), ["1.1.1.1:1"]);
  assert.deepEqual(registry.channels("t"), ["a", "b"]);
  assertConsistent(registry);
});

Deno.test("UNREGISTER of an ephemeral topic deletes it with its last producer", () => {
  const { registry } = setup();
  const p = peer(registry, "1.1.1.1:1");
  registry.registerChannel(p, "t#ephemeral", "c");
  registry.registerTopic(p, "t#ephemeral");
  registry.unregisterTopic(p.id, "t#ephemeral");
  assert.deepEqual(registry.topics(), []);
  assert.equal(registry.lookup("t#ephemeral"), undefined);
  assert.deepEqual(registry.channels("t#ephemeral"), ["c"], "non-ephemeral channel stays");
  assertConsistent(registry);
});

Deno.test("tombstones are per topic and expire after the tombstone lifetime", () => {
  const { clock, registry } = setup();
  const p = peer(registry, "1.1.1.1:1", { broadcastAddress: "host", httpPort: 4151 });
  registry.registerTopic(p, "a");
  registry.registerTopic(p, "b");
  assert.equal(registry.tombstone("a", "host:9999"), 0);
  assert.equal(registry.tombstone("nosuch", "host:4151"), 0);
  assert.equal(registry.tombstone("a", "host:4151"), 1);
  assert.deepEqual(lookupIds(registry, "a"), []);
  assert.deepEqual(lookupIds(registry, "b"), [p.id]);
  const node = registry.nodes()[0];
  assert.deepEqual([node.topics, node.tombstones], [["a", "b"], [true, false]]);
  clock.advance(TOMBSTONE_MS - 1);
  assert.deepEqual(lookupIds(registry, "a"), []);
  clock.advance(1);
  assert.deepEqual(lookupIds(registry, "a"), [p.id], "visible again at the lifetime");
  assert.deepEqual(registry.nodes()[0].tombstones, [false, false]);
  const debugEntry = registry.debug().find((d) => d.name === "topic:a:")!;
  assert.equal(debugEntry.producers[0].tombstoned, true, "/debug shows the raw flag");
});

Deno.test("an inactive producer is hidden from lookup and nodes until it pings", () => {
  const { clock, registry } = setup();
  const p = peer(registry, "1.1.1.1:1");
  registry.registerTopic(p, "t");
  clock.advance(INACTIVE_MS);
  assert.deepEqual(lookupIds(registry, "t"), [p.id], "active at exactly the timeout");
  clock.advance(1);
  assert.deepEqual(lookupIds(registry, "t"), []);
  assert.deepEqual(registry.nodes(), []);
  assert.deepEqual(registry.topics(), ["t"]);
  const previous = registry.touch(p);
  assert.equal(clock.ms - previous, INACTIVE_MS + 1);
  assert.deepEqual(lookupIds(registry, "t"), [p.id]);
  assert.equal(registry.nodes().length, 1);
});

Deno.test("tombstoned producers stay listed in nodes", () => {
  const { registry } = setup();
  const p = peer(registry, "1.1.1.1:1", { broadcastAddress: "x", httpPort: 2 });
  registry.registerTopic(p, "t");
  registry.tombstone("t", "x:2");
  assert.equal(registry.nodes().length, 1);
});

Deno.test("HTTP create and delete of topics and channels", () => {
  const { registry } = setup();
  assert.equal(registry.createTopic("t"), true);
  assert.equal(registry.createTopic("t"), false);
  assert.equal(registry.createChannel("t", "c"), true);
  assert.equal(registry.createChannel("t", "c"), false);
  assert.deepEqual(lookupOf(registry, "t"), { channels: ["c"], producers: [] });
  assert.equal(registry.deleteChannel("t", "c"), true);
  assert.equal(registry.deleteChannel("t", "c"), false);
  assert.deepEqual(registry.channels("t"), []);
  assert.deepEqual(registry.deleteTopic("nosuch"), { channels: [], topic: false });
  assertConsistent(registry);
});

Deno.test("deleting a topic removes its channels and every producer membership", () => {
  const { registry } = setup();
  const p = peer(registry, "1.1.1.1:1");
  registry.registerChannel(p, "t", "c");
  registry.registerChannel(p, "t", "d");
  registry.registerTopic(p, "t");
  registry.registerTopic(p, "keep");
  assert.deepEqual(registry.deleteTopic("t"), { channels: ["c", "d"], topic: true });
  assert.deepEqual(registry.topics(), ["keep"]);
  assert.deepEqual(registry.channels("t"), []);
  assert.equal(registry.lookup("t"), undefined);
  assert.deepEqual(registry.nodes()[0].topics, ["keep"]);
  assert.deepEqual(membershipsOf(registry, p.id).map((r) => r.name), ["client::", "topic:keep:"]);
  assertConsistent(registry);
  assert.deepEqual(registry.removePeer(p.id).length, 2);
  assertConsistent(registry);
});

Deno.test("channels can outlive their topic registration", () => {
  const { registry } = setup();
  registry.createChannel("t", "c");
  registry.createTopic("t");
  const p = peer(registry, "1.1.1.1:1");
  registry.registerTopic(p, "t#ephemeral");
  registry.registerChannel(p, "t#ephemeral", "c");
  registry.unregisterTopic(p.id, "t#ephemeral");
  assert.equal(registry.lookup("t#ephemeral"), undefined);
  assert.deepEqual(registry.channels("t#ephemeral"), ["c"]);
  assert.equal(registry.deleteChannel("t#ephemeral", "c"), true);
  assert.deepEqual(registry.stats(), { peers: 1, topics: 1, channels: 1, clientProducers: 1 });
  assertConsistent(registry);
});

Deno.test("answers are sorted: names by name, producers by address, port, remote", () => {
  const { registry } = setup();
  const c = peer(registry, "9.9.9.9:3", { broadcastAddress: "b", tcpPort: 2 });
  const a = peer(registry, "9.9.9.9:2", { broadcastAddress: "a", tcpPort: 9 });
  const b2 = peer(registry, "9.9.9.9:1", { broadcastAddress: "b", tcpPort: 2 });
  const b1 = peer(registry, "9.9.9.9:4", { broadcastAddress: "b", tcpPort: 1 });
  for (const p of [c, a, b2, b1]) {
    registry.registerTopic(p, "t");
    registry.registerChannel(p, "t", p.id.endsWith("1") ? "zz" : "aa");
  }
  registry.createTopic("m");
  registry.createTopic("B");
  assert.deepEqual(registry.topics(), ["B", "m", "t"]);
  assert.deepEqual(registry.channels("t"), ["aa", "zz"]);
  assert.deepEqual(lookupIds(registry, "t"), ["9.9.9.9:2", "9.9.9.9:4", "9.9.9.9:1", "9.9.9.9:3"]);
  assert.deepEqual(registry.nodes().map((n) => n.peer.id), [
    "9.9.9.9:2",
    "9.9.9.9:4",
    "9.9.9.9:1",
    "9.9.9.9:3",
  ]);
});

Deno.test("indexes stay consistent through a random mix of operations", () => {
  const { clock, registry } = setup();
  // Deterministic pseudo-random sequence so a failure is reproducible.
  let seed = 12345;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const peers: PeerInfo[] = [];
  const topics = ["a", "b", "c#ephemeral", "d"];
  const channels = ["x", "y#ephemeral"];
  for (let i = 0; i < 3000; i++) {
    clock.advance(random(1000));
    const op = random(10);
    const topic = topics[random(topics.length)];
    const channel = channels[random(channels.length)];
    if (op === 0 || peers.length === 0) {
      peers.push(peer(registry, `10.0.0.1:${i}`, { broadcastAddress: `n${random(3)}` }));
      continue;
    }
    const p = peers[random(peers.length)];
    switch (op) {
      case 1:
        registry.registerTopic(p, topic);
        break;
      case 2:
        registry.registerChannel(p, topic, channel);
        registry.registerTopic(p, topic);
        break;
      case 3:
        registry.unregisterChannel(p.id, topic, channel);
        break;
      case 4:
        registry.unregisterTopic(p.id, topic);
        break;
      case 5:
        registry.removePeer(p.id);
        peers.splice(peers.indexOf(p), 1);
        break;
      case 6:
        registry.deleteTopic(topic);
        break;
      case 7:
        registry.deleteChannel(topic, channel);
        break;
      case 8:
        registry.createChannel(topic, channel);
        break;
      default:
        registry.tombstone(topic, `n${random(3)}:4151`);
    }
    assertConsistent(registry);
    for (const node of registry.nodes()) {
      assert.equal(node.topics.length, node.tombstones.length);
    }
  }
  for (const p of [...peers]) registry.removePeer(p.id);
  assertConsistent(registry);
  assert.equal(registry.stats().peers, 0);
  assert.deepEqual(registry.debug(), []);
});

// ---- the same answers as the reference model (the layout before the memory work) ----

/** Everything a client or a cache can read, with versions reduced to "changed since last time". */
function observe(
  r: Registry | ModelRegistry,
  names: readonly string[],
  channelNames: readonly string[],
  last: Map<string, number | undefined>,
): unknown {
  const changed = (key: string, value: number | undefined): boolean => {
    const before = last.get(key);
    last.set(key, value);
    return before !== value;
  };
  const lookups = names.map((t) => {
    const answer = r.lookup(t);
    return answer && {
      channels: answer.channels,
      producers: answer.producers.map((p) => p.id),
      validThrough: answer.validThrough,
      versionChanged: changed(`topic:${t}`, r.topicVersion(t)),
    };
  });
  const nodes = r.nodesAnswer();
  return {
    topics: r.topics(),
    topicsVersionChanged: changed("topics", r.topicsVersion),
    channels: names.map((t) => r.channels(t)),
    lookups,
    nodes: nodes.nodes.map((n) => ({ id: n.peer.id, topics: n.topics, tombstones: n.tombstones })),
    nodesValidThrough: nodes.validThrough,
    nodesVersionChanged: changed("nodes", nodes.version),
    debug: r.debug().map((d) => ({
      name: d.name,
      producers: d.producers.map((p) => [p.peer.id, p.tombstoned, p.tombstonedAt]),
    })),
    stats: r.stats(),
    entries: r.entryCounts(),
    tombstoned: r.tombstonedCount(),
    active: r.activeProducerCount(),
    channelNames: channelNames.length,
  };
}

Deno.test("every answer equals the reference model's through random operations", () => {
  // Names whose order differs between "key" and "key:subkey" sorting, and ephemeral ones.
  const topics = ["a", "a1", "a-b", "a.b", "ab", "a#ephemeral", "b#ephemeral"];
  const channels = ["x", "x1", "x.y", "y#ephemeral"];
  for (let seed = 1; seed <= 12; seed++) {
    const clock = new ManualClock();
    const options = {
      now: clock.now,
      inactiveProducerTimeoutMs: 5_000,
      tombstoneLifetimeMs: 2_000,
    };
    const registry = new Registry(options);
    const model = new ModelRegistry(options);
    let state = seed;
    const random = (n: number): number => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return Math.floor((state / 2147483648) * n);
    };
    const peers: PeerInfo[] = [];
    const lastOurs = new Map<string, number | undefined>();
    const lastModel = new Map<string, number | undefined>();
    for (let step = 0; step < 1500; step++) {
      clock.advance(random(4) === 0 ? random(7_000) : random(50));
      const topic = topics[random(topics.length)];
      const channel = channels[random(channels.length)];
      const p = peers.length === 0 ? undefined : peers[random(peers.length)];
      const op = p === undefined ? 0 : random(14);
      let ours: unknown;
      let theirs: unknown;
      const both = (f: (r: Registry | ModelRegistry) => unknown): void => {
        ours = f(registry);
        theirs = f(model);
      };
      switch (op) {
        case 0: {
          const id = `10.0.${random(4)}.${step}:${1000 + random(9)}`;
          const info: PeerInfo = {
            id,
            remoteAddress: id,
            hostname: "h",
            broadcastAddress: `n${random(3)}`,
            tcpPort: 4150 + random(2),
            httpPort: 4151,
            version: "1.3.0",
            topologyZone: "",
            topologyRegion: "",
            lastUpdate: clock.now(),
          };
          peers.push(info);
          // Some never identify (as in tests of the TCP side): only their registrations hold them.
          if (random(4) === 0) both((r) => r.registerChannel(info, topic, channel));
          else both((r) => r.identify(info));
          break;
        }
        case 1:
          both((r) => r.registerTopic(p!, topic));
          break;
        case 2:
        case 3:
          both((r) => r.registerChannel(p!, topic, channel));
          break;
        case 4:
          both((r) => r.unregisterChannel(p!.id, topic, channel));
          break;
        case 5:
          both((r) => r.unregisterTopic(p!.id, topic));
          break;
        case 6:
          both((r) => r.removePeer(p!.id).map((m) => `${m.category}:${m.key}:${m.subkey}`));
          peers.splice(peers.indexOf(p!), 1);
          break;
        case 7:
          both((r) => r.deleteTopic(topic));
          break;
        case 8:
          both((r) => r.deleteChannel(topic, channel));
          break;
        case 9:
          both((r) => [r.createChannel(topic, channel), r.createTopic(topic)]);
          break;
        case 10:
          both((r) => r.createTopic(topic));
          break;
        case 11: {
          // touch() moves lastUpdate itself: give the model the same starting point.
          const before = p!.lastUpdate;
          ours = registry.touch(p!);
          p!.lastUpdate = before;
          theirs = model.touch(p!);
          break;
        }
        default: {
          const node = `n${random(3)}:4151`;
          both((r) => r.tombstone(topic, node));
        }
      }
      const where = `seed ${seed}, step ${step}, op ${op}`;
      assert.deepEqual(ours, theirs, where);
      assert.deepEqual(
        observe(registry, topics, channels, lastOurs),
        observe(model, topics, channels, lastModel),
        where,
      );
      assertConsistent(registry);
    }
  }
});

Deno.test("registrations sort as their names would, whatever the characters", () => {
  const alphabet = ["a", "b", "1", ":", "#", ".", "-", "_", "~"];
  let state = 7;
  const random = (n: number): number => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return Math.floor((state / 2147483648) * n);
  };
  const word = (): string =>
    Array.from({ length: random(4) }, () => alphabet[random(alphabet.length)]).join("");
  const categories = ["client", "topic", "channel"] as const;
  for (let i = 0; i < 20_000; i++) {
    const a = { category: categories[random(3)], key: word(), subkey: word() };
    const b = { category: categories[random(3)], key: word(), subkey: word() };
    const byName = (m: typeof a): string => `${m.category}:${m.key}:${m.subkey}`;
    const expected = byName(a) < byName(b) ? -1 : byName(a) > byName(b) ? 1 : 0;
    assert.equal(compareRegistrations(a, b), expected, `${byName(a)} vs ${byName(b)}`);
  }
});

Deno.test("a peer that registers and unregisters a channel over and over keeps a bounded index", () => {
  const { registry } = setup();
  const p = peer(registry, "1.1.1.1:1");
  for (let t = 0; t < 40; t++) registry.registerTopic(p, `t${t}`);
  for (let i = 0; i < 10_000; i++) {
    assert.equal(registry.registerChannel(p, "t0", "c"), true);
    assert.equal(registry.unregisterChannel(p.id, "t0", "c"), true);
    if (i % 997 === 0) assertConsistent(registry);
  }
  const state = registryInternals(registry).peers.get(p.id)!;
  assert.equal(state.live, 41);
  assert.ok(state.memberships.length <= 2 * 41 + COMPACT_SLACK, `${state.memberships.length}`);
  assert.deepEqual(membershipsOf(registry, p.id).length, 41);
  assertConsistent(registry);
});

Deno.test("deleting registrations under a peer keeps its index bounded and its answers right", () => {
  const { registry } = setup();
  const p = peer(registry, "1.1.1.1:1");
  for (let round = 0; round < 200; round++) {
    for (let t = 0; t < 5; t++) {
      registry.registerChannel(p, `t${t}`, "c");
      registry.registerTopic(p, `t${t}`);
    }
    registry.tombstone(`t${round % 5}`, "b:4151");
    registry.deleteTopic(`t${round % 5}`);
    assertConsistent(registry);
  }
  assert.equal(registry.nodes()[0].topics.length, 4);
  assert.equal(registry.removePeer(p.id).length, 1 + 4 * 2);
  assertConsistent(registry);
});

Deno.test("create, register, unregister and delete cycles leave nothing behind", () => {
  const { clock, registry } = setup();
  for (let cycle = 0; cycle < 2_000; cycle++) {
    const p = peer(registry, `10.0.0.${cycle % 7}:${cycle}`, { broadcastAddress: "n" });
    const topic = `t${cycle}`;
    registry.createTopic(topic);
    registry.createChannel(topic, "admin");
    registry.registerChannel(p, topic, "c");
    registry.registerTopic(p, topic);
    registry.registerTopic(p, `${topic}#ephemeral`);
    registry.registerChannel(p, "shared", `c${cycle}#ephemeral`);
    registry.tombstone(topic, "n:4151");
    clock.advance(cycle % 3 === 0 ? TOMBSTONE_MS : 1);
    if (cycle % 2 === 0) registry.unregisterTopic(p.id, topic);
    registry.deleteTopic(topic);
    registry.removePeer(p.id);
  }
  registry.deleteTopic("shared");
  assertConsistent(registry);
  const internals = registryInternals(registry);
  assert.equal(internals.topics.size, 0);
  assert.equal(internals.peers.size, 0);
  assert.equal(internals.tombstoned.size, 0);
  assert.equal(internals.client.producerCount, 0);
  assert.deepEqual(registry.entryCounts(), { client: 0, topic: 0, channel: 0 });
  assert.deepEqual(registry.stats(), { peers: 0, topics: 0, channels: 0, clientProducers: 0 });
});

Deno.test("/nodes and /debug can be pulled in slices while the registry changes", () => {
  const { registry } = setup();
  const peers = ["1.1.1.1:1", "1.1.1.1:2", "1.1.1.1:3"].map((id, i) =>
    peer(registry, id, { broadcastAddress: `b${i}` })
  );
  for (const p of peers) {
    registry.registerChannel(p, "t", "c");
    registry.registerTopic(p, "t");
  }
  const nodes = registry.iterateNodes();
  assert.equal(nodes.next().value?.peer.id, "1.1.1.1:1");
  registry.removePeer("1.1.1.1:2");
  registry.registerTopic(peers[2], "u");
  // The order was fixed at the first pull; what each node shows is read when pulled.
  const rest = [...nodes];
  assert.deepEqual(rest.map((n) => [n.peer.id, n.topics]), [
    ["1.1.1.1:2", []],
    ["1.1.1.1:3", ["t", "u"]],
  ]);

  const debug = registry.iterateDebug();
  assert.equal(debug.next().value?.name, "channel:t:c");
  registry.removePeer("1.1.1.1:1");
  registry.removePeer("1.1.1.1:3");
  assert.deepEqual([...debug], [], "registrations emptied since are skipped");
  assert.deepEqual(registry.debug(), []);
});

Deno.test("/debug is gathered in sorted runs, one run a step, and merged into the same answer", () => {
  const options = twinOptions();
  const registry = new Registry(options);
  const model = new ModelRegistry(options);
  for (const i of [1, 2, 3]) {
    const info = peer(new Registry(options), `1.1.1.1:${i}`, { broadcastAddress: `n${i}` });
    for (const r of [registry, model]) {
      r.identify(info);
      // Names that sort otherwise than they were added, some with ':' where another ends.
      for (const t of ["zz", "a", "a:b", "m", "ab"]) {
        r.registerChannel(info, `${t}${i % 2}`, `c${3 - i}`);
      }
      r.registerTopic(info, `t${9 - i}`);
    }
  }
  const steps = [...registry.iterateDebug(4)];
  const whole = registry.debug();
  const nulls = steps.filter((s) => s === null).length;
  // Runs of 4, one step (null) per full run, all before the first entry.
  assert.equal(nulls, Math.floor(whole.length / 4));
  assert.ok(steps.slice(0, nulls).every((s) => s === null), "every run is sorted first");
  assert.deepEqual(steps.slice(nulls), whole);
  assert.deepEqual(whole, model.debug());
});

Deno.test("a peer leaves its registrations in steps: sorted a run a step, then left in order", () => {
  const options = twinOptions();
  const stepped = new Registry(options);
  const whole = new Registry(options);
  const other = peer(stepped, "1.1.1.1:9", { broadcastAddress: "other" });
  const info = peer(new Registry(options), "1.1.1.1:1", { broadcastAddress: "leaving" });
  for (const r of [stepped, whole]) {
    r.identify(info);
    for (const t of ["e", "b", "d#ephemeral", "a", "c"]) {
      r.registerTopic(info, t);
      r.registerChannel(info, t, "x");
    }
  }
  stepped.registerTopic(other, "a");
  const steps = [...stepped.removePeerInSteps(info.id, 3)];
  // 11 registrations (the client one too): 3 full runs sorted, then 3, 3, 3 and 2 left.
  assert.deepEqual(steps.map((s) => s.length), [0, 0, 0, 3, 3, 3, 2]);
  assert.deepEqual(steps.flat(), whole.removePeer(info.id));
  assertConsistent(stepped);
  assert.deepEqual(stepped.lookup("a")?.producers.map((p) => p.id), ["1.1.1.1:9"]);
  assert.equal(stepped.lookup("d#ephemeral"), undefined, "an ephemeral topic left empty goes");
});

Deno.test("a registration deleted between two steps of a peer's removal is skipped, counts stay true", () => {
  const { registry } = setup();
  const info = peer(registry, "1.1.1.1:1");
  for (const t of ["a", "b", "c", "d"]) registry.registerTopic(info, t);
  const steps = registry.removePeerInSteps(info.id, 2);
  steps.next(); // a run sorted
  steps.next(); // another
  assert.equal(registry.lookup("a")?.producers.length, 1, "not reached yet: still shown");
  registry.deleteTopic("c"); // over HTTP, meanwhile
  const rest = [...steps].flat().map((m) => m.key);
  assert.deepEqual(rest, ["", "a", "b", "d"]);
  assertConsistent(registry);
  assert.deepEqual(registry.entryCounts(), { client: 0, topic: 0, channel: 0 });
});

Deno.test("a registration keeps its answers as it grows past the small-array limit and back", () => {
  const options = twinOptions();
  const registry = new Registry(options);
  const model = new ModelRegistry(options);
  const peers = Array.from({ length: SMALL_PRODUCER_LIMIT * 3 }, (_, i) => {
    const id = `10.1.0.${i}:4000`;
    const info: PeerInfo = {
      id,
      remoteAddress: id,
      hostname: "h",
      broadcastAddress: `n${i % 5}`,
      tcpPort: 4150,
      httpPort: 4151,
      version: "1.3.0",
      topologyZone: "",
      topologyRegion: "",
      lastUpdate: options.now(),
    };
    return info;
  });
  const same = (what: string): void => {
    const answer = (r: Registry | ModelRegistry): unknown => {
      const a = r.lookup("t");
      return a && { channels: a.channels, producers: a.producers.map((p) => p.id) };
    };
    assert.deepEqual(answer(registry), answer(model), what);
    assert.deepEqual(
      registry.debug().map((d) => [d.name, d.producers.map((p) => [p.peer.id, p.tombstoned])]),
      model.debug().map((d) => [d.name, d.producers.map((p) => [p.peer.id, p.tombstoned])]),
      what,
    );
    assert.deepEqual(registry.entryCounts(), model.entryCounts(), what);
    assertConsistent(registry);
  };
  for (const [i, p] of peers.entries()) {
    for (const r of [registry, model]) {
      r.identify(p);
      r.registerChannel(p, "t", "c");
      r.registerTopic(p, "t");
    }
    if (i % 7 === 0) {
      assert.equal(registry.tombstone("t", "n2:4151"), model.tombstone("t", "n2:4151"));
    }
    same(`after ${i + 1} producers`);
  }
  // Leave in an order unlike joining, down to none.
  for (const [i, p] of [...peers].reverse().entries()) {
    if (i % 2 === 0) {
      assert.deepEqual(registry.unregisterTopic(p.id, "t"), model.unregisterTopic(p.id, "t"));
    } else {
      const names = (removed: RemovedMembership[]): string[] =>
        removed.map((m) => `${m.category}:${m.key}:${m.subkey}`);
      assert.deepEqual(names(registry.removePeer(p.id)), names(model.removePeer(p.id)));
    }
    same(`after ${i + 1} left`);
  }
});
