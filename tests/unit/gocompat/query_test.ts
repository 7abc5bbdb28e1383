// Pure tests of the strict Go-style query parser (src/query.ts) and the
// Go-compatible JSON string writer (src/json.ts).

import assert from "node:assert/strict";
import { parseQuery, queryUnescape } from "../../../src/gocompat/query.ts";
import { goJsonString, goJsonStringArray } from "../../../src/gocompat/json.ts";

const entries = (query: string): [string, string][] | undefined => {
  const params = parseQuery(query);
  return params.ok ? [...params.value.entries()] : undefined;
};

// ---- parseQuery ----

Deno.test("an empty query string has no parameters", () => {
  assert.deepEqual(entries(""), []);
});

Deno.test("a query string is split on & into key=value pairs", () => {
  assert.deepEqual(entries("topic=t1&channel=c1"), [["topic", "t1"], ["channel", "c1"]]);
});

Deno.test("a parameter present but empty (?topic=) counts as present with an empty value", () => {
  const params = parseQuery("topic=");
  assert.ok(params.ok);
  assert.equal(params.value.has("topic"), true);
  assert.equal(params.value.get("topic"), "");
});

Deno.test("a key without = is present with an empty value", () => {
  assert.deepEqual(entries("topic"), [["topic", ""]]);
});

Deno.test("when a parameter repeats, its first value counts", () => {
  assert.deepEqual(entries("topic=a&topic=b&topic=c"), [["topic", "a"]]);
});

Deno.test("the value is everything after the first =", () => {
  assert.deepEqual(entries("node=a=b=c"), [["node", "a=b=c"]]);
});

Deno.test("empty pairs between & separators are skipped", () => {
  assert.deepEqual(entries("&&topic=t&&"), [["topic", "t"]]);
});

Deno.test("a ; separator makes the query invalid", () => {
  assert.equal(parseQuery("topic=t;channel=c").ok, false);
  assert.equal(parseQuery("a=1&b;").ok, false);
  assert.equal(parseQuery(";").ok, false);
});

Deno.test("an invalid percent-escape makes the query invalid", () => {
  for (const query of ["topic=%zz", "topic=%4", "topic=%", "topic=a%g1", "%zz=t", "x=1&topic=%"]) {
    assert.equal(parseQuery(query).ok, false, query);
  }
});

Deno.test("an invalid escape anywhere fails the query even after valid pairs", () => {
  assert.equal(parseQuery("topic=t&channel=%%").ok, false);
});

Deno.test("percent-escapes decode keys and values as UTF-8", () => {
  assert.deepEqual(entries("t%6Fpic=a%2Fb&c=%E2%82%AC"), [["topic", "a/b"], ["c", "€"]]);
});

Deno.test("+ in a query decodes to a space, %2B to a plus", () => {
  assert.deepEqual(entries("topic=a+b&node=c%2Bd"), [["topic", "a b"], ["node", "c+d"]]);
});

Deno.test("hex digits of an escape may be upper or lower case", () => {
  assert.deepEqual(entries("a=%3a%3A"), [["a", "::"]]);
});

// ---- queryUnescape ----

Deno.test("queryUnescape returns plain text unchanged", () => {
  assert.deepEqual(queryUnescape("127.0.0.1:4151"), { ok: true, value: "127.0.0.1:4151" });
});

Deno.test("queryUnescape rejects a truncated escape at the end", () => {
  assert.deepEqual(queryUnescape("abc%"), { ok: false, error: "invalid URL escape" });
  assert.deepEqual(queryUnescape("abc%4"), { ok: false, error: "invalid URL escape" });
  assert.deepEqual(queryUnescape("abc%41"), { ok: true, value: "abcA" });
});

Deno.test("queryUnescape decodes a mix of escapes, pluses and plain bytes", () => {
  assert.deepEqual(queryUnescape("a+%2B+b%20c"), { ok: true, value: "a + b c" });
});

// ---- goJsonString ----

Deno.test("goJsonString quotes plain ASCII as is", () => {
  assert.equal(goJsonString("127.0.0.1:4150 vm-01_x.y"), '"127.0.0.1:4150 vm-01_x.y"');
  assert.equal(goJsonString(""), '""');
});

Deno.test("goJsonString escapes < > & as \\u003c \\u003e \\u0026 like Go's encoding/json", () => {
  assert.equal(goJsonString("<a&b>"), '"\\u003ca\\u0026b\\u003e"');
});

Deno.test("goJsonString escapes quote and backslash with a backslash", () => {
  assert.equal(goJsonString('say "hi" \\o/'), '"say \\"hi\\" \\\\o/"');
});

Deno.test("goJsonString writes \\n \\r \\t short and other control characters as \\u00XX", () => {
  assert.equal(goJsonString("a\nb\rc\td"), '"a\\nb\\rc\\td"');
  // Go 1.19 (the reference's toolchain) has no \b or \f short forms.
  assert.equal(goJsonString("\b\f\x00\x1f"), '"\\u0008\\u000c\\u0000\\u001f"');
});

Deno.test("goJsonString escapes U+2028 and U+2029 but not other non-ASCII", () => {
  assert.equal(goJsonString("a\u2028b\u2029c"), '"a\\u2028b\\u2029c"');
  assert.equal(goJsonString("é€😀"), '"é€😀"');
});

Deno.test("goJsonString leaves DEL (0x7f) and / unescaped, as Go does", () => {
  assert.equal(goJsonString("a\x7fb/c"), '"a\x7fb/c"');
});

Deno.test("goJsonString output parses back to the same string", () => {
  const text = '<host>&"q"\\\n\t\u2028\x01é';
  assert.equal(JSON.parse(goJsonString(text)), text);
});

Deno.test("goJsonStringArray writes a JSON array of Go-escaped strings", () => {
  assert.equal(goJsonStringArray([]), "[]");
  assert.equal(goJsonStringArray(["t1", "a<b"]), '["t1","a\\u003cb"]');
});
