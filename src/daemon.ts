// The daemon's lifecycle: bind both ports up front, serve, shut down. Tests
// and main.ts start it the same way.

import {
  formatNetAddr,
  isWildcardHost,
  type ListenAddress,
  parseListenAddress,
} from "./gocompat/address.ts";
import { createDaemonMetrics, type DaemonMetrics } from "./ops/metrics.ts";
import { createHttpApi, type HttpApi, MAX_BODY_BYTES } from "./http/api.ts";
import { HttpServer } from "./http/server.ts";
import { connectionLimits, openFilesLimit } from "./ops/limits.ts";
import { goJsonString } from "./gocompat/json.ts";
import type { Logger } from "./ops/logger.ts";
import type { Options } from "./options.ts";
import { Registry } from "./registry.ts";
import { TcpServer } from "./tcp/server.ts";
import { NSQ_VERSION, versionLine } from "./version.ts";

/** How long shutdown waits for in-flight HTTP requests. */
export const HTTP_SHUTDOWN_GRACE_MS = 5_000;

export class ListenError extends Error {
  constructor(readonly address: string, readonly reason: string) {
    super(`listen (${address}) failed - ${reason}`);
    this.name = "ListenError";
  }
}

export interface DaemonDeps {
  logger: Logger;
  /** OS hostname, announced in IDENTIFY replies. */
  hostname: string;
  /** Wall clock in milliseconds; injectable for tests. */
  now?: () => number;
  /** When the process started (wall-clock ms), for the start-time metric. */
  startTimeMs?: number;
}

export interface Daemon {
  readonly tcpAddr: Deno.NetAddr;
  readonly httpAddr: Deno.NetAddr;
  readonly registry: Registry;
  readonly tcpServer: TcpServer;
  /** Our HTTP/1.1 server, which enforces the HTTP limits. */
  readonly httpServer: HttpServer;
  readonly handler: HttpApi;
  readonly metrics: DaemonMetrics;
  /** Stops accepting, closes clients, lets in-flight HTTP requests finish (bounded). */
  shutdown(): Promise<void>;
}

function listenAddress(text: string): ListenAddress {
  const parsed = parseListenAddress(text);
  if (!parsed.ok) throw new ListenError(text, parsed.error);
  return parsed.value;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Binds like Go's net.Listen: a wildcard host listens dual-stack on `::`,
 * falling back to IPv4 where the host has no IPv6.
 */
function bind<T>(text: string, open: (hostname: string, port: number) => T): T {
  const { hostname, port } = listenAddress(text);
  const attempts = isWildcardHost(hostname) ? ["::", "0.0.0.0"] : [hostname];
  let lastError: unknown;
  for (const host of attempts) {
    try {
      return open(host, port);
    } catch (error) {
      lastError = error;
      if (error instanceof Deno.errors.AddrInUse || error instanceof Deno.errors.PermissionDenied) {
        break;
      }
    }
  }
  throw new ListenError(text, describe(lastError));
}

export function startDaemon(options: Options, deps: DaemonDeps): Daemon {
  const { logger } = deps;
  logger.info(versionLine());
  const registry = new Registry({
    now: deps.now ?? Date.now,
    inactiveProducerTimeoutMs: options.inactiveProducerTimeoutMs,
    tombstoneLifetimeMs: options.tombstoneLifetimeMs,
  });
  const metrics = createDaemonMetrics({
    registry,
    // Only read at scrape time, after the server below exists.
    openConnections: () => tcpServer.connectionCount,
    startTimeMs: deps.startTimeMs ?? performance.timeOrigin,
  });
  const handler = createHttpApi({
    registry,
    logger,
    legacy: options.legacyHttpApi,
    observer: metrics.http,
    metrics: metrics.render,
  });

  // Caps that keep the process below its descriptor limit (see limits.ts).
  const limits = connectionLimits(openFilesLimit());
  const listener = bind(
    options.tcpAddress,
    (hostname, port) => Deno.listen({ hostname, port, transport: "tcp" }),
  );
  let httpServer: HttpServer;
  try {
    const httpListener = bind(
      options.httpAddress,
      (hostname, port) => Deno.listen({ hostname, port, transport: "tcp" }),
    );
    httpServer = new HttpServer({
      listener: httpListener,
      api: handler,
      logger,
      maxBodyBytes: MAX_BODY_BYTES,
      maxConnections: limits.http,
    });
  } catch (error) {
    listener.close();
    throw error;
  }
  httpServer.start();
  const httpAddr = httpServer.addr;

  const tcpAddr = listener.addr;
  const identifyResponse = `{"broadcast_address":${
    goJsonString(options.broadcastAddress)
  },"hostname":${
    goJsonString(deps.hostname)
  },"http_port":${httpAddr.port},"tcp_port":${tcpAddr.port},"version":${
    goJsonString(NSQ_VERSION)
  }}`;
  const tcpServer = new TcpServer({
    listener,
    registry,
    logger,
    maxIdentifySize: options.maxIdentifySize,
    identifyResponse,
    idleTimeoutMs: options.inactiveProducerTimeoutMs,
    observer: metrics.tcp,
    maxConnections: limits.tcp,
  });
  tcpServer.start();
  logger.info(`TCP: listening on ${formatNetAddr(tcpAddr)}`, { address: formatNetAddr(tcpAddr) });
  logger.info(`HTTP: listening on ${formatNetAddr(httpAddr)}`, {
    address: formatNetAddr(httpAddr),
  });

  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      await tcpServer.close();
      logger.info(`HTTP: closing ${formatNetAddr(httpAddr)}`, { address: formatNetAddr(httpAddr) });
      await httpServer.close(HTTP_SHUTDOWN_GRACE_MS);
    })();
    return stopping;
  };

  return { tcpAddr, httpAddr, registry, tcpServer, httpServer, handler, metrics, shutdown };
}
