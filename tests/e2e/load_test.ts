// A small run of scripts/load.ts inside the test suite: 500 connections held
// (100 identified producers) against a daemon process, HTTP latency sampled
// meanwhile, then every connection closed and the daemon checked to have
// forgotten them all (/metrics, /nodes, /lookup). `deno task load` is the
// 10,000-connection version.

import assert from "node:assert/strict";
import { runLoad } from "../../scripts/load.ts";

Deno.test("500 connections (100 producers) are held, served, and all cleaned up when they close", async () => {
  const result = await runLoad({ connections: 500, producers: 100, seconds: 2 });
  assert.deepEqual(result.failures, []);
  assert.equal(result.connected, 500);
  assert.equal(result.identified, 100);
  assert.equal(result.lookupProducers, 2); // load_0 of 50 topics
  assert.deepEqual(result.after, { connections: 0, identified: 0, nodes: 0, lookupProducers: 0 });
  assert.ok(result.ping.length > 10 && result.lookup.length > 10);
  assert.equal(result.exitCode, 0);
});
