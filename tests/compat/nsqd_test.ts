// What nsqd (v1.3.0) requires of nsqlookupd beyond the TCP registration the
// producer emulator covers: nsqd decodes our IDENTIFY reply into its
// `peerInfo`, and when it creates a topic it calls GET /channels?topic=T (via
// http_api GETV1) at `JoinHostPort(broadcast_address, http_port)` from that
// reply, to pre-create the channels consumers already use. So the reply must
// announce the HTTP port actually bound (port 0 included) and the channels
// must come back unwrapped.

import assert from "node:assert/strict";
import {
  goUnmarshal,
  joinHostPort,
  nsqGETV1,
  peerBody,
  startDaemon,
  type TestDaemon,
} from "../support/helpers.ts";
import { ProducerEmulator } from "../support/producer_emulator.ts";

/** nsqd's lookupd `peerInfo`, decoded from the IDENTIFY reply. */
const PEER_INFO = {
  tcp_port: "int",
  http_port: "int",
  version: "string",
  broadcast_address: "string",
} as const;

/** nsqd's lookupdHTTPAddrs() for one lookupd peer: empty without a broadcast address. */
function lookupdHTTPAddrs(info: { broadcast_address: string; http_port: number }): string[] {
  return info.broadcast_address === ""
    ? []
    : [joinHostPort(info.broadcast_address, info.http_port)];
}

/** ClusterInfo.GetLookupdTopicChannels, as nsqd's GetTopic calls it. */
async function getLookupdTopicChannels(topic: string, addrs: string[]): Promise<string[]> {
  const channels = new Set<string>();
  for (const addr of addrs) {
    const endpoint = `http://${addr}/channels?topic=${encodeURIComponent(topic)}`;
    for (const c of (await nsqGETV1(endpoint, { channels: ["string"] })).channels) channels.add(c);
  }
  return [...channels].sort();
}

function producer(daemon: TestDaemon, tcpPort: number): ProducerEmulator {
  return new ProducerEmulator({
    lookupdPort: daemon.tcpAddr.port,
    broadcastAddress: "127.0.0.1",
    tcpPort,
    httpPort: tcpPort + 1,
  });
}

Deno.test("nsqd: the IDENTIFY reply decodes as nsqd's peerInfo with the ports actually bound", async () => {
  await using daemon = startDaemon({ tcpAddress: "127.0.0.1:0", httpAddress: "127.0.0.1:0" });
  const client = await daemon.connect();
  const reply = await client.identify(peerBody());
  assert.deepEqual(goUnmarshal(reply, PEER_INFO), {
    tcp_port: daemon.tcpAddr.port,
    http_port: daemon.httpAddr.port,
    version: "1.3.0",
    broadcast_address: "127.0.0.1",
  });
  assert.notEqual(daemon.httpAddr.port, 0);
});

Deno.test("nsqd: GET /channels?topic=T at the address and port our IDENTIFY reply announced", async () => {
  await using daemon = startDaemon();
  const consumersSide = producer(daemon, 4150);
  const creating = producer(daemon, 4250);
  try {
    // Another nsqd already has the topic, with the channels its consumers use.
    consumersSide.start();
    await consumersSide.waitForSync(1);
    await consumersSide.createChannel("orders", "billing");
    await consumersSide.createChannel("orders", "archive#ephemeral");

    // A second nsqd connects, then creates `orders` and asks which channels exist.
    creating.start();
    await creating.waitForSync(1);
    const info = creating.lookupd;
    assert.ok(info !== undefined);
    const addrs = lookupdHTTPAddrs(info);
    assert.deepEqual(addrs, [`127.0.0.1:${daemon.httpAddr.port}`]);
    assert.deepEqual(await getLookupdTopicChannels("orders", addrs), [
      "archive#ephemeral",
      "billing",
    ]);
    assert.ok(
      daemon.logs.some((l) => l.startsWith("INFO: 200 GET /channels?topic=orders ")),
      "the request reached the daemon",
    );
    await creating.createTopic("orders");
    // A topic nobody has yet: no channels, and not an error.
    assert.deepEqual(await getLookupdTopicChannels("fresh", addrs), []);
  } finally {
    await consumersSide.stop();
    await creating.stop();
  }
});

Deno.test("nsqd: the reply announces --broadcast-address, not the listen address", async () => {
  await using daemon = startDaemon({ broadcastAddress: "lookupd-1.example.internal" });
  const nsqd = producer(daemon, 4150);
  try {
    nsqd.start();
    await nsqd.waitForSync(1);
    assert.deepEqual(nsqd.lookupd && lookupdHTTPAddrs(nsqd.lookupd), [
      `lookupd-1.example.internal:${daemon.httpAddr.port}`,
    ]);
  } finally {
    await nsqd.stop();
  }
});
