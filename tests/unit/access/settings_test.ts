import assert from "node:assert/strict";
import {
  formatNetworks,
  parseAuthAddress,
  parseNetworkItems,
  parseTlsVersion,
  tlsVersionError,
} from "../../../src/access/settings.ts";

Deno.test("settings: TLS versions are nsqd's names, in any case", () => {
  assert.deepEqual(parseTlsVersion("TLS1.2"), { ok: true, value: "tls1.2" });
  assert.deepEqual(parseTlsVersion("ssl3.0"), { ok: true, value: "ssl3.0" });
  assert.deepEqual(parseTlsVersion("tls1.4"), {
    ok: false,
    error: 'unknown tlsVersionOption "tls1.4"',
  });
});

Deno.test("settings: every minimum up to tls1.2 holds under Deno; tls1.3 cannot be enforced", () => {
  for (const v of ["ssl3.0", "tls1.0", "tls1.1", "tls1.2"] as const) {
    assert.equal(tlsVersionError(v), undefined, v);
  }
  assert.match(tlsVersionError("tls1.3") ?? "", /not supported/);
});

Deno.test("settings: auth addresses are host:port or http(s) URLs", () => {
  for (
    const good of [
      "auth:4181",
      "127.0.0.1:4181",
      "[::1]:4181",
      "http://a/auth",
      "https://a:8443/x?y=1",
    ]
  ) {
    assert.deepEqual(parseAuthAddress(good), { ok: true, value: good }, good);
  }
  for (const bad of ["auth", "auth:", ":4181", "auth:0", "ftp://a/x", "http://", "a:99999"]) {
    assert.ok(!parseAuthAddress(bad).ok, bad);
  }
});

Deno.test("settings: network items are lists themselves, and print back joined", () => {
  const parsed = parseNetworkItems(["10.0.0.0/8,::1", "192.168.1.7"]);
  assert.ok(parsed.ok);
  if (!parsed.ok) return;
  assert.equal(formatNetworks(parsed.value), "10.0.0.0/8,::1/128,192.168.1.7/32");
  assert.equal(formatNetworks(undefined), "");
  assert.ok(!parseNetworkItems(["10.0.0.0/8", "x"]).ok);
});
