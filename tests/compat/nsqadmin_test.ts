// What nsqadmin (v1.3.0) requires of nsqlookupd. nsqadmin is Go; its
// clusterinfo calls are ported here: every read goes through http_api's
// GETV1 (no unwrapping of a pre-1.0 envelope), `/nodes` producers are decoded
// by Producer.UnmarshalJSON, which indexes `tombstones` by the position of
// each topic (a shorter list panics nsqadmin), versions are parsed with
// blang/semver, and every write is a POSTV1 with its parameters in the query
// string and no body.

import assert from "node:assert/strict";
import {
  GoClientError,
  type GoValue,
  nsqGETV1,
  nsqPOSTV1,
  type ProxiedResponse,
  startBreakingProxy,
  startDaemon,
  type TestDaemon,
} from "../support/helpers.ts";
import { emulatedNsqd, type ProducerEmulator } from "../support/producer_emulator.ts";

/** Go's url.QueryEscape. */
function queryEscape(text: string): string {
  return encodeURIComponent(text)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replaceAll("%20", "+");
}

interface Semver {
  major: number;
  minor: number;
  patch: number;
}

/** blang/semver's Parse: strict MAJOR.MINOR.PATCH[-pre][+build]; throws like it errors. */
function parseSemver(text: string): Semver {
  const match = text.match(
    /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*)?(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?$/,
  );
  if (match === null) throw new GoClientError(`semver: invalid version ${JSON.stringify(text)}`);
  return { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3]) };
}

/** The wire struct inside clusterinfo's Producer.UnmarshalJSON. */
const PRODUCER_WIRE = {
  remote_address: "string",
  hostname: "string",
  broadcast_address: "string",
  tcp_port: "int",
  http_port: "int",
  version: "string",
  topics: ["string"],
  tombstones: ["bool"],
} as const;

interface Producer {
  remoteAddress: string;
  hostname: string;
  broadcastAddress: string;
  tcpPort: number;
  httpPort: number;
  version: string;
  versionObj: Semver;
  topics: { topic: string; tombstoned: boolean }[];
}

/** Producer.UnmarshalJSON: `Tombstoned: r.Tombstoned[i]` for each topic i. */
function unmarshalProducer(r: GoValue<typeof PRODUCER_WIRE>): Producer {
  const topics = r.topics.map((topic, i) => {
    if (i >= r.tombstones.length) {
      throw new GoClientError(
        `panic: runtime error: index out of range [${i}] with length ${r.tombstones.length}`,
      );
    }
    return { topic, tombstoned: r.tombstones[i] };
  });
  let versionObj: Semver;
  try {
    versionObj = parseSemver(r.version);
  } catch {
    versionObj = parseSemver("0.0.0");
  }
  return {
    remoteAddress: r.remote_address,
    hostname: r.hostname,
    broadcastAddress: r.broadcast_address,
    tcpPort: r.tcp_port,
    httpPort: r.http_port,
    version: r.version,
    versionObj,
    topics,
  };
}

/** ClusterInfo, for one lookupd at `addr`. */
class ClusterInfo {
  constructor(readonly addr: string) {}

  async getVersion(): Promise<Semver> {
    const resp = await nsqGETV1(`http://${this.addr}/info`, { version: "string" });
    return parseSemver(resp.version === "" ? "unknown" : resp.version);
  }

  async getLookupdTopics(): Promise<string[]> {
    return (await nsqGETV1(`http://${this.addr}/topics`, { topics: ["string"] })).topics;
  }

  async getLookupdTopicChannels(topic: string): Promise<string[]> {
    const endpoint = `http://${this.addr}/channels?topic=${queryEscape(topic)}`;
    return (await nsqGETV1(endpoint, { channels: ["string"] })).channels;
  }

  async getLookupdTopicProducers(topic: string): Promise<Producer[]> {
    const endpoint = `http://${this.addr}/lookup?topic=${queryEscape(topic)}`;
    return (await nsqGETV1(endpoint, { producers: [PRODUCER_WIRE] })).producers.map(
      unmarshalProducer,
    );
  }

  /** GetLookupdProducers; also returns the raw list lengths nsqadmin relies on. */
  async getLookupdProducers(): Promise<{ producers: Producer[]; lengths: [number, number][] }> {
    const resp = await nsqGETV1(`http://${this.addr}/nodes`, { producers: [PRODUCER_WIRE] });
    return {
      producers: resp.producers.map(unmarshalProducer),
      lengths: resp.producers.map((p) => [p.topics.length, p.tombstones.length]),
    };
  }

  tombstoneNodeForTopic(topic: string, node: string): Promise<void> {
    return nsqPOSTV1(
      `http://${this.addr}/topic/tombstone?topic=${queryEscape(topic)}&node=${queryEscape(node)}`,
    );
  }

  createTopic(topic: string): Promise<void> {
    return nsqPOSTV1(`http://${this.addr}/topic/create?topic=${queryEscape(topic)}`);
  }

  createChannel(topic: string, channel: string): Promise<void> {
    return nsqPOSTV1(
      `http://${this.addr}/channel/create?topic=${queryEscape(topic)}&channel=${
        queryEscape(channel)
      }`,
    );
  }

  deleteTopic(topic: string): Promise<void> {
    return nsqPOSTV1(`http://${this.addr}/topic/delete?topic=${queryEscape(topic)}`);
  }

  deleteChannel(topic: string, channel: string): Promise<void> {
    return nsqPOSTV1(
      `http://${this.addr}/channel/delete?topic=${queryEscape(topic)}&channel=${
        queryEscape(channel)
      }`,
    );
  }
}

/** nsqd-a has orders (channel billing) and clicks; nsqd-b has orders. */
async function withCluster(
  test: (daemon: TestDaemon, ci: ClusterInfo, producers: ProducerEmulator[]) => Promise<void>,
): Promise<void> {
  await using daemon = startDaemon();
  const a = emulatedNsqd(daemon, "nsqd-a", 4150);
  const b = emulatedNsqd(daemon, "nsqd-b", 4250);
  try {
    for (const p of [a, b]) {
      p.start();
      await p.waitForSync(1);
    }
    await a.createChannel("orders", "billing");
    await a.createTopic("clicks");
    await b.createTopic("orders");
    await test(daemon, new ClusterInfo(`127.0.0.1:${daemon.httpAddr.port}`), [a, b]);
  } finally {
    await a.stop();
    await b.stop();
  }
}

Deno.test("nsqadmin: /info version parses as semver >= 1.0 (ClusterInfo.GetVersion)", async () => {
  await withCluster(async (_daemon, ci) => {
    const version = await ci.getVersion();
    assert.deepEqual(version, { major: 1, minor: 3, patch: 0 });
    assert.ok(version.major >= 1);
  });
});

Deno.test("nsqadmin: /nodes lists one tombstone per topic (GetLookupdProducers after TombstoneNodeForTopic)", async () => {
  await withCluster(async (_daemon, ci, [a, b]) => {
    let nodes = await ci.getLookupdProducers();
    assert.deepEqual(nodes.lengths, [[2, 2], [1, 1]]);

    // nsqadmin's "tombstone" button: node is the producer's broadcast_address:http_port.
    await ci.tombstoneNodeForTopic("orders", "127.0.0.1:4151");
    nodes = await ci.getLookupdProducers();
    assert.deepEqual(nodes.lengths, [[2, 2], [1, 1]]);
    assert.deepEqual(nodes.producers, [
      {
        remoteAddress: a.localAddress,
        hostname: "nsqd-a",
        broadcastAddress: "127.0.0.1",
        tcpPort: 4150,
        httpPort: 4151,
        version: "1.3.0",
        versionObj: { major: 1, minor: 3, patch: 0 },
        topics: [{ topic: "clicks", tombstoned: false }, { topic: "orders", tombstoned: true }],
      },
      {
        remoteAddress: b.localAddress,
        hostname: "nsqd-b",
        broadcastAddress: "127.0.0.1",
        tcpPort: 4250,
        httpPort: 4251,
        version: "1.3.0",
        versionObj: { major: 1, minor: 3, patch: 0 },
        topics: [{ topic: "orders", tombstoned: false }],
      },
    ]);
    // The tombstoned producer drops out of /lookup for that topic only.
    const orders = await ci.getLookupdTopicProducers("orders");
    assert.deepEqual(orders.map((p) => p.hostname), ["nsqd-b"]);
    assert.deepEqual(orders[0].topics, []);
    const clicks = await ci.getLookupdTopicProducers("clicks");
    assert.deepEqual(clicks.map((p) => p.hostname), ["nsqd-a"]);
  });
});

Deno.test("nsqadmin: reads /topics, /channels and /lookup through GETV1", async () => {
  await withCluster(async (_daemon, ci) => {
    assert.deepEqual(await ci.getLookupdTopics(), ["clicks", "orders"]);
    assert.deepEqual(await ci.getLookupdTopicChannels("orders"), ["billing"]);
    assert.deepEqual(await ci.getLookupdTopicChannels("nobody-has-it"), []);
    const producers = await ci.getLookupdTopicProducers("orders");
    assert.deepEqual(producers.map((p) => `${p.broadcastAddress}:${p.httpPort}`), [
      "127.0.0.1:4151",
      "127.0.0.1:4251",
    ]);
    assert.ok(producers.every((p) => p.versionObj.major === 1));
    await assert.rejects(
      ci.getLookupdTopicProducers("nobody-has-it"),
      /got response 404 Not Found/,
    );
  });
});

Deno.test("nsqadmin: POSTs with the parameters in the query string and an empty body", async () => {
  await withCluster(async (daemon, ci) => {
    await ci.createTopic("admin");
    await ci.createChannel("admin", "ops");
    await ci.createChannel("admin", "tail#ephemeral");
    assert.deepEqual(await ci.getLookupdTopics(), ["admin", "clicks", "orders"]);
    assert.deepEqual(await ci.getLookupdTopicChannels("admin"), ["ops", "tail#ephemeral"]);

    await ci.deleteChannel("admin", "tail#ephemeral");
    assert.deepEqual(await ci.getLookupdTopicChannels("admin"), ["ops"]);
    await ci.deleteTopic("admin");
    assert.deepEqual(await ci.getLookupdTopics(), ["clicks", "orders"]);
    assert.deepEqual(await ci.getLookupdTopicChannels("admin"), []);
    // Deleting a channel of a producer's topic: gone from the listing and from /nodes' view.
    await ci.deleteChannel("orders", "billing");
    assert.deepEqual(await ci.getLookupdTopicChannels("orders"), []);
    await assert.rejects(ci.deleteChannel("orders", "billing"), /got response 404 Not Found/);

    const posts = daemon.logs.filter((l) => / POST \//.test(l)).map((l) => l.split(" (")[0]);
    assert.deepEqual(posts, [
      "INFO: 200 POST /topic/create?topic=admin",
      "INFO: 200 POST /channel/create?topic=admin&channel=ops",
      "INFO: 200 POST /channel/create?topic=admin&channel=tail%23ephemeral",
      "INFO: 200 POST /channel/delete?topic=admin&channel=tail%23ephemeral",
      "INFO: 200 POST /topic/delete?topic=admin",
      "INFO: 200 POST /channel/delete?topic=orders&channel=billing",
      "INFO: 404 POST /channel/delete?topic=orders&channel=billing",
    ]);
  });
});

Deno.test("nsqadmin: the port catches short tombstones, a wrapped body or a non-semver version", async () => {
  await withCluster(async (daemon) => {
    const breakages: [string, string, (r: ProxiedResponse) => ProxiedResponse][] = [
      ["/nodes", "tombstones shorter than topics", (r) => ({
        ...r,
        body: r.body.replaceAll('"tombstones":[false,false]', '"tombstones":[false]'),
      })],
      ["/nodes", "tombstones missing", (r) => ({
        ...r,
        body: r.body.replace(/"tombstones":\[[a-z,]*\],/g, ""),
      })],
      ["/nodes", "wrapped body", (r) => ({
        ...r,
        body: `{"status_code":200,"status_txt":"OK","data":${r.body}}`,
      })],
      ["/info", "version with a v", (r) => ({ ...r, body: r.body.replace('"1.3.0"', '"v1.3.0"') })],
    ];
    const expected = await new ClusterInfo(`127.0.0.1:${daemon.httpAddr.port}`)
      .getLookupdProducers();
    for (const [path, name, breakage] of breakages) {
      await using proxy = startBreakingProxy(
        daemon.httpUrl,
        (r, p) => (p === path ? breakage(r) : r),
      );
      const ci = new ClusterInfo(`127.0.0.1:${proxy.port}`);
      const outcome = path === "/info"
        ? ci.getVersion().then(JSON.stringify, (e: Error) => e.message)
        : ci.getLookupdProducers().then(JSON.stringify, (e: Error) => e.message);
      assert.notEqual(
        await outcome,
        path === "/info" ? '{"major":1,"minor":3,"patch":0}' : JSON.stringify(expected),
        name,
      );
    }
  });
});
