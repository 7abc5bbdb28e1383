// Our daemon stopped and started again on the same ports, under a real nsqd
// and a real consumer: nsqd registers again by itself, and consumers go on
// receiving and discovering through the restarted daemon.
//
// nsqd (v1.3.0, lookup.go) pings each lookupd every 15 s and notices a lost
// connection only when a command on it fails; it reconnects (IDENTIFY, then
// REGISTER of everything it has) at the next ping tick. Left alone, it notices
// at the first tick after the restart and is back at the second: up to 30 s,
// for the reference nsqlookupd as for ours (measured: 28 s for both). Here a
// topic created on nsqd right after the restart makes it notice at once (its
// REGISTER fails), so it is back within one ping interval, and that topic,
// created while nsqd was disconnected, must be registered too.

import assert from "node:assert/strict";
import { untilPasses } from "../support/processes.ts";
import { channelClients, type Lookupd, startNsqd, startOurs, startTail, toNsq } from "./nsq.ts";

/** nsqd's hard-coded ping interval. */
const PING_INTERVAL_MS = 15_000;
/** Slack for one tick: nsqd's reconnect, IDENTIFY, REGISTERs, and our poll. */
const SLACK_MS = 2_000;

Deno.test("real nsqd and consumer across a restart of our daemon on the same ports", async (t) => {
  let ours: Lookupd = await startOurs();
  const ports = { tcp: ours.tcpPort, http: ours.httpPort };
  const lookupd = ours.httpAddress;
  await using first = await startNsqd("nsqd-1", [ours]);
  let second: Awaited<ReturnType<typeof startNsqd>> | undefined;
  await first.post("/topic/create?topic=steady");
  await using tail = startTail({ topic: "steady", channel: "survivor", lookupd: [lookupd] });
  const received = (body: string) => () => assert.ok(tail.stdout.includes(body), tail.tail());
  try {
    await t.step("before: a consumer finds nsqd through our /lookup and receives", async () => {
      await channelClients(first, "steady", "survivor", 1);
      await toNsq(first, "steady", ["before"]);
      await untilPasses(received("before"));
    });

    await t.step(
      "restarted on the same ports, we have nsqd registered again at its next ping",
      async () => {
        const from = first.program.stderr.length;
        assert.equal(await ours.stop(), 0);
        ours = await startOurs({ ports });
        const restarted = performance.now();
        await first.post("/topic/create?topic=created-while-away");
        const noticed = await first.program.waitForLine(
          new RegExp(
            `LOOKUPD\\(${
              ours.tcpAddress.replaceAll(".", "\\.")
            }\\): REGISTER created-while-away - `,
          ),
          { from, ms: SLACK_MS },
        );
        const noticedAt = performance.now();
        const restartedDaemon = ours;
        await untilPasses(
          async () => {
            const found = await restartedDaemon.json<
              { channels: string[]; producers: { tcp_port: number }[] }
            >(
              "/lookup?topic=steady",
            );
            assert.deepEqual(found.producers.map((p) => p.tcp_port), [first.tcpPort]);
            assert.deepEqual(found.channels, ["survivor"]);
            assert.deepEqual(await restartedDaemon.json("/topics"), {
              topics: ["created-while-away", "steady"],
            });
          },
          PING_INTERVAL_MS + SLACK_MS,
          100,
        );
        const back = performance.now();
        assert.ok(
          back - noticedAt <= PING_INTERVAL_MS + SLACK_MS,
          `back ${Math.round(back - noticedAt)} ms after nsqd noticed (${noticed[0]}), ` +
            `${Math.round(back - restarted)} ms after the restart`,
        );
      },
    );

    await t.step(
      "after: the consumer keeps receiving, and finds a new nsqd through the restarted daemon",
      async () => {
        second = await startNsqd("nsqd-2", [ours]);
        await second.post("/topic/create?topic=steady");
        // The consumer polls our /lookup every second; it must connect to nsqd-2 by itself.
        await channelClients(second, "steady", "survivor", 1);
        await toNsq(first, "steady", ["after via nsqd-1"]);
        await toNsq(second, "steady", ["after via nsqd-2"]);
        await untilPasses(received("after via nsqd-1"));
        await untilPasses(received("after via nsqd-2"));
      },
    );
  } finally {
    await tail.stop("SIGKILL");
    await second?.stop("SIGKILL");
    await ours[Symbol.asyncDispose]();
  }
});
