// A real nsqadmin v1.3.0 that knows the cluster only through our daemon:
// what it lists comes from our /nodes, /topics and /lookup, and what it
// changes (driven over its own HTTP API, as its web UI does) must show in
// our answers.

import assert from "node:assert/strict";
import { untilPasses } from "../support/processes.ts";
import { type Lookupd, type Nsqd, startNsqadmin, startNsqd, startOurs, toNsq } from "./nsq.ts";

interface AdminNode {
  remote_addresses: string[];
  tcp_port: number;
  http_port: number;
  version: string;
  out_of_date: boolean;
  topics: { topic: string; tombstoned: boolean }[];
}

/** A node as nsqadmin's /api/nodes shows it, reduced to what our answers decide. */
function adminNode(node: AdminNode, ours: Lookupd): Record<string, unknown> {
  assert.equal(node.remote_addresses.length, 1);
  assert.ok(
    node.remote_addresses[0].startsWith(`${ours.httpAddress}/127.0.0.1:`),
    `remote_addresses names our daemon: ${node.remote_addresses}`,
  );
  return {
    tcp_port: node.tcp_port,
    http_port: node.http_port,
    version: node.version,
    out_of_date: node.out_of_date,
    topics: [...node.topics].sort((x, y) => x.topic.localeCompare(y.topic)),
  };
}

function expectedNode(
  nsqd: Nsqd,
  topics: Record<string, boolean>,
): Record<string, unknown> {
  return {
    tcp_port: nsqd.tcpPort,
    http_port: nsqd.httpPort,
    version: "1.3.0",
    out_of_date: false,
    topics: Object.entries(topics).sort().map(([topic, tombstoned]) => ({ topic, tombstoned })),
  };
}

async function lookupPorts(ours: Lookupd, topic: string): Promise<number[]> {
  const body = await ours.json<{ producers: { tcp_port: number }[] }>(`/lookup?topic=${topic}`);
  return body.producers.map((p) => p.tcp_port).sort();
}

Deno.test("real nsqadmin: lists the cluster through our API and changes it", async (t) => {
  await using ours = await startOurs();
  await using a = await startNsqd("nsqd-a", [ours]);
  await using b = await startNsqd("nsqd-b", [ours]);
  await using admin = await startNsqadmin([ours]);
  await toNsq(a, "orders", ["a1", "a2"]);
  await toNsq(a, "clicks", ["c1"]);
  await toNsq(b, "orders", ["b1"]);
  await a.post("/channel/create?topic=orders&channel=billing");
  await untilPasses(async () =>
    assert.deepEqual(await ours.json("/channels?topic=orders"), { channels: ["billing"] })
  );

  const adminNodes = async (): Promise<Record<string, unknown>[]> => {
    const { status, body } = await admin.api("GET", "/api/nodes");
    assert.equal(status, 200, JSON.stringify(body));
    return (body as { nodes: AdminNode[] }).nodes
      .map((node) => adminNode(node, ours))
      .sort((x, y) => Number(x.tcp_port) - Number(y.tcp_port));
  };

  await t.step("/api/nodes lists both nsqds with their topics, from our /nodes", async () => {
    assert.deepEqual(
      await adminNodes(),
      [
        expectedNode(a, { clicks: false, orders: false }),
        expectedNode(b, { orders: false }),
      ].sort((x, y) => Number(x.tcp_port) - Number(y.tcp_port)),
    );
  });

  await t.step("/api/topics lists the topics of our /topics", async () => {
    const { status, body } = await admin.api("GET", "/api/topics");
    assert.equal(status, 200);
    assert.deepEqual(body, { topics: ["clicks", "orders"], message: "" });
  });

  await t.step("/api/topics/orders finds both producers through our /lookup", async () => {
    const { status, body } = await admin.api("GET", "/api/topics/orders");
    assert.equal(status, 200, JSON.stringify(body));
    const topic = body as { message_count: number; nodes: { node: string }[] };
    assert.deepEqual(topic.nodes.map((n) => n.node).sort(), [a.httpAddress, b.httpAddress].sort());
    assert.equal(topic.message_count, 3);
  });

  await t.step("creating a topic in nsqadmin registers it with us", async () => {
    const { status, body } = await admin.api("POST", "/api/topics", { topic: "admin" });
    assert.equal(status, 200, JSON.stringify(body));
    assert.deepEqual(await ours.json("/topics"), { topics: ["admin", "clicks", "orders"] });
    assert.deepEqual(await ours.json("/channels?topic=admin"), { channels: [] });
  });

  await t.step("creating a channel in nsqadmin registers it with us", async () => {
    const { status, body } = await admin.api("POST", "/api/topics", {
      topic: "admin",
      channel: "ops",
    });
    assert.equal(status, 200, JSON.stringify(body));
    assert.deepEqual(await ours.json("/channels?topic=admin"), { channels: ["ops"] });
  });

  await t.step("deleting that channel in nsqadmin removes it from our /channels", async () => {
    const { status, body } = await admin.api("DELETE", "/api/topics/admin/ops");
    assert.equal(status, 200, JSON.stringify(body));
    assert.deepEqual(await ours.json("/channels?topic=admin"), { channels: [] });
  });

  await t.step("deleting that topic in nsqadmin removes it from our /topics", async () => {
    const { status, body } = await admin.api("DELETE", "/api/topics/admin");
    assert.equal(status, 200, JSON.stringify(body));
    assert.deepEqual(await ours.json("/topics"), { topics: ["clicks", "orders"] });
  });

  await t.step(
    "deleting a channel nsqd has removes it from our /channels and from nsqd",
    async () => {
      const { status, body } = await admin.api("DELETE", "/api/topics/orders/billing");
      assert.equal(status, 200, JSON.stringify(body));
      await untilPasses(async () => {
        assert.deepEqual(await ours.json("/channels?topic=orders"), { channels: [] });
        assert.deepEqual(await a.channels("orders"), []);
      });
    },
  );

  await t.step(
    "tombstoning a node's topic in nsqadmin tombstones it with us; the node leaves /lookup",
    async () => {
      // nsqadmin's node is broadcast_address:http_port. It tombstones the topic with every
      // lookupd, then deletes the topic on that nsqd, which unregisters it: in v1.3.0 (ours and
      // the reference alike) that UNREGISTER also drops the tombstone, so what lasts is the node
      // missing from /lookup and /nodes. The tombstone itself shows in our log; its semantics
      // are compared with the reference's in differential_test.ts.
      const { status, body } = await admin.api("DELETE", `/api/nodes/${a.httpAddress}`, {
        topic: "orders",
      });
      assert.equal(status, 200, JSON.stringify(body));
      await admin.program.waitForLine(
        new RegExp(
          `CI: querying nsqlookupd http://${ours.httpAddress}/topic/tombstone\\?topic=orders&node=127\\.0\\.0\\.1%3A${a.httpPort}$`,
        ),
      );
      const tombstoned = `DB: setting tombstone for producer@${a.httpAddress} of topic(orders)`;
      assert.ok(ours.lines.some((line) => line.endsWith(tombstoned)), tombstoned);
      await untilPasses(async () => {
        assert.deepEqual(await lookupPorts(ours, "orders"), [b.tcpPort]);
        assert.deepEqual(
          (await adminNodes()).find((n) => n.tcp_port === a.tcpPort),
          expectedNode(a, { clicks: false }),
        );
      });
    },
  );
});
