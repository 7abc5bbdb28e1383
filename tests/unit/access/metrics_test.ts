import assert from "node:assert/strict";
import { createAccess } from "../../../src/access/access.ts";
import { createAccessMetrics } from "../../../src/access/metrics.ts";
import { captureLogger, networkList, NO_ACCESS } from "../../support/helpers.ts";

Deno.test("access metrics: every refusal reason of the rules that are on exists from zero", () => {
  const metrics = createAccessMetrics({
    tcpRefusals: false,
    httpRefusals: ["network", "auth_required"],
    authAddresses: ["a:1", "b:2"],
  });
  const text = metrics.render();
  assert.ok(text.includes('nsqlookupd_refused_total{protocol="http",reason="network"} 0'));
  assert.ok(text.includes('nsqlookupd_refused_total{protocol="http",reason="auth_required"} 0'));
  assert.ok(!text.includes('protocol="tcp"'));
  for (const server of ["a:1", "b:2"]) {
    for (const result of ["granted", "refused", "failed"]) {
      assert.ok(
        text.includes(`nsqlookupd_auth_queries_total{server="${server}",result="${result}"} 0`),
      );
    }
  }
  assert.ok(text.includes("nsqlookupd_auth_cache_entries 0"));
  assert.ok(text.includes("nsqlookupd_auth_servers_failing 0"));
});

Deno.test("access metrics: refusals and auth queries are counted by their labels", () => {
  const metrics = createAccessMetrics({ tcpRefusals: true, httpRefusals: [], authAddresses: [] });
  metrics.observer.refused("tcp", "network");
  metrics.observer.refused("tcp", "network");
  metrics.observer.refused("http", "unauthorized");
  metrics.auth.query("a:1", "failed");
  const text = metrics.render();
  assert.ok(text.includes('nsqlookupd_refused_total{protocol="tcp",reason="network"} 2'));
  assert.ok(text.includes('nsqlookupd_refused_total{protocol="http",reason="unauthorized"} 1'));
  assert.ok(text.includes('nsqlookupd_auth_queries_total{server="a:1",result="failed"} 1'));
  // Without auth servers, no auth gauges.
  assert.ok(!text.includes("nsqlookupd_auth_cache_entries"));
});

Deno.test("access metrics: the assembled rules show their series from zero", () => {
  const { logger } = captureLogger();
  const access = createAccess({
    ...NO_ACCESS,
    adminNetworks: networkList("::1"),
    authHttpAddresses: ["a:1", "b:2"],
  }, { logger })!;
  const text = access.metrics.render();
  for (
    const reason of ["network", "auth_required", "auth_failed", "unauthorized", "auth_unavailable"]
  ) {
    assert.ok(
      text.includes(`nsqlookupd_refused_total{protocol="http",reason="${reason}"} 0`),
      reason,
    );
  }
  assert.ok(!text.includes('protocol="tcp"'));
  assert.ok(text.includes('nsqlookupd_auth_queries_total{server="b:2",result="failed"} 0'));
  assert.ok(text.includes("nsqlookupd_auth_cache_entries 0"));
  assert.ok(text.includes("nsqlookupd_auth_servers_failing 0"));
});
