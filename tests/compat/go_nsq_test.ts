// What go-nsq (v1.1.0) consumers require of nsqlookupd's HTTP API. go-nsq is
// Go, so its lookup path is ported here line for line: Consumer's
// nextLookupdEndpoint and queryLookupd, and api_request.go's
// apiRequestNegotiateV1, which decodes the body as unwrapped only when
// `X-NSQ-Content-Type: nsq; version=1.0` is present and otherwise expects the
// pre-1.0 envelope `{"status_code":200,"data":{...}}` — without the header a
// consumer silently finds no producer in every poll and connects to nothing.

import assert from "node:assert/strict";
import {
  GoClientError,
  goUnmarshal,
  type GoValue,
  joinHostPort,
  NSQ_V1_ACCEPT,
  NSQ_V1_CONTENT_TYPE,
  type ProxiedResponse,
  startBreakingProxy,
  startDaemon,
  type TestDaemon,
} from "../support/helpers.ts";
import { emulatedNsqd, type ProducerEmulator } from "../support/producer_emulator.ts";

/** go-nsq's `peerInfo`. */
const PEER_INFO = {
  remote_address: "string",
  hostname: "string",
  broadcast_address: "string",
  tcp_port: "int",
  http_port: "int",
  version: "string",
} as const;

/** go-nsq's `lookupResp`. */
const LOOKUP_RESP = { channels: ["string"], producers: [PEER_INFO], timestamp: "int" } as const;

/** Consumer.nextLookupdEndpoint: scheme added, path /lookup when empty, `topic` added. */
function lookupdEndpoint(addr: string, topic: string): string {
  const u = new URL(addr.includes("://") ? addr : `http://${addr}`);
  if (u.pathname === "/" || u.pathname === "") u.pathname = "/lookup";
  u.searchParams.append("topic", topic);
  u.searchParams.sort(); // url.Values.Encode sorts by key
  return u.toString();
}

/**
 * api_request.go's apiRequestNegotiateV1 (go-nsq v1.1.0). Without the header
 * the body is decoded as the pre-1.0 envelope `wrappedResp{Data: ret}` and its
 * status code ignored, so an unwrapped body yields zero values: no error, no
 * producers. (go-nsq prefixes its non-200 error with the connection's
 * addresses, `for ("local" -> "remote") `, which fetch does not expose.)
 */
async function apiRequestNegotiateV1<S extends typeof LOOKUP_RESP>(
  method: string,
  endpoint: string,
  headers: Record<string, string>,
  spec: S,
): Promise<GoValue<S>> {
  const res = await fetch(endpoint, { method, headers: { ...headers, Accept: NSQ_V1_ACCEPT } });
  let body = await res.text();
  if (res.status !== 200) {
    throw new GoClientError(`got response ${res.status} ${res.statusText} ${JSON.stringify(body)}`);
  }
  if (body.length === 0) body = "{}";
  if (res.headers.get("X-NSQ-Content-Type") === "nsq; version=1.0") return goUnmarshal(body, spec);
  const wrapped = goUnmarshal(body, { status_txt: "string", status_code: "int", data: spec });
  // "wResp.StatusCode here is equal to resp.StatusCode, so ignore it"
  return wrapped.data as GoValue<S>;
}

/**
 * Consumer.queryLookupd up to the point where it connects: the nsqd addresses
 * (`JoinHostPort(broadcast_address, tcp_port)`) it would connect to, and the
 * decoded response. An error here is what go-nsq logs before giving up the poll.
 */
async function queryLookupd(
  addr: string,
  topic: string,
  authSecret?: string,
): Promise<{ nsqdAddrs: string[]; data: GoValue<typeof LOOKUP_RESP> }> {
  const headers: Record<string, string> = {};
  // With Config.AuthSecret and LookupdAuthorization (the default).
  if (authSecret !== undefined) headers.Authorization = `Bearer ${authSecret}`;
  const data = await apiRequestNegotiateV1(
    "GET",
    lookupdEndpoint(addr, topic),
    headers,
    LOOKUP_RESP,
  );
  const nsqdAddrs = data.producers.map((p) => joinHostPort(p.broadcast_address, p.tcp_port));
  return { nsqdAddrs, data };
}

/** A daemon with two producers of `orders` (channel `billing`). */
async function withProducers(
  test: (daemon: TestDaemon, producers: ProducerEmulator[]) => Promise<void>,
): Promise<void> {
  await using daemon = startDaemon();
  const producers = [emulatedNsqd(daemon, "nsqd-a", 4150), emulatedNsqd(daemon, "nsqd-b", 4250)];
  try {
    for (const p of producers) {
      p.start();
      await p.waitForSync(1);
      await p.createChannel("orders", "billing");
    }
    await test(daemon, producers);
  } finally {
    for (const p of producers) await p.stop();
  }
}

Deno.test("go-nsq: every JSON response carries X-NSQ-Content-Type: nsq; version=1.0", async () => {
  await withProducers(async (daemon) => {
    const requests: [string, string, number][] = [
      ["GET", "/info", 200],
      ["GET", "/topics", 200],
      ["GET", "/channels?topic=orders", 200],
      ["GET", "/lookup?topic=orders", 200],
      ["GET", "/nodes", 200],
      ["GET", "/debug", 200],
      ["GET", "/lookup?topic=missing", 404],
      ["GET", "/lookup", 400],
      ["GET", "/channels", 400],
      ["GET", "/no/such/path", 404],
      ["POST", "/lookup?topic=orders", 405],
      ["POST", "/topic/create", 400],
      ["POST", "/channel/delete?topic=orders&channel=missing", 404],
    ];
    for (const accept of [NSQ_V1_ACCEPT, undefined]) {
      for (const [method, path, status] of requests) {
        const headers: Record<string, string> = accept === undefined ? {} : { Accept: accept };
        const res = await daemon.get(path, { method, headers });
        const body = await res.text();
        const what = `${method} ${path} (Accept: ${accept})`;
        assert.equal(res.status, status, `${what}: ${body}`);
        assert.equal(res.headers.get("x-nsq-content-type"), NSQ_V1_CONTENT_TYPE, what);
        assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8", what);
        JSON.parse(body);
      }
    }
    // The empty successes of the mutating endpoints carry it too.
    for (const path of ["/topic/create?topic=t2", "/channel/create?topic=t2&channel=c"]) {
      const res = await daemon.post(path, { headers: { Accept: NSQ_V1_ACCEPT } });
      assert.equal(await res.text(), "");
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get("x-nsq-content-type"), NSQ_V1_CONTENT_TYPE, path);
    }
  });
});

Deno.test("go-nsq: the Accept header is tolerated: any value or none gives the same answer", async () => {
  await withProducers(async (daemon) => {
    const accepts = [undefined, NSQ_V1_ACCEPT, "application/json", "*/*", "text/html", "bogus"];
    const paths = ["/info", "/topics", "/channels?topic=orders", "/lookup?topic=orders", "/nodes"];
    for (const path of [...paths, "/lookup?topic=missing"]) {
      const answers = new Set<string>();
      for (const accept of accepts) {
        const res = await daemon.get(
          path,
          accept === undefined ? {} : { headers: { Accept: accept } },
        );
        answers.add(
          `${res.status} ${res.headers.get("x-nsq-content-type")} ${await res.text()}`,
        );
      }
      assert.equal(answers.size, 1, `${path}: ${[...answers].join(" | ")}`);
    }
  });
});

Deno.test("go-nsq: Consumer.queryLookupd finds each producer at broadcast_address:tcp_port", async () => {
  await withProducers(async (daemon, [a, b]) => {
    const http = `127.0.0.1:${daemon.httpAddr.port}`;
    for (const addr of [http, `http://${http}`, `http://${http}/lookup`, `http://${http}/`]) {
      const { nsqdAddrs, data } = await queryLookupd(addr, "orders");
      assert.deepEqual(nsqdAddrs, ["127.0.0.1:4150", "127.0.0.1:4250"], addr);
      assert.deepEqual(data, {
        channels: ["billing"],
        producers: [a, b].map((p) => ({
          remote_address: p.localAddress,
          hostname: p.options.hostname,
          broadcast_address: "127.0.0.1",
          tcp_port: p.options.tcpPort,
          http_port: p.options.httpPort,
          version: "1.3.0",
        })),
        timestamp: 0,
      });
    }
    // Config.AuthSecret with LookupdAuthorization: a bearer token is accepted and ignored.
    const { nsqdAddrs } = await queryLookupd(http, "orders", "s3cret");
    assert.deepEqual(nsqdAddrs, ["127.0.0.1:4150", "127.0.0.1:4250"]);
  });
});

Deno.test("go-nsq: a --legacy-http-api daemon still answers it unwrapped (it sends Accept)", async () => {
  await using daemon = startDaemon({ legacyHttpApi: true });
  await using nsqd = emulatedNsqd(daemon, "nsqd-a", 4150);
  nsqd.start();
  await nsqd.waitForSync(1);
  await nsqd.createTopic("orders");
  const endpoint = lookupdEndpoint(`127.0.0.1:${daemon.httpAddr.port}`, "orders");
  const res = await fetch(endpoint, { headers: { Accept: NSQ_V1_ACCEPT } });
  assert.equal(res.headers.get("x-nsq-content-type"), NSQ_V1_CONTENT_TYPE);
  assert.match(await res.text(), /^\{"channels":\[\],"producers":\[\{"remote_address"/);
  const { nsqdAddrs } = await queryLookupd(`127.0.0.1:${daemon.httpAddr.port}`, "orders");
  assert.deepEqual(nsqdAddrs, ["127.0.0.1:4150"]);
});

Deno.test("go-nsq: an unknown topic is a poll error, so the consumer connects to nothing", async () => {
  await withProducers(async (daemon) => {
    await assert.rejects(
      queryLookupd(`127.0.0.1:${daemon.httpAddr.port}`, "unknown"),
      (error: Error) => {
        assert.ok(error instanceof GoClientError);
        assert.equal(
          error.message,
          'got response 404 Not Found "{\\"message\\":\\"TOPIC_NOT_FOUND\\"}"',
        );
        return true;
      },
    );
  });
});

Deno.test("go-nsq: the port catches a daemon without the header, with a wrapped body or wrong fields", async () => {
  await withProducers(async (daemon) => {
    const ok = await queryLookupd(`127.0.0.1:${daemon.httpAddr.port}`, "orders");
    assert.deepEqual(ok.nsqdAddrs, ["127.0.0.1:4150", "127.0.0.1:4250"]);
    // What the consumer ends up with for each broken daemon: never the producers.
    const breakages: [string, (r: ProxiedResponse) => ProxiedResponse, string][] = [
      ["no X-NSQ-Content-Type", (r) => {
        r.headers.delete("x-nsq-content-type");
        return r;
      }, "no producers"],
      ["wrapped body", (r) => ({
        ...r,
        body: `{"status_code":200,"status_txt":"OK","data":${r.body}}`,
      }), "no producers"],
      ["tcp_port as a string", (r) => ({
        ...r,
        body: r.body.replace(/"tcp_port":(\d+)/g, '"tcp_port":"$1"'),
      }), "error: json: cannot unmarshal string into Go value .producers[0].tcp_port of type int"],
      ["broadcast_address renamed", (r) => ({
        ...r,
        body: r.body.replaceAll('"broadcast_address"', '"address"'),
      }), ":4150,:4250"],
    ];
    for (const [name, breakage, expected] of breakages) {
      await using proxy = startBreakingProxy(daemon.httpUrl, breakage);
      const outcome = await queryLookupd(proxy.url, "orders").then(
        (r) => r.nsqdAddrs.length === 0 ? "no producers" : r.nsqdAddrs.join(","),
        (e: Error) => `error: ${e.message}`,
      );
      assert.equal(outcome, expected, name);
    }
    // The one variant go-nsq also accepts: the envelope without the header (NSQ 0.x).
    await using legacy = startBreakingProxy(daemon.httpUrl, (r) => {
      r.headers.delete("x-nsq-content-type");
      return { ...r, body: `{"status_code":200,"status_txt":"OK","data":${r.body}}` };
    });
    assert.deepEqual((await queryLookupd(legacy.url, "orders")).nsqdAddrs, ok.nsqdAddrs);
  });
});
