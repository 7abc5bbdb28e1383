// Answers "what may this secret do?" for the HTTP routes: the auth servers'
// answers cached per secret and client address for their ttl (synchronously
// on a hit), one query at a time per key, failover across the
// --auth-http-address servers as nsqd does (random start, a failing one
// skipped), failing servers rested with backoff so an outage costs no
// connection storm, a bound on queries in flight and on cache size, and one
// log line per failure burst. The clock and the query are injected.

import { type AuthQuery, type AuthState, MAX_AUTH_ANSWER_BYTES, parseAuthAnswer } from "./auth.ts";
import { Burst } from "./bursts.ts";
import type { Logger } from "../ops/logger.ts";

export type AuthOutcome =
  | { readonly kind: "granted"; readonly state: AuthState }
  /** An auth server refused the secret (401 or 403). */
  | { readonly kind: "refused" }
  /** No auth server gave a usable answer: never an open door. */
  | { readonly kind: "unavailable"; readonly reason: string };

/** What one HTTP exchange with an auth server gave. */
export type QueryResult =
  | {
    readonly kind: "answer";
    readonly status: number;
    readonly statusText: string;
    readonly body: string;
  }
  | { readonly kind: "error"; readonly reason: string };

export type QueryFn = (
  address: string,
  query: AuthQuery,
  timeoutMs: number,
) => Promise<QueryResult>;

export type AuthQueryResult = "granted" | "refused" | "failed";

export interface AuthObserver {
  query(address: string, result: AuthQueryResult): void;
}

/** A refused secret is asked about again after this long. */
export const REFUSAL_TTL_MS = 10_000;
/** Cached answers at most; beyond, expired ones go, then the oldest. */
export const MAX_CACHE_ENTRIES = 10_000;
/** Distinct queries in flight at most; beyond, requests are answered 503 at once. */
export const MAX_QUERIES_IN_FLIGHT = 128;
/** Rest of a failing auth server: doubles from the first to the last. */
export const FIRST_BACKOFF_MS = 500;
export const MAX_BACKOFF_MS = 10_000;
/** An ongoing failure burst is summed up in the log at most this often. */
export const FAILURE_LOG_INTERVAL_MS = 60_000;

export interface AuthServiceOptions {
  /** `--auth-http-address` values: `host:port` or full URLs. */
  addresses: readonly string[];
  query: QueryFn;
  /** `--http-client-request-timeout`, bounding each exchange. */
  timeoutMs: number;
  logger: Logger;
  /** Monotonic milliseconds. */
  now?: () => number;
  /** Where failover starts (nsqd picks at random); in [0, 1). */
  random?: () => number;
  observer?: AuthObserver;
}

interface CacheEntry {
  readonly outcome: AuthOutcome;
  readonly expiresAt: number;
}

interface ServerHealth {
  readonly address: string;
  failures: number;
  restUntil: number;
  readonly burst: Burst;
}

export class AuthService {
  readonly #options: AuthServiceOptions;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #inFlight = new Map<string, Promise<AuthOutcome>>();
  readonly #servers: ServerHealth[];
  readonly #busy: Burst;

  constructor(options: AuthServiceOptions) {
    if (options.addresses.length === 0) throw new Error("AuthService needs an auth server");
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
    this.#random = options.random ?? Math.random;
    this.#servers = options.addresses.map((address) => ({
      address,
      failures: 0,
      restUntil: -Infinity,
      burst: new Burst(FAILURE_LOG_INTERVAL_MS, this.#now),
    }));
    this.#busy = new Burst(FAILURE_LOG_INTERVAL_MS, this.#now);
  }

  get cacheSize(): number {
    return this.#cache.size;
  }

  get queriesInFlight(): number {
    return this.#inFlight.size;
  }

  /** Auth servers resting after failures right now. */
  get failingServers(): number {
    return this.#servers.filter((s) => s.failures > 0).length;
  }

  /** What the secret may do, from the cache when it can (synchronously), else from an auth server. */
  lookup(query: AuthQuery): AuthOutcome | Promise<AuthOutcome> {
    const key = `${query.tls ? "1" : "0"}\u0000${query.remoteIp}\u0000${query.secret}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined) {
      if (this.#now() < cached.expiresAt) return cached.outcome;
      this.#cache.delete(key);
    }
    const pending = this.#inFlight.get(key);
    if (pending !== undefined) return pending;
    if (this.#inFlight.size >= MAX_QUERIES_IN_FLIGHT) {
      const report = this.#busy.event();
      if (report !== undefined) {
        this.#options.logger.warn(
          `AUTH: ${MAX_QUERIES_IN_FLIGHT} queries in flight: answering 503 to ${report.sinceLastLine} request(s)`,
        );
      }
      return { kind: "unavailable", reason: "too many auth queries in flight" };
    }
    const started = this.#ask(query).then((outcome) => {
      this.#inFlight.delete(key);
      if (this.#inFlight.size === 0) this.#busy.end();
      const ttlMs = outcome.kind === "granted"
        ? outcome.state.ttlSeconds * 1000
        : outcome.kind === "refused"
        ? REFUSAL_TTL_MS
        : 0;
      if (ttlMs > 0) this.#store(key, { outcome, expiresAt: this.#now() + ttlMs });
      return outcome;
    });
    this.#inFlight.set(key, started);
    return started;
  }

  #store(key: string, entry: CacheEntry): void {
    if (this.#cache.size >= MAX_CACHE_ENTRIES) {
      const now = this.#now();
      for (const [k, e] of this.#cache) if (e.expiresAt <= now) this.#cache.delete(k);
      // Still full: the oldest entries go (a Map iterates in insertion order).
      for (const k of this.#cache.keys()) {
        if (this.#cache.size < MAX_CACHE_ENTRIES) break;
        this.#cache.delete(k);
      }
    }
    this.#cache.set(key, entry);
  }

  /** Servers in nsqd's order (from a random one, round the list), resting ones left out. */
  #candidates(): ServerHealth[] {
    const n = this.#servers.length;
    const start = Math.floor(this.#random() * n) % n;
    const now = this.#now();
    const order: ServerHealth[] = [];
    for (let i = 0; i < n; i++) {
      const server = this.#servers[(start + i) % n];
      if (server.restUntil <= now) order.push(server);
    }
    return order;
  }

  async #ask(query: AuthQuery): Promise<AuthOutcome> {
    const candidates = this.#candidates();
    if (candidates.length === 0) {
      return { kind: "unavailable", reason: "every auth server is failing" };
    }
    const reasons: string[] = [];
    for (const server of candidates) {
      const result = await this.#options.query(server.address, query, this.#options.timeoutMs);
      const outcome = this.#judge(result);
      if (outcome.kind === "failed") {
        this.#failed(server, outcome.reason);
        reasons.push(`failed to auth against ${server.address} - ${outcome.reason}`);
        continue;
      }
      this.#answered(server);
      this.#options.observer?.query(
        server.address,
        outcome.kind === "granted" ? "granted" : "refused",
      );
      return outcome;
    }
    return { kind: "unavailable", reason: reasons.join("; ") };
  }

  #judge(result: QueryResult): AuthOutcome | { kind: "failed"; reason: string } {
    if (result.kind === "error") return { kind: "failed", reason: result.reason };
    if (result.status === 401 || result.status === 403) return { kind: "refused" };
    if (result.status !== 200) {
      // nsqd's http_api wording: `got response 500 Internal Server Error "body"`.
      const body = result.body.length > 200 ? result.body.slice(0, 200) + "…" : result.body;
      return {
        kind: "failed",
        reason: `got response ${result.status} ${result.statusText} ${JSON.stringify(body)}`,
      };
    }
    if (result.body.length > MAX_AUTH_ANSWER_BYTES) {
      return { kind: "failed", reason: `answer larger than ${MAX_AUTH_ANSWER_BYTES} bytes` };
    }
    const state = parseAuthAnswer(result.body);
    if (!state.ok) return { kind: "failed", reason: state.error };
    return { kind: "granted", state: state.value };
  }

  #failed(server: ServerHealth, reason: string): void {
    server.failures++;
    const rest = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (server.failures - 1));
    server.restUntil = this.#now() + rest;
    this.#options.observer?.query(server.address, "failed");
    const report = server.burst.event();
    if (report === undefined) return;
    const { logger } = this.#options;
    if (report.count === 1) {
      logger.warn(
        `AUTH: failed to auth against ${server.address} - ${reason} (further failures are counted, ` +
          `not logged, until it answers again)`,
        { auth_address: server.address, reason },
      );
    } else {
      logger.warn(
        `AUTH: ${server.address} still failing: ${report.sinceLastLine} more failures ` +
          `(${report.count} in ${Math.round(report.elapsedMs / 1000)}s) - last: ${reason}`,
        { auth_address: server.address, reason, failures: report.count },
      );
    }
  }

  #answered(server: ServerHealth): void {
    server.failures = 0;
    server.restUntil = -Infinity;
    const report = server.burst.end();
    if (report !== undefined) {
      this.#options.logger.info(
        `AUTH: ${server.address} answers again after ${report.count} failed queries`,
        { auth_address: server.address, failures: report.count },
      );
    }
  }
}
