import assert from "node:assert/strict";
import { createAccess } from "../../../src/access/access.ts";
import { captureLogger, networkList, NO_ACCESS } from "../../support/helpers.ts";

const addr = (hostname: string, port = 4000): Deno.NetAddr => ({
  transport: "tcp",
  hostname,
  port,
});

Deno.test("access: nothing is built without an access flag", () => {
  const { logger } = captureLogger();
  assert.equal(createAccess(NO_ACCESS, { logger }), undefined);
});

Deno.test("access: each rule that is on is named at start-up", () => {
  const { logger } = captureLogger();
  const access = createAccess({
    ...NO_ACCESS,
    producerNetworks: networkList("10.0.0.0/8"),
    authHttpAddresses: ["auth:4181"],
  }, { logger });
  assert.deepEqual(access?.summary, [
    "ACCESS: TCP clients only from 10.0.0.0/8",
    "ACCESS: mutating routes and /debug refused to all (no --admin-networks)",
    "ACCESS: /lookup, /channels, /topics, /nodes need a secret accepted by auth:4181 " +
    "(except from 10.0.0.0/8)",
  ]);
  const admins = createAccess({ ...NO_ACCESS, adminNetworks: networkList("::1") }, { logger });
  assert.deepEqual(admins?.summary, ["ACCESS: mutating routes and /debug only from ::1/128"]);
  assert.equal(admins?.admit, undefined);
  assert.equal(admins?.auth, undefined);
});

Deno.test("access: TCP admission refuses outsiders with one shared frame and counts them", () => {
  const { logger, logs } = captureLogger();
  const access = createAccess({ ...NO_ACCESS, producerNetworks: networkList("127.0.0.1") }, {
    logger,
  })!;
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
