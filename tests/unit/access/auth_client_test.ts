import assert from "node:assert/strict";
import { MAX_AUTH_ANSWER_BYTES } from "../../../src/access/auth.ts";
import { httpAuthQuery } from "../../../src/access/auth_client.ts";
import { startAuthServer, subscriber } from "../../support/auth_server.ts";
import { freePort } from "../../support/helpers.ts";

const query = { remoteIp: "10.1.2.3", tls: true, secret: "s3 cr&t" };

Deno.test("auth client: asks as nsqd does (path, parameters, Accept) and returns the answer", async () => {
  await using auth = startAuthServer({ "s3 cr&t": subscriber("^t$") });
  const result = await httpAuthQuery()(auth.address, query, 2000);
  assert.equal(result.kind, "answer");
  if (result.kind !== "answer") return;
  assert.equal(result.status, 200);
  assert.deepEqual(JSON.parse(result.body).authorizations[0].topic, "^t$");
  assert.deepEqual(auth.queries, [{
    path: "/auth",
    secret: "s3 cr&t",
    remoteIp: "10.1.2.3",
    tls: "true",
    commonName: "",
    search: "?common_name=&remote_ip=10.1.2.3&secret=s3+cr%26t&tls=true",
    accept: "application/vnd.nsq; version=1.0",
  }]);
});

Deno.test("auth client: a full URL is asked as given, with the parameters appended", async () => {
  await using auth = startAuthServer({ "s3 cr&t": subscriber("^t$") });
  const result = await httpAuthQuery()(`http://${auth.address}/custom/path`, query, 2000);
  assert.equal(result.kind, "answer");
  assert.equal(auth.queries[0].path, "/custom/path");
});

Deno.test("auth client: statuses other than 200 come back as answers with their body", async () => {
  await using auth = startAuthServer();
  const refused = await httpAuthQuery()(auth.address, query, 2000);
  assert.deepEqual(refused, {
    kind: "answer",
    status: 403,
    statusText: "Forbidden",
    body: "NOT_AUTHORIZED",
  });
});

Deno.test("auth client: a server that does not answer in time is an error naming the timeout", async () => {
  await using auth = startAuthServer();
  auth.mode = "stall";
  const result = await httpAuthQuery()(auth.address, query, 100);
  assert.deepEqual(result, { kind: "error", reason: "no answer within 100ms" });
});

Deno.test("auth client: a refused connection is an error that never shows the secret", async () => {
  const result = await httpAuthQuery()(`127.0.0.1:${freePort()}`, query, 2000);
  assert.equal(result.kind, "error");
  if (result.kind !== "error") return;
  assert.ok(!result.reason.includes("cr&t") && !result.reason.includes("cr%26t"), result.reason);
  assert.ok(!result.reason.includes("secret=s3"), result.reason);
});

Deno.test("auth client: an answer larger than the bound is an error, not read to the end", async () => {
  await using auth = startAuthServer({ big: "x".repeat(MAX_AUTH_ANSWER_BYTES + 1) });
  const result = await httpAuthQuery()(auth.address, { ...query, secret: "big" }, 5000);
  assert.deepEqual(result, {
    kind: "error",
    reason: `answer larger than ${MAX_AUTH_ANSWER_BYTES} bytes`,
  });
});
