// The Go router's rules (julienschmidt/httprouter as nsqlookupd v1.3.0 uses
// it): exact paths, 405 with Allow for a known path and another method,
// OPTIONS answered from the table, a path in the wrong case or with a trailing
// slash redirected, everything else 404. Plus ours: 414 for huge query strings
// and the 0.x route names under --legacy-http-api.

import type { HttpAnswer } from "../gocompat/http1.ts";
import { parseQuery, type QueryParams } from "../gocompat/query.ts";
import {
  httpError,
  INTERNAL_ERROR,
  INVALID_REQUEST,
  METHOD_NOT_ALLOWED,
  NOT_FOUND,
  PAYLOAD_TOO_LARGE,
  URI_TOO_LONG,
} from "../errors.ts";
import type { Logger } from "../ops/logger.ts";
import { ok, type Result } from "../result.ts";
import type { ApiRequest } from "./api.ts";
import { type Format, toAnswer } from "./render.ts";
import type { RouteRequest } from "./routes.ts";

/** Longest query string accepted; longer ones get 414. */
export const MAX_QUERY_LENGTH = 16 * 1024;

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

export type MaybePromise<T> = T | Promise<T>;

/** A route with its policies applied: the answer in the request's format. */
export type Handler = (req: RouteRequest, format: Format) => MaybePromise<HttpAnswer>;

export interface Route {
  readonly method: "GET" | "POST";
  readonly path: string;
  /**
   * Whether the route reads the query string. Only these parse it (and answer
   * 400 INVALID_REQUEST to a malformed one): the reference's /ping, /info,
   * /topics, /nodes and /debug never look at it, so `/ping?a;b` is 200 there.
   */
  readonly takesParams: boolean;
  readonly handle: Handler;
}

/** An answer and the route label it is counted under. */
export interface Routed {
  readonly label: string;
  readonly answer: MaybePromise<HttpAnswer>;
}

const NO_PARAMS: Result<QueryParams> = ok(new Map());

export class Router {
  readonly #byPath = new Map<string, Route[]>();
  readonly #canonicalByFolded = new Map<string, string>();
  readonly #legacy: boolean;
  readonly #logger: Logger;

  constructor(routes: readonly Route[], options: { legacy: boolean; logger: Logger }) {
    this.#legacy = options.legacy;
    this.#logger = options.logger;
    for (const route of routes) {
      const list = this.#byPath.get(route.path) ?? [];
      list.push(route);
      this.#byPath.set(route.path, list);
      this.#canonicalByFolded.set(route.path.toLowerCase(), route.path);
    }
  }

  /** `v1` unless legacy mode is on and the client did not ask for v1. */
  formatOf(request: ApiRequest): Format {
    return this.#legacy && request.accept !== ACCEPT_V1 ? "legacy" : "v1";
  }

  route(request: ApiRequest): Routed {
    const format = this.formatOf(request);
    const { path: rawPath, query } = splitTarget(request.target);
    if (request.bodyTooLarge) {
      // A refused body is still a request: logged and counted like any other.
      return {
        label: UNMATCHED_ROUTE,
        answer: toAnswer(httpError(413, PAYLOAD_TOO_LARGE), format),
      };
    }
    const path = this.#legacy ? LEGACY_ALIASES.get(rawPath) ?? rawPath : rawPath;
    const candidates = this.#byPath.get(path);
    if (candidates === undefined) {
      return {
        label: UNMATCHED_ROUTE,
        answer: this.#redirectOrNotFound(request.method, path, query, format),
      };
    }
    return { label: path, answer: this.#dispatch(candidates, request, query, format) };
  }

  #dispatch(
    candidates: Route[],
    request: ApiRequest,
    query: string | undefined,
    format: Format,
  ): MaybePromise<HttpAnswer> {
    const { method } = request;
    if (method === "OPTIONS") {
      return { status: 200, headers: [["Allow", this.#allowHeader(candidates)]], body: null };
    }
    const found = this.#find(candidates, method);
    if (found === undefined) {
      const allow: [string, string][] = [["Allow", this.#allowHeader(candidates)]];
      return toAnswer(httpError(405, METHOD_NOT_ALLOWED), format, allow);
    }
    if ((query?.length ?? 0) > MAX_QUERY_LENGTH) {
      return toAnswer(httpError(414, URI_TOO_LONG), format);
    }
    const parsed = found.takesParams ? parseQuery(query ?? "") : NO_PARAMS;
    if (!parsed.ok) return toAnswer(httpError(400, INVALID_REQUEST), format);
    const params = parsed.value;
    const failed = (error: unknown): HttpAnswer => {
      this.#logger.error(`HTTP: ${method} ${found.path} failed - ${String(error)}`, {
        method,
        uri: found.path,
      });
      return toAnswer(httpError(500, INTERNAL_ERROR), format);
    };
    try {
      const answer = found.handle({ params, request }, format);
      return answer instanceof Promise ? answer.catch(failed) : answer;
    } catch (error) {
      return failed(error);
    }
  }

  // In legacy mode the mutating (POST) routes also answer GET, as NSQ 0.x did.
  #find(candidates: Route[], method: string): Route | undefined {
    return candidates.find((r) => r.method === method) ??
      (this.#legacy && method === "GET" ? candidates.find((r) => r.method === "POST") : undefined);
  }

  #allowHeader(candidates: Route[]): string {
    const methods = new Set<string>(candidates.map((r) => r.method));
    if (this.#legacy && methods.has("POST")) methods.add("GET");
    return [...methods, "OPTIONS"].sort().join(", ");
  }

  // Like httprouter, which keeps one tree per method, only redirect to a
  // canonical path that has a route for the request's method: the reference
  // answers `POST /LOOKUP` or `OPTIONS /lookup/` with 404, not a redirect.
  #redirectOrNotFound(
    method: string,
    path: string,
    query: string | undefined,
    format: Format,
  ): HttpAnswer {
    const canonical = this.#canonicalByFolded.get(
      stripTrailingSlash(cleanPath(path)).toLowerCase(),
    );
    const routes = canonical === undefined ? undefined : this.#byPath.get(canonical);
    if (
      canonical === undefined || canonical === path || routes === undefined ||
      this.#find(routes, method) === undefined
    ) {
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
