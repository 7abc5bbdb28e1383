// The access rules' metrics, rendered after the daemon's own: refusals by
// protocol and reason, auth server queries by server and result, and the
// state of the auth cache. Only present when an access flag is given.

import { Counter, Gauge, MetricsRegistry } from "../ops/prometheus.ts";
import type { AuthObserver, AuthService } from "./auth_service.ts";
import type { AccessObserver, RefusalReason } from "./policy.ts";

export interface AccessMetrics {
  readonly observer: AccessObserver;
  readonly auth: AuthObserver;
  render(): string;
}

export interface AccessMetricsSources {
  /** Series that exist from the start (at 0), for the rules that are on. */
  readonly tcpRefusals: boolean;
  readonly httpRefusals: readonly RefusalReason[];
  readonly authAddresses: readonly string[];
  /** Read at scrape time. */
  readonly auth?: () => AuthService | undefined;
}

export function createAccessMetrics(sources: AccessMetricsSources): AccessMetrics {
  const metrics = new MetricsRegistry();
  const refused = metrics.add(
    new Counter(
      "nsqlookupd_refused_total",
      "TCP connections and HTTP requests refused by --producer-networks, --admin-networks or " +
        "the auth server, by protocol and reason.",
      ["protocol", "reason"],
    ),
  );
  if (sources.tcpRefusals) refused.inc(["tcp", "network"], 0);
  for (const reason of sources.httpRefusals) refused.inc(["http", reason], 0);
  const queries = metrics.add(
    new Counter(
      "nsqlookupd_auth_queries_total",
      "Queries to auth servers, by server and result (granted, refused, failed).",
      ["server", "result"],
    ),
  );
  for (const server of sources.authAddresses) {
    for (const result of ["granted", "refused", "failed"]) queries.inc([server, result], 0);
  }
  if (sources.authAddresses.length > 0) {
    metrics.add(
      new Gauge(
        "nsqlookupd_auth_cache_entries",
        "Auth answers cached (per secret and client address).",
        [],
        (set) => set([], sources.auth?.()?.cacheSize ?? 0),
      ),
    );
    metrics.add(
      new Gauge(
        "nsqlookupd_auth_servers_failing",
        "Auth servers whose last query failed (they are rested, then retried).",
        [],
        (set) => set([], sources.auth?.()?.failingServers ?? 0),
      ),
    );
  }
  return {
    observer: { refused: (protocol, reason) => refused.inc([protocol, reason]) },
    auth: { query: (server, result) => queries.inc([server, result]) },
    render: () => metrics.render(),
  };
}
