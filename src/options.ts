import type { Network } from "./access/networks.ts";
import type { TlsVersion } from "./access/settings.ts";
import type { LogFormat, LogLevel } from "./ops/logger.ts";

/** Everything the daemon is configured with, after flags, config file and defaults. */
export interface Options {
  tcpAddress: string;
  httpAddress: string;
  broadcastAddress: string;
  /** Milliseconds (fractional allowed: Go durations have nanosecond resolution). */
  inactiveProducerTimeoutMs: number;
  tombstoneLifetimeMs: number;
  logLevel: LogLevel;
  logPrefix: string;
  logFormat: LogFormat;
  maxIdentifySize: number;
  /** Percent of each connection cap (TCP, HTTP) that one remote host may hold. */
  maxSharePerHost: number;
  legacyHttpApi: boolean;
  /** `--producer-networks`: who may connect over TCP to register; undefined: anyone. */
  producerNetworks: readonly Network[] | undefined;
  /** `--admin-networks`: who may use the mutating routes and /debug; undefined: see README. */
  adminNetworks: readonly Network[] | undefined;
  /** `--auth-http-address`: auth servers governing the query routes; empty: reads are open. */
  authHttpAddresses: readonly string[];
  /** `--http-client-request-timeout`: bound of each auth server query, in milliseconds. */
  httpClientRequestTimeoutMs: number;
  /** `--https-address`: where HTTPS is served when `tls` is set. */
  httpsAddress: string;
  /** `--tls-cert` and `--tls-key`: paths, for messages. */
  tlsCert: string;
  tlsKey: string;
  tlsMinVersion: TlsVersion;
  /** The certificate chain and key (PEM) read from `tlsCert`/`tlsKey`; undefined: HTTP only. */
  tls: { readonly cert: string; readonly key: string } | undefined;
}

/**
 * Whether an access flag is given: only then are the access rules built
 * (createAccess answers undefined otherwise) and their modules loaded.
 */
export function accessRequested(
  options: Pick<Options, "producerNetworks" | "adminNetworks" | "authHttpAddresses">,
): boolean {
  return options.producerNetworks !== undefined || options.adminNetworks !== undefined ||
    options.authHttpAddresses.length > 0;
}

export function defaultOptions(hostname: string): Options {
  return {
    tcpAddress: "0.0.0.0:4160",
    httpAddress: "0.0.0.0:4161",
    broadcastAddress: hostname,
    inactiveProducerTimeoutMs: 300_000,
    tombstoneLifetimeMs: 45_000,
    logLevel: "info",
    logPrefix: "[nsqlookupd] ",
    logFormat: "text",
    maxIdentifySize: 65536,
    maxSharePerHost: 25,
    legacyHttpApi: false,
    producerNetworks: undefined,
    adminNetworks: undefined,
    authHttpAddresses: [],
    httpClientRequestTimeoutMs: 5_000,
    httpsAddress: "0.0.0.0:4162",
    tlsCert: "",
    tlsKey: "",
    tlsMinVersion: "tls1.2",
    tls: undefined,
  };
}
