// Routes over a registry, called as the table calls them: what they answer,
// which answers come in slices, and /debug taking turns.

import assert from "node:assert/strict";
import { AnswerCache } from "../../../src/http/cache.ts";
import type { Outcome } from "../../../src/http/render.ts";
import {
  channels,
  debug,
  lookup,
  nodes,
  OneAtATime,
  type RouteContext,
  type RouteRequest,
  SLICE_CHARS,
  SLICED_ITEMS,
  topics,
} from "../../../src/http/routes.ts";
import { createLogger } from "../../../src/ops/logger.ts";
import { Registry } from "../../../src/registry.ts";
import { ManualClock, testPeer } from "../../support/helpers.ts";

function context(): RouteContext & { clock: ManualClock } {
  const clock = new ManualClock();
  return {
    clock,
    registry: new Registry({
      now: clock.now,
      inactiveProducerTimeoutMs: 300_000,
      tombstoneLifetimeMs: 45_000,
    }),
    logger: createLogger({ level: "fatal", prefix: "", sink: () => {} }),
    lookupCache: new AnswerCache(1 << 20),
    listCache: new AnswerCache(1 << 30),
    debugTurns: new OneAtATime(),
  };
}

function request(
  query: Record<string, string> = {},
  visible?: RouteRequest["visible"],
): RouteRequest {
  return {
    params: new Map(Object.entries(query)),
    request: { method: "GET", target: "/" },
    visible,
  };
}

/** The whole body and how many slices it came in (1 for a plain body). */
function body(outcome: Outcome): { text: string; slices: number } {
  if (outcome.kind === "json") return { text: outcome.body, slices: 1 };
  assert.equal(outcome.kind, "json-slices");
  if (outcome.kind !== "json-slices") throw new Error("unreachable");
  let text = "";
  let slices = 0;
  for (let r = outcome.slices.next(); !r.done; r = outcome.slices.next()) {
    text += r.value;
    slices++;
  }
  return { text, slices };
}

function registerMany(ctx: RouteContext, topicCount: number, channelsPerTopic = 0): void {
  const peer = testPeer({ lastUpdate: ctx.registry.now() });
  ctx.registry.identify(peer);
  for (let t = 0; t < topicCount; t++) {
    ctx.registry.registerTopic(peer, `topic-${t}`);
    for (let c = 0; c < channelsPerTopic; c++) {
      ctx.registry.registerChannel(peer, `topic-${t}`, `ch-${c}`);
    }
  }
}

Deno.test("/topics beyond SLICED_ITEMS names comes in slices of about SLICE_CHARS, same JSON", () => {
  const ctx = context();
  const count = SLICED_ITEMS * 4;
  registerMany(ctx, count);
  const { text, slices } = body(topics(ctx, request()));
  const parsed = JSON.parse(text) as { topics: string[] };
  assert.equal(parsed.topics.length, count);
  assert.deepEqual(parsed.topics, [...parsed.topics].sort());
  assert.ok(slices >= Math.floor(text.length / SLICE_CHARS), `${slices} slices`);
});

Deno.test("/topics of a small registry is one cached body, reused until topics change", () => {
  const ctx = context();
  registerMany(ctx, 3);
  const first = topics(ctx, request());
  const again = topics(ctx, request());
  assert.ok(first.kind === "json" && again.kind === "json");
  assert.ok(first.encoded !== undefined && again.encoded === first.encoded, "the same bytes");
  registerMany(ctx, 4);
  const changed = topics(ctx, request());
  assert.ok(changed.kind === "json");
  assert.deepEqual(JSON.parse(changed.body).topics, ["topic-0", "topic-1", "topic-2", "topic-3"]);
});

Deno.test("/channels of a wide topic comes in slices", () => {
  const ctx = context();
  registerMany(ctx, 1, SLICED_ITEMS + 1);
  const { text, slices } = body(channels(ctx, request({ topic: "topic-0" })));
  assert.equal((JSON.parse(text) as { channels: string[] }).channels.length, SLICED_ITEMS + 1);
  assert.ok(slices >= 1);
});

Deno.test("a visibility narrows /topics, /channels and /lookup channels", () => {
  const ctx = context();
  registerMany(ctx, 3, 3);
  const visible = {
    topic: (t: string) => t !== "topic-1",
    channel: (_t: string, c: string) => c === "ch-2",
  };
  assert.deepEqual(JSON.parse(body(topics(ctx, request({}, visible))).text), {
    topics: ["topic-0", "topic-2"],
  });
  assert.deepEqual(JSON.parse(body(channels(ctx, request({ topic: "topic-0" }, visible))).text), {
    channels: ["ch-2"],
  });
  const found = JSON.parse(
    body(lookup(ctx, request({ topic: "topic-0" }, visible)) as Outcome).text,
  );
  assert.deepEqual(found.channels, ["ch-2"]);
  // The narrowed answer is not the one cached for everybody.
  const open = JSON.parse(body(lookup(ctx, request({ topic: "topic-0" }))).text);
  assert.deepEqual(open.channels, ["ch-0", "ch-1", "ch-2"]);
});

Deno.test("/debug sorts its registrations a run of SLICED_ITEMS per step, never the registry at once", () => {
  const ctx = context();
  const registrations = SLICED_ITEMS * 5 + 1; // the client registration, and the topics
  registerMany(ctx, registrations - 1);
  const outcome = debug(ctx) as Outcome;
  assert.ok(outcome.kind === "json-slices");
  // The first steps write nothing: each sorted one run (a later step merges them).
  const first = Array.from({ length: 5 }, () => outcome.slices.next().value);
  assert.deepEqual(first, ["", "", "", "", ""]);
  let text = "";
  for (let r = outcome.slices.next(); !r.done; r = outcome.slices.next()) text += r.value;
  const keys = Object.keys(JSON.parse(text));
  assert.equal(keys.length, registrations);
  assert.deepEqual(keys, ctx.registry.debug().map((d) => d.name));
});

Deno.test("/debug comes in slices and waits for the /debug before it to end", async () => {
  const ctx = context();
  registerMany(ctx, 3_000, 1);
  const first = debug(ctx);
  assert.ok(!(first instanceof Promise), "the first /debug answers at once");
  const second = debug(ctx);
  assert.ok(second instanceof Promise, "a second one waits its turn");
  let secondReady = false;
  second.then(() => (secondReady = true));
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(secondReady, false);
  const { text, slices } = body(first);
  assert.ok(slices > 1);
  assert.equal(Object.keys(JSON.parse(text)).length, 1 + 3_000 * 2);
  await second;
  const rest = await second;
  assert.ok(rest.kind === "json-slices");
  rest.slices.return?.();
  assert.equal(ctx.debugTurns.tryAcquire(), true, "returned before its first slice, it released");
});

Deno.test("a /debug abandoned midway lets the next one go", async () => {
  const ctx = context();
  registerMany(ctx, 3_000, 1);
  const first = debug(ctx) as Outcome;
  assert.ok(first.kind === "json-slices");
  first.slices.next();
  const second = debug(ctx);
  first.slices.return?.();
  const next = await second;
  assert.ok(next.kind === "json-slices");
  body(next);
  assert.equal(ctx.debugTurns.waiting, 0);
  assert.equal(ctx.debugTurns.tryAcquire(), true);
});

function manyPeers(ctx: RouteContext, peers: number, topicsEach: number): void {
  for (let p = 0; p < peers; p++) {
    const peer = testPeer({
      remoteAddress: `10.0.${p >> 8}.${p & 255}:1`,
      broadcastAddress: `n${p}`,
      lastUpdate: ctx.registry.now(),
    });
    ctx.registry.identify(peer);
    for (let t = 0; t < topicsEach; t++) ctx.registry.registerTopic(peer, `topic-${t}`);
  }
}

Deno.test("/nodes is built in slices, then served from the cache until it changes", () => {
  const ctx = context();
  manyPeers(ctx, 200, 50);
  const first = nodes(ctx);
  assert.equal(first.kind, "json-slices");
  const { text, slices } = body(first);
  assert.ok(slices > 1, `${slices} slices`);
  assert.equal((JSON.parse(text) as { producers: unknown[] }).producers.length, 200);
  const second = nodes(ctx);
  assert.ok(second.kind === "json" && second.body === text, "the cached body, the same JSON");
  manyPeers(ctx, 201, 1);
  assert.equal(nodes(ctx).kind, "json-slices", "a change is built again");
});
