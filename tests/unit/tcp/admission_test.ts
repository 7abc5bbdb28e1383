// src/tcp/admission.ts: at the cap a newcomer displaces the longest-silent
// connection that proved least (no magic, then no IDENTIFY), never an
// identified nsqd; one host holds at most its share.

import assert from "node:assert/strict";
import {
  type Admission,
  ConnectionTable,
  defaultMaxPerHost,
  hostKey,
  type Standing,
  type Tracked,
} from "../../../src/tcp/admission.ts";

interface Entry extends Tracked {
  name: string;
}

function table(
  ...entries: [name: string, host: string, standing: Standing, lastActive: number][]
): { table: ConnectionTable<Entry>; byName: Map<string, Entry> } {
  const t = new ConnectionTable<Entry>();
  const byName = new Map<string, Entry>();
  // Added in order of lastActive, as connections arrive and talk.
  for (const [name, host, standing, lastActive] of entries) {
    const entry = { name, host, standing, lastActive };
    t.add(entry);
    byName.set(name, entry);
  }
  return { table: t, byName };
}

function victim(decision: Admission<Entry>): string {
  return decision.kind === "evict" ? decision.victim.name : decision.kind;
}

const LIMITS = { maxConnections: 4, maxPerHost: 100 };

Deno.test("admission: below the cap everyone is admitted", () => {
  const { table: t } = table(["a", "h1", "identified", 1]);
  assert.deepEqual(t.admit("h2", LIMITS), { kind: "admit" });
});

Deno.test("admission: at the cap the longest-silent connection without magic makes room first", () => {
  const { table: t } = table(
    ["started-old", "h1", "started", 1],
    ["silent-old", "h2", "silent", 2],
    ["silent-new", "h3", "silent", 3],
    ["nsqd", "h4", "identified", 0],
  );
  const decision = t.admit("h9", LIMITS);
  assert.equal(victim(decision), "silent-old");
  assert.equal(decision.kind === "evict" && decision.reason, "limit");
});

Deno.test("admission: without silent ones, the longest-silent unidentified one makes room", () => {
  const { table: t, byName } = table(
    ["started-a", "h1", "started", 1],
    ["started-b", "h2", "started", 2],
    ["nsqd-a", "h3", "identified", 0],
    ["nsqd-b", "h4", "identified", 0],
  );
  assert.equal(victim(t.admit("h9", LIMITS)), "started-a");
  // started-a talks: now started-b has been silent the longest.
  t.touch(byName.get("started-a")!, 10);
  assert.equal(victim(t.admit("h9", LIMITS)), "started-b");
});

Deno.test("admission: identified nsqd peers are never displaced; the newcomer is refused", () => {
  const { table: t } = table(
    ["a", "h1", "identified", 1],
    ["b", "h2", "identified", 2],
    ["c", "h3", "identified", 3],
    ["d", "h4", "identified", 4],
  );
  assert.deepEqual(t.admit("h9", LIMITS), { kind: "refuse", reason: "limit" });
});

Deno.test("admission: promotion moves a connection out of reach; a standing never goes back", () => {
  const { table: t, byName } = table(
    ["x", "h1", "silent", 1],
    ["y", "h2", "identified", 2],
    ["z", "h3", "identified", 3],
    ["w", "h4", "identified", 4],
  );
  const x = byName.get("x")!;
  t.promote(x, "started");
  assert.equal(victim(t.admit("h9", LIMITS)), "x");
  t.promote(x, "identified");
  assert.equal(t.admit("h9", LIMITS).kind, "refuse");
  t.promote(x, "silent");
  assert.equal(x.standing, "identified", "no demotion by a stale promote");
  assert.equal(t.count("identified"), 4);
});

Deno.test("admission: a host at its share displaces its own least-proven connection, never another host's", () => {
  const limits = { maxConnections: 100, maxPerHost: 3 };
  const { table: t, byName } = table(
    ["other-silent", "h2", "silent", 0],
    ["own-started", "h1", "started", 1],
    ["own-silent-old", "h1", "silent", 2],
    ["own-silent-new", "h1", "silent", 3],
  );
  const decision = t.admit("h1", limits);
  assert.equal(victim(decision), "own-silent-old");
  assert.equal(decision.kind === "evict" && decision.reason, "per_remote");
  assert.deepEqual(t.admit("h2", limits), { kind: "admit" });
  // The old one sends something (not yet its magic): the other has been silent longer.
  t.touch(byName.get("own-silent-old")!, 4);
  assert.equal(victim(t.admit("h1", limits)), "own-silent-new");
  // Both get their magic: the host's longest-silent started one goes.
  t.promote(byName.get("own-silent-old")!, "started");
  t.promote(byName.get("own-silent-new")!, "started");
  assert.equal(victim(t.admit("h1", limits)), "own-started");
});

Deno.test("admission: a host's victim is found without scanning its connections", () => {
  // 20,000 connections of one host at its share, most identified: each newcomer
  // must cost O(1), not a scan (a scan per accept made a storm quadratic).
  const t = new ConnectionTable<Entry>();
  for (let i = 0; i < 20_000; i++) {
    t.add({
      name: `n${i}`,
      host: "h1",
      standing: i < 19_999 ? "identified" : "silent",
      lastActive: i,
    });
  }
  const limits = { maxConnections: 100_000, maxPerHost: 20_000 };
  const started = performance.now();
  for (let i = 0; i < 20_000; i++) assert.equal(victim(t.admit("h1", limits)), "n19999");
  // 20,000 scans of 20,000 would be 4e8 steps (seconds); O(1) is milliseconds.
  assert.ok(performance.now() - started < 1_000, "admission scanned the host's connections");
});

Deno.test("admission: a host whose connections all identified is refused past its share", () => {
  const limits = { maxConnections: 100, maxPerHost: 2 };
  const { table: t } = table(["a", "h1", "identified", 1], ["b", "h1", "identified", 2]);
  assert.deepEqual(t.admit("h1", limits), { kind: "refuse", reason: "per_remote" });
});

Deno.test("admission: removal frees the slot and the host's count; removing twice is harmless", () => {
  const { table: t, byName } = table(["a", "h1", "silent", 1], ["b", "h1", "started", 2]);
  assert.equal(t.countForHost("h1"), 2);
  t.remove(byName.get("a")!);
  t.remove(byName.get("a")!);
  assert.equal(t.size, 1);
  assert.equal(t.countForHost("h1"), 1);
  assert.deepEqual([...t.entries("silent")], []);
  t.remove(byName.get("b")!);
  assert.equal(t.countForHost("h1"), 0);
});

Deno.test("admission: the default share of one host is an eighth of the cap", () => {
  assert.equal(defaultMaxPerHost(16_384), 2048);
  assert.equal(defaultMaxPerHost(24), 3);
  assert.equal(defaultMaxPerHost(3), 1);
  assert.equal(defaultMaxPerHost(Infinity), Infinity);
});

Deno.test("admission: hosts are IPv4 addresses (mapped ones too) and IPv6 /64 prefixes", () => {
  assert.equal(hostKey("127.0.0.1"), "127.0.0.1");
  assert.equal(hostKey("::ffff:10.1.2.3"), "10.1.2.3");
  assert.equal(hostKey("[::ffff:10.1.2.3]"), "10.1.2.3");
  assert.equal(hostKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  assert.equal(hostKey("2001:db8:1:2:bbbb:cccc:dddd:eeee"), "2001:db8:1:2::/64");
  assert.equal(hostKey("2001:0db8:0001:0002::"), "2001:db8:1:2::/64");
  assert.equal(hostKey("::1"), "0:0:0:0::/64");
  assert.equal(hostKey("fe80::1%eth0"), "fe80:0:0:0::/64");
});
