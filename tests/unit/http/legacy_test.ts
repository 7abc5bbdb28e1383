// `--legacy-http-api` (spec section 3): every route with the flag off and on,
// with and without `Accept: application/vnd.nsq; version=1.0`. Without the
// flag, or with that Accept header, answers are the v1 API's bytes; with the
// flag and without it, NSQ 0.x's `{"status_code","status_txt","data"}`.

import assert from "node:assert/strict";
import { createHttpApi } from "../../../src/http/api.ts";
import { ACCEPT_V1, LEGACY_ALIASES } from "../../../src/http/router.ts";
import { Registry } from "../../../src/registry.ts";
import {
  captureLogger,
  JSON_CONTENT_TYPE,
  ManualClock,
  NSQ_V1_ACCEPT,
  NSQ_V1_CONTENT_TYPE,
  startDaemon,
  testPeer,
} from "../../support/helpers.ts";
import { type WebHandler, webHandler } from "../../support/web_api.ts";

const TEXT_CONTENT_TYPE = "text/plain; charset=utf-8";
/** ManualClock's default start, in Unix nanoseconds as /debug prints it. */
const START_NS = "1800000000000000000";

interface Api {
  readonly registry: Registry;
  readonly handler: WebHandler;
  readonly logs: string[];
}

/** A handler over a registry holding one producer of topic `t` and channel `t/c`. */
function api(legacy: boolean): Api {
  const clock = new ManualClock();
  const registry = new Registry({
    now: clock.now,
    inactiveProducerTimeoutMs: 300_000,
    tombstoneLifetimeMs: 45_000,
  });
  const peer = testPeer({ lastUpdate: clock.now() });
  registry.identify(peer);
  registry.registerChannel(peer, "t", "c");
  registry.registerTopic(peer, "t");
  const { logger, logs } = captureLogger();
  return { registry, handler: webHandler(createHttpApi({ registry, logger, legacy })), logs };
}

interface Snapshot {
  status: number;
  body: string;
  /** Every header, names lower-cased. */
  headers: Record<string, string>;
}

async function call(
  target: Api,
  method: string,
  path: string,
  accept: boolean,
): Promise<Snapshot> {
  const headers: [string, string][] = accept ? [["Accept", ACCEPT_V1]] : [];
  const res = await target.handler(new Request(`http://x${path}`, { method, headers }));
  return { status: res.status, body: await res.text(), headers: Object.fromEntries(res.headers) };
}

/** What a route answers, independent of the format. */
type Outcome =
  | { kind: "json"; body: string }
  | { kind: "empty" }
  | { kind: "text"; body: string }
  | { kind: "error"; status: number; code: string; allow?: string };

const json = (body: string): Outcome => ({ kind: "json", body });
const error = (status: number, code: string, allow?: string): Outcome => ({
  kind: "error",
  status,
  code,
  ...(allow === undefined ? {} : { allow }),
});
const EMPTY: Outcome = { kind: "empty" };

/** The v1 answer (byte-identical to the API without the flag). */
function v1(outcome: Outcome): Snapshot {
  switch (outcome.kind) {
    case "json":
      return {
        status: 200,
        body: outcome.body,
        headers: { "content-type": JSON_CONTENT_TYPE, "x-nsq-content-type": NSQ_V1_CONTENT_TYPE },
      };
    case "empty":
      return { status: 200, body: "", headers: { "x-nsq-content-type": NSQ_V1_CONTENT_TYPE } };
    case "text":
      return { status: 200, body: outcome.body, headers: { "content-type": TEXT_CONTENT_TYPE } };
    case "error":
      return {
        status: outcome.status,
        body: `{"message":"${outcome.code}"}`,
        headers: {
          ...(outcome.allow === undefined ? {} : { allow: outcome.allow }),
          "content-type": JSON_CONTENT_TYPE,
          "x-nsq-content-type": NSQ_V1_CONTENT_TYPE,
        },
      };
  }
}

/** The wrapped NSQ 0.x answer: only Content-Type, never X-NSQ-Content-Type. */
function wrapped(outcome: Outcome): Snapshot {
  const headers = { "content-type": JSON_CONTENT_TYPE };
  switch (outcome.kind) {
    case "json":
      return {
        status: 200,
        body: `{"status_code":200,"status_txt":"OK","data":${outcome.body}}`,
        headers,
      };
    case "empty":
      return { status: 200, body: '{"status_code":200,"status_txt":"OK","data":null}', headers };
    case "text":
      return v1(outcome);
    case "error": {
      // Errors of the router itself keep their status; handler errors become 500.
      const status = outcome.code === "NOT_FOUND" || outcome.code === "METHOD_NOT_ALLOWED"
        ? outcome.status
        : 500;
      return {
        status,
        body: `{"status_code":${status},"status_txt":"${outcome.code}","data":null}`,
        headers: outcome.allow === undefined ? headers : { allow: outcome.allow, ...headers },
      };
    }
  }
}

const MODES = [
  { legacy: false, accept: false },
  { legacy: false, accept: true },
  { legacy: true, accept: false },
  { legacy: true, accept: true },
] as const;

function modeName(mode: { legacy: boolean; accept: boolean }): string {
  return `${mode.legacy ? "--legacy-http-api" : "v1 only"}, ${
    mode.accept ? "Accept v1" : "no Accept"
  }`;
}

/**
 * Runs `method path` on a fresh handler in each of the four modes and checks
 * the exact answer: `outcome(legacy)` in v1 format, or wrapped when the flag
 * is on and the request does not ask for v1. `after` checks the effect.
 */
async function expectEveryMode(
  method: string,
  path: string,
  outcome: (legacy: boolean) => Outcome,
  after?: (registry: Registry, legacy: boolean) => void,
): Promise<void> {
  for (const mode of MODES) {
    const target = api(mode.legacy);
    const got = await call(target, method, path, mode.accept);
    const expected = outcome(mode.legacy);
    const want = mode.legacy && !mode.accept ? wrapped(expected) : v1(expected);
    assert.deepEqual(got, want, `${method} ${path} (${modeName(mode)})`);
    after?.(target.registry, mode.legacy);
  }
}

const PEER_FIELDS = '"remote_address":"10.0.0.1:5000","hostname":"h1",' +
  '"broadcast_address":"127.0.0.1","tcp_port":4150,"http_port":4151,"version":"1.3.0",' +
  '"topology_zone":"","topology_region":""';
const DEBUG_PRODUCER = '[{"broadcast_address":"127.0.0.1","hostname":"h1","http_port":4151,' +
  `"id":"10.0.0.1:5000","last_update":${START_NS},"tcp_port":4150,"tombstoned":false,` +
  '"tombstoned_at":0,"topology_region":"","topology_zone":"","version":"1.3.0"}]';

// ---- read routes ----

const READ_ROUTES: [string, Outcome][] = [
  ["/ping", { kind: "text", body: "OK" }],
  ["/info", json('{"version":"1.3.0"}')],
  ["/topics", json('{"topics":["t"]}')],
  ["/channels?topic=t", json('{"channels":["c"]}')],
  ["/channels?topic=unknown", json('{"channels":[]}')],
  ["/channels", error(400, "MISSING_ARG_TOPIC")],
  ["/lookup?topic=t", json(`{"channels":["c"],"producers":[{${PEER_FIELDS}}]}`)],
  ["/lookup?topic=missing", error(404, "TOPIC_NOT_FOUND")],
  ["/lookup", error(400, "MISSING_ARG_TOPIC")],
  ["/lookup?topic=%zz", error(400, "INVALID_REQUEST")],
  ["/nodes", json(`{"producers":[{${PEER_FIELDS},"tombstones":[false],"topics":["t"]}]}`)],
  [
    "/debug",
    json(
      `{"channel:t:c":${DEBUG_PRODUCER},"client::":${DEBUG_PRODUCER},"topic:t:":${DEBUG_PRODUCER}}`,
    ),
  ],
];

for (const [path, outcome] of READ_ROUTES) {
  Deno.test(`legacy: GET ${path} in every mode`, async () => {
    await expectEveryMode("GET", path, () => outcome);
  });
}

Deno.test("legacy: a handler error is 500 with status_txt = the code, data null", async () => {
  const got = await call(api(true), "GET", "/lookup?topic=missing", false);
  assert.deepEqual(got, {
    status: 500,
    body: '{"status_code":500,"status_txt":"TOPIC_NOT_FOUND","data":null}',
    headers: { "content-type": "application/json; charset=utf-8" },
  });
  // The same request asking for v1 gets the v1 404.
  assert.deepEqual(await call(api(true), "GET", "/lookup?topic=missing", true), {
    status: 404,
    body: '{"message":"TOPIC_NOT_FOUND"}',
    headers: {
      "content-type": "application/json; charset=utf-8",
      "x-nsq-content-type": "nsq; version=1.0",
    },
  });
});

Deno.test("legacy: read routes refuse POST with 405 and Allow in every mode", async () => {
  for (const [path] of READ_ROUTES) {
    const bare = path.split("?")[0];
    await expectEveryMode("POST", bare, () => error(405, "METHOD_NOT_ALLOWED", "GET, OPTIONS"));
  }
});

// ---- mutating routes ----

interface MutatingCase {
  path: string;
  /** Checks the registry after a successful call. */
  effect: (registry: Registry) => void;
}

const MUTATING: MutatingCase[] = [
  {
    path: "/topic/create?topic=clicks",
    effect: (r) => assert.deepEqual(r.topics(), ["clicks", "t"]),
  },
  {
    path: "/topic/delete?topic=t",
    effect: (r) => {
      assert.deepEqual(r.topics(), []);
      assert.deepEqual(r.channels("t"), []);
    },
  },
  {
    path: "/channel/create?topic=clicks&channel=archive",
    effect: (r) => {
      assert.deepEqual(r.topics(), ["clicks", "t"]);
      assert.deepEqual(r.channels("clicks"), ["archive"]);
    },
  },
  {
    path: "/channel/delete?topic=t&channel=c",
    effect: (r) => assert.deepEqual(r.channels("t"), []),
  },
  {
    path: "/topic/tombstone?topic=t&node=127.0.0.1:4151",
    effect: (r) => assert.deepEqual(r.lookup("t")?.producers, []),
  },
];

/** The unchanged registry of api(). */
function untouched(r: Registry): void {
  assert.deepEqual(r.topics(), ["t"]);
  assert.deepEqual(r.channels("t"), ["c"]);
  assert.equal(r.lookup("t")?.producers.length, 1);
}

for (const { path, effect } of MUTATING) {
  const route = path.split("?")[0];
  Deno.test(`legacy: POST ${route} in every mode`, async () => {
    await expectEveryMode("POST", path, () => EMPTY, (registry) => effect(registry));
  });

  Deno.test(`legacy: GET ${route} works only with the flag (405 without)`, async () => {
    await expectEveryMode(
      "GET",
      path,
      (legacy) => legacy ? EMPTY : error(405, "METHOD_NOT_ALLOWED", "OPTIONS, POST"),
      (registry, legacy) => legacy ? effect(registry) : untouched(registry),
    );
  });

  Deno.test(`legacy: PUT and OPTIONS ${route} list GET in Allow only with the flag`, async () => {
    const allow = (legacy: boolean): string => legacy ? "GET, OPTIONS, POST" : "OPTIONS, POST";
    await expectEveryMode("PUT", path, (legacy) => error(405, "METHOD_NOT_ALLOWED", allow(legacy)));
    for (const mode of MODES) {
      assert.deepEqual(await call(api(mode.legacy), "OPTIONS", route, mode.accept), {
        status: 200,
        body: "",
        headers: { allow: allow(mode.legacy) },
      }, modeName(mode));
    }
  });
}

const MUTATING_ERRORS: [string, Outcome][] = [
  ["/topic/create", error(400, "MISSING_ARG_TOPIC")],
  ["/topic/create?topic=bad!", error(400, "INVALID_ARG_TOPIC")],
  ["/topic/delete", error(400, "MISSING_ARG_TOPIC")],
  ["/channel/create?topic=t", error(400, "MISSING_ARG_CHANNEL")],
  ["/channel/create?topic=t&channel=bad!", error(400, "INVALID_ARG_CHANNEL")],
  ["/channel/delete?channel=c", error(400, "MISSING_ARG_TOPIC")],
  ["/channel/delete?topic=t&channel=nope", error(404, "CHANNEL_NOT_FOUND")],
  ["/topic/tombstone?topic=t", error(400, "MISSING_ARG_NODE")],
  ["/topic/create?topic=a;b", error(400, "INVALID_REQUEST")],
];

Deno.test("legacy: mutating route errors are 500 wrapped, v1 with the Accept header", async () => {
  for (const [path, outcome] of MUTATING_ERRORS) {
    await expectEveryMode("POST", path, () => outcome, untouched);
    // GET reaches the handler only with the flag.
    await expectEveryMode(
      "GET",
      path,
      (legacy) => legacy ? outcome : error(405, "METHOD_NOT_ALLOWED", "OPTIONS, POST"),
      untouched,
    );
  }
});

// ---- the five NSQ 0.x route names ----

Deno.test("legacy: the five 0.x route names are exactly the aliases served", () => {
  assert.deepEqual([...LEGACY_ALIASES], [
    ["/create_topic", "/topic/create"],
    ["/delete_topic", "/topic/delete"],
    ["/create_channel", "/channel/create"],
    ["/delete_channel", "/channel/delete"],
    ["/tombstone_topic_producer", "/topic/tombstone"],
  ]);
});

for (const [alias, canonical] of LEGACY_ALIASES) {
  const { path, effect } = MUTATING.find((m) => m.path.startsWith(canonical + "?"))!;
  const aliased = alias + path.slice(canonical.length);
  for (const method of ["GET", "POST"]) {
    Deno.test(`legacy: ${method} ${alias} is ${canonical} with the flag, 404 without`, async () => {
      await expectEveryMode(
        method,
        aliased,
        (legacy) => legacy ? EMPTY : error(404, "NOT_FOUND"),
        (registry, legacy) => legacy ? effect(registry) : untouched(registry),
      );
      // Errors too are those of the canonical route.
      const [errorPath, outcome] = MUTATING_ERRORS.find(([p]) => p.startsWith(canonical))!;
      await expectEveryMode(
        method,
        alias + errorPath.slice(canonical.length),
        (legacy) => legacy ? outcome : error(404, "NOT_FOUND"),
        untouched,
      );
    });
  }
}

// ---- router answers ----

Deno.test("legacy: unknown paths stay 404 (wrapped with the flag), redirects are unchanged", async () => {
  for (const path of ["/nope", "/topic", "/create_topics", "/debug/pprof"]) {
    await expectEveryMode("GET", path, () => error(404, "NOT_FOUND"));
  }
  for (const mode of MODES) {
    const got = await call(api(mode.legacy), "GET", "/LOOKUP?topic=t", mode.accept);
    assert.equal(got.status, 301, modeName(mode));
    assert.equal(got.headers.location, "/lookup?topic=t");
  }
});

Deno.test("legacy: any Accept other than exactly the v1 value gets the wrapped format", async () => {
  for (
    const accept of ["*/*", "application/json", "application/vnd.nsq; version=2.0", "text/html"]
  ) {
    const res = await api(true).handler(
      new Request("http://x/info", { headers: [["Accept", accept]] }),
    );
    assert.equal(
      await res.text(),
      '{"status_code":200,"status_txt":"OK","data":{"version":"1.3.0"}}',
    );
    assert.equal(res.headers.get("x-nsq-content-type"), null, accept);
  }
  assert.equal(ACCEPT_V1, NSQ_V1_ACCEPT);
});

Deno.test("legacy: requests are logged as usual, GET on a mutating route included", async () => {
  const target = api(true);
  await call(target, "GET", "/create_topic?topic=clicks", false);
  assert.match(target.logs.at(-2)!, /^INFO: DB: adding topic\(clicks\)$/);
  assert.match(target.logs.at(-1)!, /^INFO: 200 GET \/create_topic\?topic=clicks \(-\) \S+$/);
});

// ---- over a real socket ----

/** `curl -s URL`'s stdout, or undefined when no curl is installed. */
async function runCurl(url: string): Promise<string | undefined> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("curl", { args: ["-s", url], stdin: "null" }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
  return new TextDecoder().decode(output.stdout);
}

Deno.test("legacy: the documents' curl examples work as written with --legacy-http-api", async () => {
  await using daemon = startDaemon({ legacyHttpApi: true });
  // What curl sends: GET, Accept: */*.
  const curl = (path: string, accept = "*/*"): Promise<Response> =>
    daemon.get(path, { headers: { Accept: accept, "User-Agent": "curl/8.5.0" } });

  let res = await curl("/topic/create?topic=clicks");
  assert.equal(res.status, 200);
  assert.equal(await res.text(), '{"status_code":200,"status_txt":"OK","data":null}');
  assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
  assert.equal(res.headers.get("x-nsq-content-type"), null);
  assert.equal(res.headers.get("content-length"), "49");

  // The real curl, where one is installed (the example as written, host and port aside).
  const real = await runCurl(`${daemon.httpUrl}/topic/create?topic=clicks2`);
  if (real !== undefined) {
    assert.equal(real, '{"status_code":200,"status_txt":"OK","data":null}');
    assert.equal(
      await runCurl(`${daemon.httpUrl}/lookup?topic=clicks2`),
      '{"status_code":200,"status_txt":"OK","data":{"channels":[],"producers":[]}}',
    );
  }

  res = await curl("/create_channel?topic=clicks&channel=archive");
  assert.equal(await res.text(), '{"status_code":200,"status_txt":"OK","data":null}');
  res = await curl("/lookup?topic=clicks");
  assert.equal(
    await res.text(),
    '{"status_code":200,"status_txt":"OK","data":{"channels":["archive"],"producers":[]}}',
  );
  res = await curl("/lookup?topic=nope");
  assert.equal(res.status, 500);
  assert.equal(await res.text(), '{"status_code":500,"status_txt":"TOPIC_NOT_FOUND","data":null}');

  // go-nsq / nsqadmin ask for v1 and get it, byte for byte.
  res = await curl("/lookup?topic=clicks", NSQ_V1_ACCEPT);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), '{"channels":["archive"],"producers":[]}');
  assert.equal(res.headers.get("x-nsq-content-type"), "nsq; version=1.0");

  // Without the flag the same example is a 405.
  await using plain = startDaemon();
  res = await plain.get("/topic/create?topic=clicks", { headers: { Accept: "*/*" } });
  assert.equal(res.status, 405);
  assert.equal(res.headers.get("allow"), "OPTIONS, POST");
  assert.equal(await res.text(), '{"message":"METHOD_NOT_ALLOWED"}');
  res = await plain.get("/create_topic?topic=clicks");
  assert.equal(res.status, 404);
  assert.equal(await res.text(), '{"message":"NOT_FOUND"}');
});
