import assert from "node:assert/strict";
import {
  type AuthState,
  authUrl,
  bearerSecret,
  goQueryEscape,
  isAllowed,
  maySubscribe,
  maySubscribeChannel,
  mayUseTopic,
  parseAuthAnswer,
  seesEveryChannel,
  seesEveryTopic,
} from "../../../src/access/auth.ts";

function state(authorizations: unknown[], ttl = 60): AuthState {
  const parsed = parseAuthAnswer(JSON.stringify({ ttl, identity: "x", authorizations }));
  assert.ok(parsed.ok, JSON.stringify(parsed));
  return parsed.ok
    ? parsed.value
    : { ttlSeconds: 0, identity: "", identityUrl: "", authorizations: [] };
}

function refused(body: string, error: string): void {
  assert.deepEqual(parseAuthAnswer(body), { ok: false, error }, body);
}

Deno.test("auth: the query is nsqd's: /auth, parameters sorted and Go-escaped", () => {
  assert.equal(
    authUrl("127.0.0.1:4181", { remoteIp: "10.0.0.7", tls: false, secret: "s3cr3t" }),
    "http://127.0.0.1:4181/auth?common_name=&remote_ip=10.0.0.7&secret=s3cr3t&tls=false",
  );
  assert.equal(
    authUrl("https://auth.example/v1/check", { remoteIp: "::1", tls: true, secret: "a b&c=d/é" }),
    "https://auth.example/v1/check?common_name=&remote_ip=%3A%3A1&secret=a+b%26c%3Dd%2F%C3%A9&tls=true",
  );
  assert.equal(goQueryEscape("AZaz09-_.~ +%"), "AZaz09-_.~+%2B%25");
});

Deno.test("auth: an answer decodes into ttl, identity and compiled authorizations", () => {
  const parsed = parseAuthAnswer(
    '{"ttl":3600,"identity":"svc","identity_url":"http://id/svc","authorizations":' +
      '[{"topic":"^a$","channels":[".*"],"permissions":["subscribe","publish"]}],"extra":1}',
  );
  assert.ok(parsed.ok);
  if (!parsed.ok) return;
  assert.equal(parsed.value.ttlSeconds, 3600);
  assert.equal(parsed.value.identity, "svc");
  assert.equal(parsed.value.identityUrl, "http://id/svc");
  const [a] = parsed.value.authorizations;
  assert.equal(a.topic.source, "^a$");
  assert.deepEqual(a.channels.map((c) => c.source), [".*"]);
  assert.ok(a.subscribe && a.publish);
});

Deno.test("auth: keys match case-insensitively and nulls are zero values, as Go's decoder does", () => {
  const parsed = parseAuthAnswer(
    '{"TTL":5,"Identity":null,"Authorizations":[null,{"Topic":"t","CHANNELS":null,"permissions":null}]}',
  );
  assert.ok(parsed.ok, JSON.stringify(parsed));
  if (!parsed.ok) return;
  assert.equal(parsed.value.ttlSeconds, 5);
  assert.equal(parsed.value.authorizations.length, 2);
  assert.equal(parsed.value.authorizations[1].channels.length, 0);
});

Deno.test("auth: answers nsqd would refuse are refused, with nsqd's reasons", () => {
  refused('{"ttl":0}', "invalid TTL 0 (must be >0)");
  refused('{"ttl":-5}', "invalid TTL -5 (must be >0)");
  refused("null", "invalid TTL 0 (must be >0)");
  refused("{}", "invalid TTL 0 (must be >0)");
  refused(
    '{"ttl":1.5}',
    "json: cannot unmarshal number 1.5 into Go struct field State.ttl of type int",
  );
  refused(
    '{"ttl":1e3}',
    "json: cannot unmarshal number 1e3 into Go struct field State.ttl of type int",
  );
  refused(
    '{"ttl":"60"}',
    "json: cannot unmarshal string into Go struct field State.ttl of type int",
  );
  refused("[]", "json: cannot unmarshal array into Go value of type auth.State");
  refused(
    '{"ttl":60,"authorizations":[{"topic":"t","channels":[".*"],"permissions":["admin"]}]}',
    "unknown permission admin",
  );
  refused(
    '{"ttl":60,"authorizations":[{"topic":"(","channels":[],"permissions":["publish"]}]}',
    'unable to compile topic "(" error parsing regexp: missing closing ): `(`',
  );
  refused(
    '{"ttl":60,"authorizations":[{"topic":"t","channels":["a**"],"permissions":["subscribe"]}]}',
    'unable to compile channel "a**" error parsing regexp: invalid nested repetition operator: `**`',
  );
  refused(
    '{"ttl":60,"authorizations":{"topic":"t"}}',
    "json: cannot unmarshal object into Go struct field State.authorizations of type " +
      "[]auth.Authorization",
  );
  refused(
    '{"ttl":60,"authorizations":[{"channels":"x"}]}',
    "json: cannot unmarshal string into Go struct field Authorization.channels of type []string",
  );
  refused('{"ttl":60,"expires":"soon"}', 'parsing time "soon" as RFC 3339');
  assert.ok(!parseAuthAnswer('{"ttl":60').ok);
  assert.ok(!parseAuthAnswer("<html>").ok);
});

Deno.test("auth: IsAllowed as nsqd: subscribe needs a channel, publish needs none", () => {
  const s = state([
    { topic: "^orders$", channels: ["^billing$"], permissions: ["subscribe"] },
    { topic: "^events", channels: [], permissions: ["publish"] },
  ]);
  assert.ok(isAllowed(s, "orders", "billing"));
  assert.ok(!isAllowed(s, "orders", "shipping"));
  assert.ok(!isAllowed(s, "orders", ""));
  assert.ok(!isAllowed(s, "events_x", "c"));
  // Publishing matches no channel pattern at all in nsqd: an empty list never allows.
  assert.ok(!isAllowed(s, "events_x", ""));
});

Deno.test("auth: patterns are unanchored, as Go's MatchString", () => {
  const s = state([{ topic: "clicks", channels: ["arch"], permissions: ["subscribe"] }]);
  assert.ok(maySubscribe(s, "clicks"));
  assert.ok(maySubscribe(s, "mobile_clicks_v2"));
  assert.ok(maySubscribeChannel(s, "clicks", "archive"));
  assert.ok(!maySubscribeChannel(s, "clicks", "metrics"));
});

Deno.test("auth: may subscribe to a topic when some subscribe rule matches it and names a channel", () => {
  const s = state([
    { topic: "^a$", channels: [".*"], permissions: ["subscribe"] },
    { topic: "^b$", channels: [], permissions: ["subscribe"] },
    { topic: "^c$", channels: [".*"], permissions: ["publish"] },
  ]);
  assert.ok(maySubscribe(s, "a"));
  assert.ok(!maySubscribe(s, "b"));
  assert.ok(!maySubscribe(s, "c"));
  assert.ok(!maySubscribe(s, "z"));
});

Deno.test("auth: a topic is listed when the secret may publish to it or subscribe to it", () => {
  const s = state([
    { topic: "^a$", channels: [".*"], permissions: ["subscribe"] },
    { topic: "^b$", channels: [], permissions: ["subscribe"] },
    { topic: "^c$", channels: [], permissions: ["publish"] },
  ]);
  assert.deepEqual(["a", "b", "c", "d"].filter((t) => mayUseTopic(s, t)), ["a", "c"]);
});

Deno.test("auth: names nsqd refuses are never allowed, whatever the pattern", () => {
  const s = state([{ topic: ".*", channels: [".*"], permissions: ["subscribe", "publish"] }]);
  for (const bad of ["", "a b", "x".repeat(65), "a/b", "a#b"]) {
    assert.ok(!maySubscribe(s, bad), bad);
    assert.ok(!mayUseTopic(s, bad), bad);
    assert.ok(!maySubscribeChannel(s, "ok", bad), bad);
  }
  assert.ok(maySubscribe(s, "t#ephemeral"));
});

Deno.test("auth: answers that show everything are recognised (so nothing is filtered)", () => {
  const all = state([{ topic: ".*", channels: [""], permissions: ["subscribe"] }]);
  assert.ok(seesEveryTopic(all));
  assert.ok(seesEveryChannel(all, "t"));
  const some = state([{ topic: "^a", channels: ["^x$"], permissions: ["subscribe"] }]);
  assert.ok(!seesEveryTopic(some));
  assert.ok(!seesEveryChannel(some, "a"));
  assert.ok(!seesEveryChannel(some, "b"));
});

Deno.test("auth: the secret comes from `Authorization: Bearer`, as go-nsq and pynsq send it", () => {
  assert.equal(bearerSecret("Bearer s3cret"), "s3cret");
  assert.equal(bearerSecret("bearer  s3cret "), "s3cret");
  assert.equal(bearerSecret("Bearer a b"), "a b");
  for (const none of [undefined, "", "Bearer", "Bearer ", "Basic dXNlcjpwdw==", "s3cret"]) {
    assert.equal(bearerSecret(none), undefined, String(none));
  }
});
