// The HTTP API over the registry, testable without a socket: `answer()` maps a
// plain request to its answer; our HTTP server calls it. This file is the
// table: which route answers which method and path, with which policies.

import type { HttpAnswer } from "../gocompat/http1.ts";
import type { Logger } from "../ops/logger.ts";
import type { Registry } from "../registry.ts";
import { AnswerCache } from "./cache.ts";
import {
  decorate,
  decorateExchange,
  type HttpObserver,
  logged,
  observed,
  type RoutePolicy,
} from "./policies.ts";
import { type Route, Router } from "./router.ts";
import {
  channelCreate,
  channelDelete,
  channels,
  debug,
  info,
  lookup,
  metrics,
  nodes,
  OneAtATime,
  ping,
  type RouteContext,
  type RouteFn,
  type RouteRequest,
  topicCreate,
  topicDelete,
  topics,
  topicTombstone,
} from "./routes.ts";

// ops/metrics.ts implements the observer; it is declared beside its caller.
export type { HttpObserver } from "./policies.ts";

/** Request bodies above this are refused with 413 (the reference reads any size). */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Characters of /lookup bodies kept for reuse, across topics. */
export const LOOKUP_CACHE_CHARS = 16 * 1024 * 1024;
/** What a /lookup cache entry costs besides its body (measured: ~150-200 bytes). */
export const LOOKUP_CACHE_ENTRY_OVERHEAD = 200;
/** Characters of the /topics and /nodes bodies kept (one of each). */
const LIST_CACHE_CHARS = 512 * 1024 * 1024;

export interface HttpApiOptions {
  registry: Registry;
  logger: Logger;
  /** `--legacy-http-api`: wrapped bodies for clients that do not ask for v1, old route names. */
  legacy?: boolean;
  observer?: HttpObserver;
  /** Serves `GET /metrics` with this exposition text when given. */
  metrics?: () => string;
  /** Policies by kind of route, e.g. access control; none by default. */
  policies?: Partial<Record<RouteKind, RoutePolicy[]>>;
}

/**
 * `query`: reads what the registry knows; `admin`: changes it or dumps it
 * whole; `open`: liveness and version, never restricted.
 */
export type RouteKind = "open" | "query" | "admin";

/** A request as the API needs it: no body (no route reads one), no URL object. */
export interface ApiRequest {
  readonly method: string;
  /** The target: `/path?query`, or an absolute URL. */
  readonly target: string;
  readonly accept?: string;
  /** For the request log line, e.g. `127.0.0.1:5555`. */
  readonly remote?: string;
  /** The peer's address, for access rules (absent in tests that do not need it). */
  readonly remoteAddr?: Deno.NetAddr;
  /** The Authorization header as sent (`Bearer <secret>` from go-nsq and pynsq). */
  readonly authorization?: string;
  /** The request came over the HTTPS listener. */
  readonly tls?: boolean;
  /** The body exceeded MAX_BODY_BYTES: answered 413. */
  readonly bodyTooLarge?: boolean;
}

/**
 * The API: `answer()` maps a plain request to its answer, synchronously for
 * everything it can answer from memory; a Promise only when it must wait (for
 * its turn at /debug, or for an auth server).
 */
export interface HttpApi {
  answer(request: ApiRequest): HttpAnswer | Promise<HttpAnswer>;
}

export function createHttpApi(options: HttpApiOptions): HttpApi {
  const ctx: RouteContext = {
    registry: options.registry,
    logger: options.logger,
    lookupCache: new AnswerCache(LOOKUP_CACHE_CHARS, {
      live: (topic) => options.registry.topicVersion(topic) !== undefined,
      entryOverhead: LOOKUP_CACHE_ENTRY_OVERHEAD,
    }),
    listCache: new AnswerCache(LIST_CACHE_CHARS),
    debugTurns: new OneAtATime(),
    metricsText: options.metrics,
  };
  const policies = options.policies ?? {};
  const row = (
    method: "GET" | "POST",
    path: string,
    kind: RouteKind,
    route: (ctx: RouteContext, req: RouteRequest) => ReturnType<RouteFn>,
    takesParams = false,
  ): Route => ({
    method,
    path,
    takesParams,
    handle: decorate((req) => route(ctx, req), ...(policies[kind] ?? [])),
  });

  const table: Route[] = [
    row("GET", "/ping", "open", ping),
    ...(options.metrics === undefined ? [] : [row("GET", "/metrics", "open", metrics)]),
    row("GET", "/info", "open", info),
    row("GET", "/topics", "query", topics),
    row("GET", "/channels", "query", channels, true),
    row("GET", "/lookup", "query", lookup, true),
    row("GET", "/nodes", "query", nodes),
    row("GET", "/debug", "admin", debug),
    row("POST", "/topic/create", "admin", topicCreate, true),
    row("POST", "/topic/delete", "admin", topicDelete, true),
    row("POST", "/channel/create", "admin", channelCreate, true),
    row("POST", "/channel/delete", "admin", channelDelete, true),
    row("POST", "/topic/tombstone", "admin", topicTombstone, true),
  ];
  const router = new Router(table, { legacy: options.legacy ?? false, logger: options.logger });
  const exchange = decorateExchange(
    (request) => router.route(request),
    observed(options.observer),
    logged(options.logger),
  );
  return { answer: (request) => exchange(request).answer };
}
