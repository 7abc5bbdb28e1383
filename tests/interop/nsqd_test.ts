// Real nsqd v1.3.0 processes registering with our daemon over TCP, and what
// our HTTP API then shows: topics created by to_nsq, channels created by a
// consumer, a second nsqd pre-creating channels from our /channels, a clean
// stop and a SIGKILL.

import assert from "node:assert/strict";
import { untilPasses } from "../support/processes.ts";
import { type Lookupd, type Nsqd, startNsqd, startOurs, startTail, toNsq } from "./nsq.ts";

interface Peer {
  remote_address: string;
  hostname: string;
  broadcast_address: string;
  tcp_port: number;
  http_port: number;
  version: string;
}

interface Node extends Peer {
  tombstones: boolean[];
  topics: string[];
}

/** What our daemon shows of a real nsqd (remote_address checked apart: nsqd picks its port). */
function expectedPeer(nsqd: Nsqd): Omit<Peer, "remote_address"> & Record<string, unknown> {
  return {
    hostname: Deno.hostname(),
    broadcast_address: "127.0.0.1",
    tcp_port: nsqd.tcpPort,
    http_port: nsqd.httpPort,
    version: "1.3.0",
    // Ours (README "Differences from the Go daemon"): nsqd 1.3.0 sends no topology.
    topology_zone: "",
    topology_region: "",
  };
}

function withoutRemote<T extends { remote_address: string }>(peer: T): Omit<T, "remote_address"> {
  assert.match(peer.remote_address, /^127\.0\.0\.1:\d+$/);
  const { remote_address: _, ...rest } = peer;
  return rest;
}

async function nodes(ours: Lookupd): Promise<Omit<Node, "remote_address">[]> {
  const body = await ours.json<{ producers: Node[] }>("/nodes");
  return body.producers.map(withoutRemote);
}

async function lookup(
  ours: Lookupd,
  topic: string,
): Promise<{ channels: string[]; producers: Omit<Peer, "remote_address">[] }> {
  const body = await ours.json<{ channels: string[]; producers: Peer[] }>(
    `/lookup?topic=${topic}`,
  );
  return { channels: body.channels, producers: body.producers.map(withoutRemote) };
}

Deno.test("real nsqd: registers with our daemon, and our HTTP API shows what it has", async (t) => {
  await using ours = await startOurs();
  await using a = await startNsqd("nsqd-a", [ours]);
  let b: Nsqd | undefined;
  try {
    await t.step(
      "nsqd decodes our IDENTIFY reply: the ports actually bound, the broadcast address",
      async () => {
        assert.equal(
          await a.peerInfo(ours.tcpAddress),
          `{TCPPort:${ours.tcpPort} HTTPPort:${ours.httpPort} Version:1.3.0 BroadcastAddress:127.0.0.1}`,
        );
      },
    );

    await t.step(
      "/nodes lists nsqd with its hostname, broadcast address, ports and version",
      async () => {
        await untilPasses(async () =>
          assert.deepEqual(await nodes(ours), [{ ...expectedPeer(a), tombstones: [], topics: [] }])
        );
      },
    );

    await t.step("a topic to_nsq publishes to shows in /topics, /lookup and /nodes", async () => {
      await toNsq(a, "orders", ["m1", "m2", "m3"]);
      await untilPasses(async () => {
        assert.deepEqual(await ours.json("/topics"), { topics: ["orders"] });
        assert.deepEqual(await lookup(ours, "orders"), {
          channels: [],
          producers: [expectedPeer(a)],
        });
        assert.deepEqual(await nodes(ours), [
          { ...expectedPeer(a), tombstones: [false], topics: ["orders"] },
        ]);
      });
    });

    await t.step(
      "a consumer's channel shows in /channels and /lookup, and it gets the messages",
      async () => {
        await using tail = startTail({
          topic: "orders",
          channel: "billing",
          lookupd: [ours.httpAddress],
          count: 3,
        });
        assert.equal((await tail.exited()).code, 0, tail.tail());
        assert.deepEqual([...tail.stdout].sort(), ["m1", "m2", "m3"]);
        await untilPasses(async () => {
          assert.deepEqual(await ours.json("/channels?topic=orders"), { channels: ["billing"] });
          assert.deepEqual((await lookup(ours, "orders")).channels, ["billing"]);
        });
      },
    );

    b = await startNsqd("nsqd-b", [ours]);
    const second = b;

    await t.step("a second nsqd registers: /nodes lists both", async () => {
      await second.peerInfo(ours.tcpAddress);
      await untilPasses(async () =>
        assert.deepEqual(
          (await nodes(ours)).map((n) => n.tcp_port).sort(),
          [a.tcpPort, second.tcpPort].sort(),
        )
      );
    });

    await t.step(
      "the second nsqd pre-creates the channels our /channels lists for a new topic",
      async () => {
        await toNsq(second, "orders", ["m4"]);
        await second.program.waitForLine(
          new RegExp(`CI: querying nsqlookupd http://${ours.httpAddress}/channels\\?topic=orders$`),
        );
        assert.deepEqual(await second.channels("orders"), ["billing"]);
        await untilPasses(async () => {
          const found = await lookup(ours, "orders");
          assert.deepEqual(found.channels, ["billing"]);
          assert.deepEqual(
            found.producers.map((p) => p.tcp_port).sort(),
            [a.tcpPort, second.tcpPort].sort(),
          );
        });
      },
    );

    await t.step("nsqd stopped cleanly leaves /lookup and /nodes", async () => {
      assert.equal((await second.stop("SIGTERM")).code, 0, second.program.tail());
      await untilPasses(async () => {
        assert.deepEqual((await lookup(ours, "orders")).producers, [expectedPeer(a)]);
        assert.deepEqual((await nodes(ours)).map((n) => n.tcp_port), [a.tcpPort]);
      });
    });

    await t.step("nsqd killed with SIGKILL disappears from /lookup and /nodes", async () => {
      await a.stop("SIGKILL");
      await untilPasses(async () => {
        assert.deepEqual(await lookup(ours, "orders"), { channels: ["billing"], producers: [] });
        assert.deepEqual(await nodes(ours), []);
      });
    });
  } finally {
    await b?.stop("SIGKILL");
  }
});

Deno.test("real nsqd: with a daemon whose --broadcast-address is not its listen address", async (t) => {
  await using ours = await startOurs({ args: ["--broadcast-address=localhost"] });
  await using nsqd = await startNsqd("nsqd", [ours]);
  await t.step(
    "nsqd queries our HTTP API at the broadcast address our IDENTIFY reply announced",
    async () => {
      assert.equal(
        await nsqd.peerInfo(ours.tcpAddress),
        `{TCPPort:${ours.tcpPort} HTTPPort:${ours.httpPort} Version:1.3.0 BroadcastAddress:localhost}`,
      );
      await toNsq(nsqd, "announced", ["x"]);
      await nsqd.program.waitForLine(
        new RegExp(
          `CI: querying nsqlookupd http://localhost:${ours.httpPort}/channels\\?topic=announced$`,
        ),
      );
      await untilPasses(() =>
        assert.ok(
          ours.lines.some((line) => / INFO: 200 GET \/channels\?topic=announced /.test(line)),
          "our daemon answered nsqd's GET /channels",
        )
      );
    },
  );
});
