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
  legacyHttpApi: boolean;
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
    legacyHttpApi: false,
  };
}
