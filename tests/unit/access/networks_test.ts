import assert from "node:assert/strict";
import {
  formatIp,
  NetworkSet,
  parseCidr,
  parseIp,
  parseNetworkList,
} from "../../../src/access/networks.ts";

function set(text: string): NetworkSet {
  const parsed = parseNetworkList(text);
  assert.ok(parsed.ok, JSON.stringify(parsed));
  return new NetworkSet(parsed.ok ? parsed.value : []);
}

function cidrText(text: string): string {
  const parsed = parseCidr(text);
  assert.ok(parsed.ok, JSON.stringify(parsed));
  return parsed.ok ? new NetworkSet([parsed.value]).toString() : "";
}

Deno.test("networks: IPv4 CIDRs clear the host bits, as Go's ParseCIDR does", () => {
  assert.equal(cidrText("10.1.2.3/8"), "10.0.0.0/8");
  assert.equal(cidrText("192.168.7.200/30"), "192.168.7.200/30");
  assert.equal(cidrText("192.168.7.203/30"), "192.168.7.200/30");
  assert.equal(cidrText("0.0.0.0/0"), "0.0.0.0/0");
  assert.equal(cidrText("127.0.0.1/32"), "127.0.0.1/32");
});

Deno.test("networks: IPv6 CIDRs in every textual form, printed as RFC 5952", () => {
  assert.equal(cidrText("fd00::1/8"), "fd00::/8");
  assert.equal(cidrText("::1/128"), "::1/128");
  assert.equal(cidrText("2001:DB8:0:0:1:0:0:1/128"), "2001:db8::1:0:0:1/128");
  assert.equal(cidrText("2001:db8::/32"), "2001:db8::/32");
  assert.equal(cidrText("::/0"), "::/0");
  assert.equal(cidrText("1:2:3:4:5:6:7:8/64"), "1:2:3:4::/64");
  assert.equal(cidrText("64:ff9b::192.0.2.33/96"), "64:ff9b::/96");
});

Deno.test("networks: an IPv4-mapped CIDR is the IPv4 network it maps (Go's rule)", () => {
  assert.equal(cidrText("::ffff:10.0.0.0/104"), "10.0.0.0/8");
  assert.equal(cidrText("::ffff:10.0.0.1/128"), "10.0.0.1/32");
  assert.equal(cidrText("::ffff:0:0/80"), "0.0.0.0/0");
});

Deno.test("networks: malformed CIDRs are errors naming the input", () => {
  for (
    const bad of [
      "10.0.0.0",
      "10.0.0.0/33",
      "10.0.0/8",
      "10.0.0.256/8",
      "010.0.0.0/8",
      "10.0.0.0/08",
      "10.0.0.0/",
      "/8",
      "::1/129",
      "1::2::3/64",
      "1:2:3:4:5:6:7:8:9/64",
      "1:2:3:4:5:6:7/64",
      "12345::/16",
      "fe80::1%eth0/64",
      "::ffff:1.2.3/96",
      "example.com/8",
    ]
  ) {
    assert.deepEqual(parseCidr(bad), { ok: false, error: `invalid CIDR address: ${bad}` }, bad);
  }
});

Deno.test("networks: a list takes commas, spaces around items and bare host addresses", () => {
  assert.equal(set("10.0.0.0/8, 127.0.0.1 ,::1").toString(), "10.0.0.0/8,127.0.0.1/32,::1/128");
  assert.equal(set("::ffff:192.0.2.1").toString(), "192.0.2.1/32");
  assert.deepEqual(parseNetworkList("10.0.0.0/8,,::1"), {
    ok: false,
    error: 'empty network in "10.0.0.0/8,,::1"',
  });
  assert.deepEqual(parseNetworkList("10.0.0.0/8,nope"), {
    ok: false,
    error: "invalid CIDR address: nope",
  });
});

Deno.test("networks: membership by prefix, for IPv4 and IPv6 peers", () => {
  const s = set("10.0.0.0/8,192.168.1.128/25,fd00::/8,::1");
  for (const inside of ["10.0.0.1", "10.255.255.255", "192.168.1.128", "192.168.1.255"]) {
    assert.ok(s.contains(inside), inside);
  }
  for (const inside of ["fd12:3456::1", "::1", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]) {
    assert.ok(s.contains(inside), inside);
  }
  for (const outside of ["11.0.0.1", "192.168.1.127", "127.0.0.1", "fe80::1", "::2", "::"]) {
    assert.ok(!s.contains(outside), outside);
  }
});

Deno.test("networks: IPv4 peers of a dual-stack listener (::ffff:a.b.c.d) match IPv4 networks", () => {
  const s = set("127.0.0.1/32");
  assert.ok(s.contains("::ffff:127.0.0.1"));
  assert.ok(!s.contains("::ffff:127.0.0.2"));
  assert.ok(!s.contains("::1"));
  assert.ok(set("::ffff:127.0.0.0/104").contains("127.9.9.9"));
});

Deno.test("networks: zones are ignored and non-addresses are never members", () => {
  assert.ok(set("fe80::/10").contains("fe80::1%eth0"));
  const all = set("0.0.0.0/0,::/0");
  for (const bad of ["", "localhost", "1.2.3", "unix", "::g"]) assert.ok(!all.contains(bad), bad);
});

Deno.test("networks: /0 admits every address of its family only", () => {
  assert.ok(set("0.0.0.0/0").contains("203.0.113.9"));
  assert.ok(!set("0.0.0.0/0").contains("2001:db8::1"));
  assert.ok(set("::/0").contains("2001:db8::1"));
  assert.ok(!set("::/0").contains("203.0.113.9"));
});

Deno.test("networks: addresses print the way Go's IP.String() does", () => {
  const cases: [string, string][] = [
    ["0:0:0:0:0:0:0:1", "::1"],
    ["2001:db8:0:0:0:0:2:1", "2001:db8::2:1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
    ["::ffff:1.2.3.4", "1.2.3.4"],
    ["::1.2.3.4", "::102:304"],
  ];
  for (const [input, text] of cases) assert.equal(formatIp(parseIp(input)!), text, input);
});

Deno.test("networks: the membership memo is bounded and keeps answering right", () => {
  const s = set("10.0.0.0/8");
  for (let i = 0; i < 10_000; i++) {
    const host = `10.${(i >> 8) & 255}.${i & 255}.1`;
    assert.ok(s.contains(host));
    assert.ok(!s.contains(`11.${(i >> 8) & 255}.${i & 255}.1`));
  }
});
