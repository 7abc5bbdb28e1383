import assert from "node:assert/strict";
import type { AuthQuery } from "../../../src/access/auth.ts";
import {
  type AuthOutcome,
  AuthService,
  FIRST_BACKOFF_MS,
  MAX_CACHE_ENTRIES,
  MAX_QUERIES_IN_FLIGHT,
  type QueryResult,
  REFUSAL_TTL_MS,
} from "../../../src/access/auth_service.ts";
import { captureLogger, ManualClock } from "../../support/helpers.ts";

const GOOD =
  '{"ttl":60,"identity":"c","authorizations":[{"topic":".*","channels":[".*"],"permissions":["subscribe"]}]}';
const Q: AuthQuery = { remoteIp: "10.0.0.1", tls: false, secret: "good" };

interface Harness {
  service: AuthService;
  clock: ManualClock;
  logs: string[];
  calls: { address: string; query: AuthQuery; timeoutMs: number }[];
  /** What each server answers, by address; a function is called per query. */
  servers: Map<string, QueryResult | (() => Promise<QueryResult>)>;
  observed: string[];
}

function harness(addresses: string[], random = 0): Harness {
  const clock = new ManualClock(0);
  const { logger, logs } = captureLogger("debug");
  const calls: Harness["calls"] = [];
  const servers = new Map<string, QueryResult | (() => Promise<QueryResult>)>();
  const observed: string[] = [];
  const service = new AuthService({
    addresses,
    timeoutMs: 5000,
    logger,
    now: clock.now,
    random: () => random,
    observer: { query: (address, result) => observed.push(`${address}:${result}`) },
    query: (address, query, timeoutMs) => {
      calls.push({ address, query, timeoutMs });
      const answer = servers.get(address) ?? { kind: "error", reason: "connection refused" };
      return typeof answer === "function" ? answer() : Promise.resolve(answer);
    },
  });
  return { service, clock, logs, calls, servers, observed };
}

const ok200 = (body = GOOD): QueryResult => ({
  kind: "answer",
  status: 200,
  statusText: "OK",
  body,
});

async function outcome(h: Harness, query: AuthQuery = Q): Promise<AuthOutcome> {
  return await h.service.lookup(query);
}

Deno.test("auth service: a granted answer is cached for its ttl and then asked again", async () => {
  const h = harness(["a:1"]);
  h.servers.set("a:1", ok200());
  assert.equal((await outcome(h)).kind, "granted");
  h.clock.advance(59_999);
  const hit = h.service.lookup(Q);
  assert.ok(!(hit instanceof Promise), "a cache hit answers synchronously");
  assert.equal(hit.kind, "granted");
  assert.equal(h.calls.length, 1);
  h.clock.advance(1);
  assert.ok(h.service.lookup(Q) instanceof Promise);
  assert.equal(h.calls.length, 2);
});

Deno.test("auth service: answers are cached per secret, client address and TLS", async () => {
  const h = harness(["a:1"]);
  h.servers.set("a:1", ok200());
  await outcome(h);
  await outcome(h, { ...Q, remoteIp: "10.0.0.2" });
  await outcome(h, { ...Q, secret: "other" });
  await outcome(h, { ...Q, tls: true });
  await outcome(h);
  assert.deepEqual(h.calls.map((c) => c.query), [
    Q,
    { ...Q, remoteIp: "10.0.0.2" },
    { ...Q, secret: "other" },
    { ...Q, tls: true },
  ]);
  assert.equal(h.service.cacheSize, 4);
});

Deno.test("auth service: concurrent misses for one key share one query", async () => {
  const h = harness(["a:1"]);
  let release: (() => void) | undefined;
  h.servers.set("a:1", () => new Promise((resolve) => (release = () => resolve(ok200()))));
  const first = h.service.lookup(Q);
  const second = h.service.lookup(Q);
  assert.equal(first, second);
  assert.equal(h.service.queriesInFlight, 1);
  release!();
  assert.equal((await first).kind, "granted");
  assert.equal(h.calls.length, 1);
  assert.equal(h.service.queriesInFlight, 0);
});

Deno.test("auth service: 401 and 403 refuse the secret (cached briefly, no failover)", async () => {
  const h = harness(["a:1", "b:2"]);
  h.servers.set("a:1", { kind: "answer", status: 403, statusText: "Forbidden", body: "no" });
  h.servers.set("b:2", ok200());
  assert.deepEqual(await outcome(h), { kind: "refused" });
  assert.deepEqual(h.calls.map((c) => c.address), ["a:1"]);
  h.clock.advance(REFUSAL_TTL_MS - 1);
  assert.deepEqual(h.service.lookup(Q), { kind: "refused" });
  h.clock.advance(1);
  h.servers.set("a:1", { kind: "answer", status: 401, statusText: "Unauthorized", body: "" });
  assert.deepEqual(await outcome(h), { kind: "refused" });
  assert.deepEqual(h.observed, ["a:1:refused", "a:1:refused"]);
});

Deno.test("auth service: a failing server is skipped for the next one, as nsqd does", async () => {
  const h = harness(["a:1", "b:2", "c:3"]);
  h.servers.set("a:1", { kind: "error", reason: "connection refused" });
  h.servers.set("b:2", {
    kind: "answer",
    status: 500,
    statusText: "Internal Server Error",
    body: "x",
  });
  h.servers.set("c:3", ok200());
  assert.equal((await outcome(h)).kind, "granted");
  assert.deepEqual(h.calls.map((c) => c.address), ["a:1", "b:2", "c:3"]);
  assert.deepEqual(h.observed, ["a:1:failed", "b:2:failed", "c:3:granted"]);
  assert.equal(h.calls[0].timeoutMs, 5000);
});

Deno.test("auth service: failover starts at a random server, round the list", async () => {
  const h = harness(["a:1", "b:2", "c:3"], 0.5);
  h.servers.set("a:1", ok200());
  h.servers.set("b:2", { kind: "error", reason: "timeout" });
  h.servers.set("c:3", { kind: "error", reason: "timeout" });
  assert.equal((await outcome(h)).kind, "granted");
  assert.deepEqual(h.calls.map((c) => c.address), ["b:2", "c:3", "a:1"]);
});

Deno.test("auth service: garbage, bad patterns and a bad ttl are failures, never a grant", async () => {
  for (
    const body of [
      "<html>",
      '{"ttl":0}',
      '{"ttl":60,"authorizations":[{"topic":"(","permissions":["subscribe"]}]}',
    ]
  ) {
    const h = harness(["a:1"]);
    h.servers.set("a:1", ok200(body));
    const result = await outcome(h);
    assert.equal(result.kind, "unavailable", body);
    assert.equal(h.service.cacheSize, 0, "failures are not cached");
  }
});

Deno.test("auth service: with every server failing, 503 until a rested server answers", async () => {
  const h = harness(["a:1"]);
  const first = await outcome(h);
  assert.deepEqual(first, {
    kind: "unavailable",
    reason: "failed to auth against a:1 - connection refused",
  });
  // Resting: answered at once, without a query.
  assert.deepEqual(await outcome(h, { ...Q, secret: "x" }), {
    kind: "unavailable",
    reason: "every auth server is failing",
  });
  assert.equal(h.calls.length, 1);
  h.clock.advance(FIRST_BACKOFF_MS);
  await outcome(h, { ...Q, secret: "y" });
  assert.equal(h.calls.length, 2);
  // The rest doubles after each failure.
  h.clock.advance(FIRST_BACKOFF_MS);
  await outcome(h, { ...Q, secret: "z" });
  assert.equal(h.calls.length, 2);
  h.clock.advance(FIRST_BACKOFF_MS);
  h.servers.set("a:1", ok200());
  assert.equal((await outcome(h, { ...Q, secret: "z" })).kind, "granted");
  assert.equal(h.service.failingServers, 0);
});

Deno.test("auth service: one log line per failure burst, a summary per minute, one when it recovers", async () => {
  const h = harness(["a:1"]);
  for (let i = 0; i < 90; i++) {
    await outcome(h, { ...Q, secret: `s${i}` });
    h.clock.advance(1_000);
  }
  h.clock.advance(10_000);
  h.servers.set("a:1", ok200());
  await outcome(h);
  const auth = h.logs.filter((l) => l.includes("AUTH:"));
  assert.equal(auth.length, 3, auth.join("\n"));
  assert.match(
    auth[0],
    /^WARNING: AUTH: failed to auth against a:1 - connection refused \(further failures are counted/,
  );
  assert.match(auth[1], /^WARNING: AUTH: a:1 still failing: \d+ more failures \(\d+ in 6\ds\)/);
  assert.ok(h.calls.length < 20, "resting servers are not asked on every request");
  assert.match(auth[2], /^INFO: AUTH: a:1 answers again after \d+ failed queries$/);
});

Deno.test("auth service: the secret never reaches a log line", async () => {
  const h = harness(["a:1"]);
  await outcome(h, { ...Q, secret: "TOPSECRET" });
  h.clock.advance(60_000);
  h.servers.set("a:1", ok200("{"));
  await outcome(h, { ...Q, secret: "TOPSECRET" });
  assert.ok(h.logs.length > 0);
  assert.ok(h.logs.every((line) => !line.includes("TOPSECRET")), h.logs.join("\n"));
});

Deno.test("auth service: queries in flight are bounded; beyond, 503 at once", async () => {
  const h = harness(["a:1"]);
  const releases: (() => void)[] = [];
  h.servers.set("a:1", () => new Promise((resolve) => releases.push(() => resolve(ok200()))));
  const pending: Promise<AuthOutcome>[] = [];
  for (let i = 0; i < MAX_QUERIES_IN_FLIGHT; i++) {
    pending.push(h.service.lookup({ ...Q, secret: `s${i}` }) as Promise<AuthOutcome>);
  }
  const over = h.service.lookup({ ...Q, secret: "one-too-many" });
  assert.deepEqual(over, { kind: "unavailable", reason: "too many auth queries in flight" });
  assert.equal(h.calls.length, MAX_QUERIES_IN_FLIGHT);
  for (const release of releases) release();
  await Promise.all(pending);
  h.servers.set("a:1", ok200());
  assert.equal((await outcome(h, { ...Q, secret: "one-too-many" })).kind, "granted");
});

Deno.test("auth service: the cache is bounded; the oldest entries make room", async () => {
  const h = harness(["a:1"]);
  h.servers.set("a:1", ok200());
  for (let i = 0; i < MAX_CACHE_ENTRIES + 10; i++) await outcome(h, { ...Q, secret: `s${i}` });
  assert.equal(h.service.cacheSize, MAX_CACHE_ENTRIES);
  const calls = h.calls.length;
  await outcome(h, { ...Q, secret: `s${MAX_CACHE_ENTRIES + 9}` });
  assert.equal(h.calls.length, calls, "the newest is still cached");
  await outcome(h, { ...Q, secret: "s0" });
  assert.equal(h.calls.length, calls + 1, "the oldest was evicted");
});
