// Who may do what: --producer-networks, --admin-networks and
// --auth-http-address as route policies for the API's table (api.ts applies
// them by kind of route, as the Go daemon's Decorate does) and a test for TCP
// peers. With none of the flags, no policy is installed at all.
//
// - TCP: a peer outside --producer-networks is refused before it sends a byte.
// - Admin routes (mutations, /debug): only --admin-networks; when auth is on
//   and no admin network is given, nobody (the door does not stay open).
// - Query routes, with auth on: peers in either network read without a
//   secret (nsqd, nsqadmin); others need `Authorization: Bearer <secret>`
//   whose auth answer lets them subscribe to the topic, and see only the
//   topics and channels it lets them use.

import {
  type AuthState,
  bearerSecret,
  maySubscribe,
  maySubscribeChannel,
  mayUseTopic,
  seesEveryChannel,
  seesEveryTopic,
} from "./auth.ts";
import type { AuthOutcome, AuthService } from "./auth_service.ts";
import { formatIp, type NetworkSet, peerIp } from "./networks.ts";
import { type HttpError, httpError } from "../errors.ts";
import { goJsonString } from "../gocompat/json.ts";
import type { QueryParams } from "../gocompat/query.ts";
import type { ApiRequest, RouteKind } from "../http/api.ts";
import { type RoutePolicy, when } from "../http/policies.ts";
import type { Outcome } from "../http/render.ts";
import { LEGACY_ALIASES, type MaybePromise, splitTarget } from "../http/router.ts";
import type { RouteFn, RouteRequest, Visibility } from "../http/routes.ts";

export const FORBIDDEN = "FORBIDDEN";
export const AUTH_REQUIRED = "AUTH_REQUIRED";
export const AUTH_FAILED = "AUTH_FAILED";
export const UNAUTHORIZED = "UNAUTHORIZED";
export const AUTH_UNAVAILABLE = "AUTH_UNAVAILABLE";

/** The `reason` label of the refusal counters. */
export type RefusalReason =
  | "network"
  | "auth_required"
  | "auth_failed"
  | "unauthorized"
  | "auth_unavailable";

export interface AccessObserver {
  refused(protocol: "tcp" | "http", reason: RefusalReason): void;
}

interface Refusal {
  readonly kind: "refuse";
  readonly error: HttpError;
  readonly reason: RefusalReason;
}

interface Grant {
  readonly kind: "grant";
  /** What the route may show; absent: everything. */
  readonly visible?: Visibility;
  /** Applied to the route's outcome (/nodes, whose route has no visibility). */
  readonly after?: (outcome: Outcome) => Outcome;
}

type Decision = Grant | Refusal;

const GRANT: Grant = { kind: "grant" };

const refusal = (status: number, code: string, reason: RefusalReason): Refusal => ({
  kind: "refuse",
  error: httpError(status, code),
  reason,
});

const REFUSE_NETWORK = refusal(403, FORBIDDEN, "network");
const REFUSE_NO_SECRET = refusal(401, AUTH_REQUIRED, "auth_required");
const REFUSE_SECRET = refusal(403, AUTH_FAILED, "auth_failed");
const REFUSE_TOPIC = refusal(403, UNAUTHORIZED, "unauthorized");
const REFUSE_UNAVAILABLE = refusal(503, AUTH_UNAVAILABLE, "auth_unavailable");

export interface AccessPolicyOptions {
  /** `--producer-networks`; undefined: anyone may register. */
  producerNetworks?: NetworkSet;
  /** `--admin-networks`; undefined: anyone may administer, unless auth is on. */
  adminNetworks?: NetworkSet;
  /** `--auth-http-address`; undefined: reads are open. */
  auth?: AuthService;
  observer?: AccessObserver;
}

export class AccessPolicy {
  readonly #options: AccessPolicyOptions;
  readonly #visibility = new WeakMap<AuthState, Visibility>();
  readonly #nodeFilters = new WeakMap<AuthState, (outcome: Outcome) => Outcome>();
  readonly #topicDecisions = new WeakMap<AuthState, Map<string, Decision>>();
  readonly #remoteIps = new Map<string, string>();

  constructor(options: AccessPolicyOptions) {
    this.#options = options;
  }

  /** Whether any rule is on: with none, nothing is installed anywhere. */
  get active(): boolean {
    const o = this.#options;
    return o.producerNetworks !== undefined || o.adminNetworks !== undefined ||
      o.auth !== undefined;
  }

  /** TCP: whether a peer may connect to register (`--producer-networks`). */
  mayRegister(remote: Deno.NetAddr): boolean {
    const networks = this.#options.producerNetworks;
    return networks === undefined || networks.contains(remote.hostname);
  }

  /** The route policies for createHttpApi, by kind of route; none when no rule is on. */
  routePolicies(): Partial<Record<RouteKind, RoutePolicy[]>> {
    const { adminNetworks, auth } = this.#options;
    const policies: Partial<Record<RouteKind, RoutePolicy[]>> = {};
    if (adminNetworks !== undefined || auth !== undefined) {
      policies.admin = [this.#policy((req) => this.decideAdmin(req.request))];
    }
    if (auth !== undefined) {
      policies.query = [this.#policy((req) => this.decideQuery(req.params, req.request))];
    }
    return policies;
  }

  #policy(decide: (req: RouteRequest) => MaybePromise<Decision>): RoutePolicy {
    return (next) => (req) => {
      const decision = decide(req);
      return decision instanceof Promise
        ? decision.then((d) => this.#apply(d, next, req))
        : this.#apply(decision, next, req);
    };
  }

  #apply(decision: Decision, next: RouteFn, req: RouteRequest): MaybePromise<Outcome> {
    if (decision.kind === "refuse") {
      this.#options.observer?.refused("http", decision.reason);
      return decision.error;
    }
    const routed = next(
      decision.visible === undefined ? req : { ...req, visible: decision.visible },
    );
    return decision.after === undefined ? routed : when(routed, decision.after);
  }

  /** Admin routes: --admin-networks only; nobody when auth is on without it. */
  decideAdmin(request: ApiRequest): Decision {
    const { adminNetworks, auth } = this.#options;
    if (adminNetworks === undefined) return auth === undefined ? GRANT : REFUSE_NETWORK;
    const host = request.remoteAddr?.hostname;
    return host !== undefined && adminNetworks.contains(host) ? GRANT : REFUSE_NETWORK;
  }

  /** Query routes with auth on: synchronous unless the auth server must be asked. */
  decideQuery(params: QueryParams, request: ApiRequest): MaybePromise<Decision> {
    const { adminNetworks, producerNetworks, auth } = this.#options;
    if (auth === undefined) return GRANT;
    const host = request.remoteAddr?.hostname;
    if (
      host !== undefined &&
      (adminNetworks?.contains(host) === true || producerNetworks?.contains(host) === true)
    ) {
      return GRANT;
    }
    const secret = bearerSecret(request.authorization);
    if (secret === undefined) return REFUSE_NO_SECRET;
    const outcome = auth.lookup({
      remoteIp: host === undefined ? "" : this.#remoteIp(host),
      tls: request.tls === true,
      secret,
    });
    const path = routePath(request.target);
    return when(outcome, (o) => this.#decideRoute(path, params, o));
  }

  /** The address as nsqd tells the auth server (`10.0.0.1`, `::1`), remembered per peer host. */
  #remoteIp(host: string): string {
    let ip = this.#remoteIps.get(host);
    if (ip === undefined) {
      const bytes = peerIp(host);
      ip = bytes === undefined ? host : formatIp(bytes);
      if (this.#remoteIps.size >= 4096) this.#remoteIps.clear();
      this.#remoteIps.set(host, ip);
    }
    return ip;
  }

  #decideRoute(path: string, params: QueryParams, outcome: AuthOutcome): Decision {
    if (outcome.kind === "refused") return REFUSE_SECRET;
    if (outcome.kind === "unavailable") return REFUSE_UNAVAILABLE;
    const { state } = outcome;
    const topic = params.get("topic");
    if (topic !== undefined && (path === "/lookup" || path === "/channels")) {
      // Stable for as long as the answer is cached: decided once per topic.
      let decisions = this.#topicDecisions.get(state);
      if (decisions === undefined) {
        decisions = new Map();
        this.#topicDecisions.set(state, decisions);
      }
      const key = path === "/lookup" ? topic : `\u0000${topic}`;
      let decision = decisions.get(key);
      if (decision === undefined) {
        decision = this.#decideTopic(path, state, topic);
        if (decisions.size >= 1024) decisions.clear();
        decisions.set(key, decision);
      }
      return decision;
    }
    return this.#decideList(path, state);
  }

  /**
   * /lookup and /channels: the topic must be subscribable; its channels may be
   * narrowed. /lookup's body is cached by the route, so it is narrowed after
   * (once per body); /channels builds its list each time, narrowed as it goes.
   */
  #decideTopic(path: string, state: AuthState, topic: string): Decision {
    if (!maySubscribe(state, topic)) return REFUSE_TOPIC;
    if (seesEveryChannel(state, topic)) return GRANT;
    if (path === "/channels") return { kind: "grant", visible: this.#visible(state) };
    const keep = (channel: string): boolean => maySubscribeChannel(state, topic, channel);
    return { kind: "grant", after: memoFilter((body) => filterChannels(body, keep)) };
  }

  #decideList(path: string, state: AuthState): Decision {
    switch (path) {
      case "/topics":
        return seesEveryTopic(state) ? GRANT : { kind: "grant", visible: this.#visible(state) };
      case "/nodes":
        return seesEveryTopic(state) ? GRANT : { kind: "grant", after: this.#nodesFilter(state) };
    }
    return GRANT;
  }

  #nodesFilter(state: AuthState): (outcome: Outcome) => Outcome {
    let filter = this.#nodeFilters.get(state);
    if (filter === undefined) {
      filter = memoFilter((body) => filterNodes(body, (topic) => mayUseTopic(state, topic)));
      this.#nodeFilters.set(state, filter);
    }
    return filter;
  }

  #visible(state: AuthState): Visibility {
    let visible = this.#visibility.get(state);
    if (visible === undefined) {
      visible = {
        topic: (topic) => mayUseTopic(state, topic),
        channel: (topic, channel) => maySubscribeChannel(state, topic, channel),
      };
      this.#visibility.set(state, visible);
    }
    return visible;
  }
}

/**
 * An outcome filter for one answer (and topic): JSON bodies through `filter`,
 * each remembered by the route's body text, which the routes hand back from
 * their caches unchanged until the registry changes.
 */
function memoFilter(filter: (body: string) => string): (outcome: Outcome) => Outcome {
  const bodies = new Map<string, string>();
  return (outcome) => {
    let text: string;
    if (outcome.kind === "json") text = outcome.body;
    else if (outcome.kind === "json-slices") text = gather(outcome.slices);
    else return outcome;
    let body = bodies.get(text);
    if (body === undefined) {
      body = filter(text);
      if (bodies.size >= 16) bodies.clear();
      bodies.set(text, body);
    }
    return outcome.kind === "json" && body === text ? outcome : { kind: "json", body };
  };
}

function gather(slices: Iterator<string, void, undefined>): string {
  let text = "";
  for (let r = slices.next(); !r.done; r = slices.next()) text += r.value;
  return text;
}

/** The route a request reached: its path, legacy names mapped. */
function routePath(target: string): string {
  // The common origin-form target without escapes needs no full parse.
  const question = target.indexOf("?");
  const path = target[0] === "/" && !target.includes("%")
    ? (question === -1 ? target : target.slice(0, question))
    : splitTarget(target).path;
  return LEGACY_ALIASES.get(path) ?? path;
}

type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Our JSON back to text as Go's encoding/json wrote it (key order kept). */
function goJson(value: JsonValue): string {
  if (value === null) return "null";
  if (typeof value === "string") return goJsonString(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return `[${value.map(goJson).join(",")}]`;
  return `{${Object.keys(value).map((k) => `${goJsonString(k)}:${goJson(value[k])}`).join(",")}}`;
}

/** A /lookup document with only the channels `keep` allows; the same text when none goes. */
export function filterChannels(body: string, keep: (channel: string) => boolean): string {
  const doc = JSON.parse(body) as { [key: string]: JsonValue };
  const { channels } = doc;
  if (!Array.isArray(channels)) return body;
  const kept = channels.filter((c) => typeof c === "string" && keep(c));
  if (kept.length === channels.length) return body;
  doc.channels = kept;
  return goJson(doc);
}

/**
 * A /nodes document with each producer's `topics` (and the `tombstones` flags
 * beside them) cut down to those `keep` allows; the same text when none goes.
 */
export function filterNodes(body: string, keep: (topic: string) => boolean): string {
  const doc = JSON.parse(body) as { producers?: { [key: string]: JsonValue }[] };
  let changed = false;
  for (const producer of doc.producers ?? []) {
    const { topics, tombstones } = producer;
    if (!Array.isArray(topics)) continue;
    const kept = topics.map((t) => typeof t === "string" && keep(t));
    if (kept.every(Boolean)) continue;
    changed = true;
    producer.topics = topics.filter((_, i) => kept[i]);
    if (Array.isArray(tombstones)) producer.tombstones = tombstones.filter((_, i) => kept[i]);
  }
  return changed ? goJson(doc as JsonValue) : body;
}

/** The TCP refusal's payload; nsqlookupd frames every response as size, then text. */
export const TCP_REFUSAL_TEXT = "E_UNAUTHORIZED client address not in --producer-networks";

export function tcpRefusalFrame(): Uint8Array {
  const payload = new TextEncoder().encode(TCP_REFUSAL_TEXT);
  const frame = new Uint8Array(4 + payload.length);
  new DataView(frame.buffer).setUint32(0, payload.length);
  frame.set(payload, 4);
  return frame;
}
