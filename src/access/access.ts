// The access rules put together from the options: the policy, the auth
// service, their metrics and the TCP admission test. Nothing is built when no
// access flag is given, so the daemon then runs exactly as before.

import type { Logger } from "../ops/logger.ts";
import { AuthService, type QueryFn } from "./auth_service.ts";
import { httpAuthQuery } from "./auth_client.ts";
import { type AccessMetrics, createAccessMetrics } from "./metrics.ts";
import { type Network, NetworkSet } from "./networks.ts";
import { AccessPolicy, type RefusalReason, tcpRefusalFrame } from "./policy.ts";

export interface AccessSettings {
  readonly producerNetworks: readonly Network[] | undefined;
  readonly adminNetworks: readonly Network[] | undefined;
  readonly authHttpAddresses: readonly string[];
  readonly httpClientRequestTimeoutMs: number;
}

/** What the TCP server does with a peer it must not serve: write `frame`, close. */
export interface TcpRefusal {
  readonly frame: Uint8Array;
  readonly reason: string;
}

export interface Access {
  readonly policy: AccessPolicy;
  readonly auth: AuthService | undefined;
  readonly metrics: AccessMetrics;
  /** The TCP server's admission test; undefined when anyone may register. */
  readonly admit: ((remote: Deno.NetAddr) => TcpRefusal | undefined) | undefined;
  /** One line per rule that is on, for the start-up log. */
  readonly summary: readonly string[];
}

export interface AccessDeps {
  logger: Logger;
  /** How auth servers are asked (tests inject their own). */
  query?: QueryFn;
  /** Monotonic milliseconds. */
  now?: () => number;
}

/** The rules of `settings`, or undefined when none is on. */
export function createAccess(settings: AccessSettings, deps: AccessDeps): Access | undefined {
  const { producerNetworks, adminNetworks, authHttpAddresses } = settings;
  if (
    producerNetworks === undefined && adminNetworks === undefined && authHttpAddresses.length === 0
  ) {
    return undefined;
  }
  const authOn = authHttpAddresses.length > 0;
  let auth: AuthService | undefined;
  const metrics = createAccessMetrics({
    tcpRefusals: producerNetworks !== undefined,
    httpRefusals: httpReasons(adminNetworks !== undefined, authOn),
    authAddresses: authHttpAddresses,
    auth: () => auth,
  });
  if (authOn) {
    auth = new AuthService({
      addresses: authHttpAddresses,
      query: deps.query ?? httpAuthQuery(),
      timeoutMs: settings.httpClientRequestTimeoutMs,
      logger: deps.logger,
      now: deps.now,
      observer: metrics.auth,
    });
  }
  const producers = producerNetworks === undefined ? undefined : new NetworkSet(producerNetworks);
  const admins = adminNetworks === undefined ? undefined : new NetworkSet(adminNetworks);
  const policy = new AccessPolicy({
    producerNetworks: producers,
    adminNetworks: admins,
    auth,
    observer: metrics.observer,
  });
  return {
    policy,
    auth,
    metrics,
    admit: producers === undefined ? undefined : tcpAdmission(policy, metrics),
    summary: summary(producers, admins, authHttpAddresses),
  };
}

function httpReasons(admin: boolean, auth: boolean): RefusalReason[] {
  const reasons: RefusalReason[] = admin || auth ? ["network"] : [];
  if (auth) reasons.push("auth_required", "auth_failed", "unauthorized", "auth_unavailable");
  return reasons;
}

/**
 * Refuses peers outside --producer-networks: one precomputed frame and a
 * counter. The TCP server writes the frame, closes, and logs the refusals
 * (rate-limited) with `reason`.
 */
function tcpAdmission(
  policy: AccessPolicy,
  metrics: AccessMetrics,
): (remote: Deno.NetAddr) => TcpRefusal | undefined {
  const refusal: TcpRefusal = { frame: tcpRefusalFrame(), reason: "not in --producer-networks" };
  return (remote) => {
    if (policy.mayRegister(remote)) return undefined;
    metrics.observer.refused("tcp", "network");
    return refusal;
  };
}

function summary(
  producers: NetworkSet | undefined,
  admins: NetworkSet | undefined,
  authAddresses: readonly string[],
): string[] {
  const lines: string[] = [];
  if (producers !== undefined) lines.push(`ACCESS: TCP clients only from ${producers}`);
  if (admins !== undefined) lines.push(`ACCESS: mutating routes and /debug only from ${admins}`);
  else if (authAddresses.length > 0) {
    lines.push("ACCESS: mutating routes and /debug refused to all (no --admin-networks)");
  }
  if (authAddresses.length > 0) {
    const privileged = [producers, admins].filter((n) => n !== undefined).join(",");
    lines.push(
      `ACCESS: /lookup, /channels, /topics, /nodes need a secret accepted by ${
        authAddresses.join(", ")
      }${privileged === "" ? "" : ` (except from ${privileged})`}`,
    );
  }
  return lines;
}
