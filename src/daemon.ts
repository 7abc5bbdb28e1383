// The daemon's lifecycle: bind every port up front (TCP, HTTP, and HTTPS when
// a certificate is given), serve, shut down. Tests and main.ts start it the
// same way.
//
// Start-up time: every module on the static import graph below is loaded by
// every run, so what only some runs need is imported dynamically: the access
// rules (loadDaemonModules), as config.ts does with the TOML parser.

import type { Access } from "./access/access.ts";
import {
  formatNetAddr,
  isWildcardHost,
  type ListenAddress,
  parseListenAddress,
} from "./gocompat/address.ts";
import { createDaemonMetrics, type DaemonMetrics } from "./ops/metrics.ts";
import { EventLoopLag } from "./ops/event_loop_lag.ts";
import { createHttpApi, type HttpApi, MAX_BODY_BYTES } from "./http/api.ts";
import { HttpServer, type HttpServerObserver } from "./http/server.ts";
import { connectionLimits, openFilesLimitSliced } from "./ops/limits.ts";
import { goJsonString } from "./gocompat/json.ts";
import type { Logger } from "./ops/logger.ts";
import { accessRequested, type Options } from "./options.ts";
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
  /**
   * The descriptor limit the caps are sized to, found after start-up
   * (default openFilesLimitSliced); undefined leaves the default caps.
   */
  descriptorLimit?: (stopped: () => boolean) => Promise<number | undefined>;
}

export interface Daemon {
  readonly tcpAddr: Deno.NetAddr;
  readonly httpAddr: Deno.NetAddr;
  /** Where HTTPS is served; undefined without --tls-cert and --tls-key. */
  readonly httpsAddr: Deno.NetAddr | undefined;
  readonly registry: Registry;
  readonly tcpServer: TcpServer;
  /** Our HTTP/1.1 server, which enforces the HTTP limits. */
  readonly httpServer: HttpServer;
  /** The same server and API over TLS. */
  readonly httpsServer: HttpServer | undefined;
  readonly handler: HttpApi;
  readonly metrics: DaemonMetrics;
  /** The access rules; undefined when no access flag is given. */
  readonly access: Access | undefined;
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
      if (error instanceof ListenError) throw error;
      lastError = error;
      if (error instanceof Deno.errors.AddrInUse || error instanceof Deno.errors.PermissionDenied) {
        break;
      }
    }
  }
  throw new ListenError(text, describe(lastError));
}

/** Deno.listenTls, its certificate and key problems worded for the operator. */
function listenTls(options: Options, hostname: string, port: number): Deno.TlsListener {
  const tls = options.tls!;
  try {
    return Deno.listenTls({ hostname, port, transport: "tcp", cert: tls.cert, key: tls.key });
  } catch (error) {
    const addressProblem = error instanceof Deno.errors.AddrInUse ||
      error instanceof Deno.errors.AddrNotAvailable ||
      error instanceof Deno.errors.PermissionDenied;
    if (addressProblem) throw error;
    throw new ListenError(
      options.httpsAddress,
      `--tls-cert ${options.tlsCert} / --tls-key ${options.tlsKey}: ${describe(error)}`,
    );
  }
}

interface Listeners {
  readonly tcp: Deno.TcpListener;
  readonly http: Deno.TcpListener;
  readonly https: Deno.TlsListener | undefined;
}

/** Every port bound, or none (those bound are closed again) and a ListenError. */
function openListeners(options: Options): Listeners {
  const opened: { close(): void }[] = [];
  const plain = (address: string): Deno.TcpListener => {
    const listener = bind(
      address,
      (hostname, port) => Deno.listen({ hostname, port, transport: "tcp" }),
    );
    opened.push(listener);
    return listener;
  };
  try {
    const tcp = plain(options.tcpAddress);
    const http = plain(options.httpAddress);
    let https: Deno.TlsListener | undefined;
    if (options.tls !== undefined) {
      https = bind(options.httpsAddress, (host, port) => listenTls(options, host, port));
      opened.push(https);
    }
    return { tcp, http, https };
  } catch (error) {
    for (const listener of opened) listener.close();
    throw error;
  }
}

function identifyResponse(
  options: Options,
  hostname: string,
  tcpPort: number,
  httpPort: number,
): string {
  return `{"broadcast_address":${goJsonString(options.broadcastAddress)},"hostname":${
    goJsonString(hostname)
  },"http_port":${httpPort},"tcp_port":${tcpPort},"version":${goJsonString(NSQ_VERSION)}}`;
}

let accessModule: typeof import("./access/access.ts") | undefined;

/**
 * Loads the modules these options need beyond every run's: the access rules
 * when an access flag is given. startDaemon needs it done first.
 */
export async function loadDaemonModules(options: Options): Promise<void> {
  if (accessRequested(options)) await loadAccessRules();
}

/** The access rules' eight modules, the Go regexp translator among them. */
export async function loadAccessRules(): Promise<void> {
  accessModule ??= await import("./access/access.ts");
}

function createAccessRules(options: Options, logger: Logger): Access | undefined {
  if (!accessRequested(options)) return undefined;
  if (accessModule === undefined) {
    throw new Error("loadDaemonModules() must finish before a daemon with access flags starts");
  }
  return accessModule.createAccess(options, { logger });
}

export function startDaemon(options: Options, deps: DaemonDeps): Daemon {
  const { logger } = deps;
  logger.info(versionLine());
  const registry = new Registry({
    now: deps.now ?? Date.now,
    inactiveProducerTimeoutMs: options.inactiveProducerTimeoutMs,
    tombstoneLifetimeMs: options.tombstoneLifetimeMs,
  });
  const access = createAccessRules(options, logger);
  const metrics = createDaemonMetrics({
    registry,
    // Only read at scrape time, after the server below exists.
    openConnections: () => tcpServer.connectionCount,
    tcpLoad: () => tcpServer.stats,
    startTimeMs: deps.startTimeMs ?? performance.timeOrigin,
  });
  const handler = createHttpApi({
    registry,
    logger,
    legacy: options.legacyHttpApi,
    observer: metrics.http,
    metrics: access === undefined
      ? metrics.render
      : () => metrics.render() + access.metrics.render(),
    policies: access?.policy.routePolicies(),
  });
  const listeners = openListeners(options);
  // The default caps until the descriptor limit is known (see sizeToDescriptors).
  const limits = connectionLimits(undefined);
  const { httpServer, httpsServer } = startHttpServers(
    listeners,
    handler,
    options,
    logger,
    limits,
    metrics.httpServer,
  );
  const httpAddr = httpServer.addr;
  const tcpAddr = listeners.tcp.addr;
  const tcpServer = new TcpServer({
    listener: listeners.tcp,
    registry,
    logger,
    maxIdentifySize: options.maxIdentifySize,
    identifyResponse: identifyResponse(options, deps.hostname, tcpAddr.port, httpAddr.port),
    idleTimeoutMs: options.inactiveProducerTimeoutMs,
    observer: metrics.tcp,
    maxConnections: limits.tcp,
    maxPerRemote: share(limits.tcp, options.maxSharePerHost),
    // Refuses peers outside --producer-networks before reading from them.
    admit: access?.admit,
  });
  tcpServer.start();
  const lag = new EventLoopLag({ observe: metrics.eventLoopLag });
  lag.start();
  const sizing = sizeToDescriptors(
    options,
    deps.descriptorLimit ?? openFilesLimitSliced,
    { tcpServer, httpServer, httpsServer },
  );
  for (const line of access?.summary ?? []) logger.info(line);
  logListening(logger, "TCP", tcpAddr);
  logListening(logger, "HTTP", httpAddr);
  if (httpsServer !== undefined) logListening(logger, "HTTPS", httpsServer.addr);
  return {
    tcpAddr,
    httpAddr,
    httpsAddr: httpsServer?.addr,
    registry,
    tcpServer,
    httpServer,
    httpsServer,
    handler,
    metrics,
    access,
    shutdown: shutdownOnce(logger, sizing.stop, tcpServer, httpServer, httpsServer, lag),
  };
}

/** The HTTP server, and the HTTPS one when asked for. */
function startHttpServers(
  listeners: ReturnType<typeof openListeners>,
  handler: HttpApi,
  options: Options,
  logger: Logger,
  limits: { http: number },
  observer: HttpServerObserver,
): { httpServer: HttpServer; httpsServer: HttpServer | undefined } {
  const { httpCap, httpsCap } = httpCaps(limits.http, listeners.https !== undefined);
  const httpServer = new HttpServer({
    listener: listeners.http,
    api: handler,
    logger,
    maxBodyBytes: MAX_BODY_BYTES,
    maxConnections: httpCap,
    maxPerRemote: share(httpCap, options.maxSharePerHost),
    observer,
  });
  const httpsServer = listeners.https === undefined ? undefined : new HttpServer({
    listener: listeners.https,
    api: handler,
    logger,
    maxBodyBytes: MAX_BODY_BYTES,
    maxConnections: httpsCap,
    maxPerRemote: share(httpsCap, options.maxSharePerHost),
    observer,
  });
  httpServer.start();
  httpsServer?.start();
  return { httpServer, httpsServer };
}

function logListening(logger: Logger, kind: string, addr: Deno.NetAddr): void {
  logger.info(`${kind}: listening on ${formatNetAddr(addr)}`, { address: formatNetAddr(addr) });
}

function shutdownOnce(
  logger: Logger,
  stopSizing: () => Promise<void>,
  tcpServer: TcpServer,
  httpServer: HttpServer,
  httpsServer: HttpServer | undefined,
  lag: EventLoopLag,
): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  return () => {
    stopping ??= (async () => {
      lag.stop();
      await stopSizing();
      await tcpServer.close();
      logger.info(`HTTP: closing ${formatNetAddr(httpServer.addr)}`, {
        address: formatNetAddr(httpServer.addr),
      });
      if (httpsServer !== undefined) {
        logger.info(`HTTPS: closing ${formatNetAddr(httpsServer.addr)}`, {
          address: formatNetAddr(httpsServer.addr),
        });
      }
      await Promise.all([
        httpServer.close(HTTP_SHUTDOWN_GRACE_MS),
        httpsServer?.close(HTTP_SHUTDOWN_GRACE_MS),
      ]);
    })();
    return stopping;
  };
}

/**
 * Caps that keep the process below its descriptor limit (see limits.ts),
 * applied once the limit is known: measuring it can take half a second,
 * which start-up does not wait for. HTTPS takes half of HTTP's cap.
 */
function sizeToDescriptors(
  options: Options,
  descriptorLimit: (stopped: () => boolean) => Promise<number | undefined>,
  { tcpServer, httpServer, httpsServer }: {
    tcpServer: TcpServer;
    httpServer: HttpServer;
    httpsServer: HttpServer | undefined;
  },
): { stop: () => Promise<void> } {
  let stopped = false;
  const done = descriptorLimit(() => stopped).then((openFiles) => {
    if (stopped || openFiles === undefined) return;
    const limits = connectionLimits(openFiles);
    const { httpCap, httpsCap } = httpCaps(limits.http, httpsServer !== undefined);
    tcpServer.resize(limits.tcp, share(limits.tcp, options.maxSharePerHost));
    httpServer.resize(httpCap, share(httpCap, options.maxSharePerHost));
    httpsServer?.resize(httpsCap, share(httpsCap, options.maxSharePerHost));
  });
  return {
    stop: () => {
      stopped = true;
      return done;
    },
  };
}

/** HTTP's cap, shared with HTTPS when it is on (half each). */
function httpCaps(cap: number, https: boolean): { httpCap: number; httpsCap: number } {
  const httpCap = https ? Math.ceil(cap / 2) : cap;
  return { httpCap, httpsCap: Math.max(1, cap - httpCap) };
}

/** One remote host's share of a cap: `percent` of it, never below one connection. */
function share(cap: number, percent: number): number {
  return Math.max(1, Math.floor((cap * percent) / 100));
}
