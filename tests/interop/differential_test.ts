// Differential mode: the same real nsqds register with our daemon and with
// the reference nsqlookupd v1.3.0 at once; after each step of a scripted
// scenario, every HTTP answer of ours must equal the reference's (status line,
// every header but Date, body), up to the normalisations named in
// differential.ts. A difference prints both answers, raw and normalised.

import assert from "node:assert/strict";
import { type RunningProgram, untilPasses } from "../support/processes.ts";
import { canonical, describe, NORMALISATIONS, same } from "./differential.ts";
import {
  channelClients,
  type Lookupd,
  type Nsqd,
  startNsqd,
  startOurs,
  startReference,
  startTail,
  toNsq,
} from "./nsq.ts";
import { rawExchange, type RawRequest } from "./raw_http.ts";

const get = (target: string, headers?: [string, string][]): RawRequest => ({
  method: "GET",
  target,
  headers,
});
const post = (target: string): RawRequest => ({
  method: "POST",
  target,
  headers: [["Content-Length", "0"]],
});
const label = (r: RawRequest): string =>
  [`${r.method} ${r.target}`, ...(r.headers ?? []).map(([n, v]) => `${n}: ${v}`)].join(" | ");

/** The reads of every snapshot; per-topic reads are added for each topic either side lists. */
const READS = [
  "/ping",
  "/info",
  "/topics",
  "/nodes",
  "/debug",
  "/lookup",
  "/channels",
  "/lookup?topic=missing",
  "/channels?topic=missing",
].map((target) => get(target));

/** Requests outside the happy path that change nothing. */
const ODD_READS: RawRequest[] = [
  get("/no/such/path"),
  get("/topics/"),
  get("/Topics"),
  { method: "POST", target: "/Topics", headers: [["Content-Length", "0"]] },
  post("/lookup?topic=orders"),
  get("/topic/create?topic=never"),
  { method: "OPTIONS", target: "/lookup" },
  { method: "OPTIONS", target: "/topic/create" },
  { method: "HEAD", target: "/ping" },
  get("/ping?x=1"),
  get("/lookup?topic="),
  get("/lookup?topic=bad!name"),
  get("/lookup?topic=orders&topic=clicks"),
  get("/lookup?topic=orders", [["Accept", "application/vnd.nsq; version=1.0"]]),
  get("/lookup?topic=orders", [["Accept", "text/html"]]),
  get("/lookup?topic=orders", [["Authorization", "Bearer s3cret"]]),
  get("/channels?topic=orders", [["Accept", "application/json"]]),
  get("/info", [["Accept", "bogus"]]),
  get("/topics", [["Accept", "*/*"]]),
  get("/nodes", [["Accept", "application/vnd.nsq; version=1.0"]]),
];

interface Difference {
  request: string;
  text: string;
}

/** Both daemons' answers to `requests`, compared; the differences (with both answers) or none. */
async function differences(
  ours: Lookupd,
  reference: Lookupd,
  requests: readonly RawRequest[],
): Promise<Difference[]> {
  const found: Difference[] = [];
  for (const request of requests) {
    const [o, r] = await Promise.all([
      rawExchange(ours.httpPort, request),
      rawExchange(reference.httpPort, request),
    ]);
    const clock = { nowMs: Date.now() };
    const co = canonical(o, "ours", clock);
    const cr = canonical(r, "reference", clock);
    if (same(co, cr)) continue;
    found.push({
      request: label(request),
      text: describe(label(request), { canonical: co, raw: o }, { canonical: cr, raw: r }),
    });
  }
  return found;
}

function report(found: readonly Difference[]): string {
  return `${found.length} answer(s) differ from the reference's: ` +
    `${found.map((d) => d.request).join("; ")}\n` +
    `normalised only: ${Object.keys(NORMALISATIONS).join(", ")} (tests/interop/differential.ts)\n` +
    found.map((d) => d.text).join("\n\n");
}

/** Every topic either daemon lists, but the bulk ones (their answers are alike). */
async function topicsOfBoth(ours: Lookupd, reference: Lookupd): Promise<string[]> {
  const topics = new Set<string>();
  for (const lookupd of [ours, reference]) {
    const body = await lookupd.json<{ topics: string[] }>("/topics");
    for (const topic of body.topics) if (!topic.startsWith("bulk-")) topics.add(topic);
  }
  return [...topics].sort();
}

/**
 * Waits until `settled` holds on both daemons (the step's effect has reached
 * them), then until every snapshot read (and `extra`) answers alike; throws
 * with both answers of each difference after `ms`.
 */
async function expectSameState(
  ours: Lookupd,
  reference: Lookupd,
  settled: (lookupd: Lookupd) => Promise<void>,
  extra: readonly RawRequest[] = [],
  ms = 5_000,
): Promise<void> {
  await untilPasses(async () => {
    await settled(ours);
    await settled(reference);
  }, ms);
  const deadline = performance.now() + ms;
  while (true) {
    const topics = await topicsOfBoth(ours, reference);
    const requests = [
      ...READS,
      ...topics.flatMap((t) => [get(`/lookup?topic=${t}`), get(`/channels?topic=${t}`)]),
      ...extra,
    ];
    const found = await differences(ours, reference, requests);
    if (found.length === 0) return;
    if (performance.now() > deadline) assert.fail(report(found));
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Sends each request once to both (they change state) and compares the answers. */
async function expectSameWrites(
  ours: Lookupd,
  reference: Lookupd,
  requests: readonly RawRequest[],
): Promise<void> {
  const found = [];
  for (const request of requests) found.push(...await differences(ours, reference, [request]));
  if (found.length > 0) assert.fail(report(found));
}

const producersOf = async (lookupd: Lookupd, path: string): Promise<number> =>
  (await lookupd.json<{ producers: unknown[] }>(path)).producers.length;

const topicsAre = (topics: string[]) => async (lookupd: Lookupd): Promise<void> =>
  assert.deepEqual(
    (await lookupd.json<{ topics: string[] }>("/topics")).topics.sort(),
    topics,
    lookupd.name,
  );

const channelsAre = (topic: string, channels: string[]) => async (lookupd: Lookupd) =>
  assert.deepEqual(
    (await lookupd.json<{ channels: string[] }>(`/channels?topic=${topic}`)).channels.sort(),
    channels,
    lookupd.name,
  );

const nodesAre = (count: number) => async (lookupd: Lookupd): Promise<void> =>
  assert.equal(await producersOf(lookupd, "/nodes"), count, lookupd.name);

const BULK_TOPICS = Array.from({ length: 200 }, (_, i) => `bulk-${String(i).padStart(3, "0")}`);

Deno.test("differential: our answers equal the reference nsqlookupd's on the same traffic", async (t) => {
  await using ours = await startOurs();
  await using reference = await startReference();
  const lookupds = [ours, reference];
  const nsqds: Nsqd[] = [];
  const consumers: RunningProgram[] = [];
  const sameState = (settled: (l: Lookupd) => Promise<void>, extra?: RawRequest[]) =>
    expectSameState(ours, reference, settled, extra);
  try {
    await t.step("no producers: every answer, odd requests included", async () => {
      await sameState(nodesAre(0), ODD_READS);
    });

    const [a, b] = [await startNsqd("nsqd-a", lookupds), await startNsqd("nsqd-b", lookupds)];
    nsqds.push(a, b);

    await t.step("two real nsqds registered with both, no topics yet", async () => {
      await sameState(nodesAre(2));
    });

    await t.step("topics created by to_nsq publishing", async () => {
      await toNsq(a, "orders", ["a1"]);
      await toNsq(b, "orders", ["b1"]);
      await toNsq(b, "clicks", ["b2"]);
      await sameState(async (l) => {
        assert.equal(await producersOf(l, "/lookup?topic=orders"), 2, l.name);
        assert.equal(await producersOf(l, "/lookup?topic=clicks"), 1, l.name);
      });
    });

    await t.step(
      "channels created by consumers (one ephemeral), odd requests included",
      async () => {
        const billing = startTail({
          topic: "orders",
          channel: "billing",
          lookupd: [ours.httpAddress, reference.httpAddress],
        });
        consumers.push(billing);
        const live = startTail({
          topic: "clicks",
          channel: "live#ephemeral",
          lookupd: [reference.httpAddress, ours.httpAddress],
        });
        consumers.push(live);
        for (const nsqd of [a, b]) await channelClients(nsqd, "orders", "billing", 1);
        await channelClients(b, "clicks", "live#ephemeral", 1);
        // The billing consumer leaves; its channel (not ephemeral) stays registered.
        await billing.stop();
        await sameState(async (l) => {
          await channelsAre("orders", ["billing"])(l);
          await channelsAre("clicks", ["live#ephemeral"])(l);
        }, ODD_READS);
      },
    );

    await t.step("writes through the HTTP API, errors included", async () => {
      await expectSameWrites(ours, reference, [
        post("/topic/create?topic=solo"),
        post("/topic/create?topic=admin"),
        post("/topic/create?topic=admin"),
        post("/channel/create?topic=admin&channel=ops"),
        post("/channel/create?topic=fresh&channel=ops"),
        post("/topic/create"),
        post("/topic/create?topic=bad!name"),
        post("/topic/create?topic=" + "x".repeat(65)),
        post("/channel/create?topic=admin"),
        post("/channel/create?topic=admin&channel=bad!name"),
        post("/channel/delete?topic=admin&channel=nope"),
        post("/channel/delete?topic=nope&channel=nope"),
        post("/topic/delete?topic=nope"),
        post("/topic/tombstone?topic=orders"),
        post("/topic/tombstone?node=127.0.0.1:1"),
        post(`/topic/tombstone?topic=orders&node=127.0.0.1:1`),
        post(`/topic/tombstone?topic=nope&node=${a.httpAddress}`),
      ]);
      await sameState(topicsAre(["admin", "clicks", "fresh", "orders", "solo"]));
    });

    await t.step("a node's topic tombstoned", async () => {
      await expectSameWrites(ours, reference, [
        post(`/topic/tombstone?topic=orders&node=${a.httpAddress}`),
      ]);
      await sameState(async (l) =>
        assert.equal(await producersOf(l, "/lookup?topic=orders"), 1, l.name)
      );
    });

    await t.step("the ephemeral channel's consumer left", async () => {
      await consumers[1].stop();
      await sameState(channelsAre("clicks", []));
    });

    await t.step("an nsqd stopped cleanly", async () => {
      assert.equal((await b.stop("SIGTERM")).code, 0);
      await sameState(nodesAre(1));
    });

    await t.step("channel and topic deletes", async () => {
      await expectSameWrites(ours, reference, [
        post("/channel/delete?topic=orders&channel=billing"),
        post("/channel/delete?topic=orders&channel=billing"),
        post("/topic/delete?topic=admin"),
        post("/topic/delete?topic=clicks"),
        post("/topic/delete?topic=clicks"),
      ]);
      await sameState(topicsAre(["fresh", "orders", "solo"]));
    });

    await t.step("an nsqd killed with SIGKILL", async () => {
      await a.stop("SIGKILL");
      await sameState(nodesAre(0));
    });

    await t.step("answers over 2048 bytes (an nsqd with 200 topics)", async () => {
      const c = await startNsqd("nsqd-c", lookupds);
      nsqds.push(c);
      for (const topic of BULK_TOPICS) await c.post(`/topic/create?topic=${topic}`);
      await sameState(topicsAre([...BULK_TOPICS, "fresh", "orders", "solo"].sort()));
    });
  } finally {
    for (const consumer of consumers) await consumer.stop("SIGKILL");
    for (const nsqd of nsqds) await nsqd.stop("SIGKILL");
  }
});
