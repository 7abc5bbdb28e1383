// The HTTP API over the registry, testable without a socket: `answer()` maps a
// plain request to an answer synchronously; our HTTP server calls it.

import { formatDuration } from "../gocompat/duration.ts";
import {
  CHANNEL_NOT_FOUND,
  type HttpError,
  httpError,
  INTERNAL_ERROR,
  INVALID_ARG_CHANNEL,
  INVALID_ARG_TOPIC,
  INVALID_REQUEST,
  METHOD_NOT_ALLOWED,
  MISSING_ARG_CHANNEL,
  MISSING_ARG_NODE,
  MISSING_ARG_TOPIC,
  NOT_FOUND,
  PAYLOAD_TOO_LARGE,
  TOPIC_NOT_FOUND,
  URI_TOO_LONG,
} from "../errors.ts";
import type { HttpAnswer } from "../gocompat/http1.ts";
import { goJsonString, goJsonStringArray } from "../gocompat/json.ts";
import type { Logger } from "../ops/logger.ts";
import { isValidChannelName, isValidTopicName } from "../names.ts";
import { parseQuery, type QueryParams } from "../gocompat/query.ts";
import type { PeerInfo, Registry } from "../registry.ts";
import { NSQ_VERSION } from "../version.ts";
import { PROMETHEUS_CONTENT_TYPE } from "../ops/prometheus.ts";

export const X_NSQ_CONTENT_TYPE = "X-NSQ-Content-Type";
export const NSQ_CONTENT_TYPE_V1 = "nsq; version=1.0";
export const JSON_CONTENT_TYPE = "application/json; charset=utf-8";
export const TEXT_CONTENT_TYPE = "text/plain; charset=utf-8";
/** Request bodies above this are refused with 413 (the reference reads any size). */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Longest query string accepted; longer ones get 414. */
export const MAX_QUERY_LENGTH = 16 * 1024;

const JSON_HEADERS: [string, string][] = [
  ["Content-Type", JSON_CONTENT_TYPE],
  [X_NSQ_CONTENT_TYPE, NSQ_CONTENT_TYPE_V1],
];
const EMPTY_HEADERS: [string, string][] = [[X_NSQ_CONTENT_TYPE, NSQ_CONTENT_TYPE_V1]];
/** Wrapped (legacy) bodies must not claim to be unwrapped v1 bodies. */
const LEGACY_HEADERS: [string, string][] = [["Content-Type", JSON_CONTENT_TYPE]];

/** The Accept value with which go-nsq and pynsq ask for the v1 (unwrapped) format. */
export const ACCEPT_V1 = "application/vnd.nsq; version=1.0";

/** NSQ 0.x route names, served with `--legacy-http-api`. */
export const LEGACY_ALIASES: ReadonlyMap<string, string> = new Map([
  ["/create_topic", "/topic/create"],
  ["/delete_topic", "/topic/delete"],
  ["/create_channel", "/channel/create"],
  ["/delete_channel", "/channel/delete"],
  ["/tombstone_topic_producer", "/topic/tombstone"],
]);

/** Route label for requests that matched no route (keeps metric cardinality bounded). */
export const UNMATCHED_ROUTE = "unmatched";

/** What a route handler produces; turned into a Response in one place. */
type Outcome =
  /** `encoded`: the body's UTF-8 bytes, kept with a cached answer so it is encoded once. */
  | { kind: "json"; body: string; encoded?: Uint8Array<ArrayBuffer> }
  | { kind: "empty" }
  | { kind: "text"; body: string; contentType?: string }
  | HttpError;

const EMPTY: Outcome = { kind: "empty" };

interface Route {
  readonly path: string;
  readonly method: "GET" | "POST";
  /**
   * Whether the handler reads the query string. Only these routes parse it
   * (and answer 400 INVALID_REQUEST to a malformed one): the reference's
   * /ping, /info, /topics, /nodes and /debug never look at the query, so
   * `/ping?a;b` is 200 there.
   */
  readonly takesParams?: true;
  readonly handle: (params: QueryParams) => Outcome;
}

const NO_PARAMS: QueryParams = new Map();

/** Receives one observation per request; daemon.ts feeds it into /metrics. */
export interface HttpObserver {
  request(route: string, status: number, seconds: number): void;
}

export interface HttpApiOptions {
  registry: Registry;
  logger: Logger;
  /** `--legacy-http-api`: wrapped bodies for clients that do not ask for v1, old route names. */
  legacy?: boolean;
  observer?: HttpObserver;
  /** Serves `GET /metrics` with this exposition text when given. */
  metrics?: () => string;
}

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
 * everything it can answer from memory; a Promise only when it must wait for
 * something outside (an auth server).
 */
export interface HttpApi {
  answer(request: ApiRequest): HttpAnswer | Promise<HttpAnswer>;
}

export function createHttpApi(options: HttpApiOptions): HttpApi {
  const { registry, logger, observer } = options;
  const legacy = options.legacy ?? false;
  // Serialized answers of the hot read paths, reused until the registry says
  // they changed (version) or the clock may have changed them (validThrough).
  const lookupCache = new Map<string, { version: number; validThrough: number; body: string }>();
  let topicsCache: { version: number; body: string; encoded: Uint8Array<ArrayBuffer> } | undefined;
  let nodesCache:
    | { version: number; validThrough: number; body: string; encoded: Uint8Array<ArrayBuffer> }
    | undefined;
  // A peer's public fields never change after IDENTIFY: serialize each once.
  const peerJsonCache = new WeakMap<PeerInfo, string>();
  const peerJson = (peer: PeerInfo): string => {
    let json = peerJsonCache.get(peer);
    if (json === undefined) {
      json = `"remote_address":${goJsonString(peer.remoteAddress)},"hostname":${
        goJsonString(peer.hostname)
      },"broadcast_address":${
        goJsonString(peer.broadcastAddress)
      },"tcp_port":${peer.tcpPort},"http_port":${peer.httpPort},"version":${
        goJsonString(peer.version)
      },"topology_zone":${goJsonString(peer.topologyZone)},"topology_region":${
        goJsonString(peer.topologyRegion)
      }`;
      peerJsonCache.set(peer, json);
    }
    return json;
  };

  const topicArg = (params: QueryParams): string | HttpError => {
    const topic = params.get("topic");
    return topic === undefined ? httpError(400, MISSING_ARG_TOPIC) : topic;
  };

  const validTopicArg = (params: QueryParams): string | HttpError => {
    const topic = topicArg(params);
    if (typeof topic !== "string") return topic;
    return isValidTopicName(topic) ? topic : httpError(400, INVALID_ARG_TOPIC);
  };

  const topicChannelArgs = (params: QueryParams): [string, string] | HttpError => {
    const topic = validTopicArg(params);
    if (typeof topic !== "string") return topic;
    const channel = params.get("channel");
    if (channel === undefined) return httpError(400, MISSING_ARG_CHANNEL);
    if (!isValidChannelName(channel)) return httpError(400, INVALID_ARG_CHANNEL);
    return [topic, channel];
  };

  const routes: Route[] = [
    { path: "/ping", method: "GET", handle: () => ({ kind: "text", body: "OK" }) },
    ...(options.metrics === undefined ? [] : [{
      path: "/metrics",
      method: "GET" as const,
      handle: (): Outcome => ({
        kind: "text",
        body: options.metrics!(),
        contentType: PROMETHEUS_CONTENT_TYPE,
      }),
    }]),
    {
      path: "/info",
      method: "GET",
      handle: () => ({ kind: "json", body: `{"version":${goJsonString(NSQ_VERSION)}}` }),
    },
    {
      path: "/topics",
      method: "GET",
      handle: () => {
        if (topicsCache === undefined || topicsCache.version !== registry.topicsVersion) {
          const body = `{"topics":${goJsonStringArray(registry.topics())}}`;
          topicsCache = {
            version: registry.topicsVersion,
            body,
            encoded: utf8Encoder.encode(body),
          };
        }
        return { kind: "json", body: topicsCache.body, encoded: topicsCache.encoded };
      },
    },
    {
      path: "/channels",
      takesParams: true,
      method: "GET",
      handle: (params) => {
        const topic = topicArg(params);
        if (typeof topic !== "string") return topic;
        return {
          kind: "json",
          body: `{"channels":${goJsonStringArray(registry.channels(topic))}}`,
        };
      },
    },
    {
      path: "/lookup",
      takesParams: true,
      method: "GET",
      handle: (params) => {
        const topic = topicArg(params);
        if (typeof topic !== "string") return topic;
        const version = registry.topicVersion(topic);
        if (version === undefined) {
          lookupCache.delete(topic);
          return httpError(404, TOPIC_NOT_FOUND);
        }
        const cached = lookupCache.get(topic);
        if (
          cached !== undefined && cached.version === version &&
          registry.now() <= cached.validThrough
        ) {
          return { kind: "json", body: cached.body };
        }
        const found = registry.lookup(topic)!;
        const producers = found.producers.map((peer) => `{${peerJson(peer)}}`).join(",");
        const body = `{"channels":${goJsonStringArray(found.channels)},"producers":[${producers}]}`;
        lookupCache.set(topic, { version: found.version, validThrough: found.validThrough, body });
        return { kind: "json", body };
      },
    },
    {
      path: "/nodes",
      method: "GET",
      handle: () => {
        if (
          nodesCache !== undefined && nodesCache.version === registry.nodesVersion &&
          registry.now() <= nodesCache.validThrough
        ) {
          return { kind: "json", body: nodesCache.body, encoded: nodesCache.encoded };
        }
        const answer = registry.nodesAnswer();
        const nodes = answer.nodes.map((node) =>
          `{${peerJson(node.peer)},"tombstones":[${node.tombstones.join(",")}],"topics":${
            goJsonStringArray(node.topics)
          }}`
        );
        const body = `{"producers":[${nodes.join(",")}]}`;
        const encoded = utf8Encoder.encode(body);
        nodesCache = { version: answer.version, validThrough: answer.validThrough, body, encoded };
        return { kind: "json", body, encoded };
      },
    },
    {
      path: "/debug",
      method: "GET",
      handle: () => {
        const entries = registry.debug().map(({ name, producers }) => {
          const list = producers.map(({ peer, tombstoned, tombstonedAt }) =>
            // Keys in Go's map order (sorted), as the reference prints them.
            `{"broadcast_address":${goJsonString(peer.broadcastAddress)},"hostname":${
              goJsonString(peer.hostname)
            },"http_port":${peer.httpPort},"id":${goJsonString(peer.id)},"last_update":${
              unixNanos(peer.lastUpdate)
            },"tcp_port":${peer.tcpPort},"tombstoned":${tombstoned},"tombstoned_at":${
              tombstoned ? unixNanos(tombstonedAt) : "0"
            },"topology_region":${goJsonString(peer.topologyRegion)},"topology_zone":${
              goJsonString(peer.topologyZone)
            },"version":${goJsonString(peer.version)}}`
          );
          return `${goJsonString(name)}:[${list.join(",")}]`;
        });
        return { kind: "json", body: `{${entries.join(",")}}` };
      },
    },
    {
      path: "/topic/create",
      takesParams: true,
      method: "POST",
      handle: (params) => {
        const topic = validTopicArg(params);
        if (typeof topic !== "string") return topic;
        logger.info(`DB: adding topic(${topic})`, { topic });
        registry.createTopic(topic);
        return EMPTY;
      },
    },
    {
      path: "/topic/delete",
      takesParams: true,
      method: "POST",
      handle: (params) => {
        const topic = topicArg(params);
        if (typeof topic !== "string") return topic;
        const deleted = registry.deleteTopic(topic);
        for (const channel of deleted.channels) {
          logger.info(`DB: removing channel(${channel}) from topic(${topic})`, { topic, channel });
        }
        if (deleted.topic) logger.info(`DB: removing topic(${topic})`, { topic });
        return EMPTY;
      },
    },
    {
      path: "/channel/create",
      takesParams: true,
      method: "POST",
      handle: (params) => {
        const args = topicChannelArgs(params);
        if (!Array.isArray(args)) return args;
        const [topic, channel] = args;
        logger.info(`DB: adding channel(${channel}) in topic(${topic})`, { topic, channel });
        registry.createChannel(topic, channel);
        logger.info(`DB: adding topic(${topic})`, { topic });
        registry.createTopic(topic);
        return EMPTY;
      },
    },
    {
      path: "/channel/delete",
      takesParams: true,
      method: "POST",
      handle: (params) => {
        const args = topicChannelArgs(params);
        if (!Array.isArray(args)) return args;
        const [topic, channel] = args;
        if (!registry.deleteChannel(topic, channel)) return httpError(404, CHANNEL_NOT_FOUND);
        logger.info(`DB: removing channel(${channel}) from topic(${topic})`, { topic, channel });
        return EMPTY;
      },
    },
    {
      path: "/topic/tombstone",
      takesParams: true,
      method: "POST",
      handle: (params) => {
        const topic = topicArg(params);
        if (typeof topic !== "string") return topic;
        const node = params.get("node");
        if (node === undefined) return httpError(400, MISSING_ARG_NODE);
        logger.info(`DB: setting tombstone for producer@${node} of topic(${topic})`, {
          topic,
          node,
        });
        registry.tombstone(topic, node);
        return EMPTY;
      },
    },
  ];

  const byPath = new Map<string, Route[]>();
  for (const route of routes) {
    const list = byPath.get(route.path) ?? [];
    list.push(route);
    byPath.set(route.path, list);
  }
  // In legacy mode the mutating (POST) routes also answer GET, as NSQ 0.x did.
  const methodsOf = (list: Route[]): string[] => {
    const methods = new Set(list.map((r) => r.method));
    if (legacy && methods.has("POST")) methods.add("GET");
    return [...methods];
  };
  const allowHeader = (list: Route[]): string => [...methodsOf(list), "OPTIONS"].sort().join(", ");
  const findRoute = (list: Route[], method: string): Route | undefined =>
    list.find((r) => r.method === method) ??
      (legacy && method === "GET" ? list.find((r) => r.method === "POST") : undefined);
  // Like httprouter, which keeps one tree per method, only redirect to a
  // canonical path that has a route for the request's method: the reference
  // answers `POST /LOOKUP` or `OPTIONS /lookup/` with 404, not a redirect.
  const canonicalByFolded = new Map<string, string>();
  for (const path of byPath.keys()) canonicalByFolded.set(path.toLowerCase(), path);
  const hasMethod = (path: string, method: string): boolean => {
    const list = byPath.get(path);
    return list !== undefined && findRoute(list, method) !== undefined;
  };

  const answer = (request: ApiRequest): HttpAnswer => {
    const started = performance.now();
    const { path, query } = splitTarget(request.target);
    const format: Format = legacy && request.accept !== ACCEPT_V1 ? "legacy" : "v1";
    let routeLabel = UNMATCHED_ROUTE;
    let response: HttpAnswer;
    if (request.bodyTooLarge) {
      // A refused body is still a request: log and count it like any other.
      response = toAnswer(httpError(413, PAYLOAD_TOO_LARGE), format);
    } else {
      const routed = route(request.method, path, query, format);
      response = routed.response;
      routeLabel = routed.label;
    }
    const elapsedMs = performance.now() - started;
    observer?.request(routeLabel, response.status, elapsedMs / 1000);
    if (logger.enabled("info")) {
      const remote = request.remote ?? "-";
      const uri = query === undefined ? path : `${path}?${query}`;
      const elapsed = formatDuration(BigInt(Math.round(elapsedMs * 1e6)));
      logger.info(`${response.status} ${request.method} ${uri} (${remote}) ${elapsed}`, {
        status: response.status,
        method: request.method,
        uri,
        remote_addr: remote,
        elapsed_ms: Math.round(elapsedMs * 1000) / 1000,
      });
    }
    return response;
  };

  const route = (
    method: string,
    rawPath: string,
    query: string | undefined,
    format: Format,
  ): { response: HttpAnswer; label: string } => {
    const path = legacy ? LEGACY_ALIASES.get(rawPath) ?? rawPath : rawPath;
    const candidates = byPath.get(path);
    if (candidates === undefined) {
      return {
        response: redirectOrNotFound(method, path, query, format),
        label: UNMATCHED_ROUTE,
      };
    }
    const labelled = (response: HttpAnswer): { response: HttpAnswer; label: string } => ({
      response,
      label: path,
    });
    if (method === "OPTIONS") {
      return labelled({ status: 200, headers: [["Allow", allowHeader(candidates)]], body: null });
    }
    const found = findRoute(candidates, method);
    if (found === undefined) {
      return labelled(
        toAnswer(httpError(405, METHOD_NOT_ALLOWED), format, [[
          "Allow",
          allowHeader(candidates),
        ]]),
      );
    }
    if ((query?.length ?? 0) > MAX_QUERY_LENGTH) {
      return labelled(toAnswer(httpError(414, URI_TOO_LONG), format));
    }
    const params = found.takesParams ? parseQuery(query ?? "") : NO_PARAMS;
    if (params === undefined) return labelled(toAnswer(httpError(400, INVALID_REQUEST), format));
    try {
      return labelled(toAnswer(found.handle(params), format));
    } catch (error) {
      logger.error(`HTTP: ${method} ${path} failed - ${String(error)}`, { method, uri: path });
      return labelled(toAnswer(httpError(500, INTERNAL_ERROR), format));
    }
  };

  const redirectOrNotFound = (
    method: string,
    path: string,
    query: string | undefined,
    format: Format,
  ): HttpAnswer => {
    const canonical = canonicalByFolded.get(stripTrailingSlash(cleanPath(path)).toLowerCase());
    if (canonical === undefined || canonical === path || !hasMethod(canonical, method)) {
      return toAnswer(httpError(404, NOT_FOUND), format);
    }
    const location = query === undefined ? canonical : `${canonical}?${query}`;
    // Header values are byte strings: send the client's query bytes back as they came.
    const locationHeader = latin1(location);
    if (method !== "GET") {
      return { status: 308, headers: [["Location", locationHeader]], body: null };
    }
    return {
      status: 301,
      headers: [["Location", locationHeader], ["Content-Type", "text/html; charset=utf-8"]],
      body: `<a href="${escapeHtml(location)}">Moved Permanently</a>.\n\n`,
    };
  };

  return { answer };
}

/**
 * `v1`: the body is the document itself, flagged by X-NSQ-Content-Type.
 * `legacy`: NSQ 0.x's `{"status_code","status_txt","data"}` wrapper.
 */
type Format = "v1" | "legacy";

/** Errors the reference's router produces itself keep their status in legacy mode. */
const ROUTER_ERRORS: ReadonlySet<string> = new Set([
  NOT_FOUND,
  METHOD_NOT_ALLOWED,
  PAYLOAD_TOO_LARGE,
  URI_TOO_LONG,
]);

/** The one place where outcomes become wire responses. */
function toAnswer(
  outcome: Outcome,
  format: Format,
  extraHeaders: [string, string][] = [],
): HttpAnswer {
  if (format === "legacy") return toLegacyAnswer(outcome, extraHeaders);
  switch (outcome.kind) {
    case "json":
      return { status: 200, headers: JSON_HEADERS, body: outcome.encoded ?? outcome.body };
    case "empty":
      return { status: 200, headers: EMPTY_HEADERS, body: null };
    case "text":
      // The reference sets no type for /ping: Go's server sniffs one.
      return outcome.contentType === undefined
        ? { status: 200, headers: [], body: outcome.body, defaultContentType: TEXT_CONTENT_TYPE }
        : { status: 200, headers: [["Content-Type", outcome.contentType]], body: outcome.body };
    case "http-error":
      return {
        status: outcome.status,
        headers: extraHeaders.length === 0 ? JSON_HEADERS : [...extraHeaders, ...JSON_HEADERS],
        body: `{"message":${goJsonString(outcome.code)}}`,
      };
  }
}

function toLegacyAnswer(outcome: Outcome, extraHeaders: [string, string][]): HttpAnswer {
  const wrapped = (status: number, text: string, data: string): HttpAnswer => ({
    status,
    headers: [...extraHeaders, ...LEGACY_HEADERS],
    body: `{"status_code":${status},"status_txt":${goJsonString(text)},"data":${data}}`,
  });
  switch (outcome.kind) {
    case "json":
      return wrapped(200, "OK", outcome.body);
    case "empty":
      return wrapped(200, "OK", "null");
    case "text":
      return toAnswer(outcome, "v1");
    case "http-error":
      // NSQ 0.x answered every handler error with 500 and the code as status_txt.
      return wrapped(ROUTER_ERRORS.has(outcome.code) ? outcome.status : 500, outcome.code, "null");
  }
}

/** Splits `scheme://host/path?query` without the cost of `new URL()`. */
export function splitTarget(url: string): { path: string; query: string | undefined } {
  const schemeEnd = url.indexOf("://");
  const pathStart = schemeEnd === -1 ? 0 : url.indexOf("/", schemeEnd + 3);
  if (pathStart === -1) return { path: "/", query: undefined };
  const questionMark = url.indexOf("?", pathStart);
  const rawPath = questionMark === -1 ? url.slice(pathStart) : url.slice(pathStart, questionMark);
  let path = rawPath;
  if (rawPath.includes("%")) {
    try {
      path = decodeURIComponent(rawPath);
    } catch {
      path = rawPath;
    }
  }
  const query = questionMark === -1 ? undefined : url.slice(questionMark + 1);
  return { path, query };
}

/** httprouter's CleanPath: one leading slash, no `//`, `.` or `..` elements. */
export function cleanPath(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  const trailing = path.length > 1 && (path.endsWith("/") || path.endsWith("/.")) ? "/" : "";
  const cleaned = "/" + parts.join("/");
  return cleaned === "/" ? cleaned : cleaned + trailing;
}

function stripTrailingSlash(path: string): string {
  return path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
}

const utf8Encoder = new TextEncoder();

/** UTF-8 bytes as a one-char-per-byte string, the only form a header value may take. */
function latin1(text: string): string {
  // deno-lint-ignore no-control-regex
  if (/^[\x00-\x7f]*$/.test(text)) return text;
  return String.fromCharCode(...utf8Encoder.encode(text));
}

function escapeHtml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&#34;").replaceAll("'", "&#39;");
}

/** Clock milliseconds to Unix nanoseconds, exact to the microsecond. */
function unixNanos(ms: number): string {
  return (BigInt(Math.floor(ms * 1000)) * 1000n).toString();
}
