// The nsqd emulator against the daemon: what nsqd sends (spec section 7), and
// the restart test: nsqlookupd keeps no state on disk, so after a restart the
// registry is rebuilt only by the producers reconnecting and replaying.
//
// What "answers exactly as before the restart" means here: every read
// endpoint a client uses (/topics, /channels, /lookup, /nodes) answers with
// the same status, headers that matter and byte-identical body, except that
// each producer's `remote_address` is the `ip:port` of its new connection
// (lookupd reports the connection's remote address, which a reconnect
// changes). The comparison replaces each emulator's current connection
// address with a per-emulator placeholder, before and after. What the
// daemon held beyond the producers' registrations (topics created over HTTP,
// empty registrations left behind by an UNREGISTER, tombstones) is not
// replayed by anyone and so is outside this equality; the test avoids it.

import assert from "node:assert/strict";
import {
  eventually,
  freePort,
  NSQ_V1_CONTENT_TYPE,
  startDaemon,
  type TestDaemon,
} from "../../support/helpers.ts";
import { ProducerEmulator, type ProducerEmulatorOptions } from "../../support/producer_emulator.ts";

const PING_MS = 1_000;

function emulator(
  lookupdPort: number,
  extra: Partial<ProducerEmulatorOptions> = {},
): ProducerEmulator {
  return new ProducerEmulator({
    lookupdPort,
    tcpPort: 4150,
    httpPort: 4151,
    pingIntervalMs: PING_MS,
    reconnectInitialMs: 10,
    reconnectMaxMs: PING_MS / 4,
    ...extra,
  });
}

/** Two distinct ports that were free a moment ago (bound on 127.0.0.1:0, then released). */
function twoFreePorts(): [number, number] {
  const tcp = freePort();
  let http = freePort();
  while (http === tcp) http = freePort();
  return [tcp, http];
}

/** Status, X-NSQ-Content-Type and body of each read endpoint, remote addresses masked. */
async function snapshot(
  daemon: TestDaemon,
  topics: string[],
  producers: Map<string, ProducerEmulator>,
): Promise<string[]> {
  const paths = ["/topics", "/nodes"];
  for (const topic of topics) paths.push(`/lookup?topic=${topic}`, `/channels?topic=${topic}`);
  const out: string[] = [];
  for (const path of paths) {
    const res = await daemon.get(path);
    let body = await res.text();
    for (const [name, producer] of producers) {
      const address = producer.localAddress;
      assert.ok(address !== undefined);
      body = body.replaceAll(`"remote_address":"${address}"`, `"remote_address":"<${name}>"`);
    }
    out.push(`${path} ${res.status} ${res.headers.get("x-nsq-content-type")} ${body}`);
  }
  return out;
}

Deno.test("producer emulator: IDENTIFY carries nsqd's fields, topology included", async () => {
  await using daemon = startDaemon();
  await using nsqd = emulator(daemon.tcpAddr.port, {
    hostname: "nsqd-1.example",
    broadcastAddress: "10.0.0.7",
    tcpPort: 14150,
    httpPort: 14151,
    topologyZone: "zone-a",
    topologyRegion: "region-1",
  });
  nsqd.start();
  await nsqd.waitForSync(1);
  await nsqd.createTopic("orders");

  assert.deepEqual(nsqd.lookupd, {
    broadcast_address: "127.0.0.1",
    hostname: "testhost",
    http_port: daemon.httpAddr.port,
    tcp_port: daemon.tcpAddr.port,
    version: "1.3.0",
  });
  const res = await daemon.get("/nodes");
  assert.equal(
    await res.text(),
    `{"producers":[{"remote_address":"${nsqd.localAddress}","hostname":"nsqd-1.example",` +
      `"broadcast_address":"10.0.0.7","tcp_port":14150,"http_port":14151,"version":"1.3.0",` +
      `"topology_zone":"zone-a","topology_region":"region-1","tombstones":[false],"topics":["orders"]}]}`,
  );
  assert.ok(
    daemon.logs.includes(
      `INFO: CLIENT(${nsqd.localAddress}): IDENTIFY Address:10.0.0.7 TCP:14150 HTTP:14151 Version:1.3.0`,
    ),
  );
});

Deno.test("producer emulator: REGISTERs bare topics and topic/channel pairs, PINGs on its interval", async () => {
  await using daemon = startDaemon();
  await using nsqd = emulator(daemon.tcpAddr.port, { pingIntervalMs: 100 });
  await nsqd.createTopic("bare");
  await nsqd.createChannel("orders", "billing");
  assert.deepEqual(nsqd.registrationCommands(), ["REGISTER bare", "REGISTER orders billing"]);
  nsqd.start();
  await nsqd.waitForSync(1);
  const me = nsqd.localAddress;
  for (
    const line of [
      `INFO: DB: client(${me}) REGISTER category:topic key:bare subkey:`,
      `INFO: DB: client(${me}) REGISTER category:channel key:orders subkey:billing`,
      `INFO: DB: client(${me}) REGISTER category:topic key:orders subkey:`,
    ]
  ) assert.ok(daemon.logs.includes(line), line);
  await eventually(() => nsqd.pings >= 2, 2_000);
  assert.ok(daemon.logs.some((l) => l.startsWith(`INFO: CLIENT(${me}): pinged (last ping `)));
  assert.deepEqual(nsqd.errors, []);
});

Deno.test("producer emulator: deleting a channel or topic sends UNREGISTER in nsqd's order", async () => {
  await using daemon = startDaemon();
  await using nsqd = emulator(daemon.tcpAddr.port);
  nsqd.start();
  await nsqd.waitForSync(1);
  await nsqd.createChannel("orders", "billing");
  await nsqd.createChannel("orders", "archive");
  await nsqd.deleteChannel("orders", "billing");
  const me = nsqd.localAddress;
  assert.ok(
    daemon.logs.includes(
      `INFO: DB: client(${me}) UNREGISTER category:channel key:orders subkey:billing`,
    ),
  );
  let res = await daemon.get("/lookup?topic=orders");
  assert.equal((await res.json()).producers.length, 1);

  const from = daemon.logs.length;
  await nsqd.deleteTopic("orders");
  // UNREGISTER orders removes the producer from orders/archive too (with a
  // WARN), so the trailing UNREGISTER orders archive has nothing left to do.
  assert.deepEqual(daemon.logs.slice(from).filter((l) => l.includes("UNREGISTER")), [
    `WARNING: client(${me}) unexpected UNREGISTER category:channel key:orders subkey:archive`,
    `INFO: DB: client(${me}) UNREGISTER category:topic key:orders subkey:`,
  ]);
  res = await daemon.get("/lookup?topic=orders");
  assert.equal(await res.text(), '{"channels":["archive","billing"],"producers":[]}');
  assert.deepEqual(nsqd.registrationCommands(), []);
  assert.deepEqual(nsqd.errors, []);
});

Deno.test("producer emulator: reconnects with backoff and replays after losing the connection", async () => {
  await using daemon = startDaemon();
  await using nsqd = emulator(daemon.tcpAddr.port);
  nsqd.start();
  await nsqd.waitForSync(1);
  await nsqd.createChannel("orders", "billing");
  const first = nsqd.localAddress;
  nsqd.dropConnection();
  await nsqd.waitForSync(2);
  assert.notEqual(nsqd.localAddress, first);
  const res = await daemon.get("/lookup?topic=orders");
  const body = await res.json();
  assert.deepEqual(body.channels, ["billing"]);
  assert.deepEqual(body.producers.map((p: { remote_address: string }) => p.remote_address), [
    nsqd.localAddress,
  ]);
});

Deno.test("producer emulator: stop() while nothing listens leaves no timer or socket", async () => {
  const nsqd = emulator(freePort(), { reconnectInitialMs: 5, reconnectMaxMs: 20 });
  nsqd.start();
  await eventually(() => nsqd.connectAttempts >= 3, 2_000);
  assert.equal(nsqd.generation, 0);
  await nsqd.stop();
});

Deno.test("producer emulator (reconnects at once, unlike nsqd): after a daemon restart on the same ports, /lookup answers as before within one ping interval", async () => {
  const [tcp, http] = twoFreePorts();
  const overrides = { tcpAddress: `127.0.0.1:${tcp}`, httpAddress: `127.0.0.1:${http}` };
  let daemon = startDaemon(overrides);
  const a = emulator(tcp, {
    hostname: "nsqd-a",
    tcpPort: 4150,
    httpPort: 4151,
    topologyZone: "z1",
    topologyRegion: "r1",
  });
  const b = emulator(tcp, { hostname: "nsqd-b", tcpPort: 4250, httpPort: 4251 });
  const producers = new Map([["nsqd-a", a], ["nsqd-b", b]]);
  const topics = ["orders", "clicks", "metrics#ephemeral"];
  try {
    a.start();
    b.start();
    await Promise.all([a.waitForSync(1), b.waitForSync(1)]);
    await a.createChannel("orders", "billing");
    await a.createChannel("orders", "archive");
    await b.createChannel("orders", "billing");
    await b.createTopic("clicks");
    await a.createChannel("metrics#ephemeral", "tail#ephemeral");
    // An UNREGISTER before the restart: an ephemeral channel leaves no trace.
    await a.createChannel("orders", "debug#ephemeral");
    await a.deleteChannel("orders", "debug#ephemeral");

    const before = await snapshot(daemon, topics, producers);
    assert.match(before[2], /^\/lookup\?topic=orders 200 nsq; version=1\.0 /);
    assert.ok(before[2].includes('"channels":["archive","billing"]'), before[2]);
    assert.ok(before[2].includes('"remote_address":"<nsqd-a>"'), before[2]);
    assert.ok(before[2].includes('"remote_address":"<nsqd-b>"'), before[2]);
    const firstAddresses = [a.localAddress, b.localAddress];

    await daemon.shutdown();
    // A real outage: both producers try (and fail) to reconnect meanwhile.
    const attempts = [a.connectAttempts, b.connectAttempts];
    await eventually(() =>
      a.connectAttempts >= attempts[0] + 2 && b.connectAttempts >= attempts[1] + 2
    );
    assert.equal(a.synced || b.synced, false);

    daemon = startDaemon(overrides);
    const restarted = performance.now();
    let after: string[] = [];
    await eventually(async () => {
      if (a.generation < 2 || b.generation < 2) return false;
      after = await snapshot(daemon, topics, producers);
      return after.join("\n") === before.join("\n");
    }, PING_MS).catch(() => {
      assert.deepEqual(after, before, "read endpoints after the restart");
    });
    const elapsed = performance.now() - restarted;
    assert.ok(elapsed <= PING_MS, `took ${elapsed} ms`);
    assert.notDeepEqual([a.localAddress, b.localAddress], firstAddresses);
    assert.equal(a.generation, 2);
    assert.equal(b.generation, 2);
    assert.deepEqual([...a.errors, ...b.errors], []);
    const res = await daemon.get("/lookup?topic=orders", {
      headers: { Accept: "application/vnd.nsq; version=1.0" },
    });
    assert.equal(res.headers.get("x-nsq-content-type"), NSQ_V1_CONTENT_TYPE);
    await res.body?.cancel();
  } finally {
    await a.stop();
    await b.stop();
    await daemon.shutdown();
  }
});
