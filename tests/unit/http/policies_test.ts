// Policies wrap routes (decorate) and the whole API (decorateExchange).

import assert from "node:assert/strict";
import { httpError } from "../../../src/errors.ts";
import type { HttpAnswer } from "../../../src/gocompat/http1.ts";
import {
  decorate,
  decorateExchange,
  logged,
  observed,
  type RoutePolicy,
} from "../../../src/http/policies.ts";
import type { RouteRequest } from "../../../src/http/routes.ts";
import { captureLogger } from "../../support/helpers.ts";

const REQ: RouteRequest = { params: new Map(), request: { method: "GET", target: "/x" } };

Deno.test("decorate applies route policies outermost first, then the wire format", async () => {
  const order: string[] = [];
  const tag = (name: string): RoutePolicy => (next) => (req) => {
    order.push(name);
    return next(req);
  };
  const handler = decorate(() => ({ kind: "json", body: "{}" }), tag("outer"), tag("inner"));
  const answer = await handler(REQ, "v1");
  assert.deepEqual(order, ["outer", "inner"]);
  assert.equal(answer.status, 200);
  assert.equal(answer.body, "{}");
  const legacy = await handler(REQ, "legacy");
  assert.equal(legacy.body, '{"status_code":200,"status_txt":"OK","data":{}}');
});

Deno.test("a route policy may answer in the route's place, in the request's format", async () => {
  const refuse: RoutePolicy = () => () => httpError(403, "FORBIDDEN");
  const handler = decorate(() => {
    throw new Error("the route must not run");
  }, refuse);
  const v1 = await handler(REQ, "v1");
  assert.equal(v1.status, 403);
  assert.equal(v1.body, '{"message":"FORBIDDEN"}');
  const legacy = await handler(REQ, "legacy");
  assert.equal(legacy.status, 500);
});

Deno.test("an asynchronous route policy gives an asynchronous answer", async () => {
  const later: RoutePolicy = (next) => async (req) => await next(req);
  const answer = decorate(() => ({ kind: "empty" }), later)(REQ, "v1");
  assert.ok(answer instanceof Promise);
  assert.equal((await answer).status, 200);
});

Deno.test("observed and logged see every answer, synchronous or not, with its route label", async () => {
  const seen: [string, number][] = [];
  const { logger, logs } = captureLogger("info");
  const answers: Record<string, HttpAnswer | Promise<HttpAnswer>> = {
    "/now": { status: 200, headers: [], body: null },
    "/later": Promise.resolve({ status: 404, headers: [], body: null }),
  };
  const exchange = decorateExchange(
    (request) => ({ label: request.target, answer: answers[request.target] }),
    observed({ request: (route, status) => seen.push([route, status]) }),
    logged(logger),
  );
  const now = exchange({ method: "GET", target: "/now", remote: "127.0.0.1:1" });
  assert.ok(!(now.answer instanceof Promise));
  await exchange({ method: "GET", target: "/later", remote: "127.0.0.1:2" }).answer;
  assert.deepEqual(seen, [["/now", 200], ["/later", 404]]);
  assert.match(logs[0], /^INFO: 200 GET \/now \(127\.0\.0\.1:1\) /);
  assert.match(logs[1], /^INFO: 404 GET \/later \(127\.0\.0\.1:2\) /);
});
