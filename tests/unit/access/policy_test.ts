// The access policies as the API applies them: through createHttpApi's table,
// with requests carrying a peer address and an Authorization header.

import assert from "node:assert/strict";
import { AuthService, type QueryResult } from "../../../src/access/auth_service.ts";
import { NetworkSet } from "../../../src/access/networks.ts";
import {
  AccessPolicy,
  filterNodes,
  type RefusalReason,
  TCP_REFUSAL_TEXT,
  tcpRefusalFrame,
} from "../../../src/access/policy.ts";
import type { HttpAnswer } from "../../../src/gocompat/http1.ts";
import { type ApiRequest, createHttpApi, type HttpApi } from "../../../src/http/api.ts";
import { Registry } from "../../../src/registry.ts";
import { captureLogger, ManualClock, networkList, testPeer } from "../../support/helpers.ts";
import { toResponse } from "../../support/web_api.ts";

function networks(text: string): NetworkSet {
  return new NetworkSet(networkList(text));
}

const SECRETS: Record<string, string> = {
  all: '{"ttl":60,"authorizations":[{"topic":".*","channels":[".*"],"permissions":["subscribe"]}]}',
  orders:
    '{"ttl":60,"authorizations":[{"topic":"^orders$","channels":["^billing$"],"permissions":["subscribe"]},' +
    '{"topic":"^audit","channels":[],"permissions":["publish"]}]}',
  none: '{"ttl":60,"authorizations":[]}',
};

interface Setup {
  api: HttpApi;
  registry: Registry;
  refusals: string[];
  authCalls: string[];
  /** What the auth server does: answer from SECRETS, or fail. */
  authDown: { value: boolean };
}

function setup(
  options: { producers?: string; admins?: string; auth?: boolean; legacy?: boolean } = {},
): Setup {
  const clock = new ManualClock();
  const registry = new Registry({
    now: clock.now,
    inactiveProducerTimeoutMs: 300_000,
    tombstoneLifetimeMs: 45_000,
  });
  const peer = testPeer({ id: "p1", broadcastAddress: "10.0.0.9", lastUpdate: clock.now() });
  registry.identify(peer);
  for (
    const [topic, channel] of [["orders", "billing"], ["orders", "shipping"], ["audit_log", "x"], [
      "secret_plans",
      "y",
    ]]
  ) {
    registry.registerTopic(peer, topic);
    registry.registerChannel(peer, topic, channel);
  }
  const { logger } = captureLogger("fatal");
  const refusals: string[] = [];
  const authCalls: string[] = [];
  const authDown = { value: false };
  const auth = options.auth === true
    ? new AuthService({
      addresses: ["auth:1"],
      timeoutMs: 1000,
      logger,
      now: clock.now,
      query: (_address, query): Promise<QueryResult> => {
        authCalls.push(`${query.secret}@${query.remoteIp}/${query.tls}`);
        if (authDown.value) return Promise.resolve({ kind: "error", reason: "down" });
        const body = SECRETS[query.secret];
        return Promise.resolve(
          body === undefined
            ? { kind: "answer", status: 403, statusText: "Forbidden", body: "" }
            : { kind: "answer", status: 200, statusText: "OK", body },
        );
      },
    })
    : undefined;
  const policy = new AccessPolicy({
    producerNetworks: options.producers === undefined ? undefined : networks(options.producers),
    adminNetworks: options.admins === undefined ? undefined : networks(options.admins),
    auth,
    observer: {
      refused: (protocol, reason: RefusalReason) => refusals.push(`${protocol}:${reason}`),
    },
  });
  const api = createHttpApi({
    registry,
    logger,
    legacy: options.legacy,
    policies: policy.routePolicies(),
  });
  return { api, registry, refusals, authCalls, authDown };
}

const addr = (hostname: string): Deno.NetAddr => ({ transport: "tcp", hostname, port: 5555 });

function req(
  method: string,
  target: string,
  from = "192.0.2.1",
  authorization?: string,
  extra: Partial<ApiRequest> = {},
): ApiRequest {
  return {
    method,
    target,
    remote: `${from}:5555`,
    remoteAddr: addr(from),
    authorization,
    accept: "application/vnd.nsq; version=1.0",
    ...extra,
  };
}

async function call(api: HttpApi, request: ApiRequest): Promise<{ status: number; body: string }> {
  const answer: HttpAnswer = await api.answer(request);
  const res = toResponse(answer);
  return { status: res.status, body: await res.text() };
}

Deno.test("policy: without rules there are no policies and every route answers", async () => {
  const policy = new AccessPolicy({});
  assert.ok(!policy.active);
  assert.deepEqual(policy.routePolicies(), {});
  const { api } = setup();
  assert.equal((await call(api, req("POST", "/topic/delete?topic=orders"))).status, 200);
});

Deno.test("policy: admin routes answer only --admin-networks, 403 FORBIDDEN elsewhere", async () => {
  const { api, refusals, registry } = setup({ admins: "127.0.0.1,::1" });
  for (
    const target of [
      "/topic/create?topic=t",
      "/topic/delete?topic=orders",
      "/channel/create?topic=t&channel=c",
      "/channel/delete?topic=orders&channel=billing",
      "/topic/tombstone?topic=orders&node=10.0.0.9:4151",
    ]
  ) {
    assert.deepEqual(await call(api, req("POST", target, "10.1.1.1")), {
      status: 403,
      body: '{"message":"FORBIDDEN"}',
    }, target);
  }
  assert.deepEqual(await call(api, req("GET", "/debug", "10.1.1.1")), {
    status: 403,
    body: '{"message":"FORBIDDEN"}',
  });
  assert.equal(refusals.length, 6);
  assert.ok(refusals.every((r) => r === "http:network"));
  assert.deepEqual(registry.topics(), ["audit_log", "orders", "secret_plans"]);
  assert.equal(
    (await call(api, req("POST", "/topic/delete?topic=orders", "::ffff:127.0.0.1"))).status,
    200,
  );
  assert.equal((await call(api, req("GET", "/debug", "::1"))).status, 200);
  assert.deepEqual(registry.topics(), ["audit_log", "secret_plans"]);
});

Deno.test("policy: admin networks alone leave the query routes open", async () => {
  const { api } = setup({ admins: "127.0.0.1" });
  assert.equal((await call(api, req("GET", "/lookup?topic=orders", "10.1.1.1"))).status, 200);
  assert.equal((await call(api, req("GET", "/topics", "10.1.1.1"))).status, 200);
});

Deno.test("policy: with auth on and no admin networks, nobody administers", async () => {
  const { api } = setup({ auth: true, producers: "127.0.0.1" });
  assert.equal(
    (await call(api, req("POST", "/topic/delete?topic=orders", "127.0.0.1"))).status,
    403,
  );
  assert.equal((await call(api, req("GET", "/debug", "127.0.0.1"))).status, 403);
});

Deno.test("policy: open routes stay open whatever the rules", async () => {
  const { api } = setup({ auth: true, admins: "127.0.0.1", producers: "127.0.0.1" });
  for (const target of ["/ping", "/info"]) {
    assert.equal((await call(api, req("GET", target, "203.0.113.5"))).status, 200, target);
  }
  assert.equal((await call(api, req("GET", "/nope", "203.0.113.5"))).status, 404);
});

Deno.test("policy: with auth on, a query without a secret is 401 AUTH_REQUIRED", async () => {
  const { api, refusals, authCalls } = setup({ auth: true });
  for (const target of ["/lookup?topic=orders", "/channels?topic=orders", "/topics", "/nodes"]) {
    assert.deepEqual(await call(api, req("GET", target)), {
      status: 401,
      body: '{"message":"AUTH_REQUIRED"}',
    }, target);
  }
  assert.deepEqual(await call(api, req("GET", "/topics", "192.0.2.1", "Basic eDp5")), {
    status: 401,
    body: '{"message":"AUTH_REQUIRED"}',
  });
  assert.equal(authCalls.length, 0);
  assert.ok(refusals.every((r) => r === "http:auth_required"));
});

Deno.test("policy: a secret the auth server refuses is 403 AUTH_FAILED", async () => {
  const { api, refusals } = setup({ auth: true });
  assert.deepEqual(
    await call(api, req("GET", "/lookup?topic=orders", "192.0.2.1", "Bearer wrong")),
    {
      status: 403,
      body: '{"message":"AUTH_FAILED"}',
    },
  );
  assert.deepEqual(refusals, ["http:auth_failed"]);
});

Deno.test("policy: /lookup answers only topics the secret may subscribe to, hiding existence", async () => {
  const { api, refusals } = setup({ auth: true });
  const bearer = "Bearer orders";
  const ok = await call(api, req("GET", "/lookup?topic=orders", "192.0.2.1", bearer));
  assert.equal(ok.status, 200);
  assert.deepEqual(JSON.parse(ok.body).channels, ["billing"]);
  for (const topic of ["secret_plans", "no_such_topic", "audit_log"]) {
    assert.deepEqual(await call(api, req("GET", `/lookup?topic=${topic}`, "192.0.2.1", bearer)), {
      status: 403,
      body: '{"message":"UNAUTHORIZED"}',
    }, topic);
  }
  assert.deepEqual(refusals, ["http:unauthorized", "http:unauthorized", "http:unauthorized"]);
  // Missing arguments are the route's own answer.
  assert.equal((await call(api, req("GET", "/lookup", "192.0.2.1", bearer))).status, 400);
});

Deno.test("policy: /channels lists only the channels the secret may subscribe to", async () => {
  const { api } = setup({ auth: true });
  const got = await call(api, req("GET", "/channels?topic=orders", "192.0.2.1", "Bearer orders"));
  assert.deepEqual(got, { status: 200, body: '{"channels":["billing"]}' });
  const all = await call(api, req("GET", "/channels?topic=orders", "192.0.2.1", "Bearer all"));
  assert.deepEqual(all, { status: 200, body: '{"channels":["billing","shipping"]}' });
  assert.equal(
    (await call(api, req("GET", "/channels?topic=secret_plans", "192.0.2.1", "Bearer orders")))
      .status,
    403,
  );
});

Deno.test("policy: /topics lists only topics the secret may use; /nodes shows only those", async () => {
  const { api } = setup({ auth: true });
  const topics = await call(api, req("GET", "/topics", "192.0.2.1", "Bearer orders"));
  assert.deepEqual(topics, { status: 200, body: '{"topics":["audit_log","orders"]}' });
  const none = await call(api, req("GET", "/topics", "192.0.2.1", "Bearer none"));
  assert.deepEqual(none, { status: 200, body: '{"topics":[]}' });
  const nodes = JSON.parse(
    (await call(api, req("GET", "/nodes", "192.0.2.1", "Bearer orders"))).body,
  );
  assert.deepEqual(nodes.producers[0].topics, ["audit_log", "orders"]);
  assert.deepEqual(nodes.producers[0].tombstones, [false, false]);
  const all = JSON.parse((await call(api, req("GET", "/nodes", "192.0.2.1", "Bearer all"))).body);
  assert.deepEqual(all.producers[0].topics, ["audit_log", "orders", "secret_plans"]);
});

Deno.test("policy: peers in either network read without a secret (nsqd, nsqadmin)", async () => {
  const { api, authCalls } = setup({ auth: true, producers: "10.0.0.0/8", admins: "::1" });
  assert.equal((await call(api, req("GET", "/channels?topic=orders", "10.2.3.4"))).status, 200);
  assert.equal((await call(api, req("GET", "/nodes", "::1"))).status, 200);
  const topics = await call(api, req("GET", "/topics", "::1"));
  assert.deepEqual(JSON.parse(topics.body).topics, ["audit_log", "orders", "secret_plans"]);
  assert.equal(authCalls.length, 0);
  assert.equal((await call(api, req("GET", "/topics", "11.0.0.1"))).status, 401);
});

Deno.test("policy: an unreachable auth server is 503, never an open door", async () => {
  const { api, authDown, refusals } = setup({ auth: true, producers: "10.0.0.0/8" });
  authDown.value = true;
  assert.deepEqual(await call(api, req("GET", "/lookup?topic=orders", "192.0.2.1", "Bearer all")), {
    status: 503,
    body: '{"message":"AUTH_UNAVAILABLE"}',
  });
  assert.deepEqual(refusals, ["http:auth_unavailable"]);
  // The allowed networks keep being served.
  assert.equal((await call(api, req("GET", "/lookup?topic=orders", "10.0.0.7"))).status, 200);
});

Deno.test("policy: a cached answer is served synchronously (no Promise on the hot path)", async () => {
  const { api, authCalls } = setup({ auth: true });
  const request = req("GET", "/lookup?topic=orders", "192.0.2.1", "Bearer all");
  assert.ok(api.answer(request) instanceof Promise);
  await api.answer(request);
  const again = api.answer(request);
  assert.ok(!(again instanceof Promise));
  assert.equal(again.status, 200);
  assert.deepEqual(authCalls, ["all@192.0.2.1/false"]);
});

Deno.test("policy: the auth server is told the client's address (IPv4-mapped unmapped) and TLS", async () => {
  const { api, authCalls } = setup({ auth: true });
  await api.answer(req("GET", "/topics", "::ffff:198.51.100.7", "Bearer all", { tls: true }));
  await api.answer(req("GET", "/topics", "2001:db8::1", "Bearer all"));
  assert.deepEqual(authCalls, ["all@198.51.100.7/true", "all@2001:db8::1/false"]);
});

Deno.test("policy: refusals keep the legacy wrapper for 0.x clients", async () => {
  const { api } = setup({ auth: true, legacy: true });
  const got = await call(
    api,
    req("GET", "/lookup?topic=orders", "192.0.2.1", undefined, { accept: undefined }),
  );
  assert.equal(got.body, '{"status_code":500,"status_txt":"AUTH_REQUIRED","data":null}');
  const filtered = await call(
    api,
    req("GET", "/channels?topic=orders", "192.0.2.1", "Bearer orders", { accept: undefined }),
  );
  assert.equal(
    filtered.body,
    '{"status_code":200,"status_txt":"OK","data":{"channels":["billing"]}}',
  );
});

Deno.test("policy: TCP peers are admitted by --producer-networks only", () => {
  const policy = new AccessPolicy({ producerNetworks: networks("127.0.0.1,fd00::/8") });
  assert.ok(policy.mayRegister(addr("127.0.0.1")));
  assert.ok(policy.mayRegister(addr("::ffff:127.0.0.1")));
  assert.ok(policy.mayRegister(addr("fd00::5")));
  assert.ok(!policy.mayRegister(addr("127.0.0.2")));
  assert.ok(!policy.mayRegister(addr("::1")));
  assert.ok(new AccessPolicy({}).mayRegister(addr("203.0.113.1")));
});

Deno.test("policy: the TCP refusal is one frame as nsqlookupd frames responses: size, then text", () => {
  const frame = tcpRefusalFrame();
  const size = new DataView(frame.buffer).getUint32(0);
  assert.equal(size, frame.length - 4);
  assert.equal(new TextDecoder().decode(frame.subarray(4)), TCP_REFUSAL_TEXT);
  assert.match(TCP_REFUSAL_TEXT, /^E_UNAUTHORIZED /);
});

Deno.test("policy: filtering /nodes keeps tombstone flags beside their topics and Go's JSON", () => {
  const body =
    '{"producers":[{"remote_address":"a","hostname":"h<>","tombstones":[true,false,true],' +
    '"topics":["a","b","c"]},{"remote_address":"b","tombstones":[],"topics":[]}]}';
  assert.equal(
    filterNodes(body, (t) => t !== "b"),
    '{"producers":[{"remote_address":"a","hostname":"h\\u003c\\u003e","tombstones":[true,true],' +
      '"topics":["a","c"]},{"remote_address":"b","tombstones":[],"topics":[]}]}',
  );
  assert.equal(filterNodes(body, () => true), body);
});

Deno.test("policy: narrowed /lookup bodies are remembered per topic, even when two bodies are alike", async () => {
  const clock = new ManualClock();
  const registry = new Registry({
    now: clock.now,
    inactiveProducerTimeoutMs: 300_000,
    tombstoneLifetimeMs: 45_000,
  });
  for (const topic of ["x", "y"]) {
    for (const channel of ["a", "b"]) registry.createChannel(topic, channel);
    registry.createTopic(topic);
  }
  const { logger } = captureLogger("fatal");
  const body = '{"ttl":60,"authorizations":[' +
    '{"topic":"^x$","channels":["^a$"],"permissions":["subscribe"]},' +
    '{"topic":"^y$","channels":["^b$"],"permissions":["subscribe"]}]}';
  const auth = new AuthService({
    addresses: ["auth:1"],
    timeoutMs: 1000,
    logger,
    now: clock.now,
    query: () => Promise.resolve({ kind: "answer", status: 200, statusText: "OK", body }),
  });
  const api = createHttpApi({
    registry,
    logger,
    policies: new AccessPolicy({ auth }).routePolicies(),
  });
  for (let round = 0; round < 2; round++) {
    for (const [topic, channel] of [["x", "a"], ["y", "b"]]) {
      const got = await call(api, req("GET", `/lookup?topic=${topic}`, "192.0.2.1", "Bearer s"));
      assert.deepEqual(got, { status: 200, body: `{"channels":["${channel}"],"producers":[]}` });
    }
  }
});
