import assert from "node:assert/strict";
import { createAccess } from "../../../src/access/access.ts";
import { type Network, parseNetworkList } from "../../../src/access/networks.ts";
import { captureLogger } from "../../support/helpers.ts";

function nets(text: string): Network[] {
  const parsed = parseNetworkList(text);
  assert.ok(parsed.ok);
  return parsed.ok ? parsed.value : [];
}

const NONE = {
  producerNetworks: undefined,
  adminNetworks: undefined,
  authHttpAddresses: [],
  httpClientRequestTimeoutMs: 5000,
};
const addr = (hostname: string, port = 4000): Deno.NetAddr => ({
  transport: "tcp",
  hostname,
  port,
});

Deno.test("access: nothing is built without an access flag", () => {
  const { logger } = captureLogger();
  assert.equal(createAccess(NONE, { logger }), undefined);
});

Deno.test("access: each rule that is on is named at start-up", () => {
  const { logger } = captureLogger();
  const access = createAccess({
    ...NONE,
    producerNetworks: nets("10.0.0.0/8"),
    authHttpAddresses: ["auth:4181"],
  }, { logger });
  assert.deepEqual(access?.summary, [
    "ACCESS: TCP clients only from 10.0.0.0/8",
    "ACCESS: mutating routes and /debug refused to all (no --admin-networks)",
    "ACCESS: /lookup, /channels, /topics, /nodes need a secret accepted by auth:4181 " +
    "(except from 10.0.0.0/8)",
  ]);
  const admins = createAccess({ ...NONE, adminNetworks: nets("::1") }, { logger });
  assert.deepEqual(admins?.summary, ["ACCESS: mutating routes and /debug only from ::1/128"]);
  assert.equal(admins?.admit, undefined);
  assert.equal(admins?.auth, undefined);
});

Deno.test("access: TCP admission refuses outsiders with one shared frame and counts them", () => {
  const { logger, logs } = captureLogger();
  const access = createAccess({ ...NONE, producerNetworks: nets("127.0.0.1") }, { logger })!;
  assert.equal(access.admit?.(addr("127.0.0.1")), undefined);
  assert.equal(access.admit?.(addr("::ffff:127.0.0.1")), undefined);
  const first = access.admit?.(addr("127.0.0.2", 1111));
  assert.ok(first !== undefined);
  assert.equal(first.reason, "not in --producer-networks");
  for (let i = 0; i < 1000; i++) assert.equal(access.admit?.(addr("127.0.0.2")), first);
  assert.equal(access.admit?.(addr("::1", 2222)), first);
  assert.match(
    access.metrics.render(),
    /^nsqlookupd_refused_total\{protocol="tcp",reason="network"\} 1002$/m,
  );
  // The TCP server logs refusals, rate-limited: the admission test itself writes nothing.
  assert.deepEqual(logs, []);
});
