// Policies are wrappers, applied in one table (api.ts) as the Go daemon writes
// `Decorate(doLookup, log, V1)`. Route policies wrap a route (access control);
// `formatted` gives it its wire format; exchange policies (logging, metrics)
// wrap every request the API answers, router errors included.

import { formatDuration } from "../gocompat/duration.ts";
import type { Logger } from "../ops/logger.ts";
import type { ApiRequest } from "./api.ts";
import { toAnswer } from "./render.ts";
import { type Handler, type MaybePromise, type Routed, splitTarget } from "./router.ts";
import type { RouteFn } from "./routes.ts";

/** Wraps a route: may answer in its place, or hand it a narrower request. */
export type RoutePolicy = (next: RouteFn) => RouteFn;

/** Wraps the whole API: sees every request and its answer. */
export type Exchange = (request: ApiRequest) => Routed;
export type ExchangePolicy = (next: Exchange) => Exchange;

/** Receives one observation per request; daemon.ts feeds it into /metrics. */
export interface HttpObserver {
  request(route: string, status: number, seconds: number): void;
}

/** The route with its policies (outermost first), answering in the request's format. */
export function decorate(route: RouteFn, ...policies: RoutePolicy[]): Handler {
  const wrapped = policies.reduceRight((next, policy) => policy(next), route);
  return (req, format) => when(wrapped(req), (outcome) => toAnswer(outcome, format));
}

/** The API with its exchange policies, outermost first. */
export function decorateExchange(exchange: Exchange, ...policies: ExchangePolicy[]): Exchange {
  return policies.reduceRight((next, policy) => policy(next), exchange);
}

/** Counts each request by route and status, with its duration. */
export function observed(observer: HttpObserver | undefined): ExchangePolicy {
  if (observer === undefined) return (next) => next;
  return (next) => (request) => {
    const started = performance.now();
    const routed = next(request);
    const answer = when(routed.answer, (answer) => {
      observer.request(routed.label, answer.status, (performance.now() - started) / 1000);
      return answer;
    });
    return { label: routed.label, answer };
  };
}

/** The reference's request line: `STATUS METHOD URI (REMOTE) ELAPSED`. */
export function logged(logger: Logger): ExchangePolicy {
  return (next) => (request) => {
    if (!logger.enabled("info")) return next(request);
    const started = performance.now();
    const routed = next(request);
    const answer = when(routed.answer, (answer) => {
      const elapsedMs = performance.now() - started;
      const remote = request.remote ?? "-";
      const uri = requestUri(request.target);
      const elapsed = formatDuration(BigInt(Math.round(elapsedMs * 1e6)));
      logger.info(`${answer.status} ${request.method} ${uri} (${remote}) ${elapsed}`, {
        status: answer.status,
        method: request.method,
        uri,
        remote_addr: remote,
        elapsed_ms: Math.round(elapsedMs * 1000) / 1000,
      });
      return answer;
    });
    return { label: routed.label, answer };
  };
}

/** The target as logged: the path decoded, the query as sent. */
function requestUri(target: string): string {
  const { path, query } = splitTarget(target);
  return query === undefined ? path : `${path}?${query}`;
}

/** `f(value)`, synchronously when the value is at hand. */
export function when<T, U>(value: MaybePromise<T>, f: (value: T) => U): MaybePromise<U> {
  return value instanceof Promise ? value.then(f) : f(value);
}
