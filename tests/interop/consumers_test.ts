// Real go-nsq consumers (nsq_tail, nsq_to_file) that know only our daemon's
// HTTP address: they must find both nsqds through our /lookup (or the topics
// through our /topics), connect to them and receive what is published there.

import assert from "node:assert/strict";
import { type RunningProgram, untilPasses } from "../support/processes.ts";
import {
  channelClients,
  filesByTopic,
  type Lookupd,
  type Nsqd,
  startNsqd,
  startOurs,
  startTail,
  startToFile,
  toNsq,
} from "./nsq.ts";

const TOPIC = "events";

/** Waits until `consumer` is subscribed on every nsqd, then publishes one message to each. */
async function publishToEach(
  nsqds: readonly Nsqd[],
  topic: string,
  channel: string,
  tag: string,
  consumer: RunningProgram,
): Promise<string[]> {
  for (const nsqd of nsqds) {
    await channelClients(nsqd, topic, channel, 1).catch((error) => {
      throw new Error(`${error instanceof Error ? error.message : error}\n${consumer.tail()}`);
    });
  }
  const sent: string[] = [];
  for (const nsqd of nsqds) {
    const body = `${tag} via ${nsqd.name}`;
    await toNsq(nsqd, topic, [body]);
    sent.push(body);
  }
  return sent.sort();
}

/** nsq_tail with `address` receives one message from each nsqd, then exits. */
async function tailReceivesFromEach(
  ours: Lookupd,
  nsqds: readonly Nsqd[],
  address: string,
  channel: string,
): Promise<RunningProgram> {
  const tail = startTail({ topic: TOPIC, channel, lookupd: [address], count: nsqds.length });
  try {
    for (const nsqd of nsqds) await channelClients(nsqd, TOPIC, channel, 1);
    // While it is connected, the nsqds have registered its channel with us.
    await untilPasses(async () =>
      assert.ok(
        (await ours.json<{ channels: string[] }>(`/channels?topic=${TOPIC}`)).channels
          .includes(channel),
        `${channel} in our /channels while the consumer is connected`,
      )
    );
    const sent = await publishToEach(nsqds, TOPIC, channel, channel, tail);
    assert.equal((await tail.exited()).code, 0, tail.tail());
    assert.deepEqual([...tail.stdout].sort(), sent);
    // Every address form comes down to the same endpoint (go-nsq's nextLookupdEndpoint).
    const endpoint = `${ours.url}/lookup?topic=${TOPIC}`;
    assert.ok(
      tail.stderr.some((line) => line.endsWith(`querying nsqlookupd ${endpoint}`)),
      `nsq_tail queried ${endpoint}\n${tail.tail()}`,
    );
    return tail;
  } catch (error) {
    await tail.stop("SIGKILL");
    throw error;
  }
}

Deno.test("real go-nsq consumers: find two nsqds through our /lookup and /topics", async (t) => {
  await using ours = await startOurs();
  await using a = await startNsqd("nsqd-a", [ours]);
  await using b = await startNsqd("nsqd-b", [ours]);
  for (const nsqd of [a, b]) await nsqd.post(`/topic/create?topic=${TOPIC}`);
  await untilPasses(async () =>
    assert.equal(
      (await ours.json<{ producers: unknown[] }>(`/lookup?topic=${TOPIC}`)).producers.length,
      2,
    )
  );

  await t.step("nsq_tail given host:port receives a message from each nsqd", async () => {
    await tailReceivesFromEach(ours, [a, b], ours.httpAddress, "bare#ephemeral");
  });

  await t.step(
    "the consumer's ephemeral channel disappears from /channels when it leaves",
    async () => {
      await untilPasses(async () => {
        const { channels } = await ours.json<{ channels: string[] }>(`/channels?topic=${TOPIC}`);
        assert.ok(!channels.includes("bare#ephemeral"), `still listed: ${channels}`);
        assert.ok(!(await a.channels(TOPIC)).includes("bare#ephemeral"), "nsqd deleted it");
      });
    },
  );

  await t.step("nsq_tail given http://host:port receives a message from each nsqd", async () => {
    await tailReceivesFromEach(ours, [a, b], `http://${ours.httpAddress}`, "scheme#ephemeral");
  });

  await t.step(
    "nsq_tail given http://host:port/lookup receives a message from each nsqd",
    async () => {
      await tailReceivesFromEach(ours, [a, b], `${ours.url}/lookup`, "path#ephemeral");
    },
  );

  await t.step("nsq_to_file -topic writes what both nsqds received", async () => {
    const dir = await Deno.makeTempDir({ prefix: "interop-to-file-" });
    try {
      await using toFile = startToFile({ outputDir: dir, lookupd: [ours.url], topic: TOPIC });
      const sent = await publishToEach([a, b], TOPIC, "nsq_to_file", "file", toFile);
      await untilPasses(async () =>
        assert.deepEqual([...(await filesByTopic(dir)).get(TOPIC) ?? []].sort(), sent)
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step("nsq_to_file -topic-pattern finds the matching topics in our /topics", async () => {
    await a.post("/topic/create?topic=logs-1");
    await b.post("/topic/create?topic=logs-2");
    await untilPasses(async () =>
      assert.deepEqual(await ours.json("/topics"), { topics: [TOPIC, "logs-1", "logs-2"] })
    );
    const dir = await Deno.makeTempDir({ prefix: "interop-to-file-" });
    try {
      // nsq_to_file's own topic discovery takes host:port only (it prefixes http://).
      await using toFile = startToFile({
        outputDir: dir,
        lookupd: [ours.httpAddress],
        topicPattern: "^logs-",
      });
      const sent1 = await publishToEach([a], "logs-1", "nsq_to_file", "pattern", toFile);
      const sent2 = await publishToEach([b], "logs-2", "nsq_to_file", "pattern", toFile);
      await untilPasses(async () =>
        assert.deepEqual(
          await filesByTopic(dir),
          new Map([["logs-1", sent1], ["logs-2", sent2]]),
        )
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step(
    "nsq_tail for a topic nobody has gets our 404 TOPIC_NOT_FOUND and connects to nothing",
    async () => {
      await using tail = startTail({ topic: "nobody", channel: "c", lookupd: [ours.httpAddress] });
      await tail.waitForLine(
        new RegExp(
          `error querying nsqlookupd \\(http://${ours.httpAddress}/lookup\\?topic=nobody\\) - ` +
            `got response 404 Not Found "\\{\\\\"message\\\\":\\\\"TOPIC_NOT_FOUND\\\\"\\}"$`,
        ),
      );
      assert.ok(!tail.stderr.some((line) => line.includes("connecting to nsqd")), tail.tail());
    },
  );
});

Deno.test("real go-nsq consumers: with a --legacy-http-api daemon (they send the v1 Accept header)", async (t) => {
  await using ours = await startOurs({ args: ["--legacy-http-api"] });
  await using nsqd = await startNsqd("nsqd", [ours]);
  await nsqd.post(`/topic/create?topic=${TOPIC}`);
  await t.step("nsq_tail still gets the unwrapped v1 /lookup and receives", async () => {
    await untilPasses(async () =>
      assert.equal((await ours.get(`/lookup?topic=${TOPIC}`)).status, 200)
    );
    await tailReceivesFromEach(ours, [nsqd], ours.httpAddress, "legacy#ephemeral");
  });
});
