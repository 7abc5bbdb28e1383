// Unit tests of src/gocompat/request_uri.ts: which request targets Go 1.19's
// url.ParseRequestURI accepts (each case checked against nsqlookupd v1.3.0:
// a refused target is answered 400 right after the request line).

import assert from "node:assert/strict";
import { isValidRequestUri } from "../../../src/gocompat/request_uri.ts";

Deno.test("paths, `*` and absolute URLs of any scheme are accepted", () => {
  for (
    const target of [
      "/",
      "/ping",
      "/lookup?topic=t",
      "*",
      "http://127.0.0.1:4161/ping",
      "HTTPS://example.com/info?x=1",
      "ftp://x/ping",
      "a+b-c.d://x/ping",
      "//x/ping",
      "/a//b/../c",
    ]
  ) {
    assert.equal(isValidRequestUri(target), true, target);
  }
});

Deno.test("an opaque `scheme:rest` is accepted, as Go does (it routes to 404)", () => {
  assert.equal(isValidRequestUri("foo:bar"), true);
  assert.equal(isValidRequestUri("mailto:a@b"), true);
  assert.equal(isValidRequestUri("x:"), true);
});

Deno.test("a target that is neither a path, `*` nor a `scheme:` is refused", () => {
  for (
    const target of ["", "lookup", "lookup/x", "**", "*x", "?topic=t", "./lookup", "1http://x"]
  ) {
    assert.equal(isValidRequestUri(target), false, target);
  }
});

Deno.test("a colon first is a missing scheme, refused", () => {
  assert.equal(isValidRequestUri(":80/ping"), false);
  assert.equal(isValidRequestUri("://x/ping"), false);
});

Deno.test("a malformed percent escape in the path is refused; in the query it is not looked at", () => {
  assert.equal(isValidRequestUri("/p%zzing"), false);
  assert.equal(isValidRequestUri("/ping%4"), false);
  assert.equal(isValidRequestUri("/ping%"), false);
  assert.equal(isValidRequestUri("/caf%C3%A9"), true);
  assert.equal(isValidRequestUri("/ping?a=%zz"), true);
  assert.equal(isValidRequestUri("/ping?"), true);
});

Deno.test("an authority is checked as Go's parseHost and parseAuthority do", () => {
  for (
    const target of [
      "http://[::1]/ping",
      "http://[::1]:4161/ping",
      "http://[fe80::1%25en0]/ping",
      "http://x:/ping",
      "http://x:4161",
      "http://user@x/ping",
      "http://user:pa%20ss@x/ping",
      "http://%C3%A9x/ping",
      "http://x!$&'()*+,;=/ping",
    ]
  ) {
    assert.equal(isValidRequestUri(target), true, target);
  }
  for (
    const target of [
      "http://[::1/ping",
      "http://[::1]x/ping",
      "http://x:8a/ping",
      "http://x{y/ping",
      "http://x%41/ping", // an escaped ASCII byte in a host
      "http://u{@x/ping",
      "http://u%zz@x/ping",
      "http://[fe80::1%25%00]/ping",
    ]
  ) {
    assert.equal(isValidRequestUri(target), false, target);
  }
});
