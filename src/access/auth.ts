// The NSQ auth server protocol, as nsqd speaks it (internal/auth): the query
// nsqd sends, the answer decoded the way Go's encoding/json fills auth.State,
// validated as QueryAuthd does, and Authorization.IsAllowed's rules, plus the
// two questions a lookupd asks that nsqd never does ("may this secret
// subscribe to topic T at all?", "may it use T?"). Pure: no I/O, no clock.

import { compileGoRegexp, type GoRegexp } from "./goregexp.ts";
import { isValidChannelName, isValidTopicName } from "../names.ts";
import { err, ok, type Result } from "../result.ts";

/** One entry of `authorizations`: patterns compiled, permissions as flags. */
export interface Authorization {
  readonly topic: GoRegexp;
  readonly channels: readonly GoRegexp[];
  readonly subscribe: boolean;
  readonly publish: boolean;
}

/** A decoded, validated answer (nsqd's auth.State). */
export interface AuthState {
  readonly ttlSeconds: number;
  readonly identity: string;
  readonly identityUrl: string;
  readonly authorizations: readonly Authorization[];
}

/** What nsqd sends: `remote_ip`, `tls`, `secret`, `common_name` (always empty here: no client certificates). */
export interface AuthQuery {
  readonly remoteIp: string;
  readonly tls: boolean;
  readonly secret: string;
}

/** Go's url.QueryEscape: unreserved bytes stay, space is `+`, everything else `%XX`. */
export function goQueryEscape(text: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(text)) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-_.~]/.test(c)) out += c;
    else if (c === " ") out += "+";
    else out += "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/**
 * The URL nsqd's QueryAuthd asks: `http://ADDR/auth?…` for a `host:port`, or
 * the address itself followed by `?…` when it is a full URL. The parameters are
 * url.Values.Encode()d: sorted by name.
 */
export function authUrl(address: string, query: AuthQuery): string {
  const params = `common_name=&remote_ip=${goQueryEscape(query.remoteIp)}&secret=${
    goQueryEscape(query.secret)
  }&tls=${query.tls}`;
  return address.includes("://") ? `${address}?${params}` : `http://${address}/auth?${params}`;
}

// ---- Decoding like Go's json.Unmarshal into auth.State ----------------------

/** A JSON number with its literal text, which Go's int decoding looks at. */
class JsonNumber {
  constructor(readonly value: number, readonly source: string) {}
}

type Json = null | boolean | string | JsonNumber | Json[] | { [key: string]: Json };

function parseJson(text: string): Json {
  return JSON.parse(
    text,
    (_key, value, context?: { source?: string }) =>
      typeof value === "number" ? new JsonNumber(value, context?.source ?? String(value)) : value,
  ) as Json;
}

function jsonType(value: Json): string {
  if (value === null) return "null";
  if (value instanceof JsonNumber) return "number";
  if (Array.isArray(value)) return "array";
  return typeof value === "object" ? "object" : typeof value;
}

/** Go's UnmarshalTypeError text. */
function typeError(value: Json, field: string, goType: string): string {
  return `json: cannot unmarshal ${
    jsonType(value)
  } into Go struct field ${field} of type ${goType}`;
}

/**
 * Go matches JSON keys to struct fields by tag, case-insensitively (the last
 * duplicate wins). Returns the value for `name`, or undefined when absent.
 */
function field(object: { [key: string]: Json }, name: string): Json | undefined {
  let found: Json | undefined;
  for (const key of Object.keys(object)) {
    if (key.toLowerCase() === name) found = object[key];
  }
  return found;
}

function goString(value: Json | undefined, fieldName: string): Result<string> {
  if (value === undefined || value === null) return ok("");
  return typeof value === "string" ? ok(value) : err(typeError(value, fieldName, "string"));
}

function goStringSlice(value: Json | undefined, fieldName: string): Result<string[]> {
  if (value === undefined || value === null) return ok([]);
  if (!Array.isArray(value)) return err(typeError(value, fieldName, "[]string"));
  const out: string[] = [];
  for (const item of value) {
    const s = goString(item, fieldName);
    if (!s.ok) return s;
    out.push(s.value);
  }
  return ok(out);
}

const INT64_MAX = 2n ** 63n - 1n;
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

function goInt(value: Json | undefined, fieldName: string): Result<number> {
  if (value === undefined || value === null) return ok(0);
  if (!(value instanceof JsonNumber)) return err(typeError(value, fieldName, "int"));
  // Go parses the literal: `1.0` and `1e3` are no ints, nor is anything beyond int64.
  if (!/^-?(0|[1-9][0-9]*)$/.test(value.source)) {
    return err(
      `json: cannot unmarshal number ${value.source} into Go struct field ${fieldName} of type int`,
    );
  }
  const big = BigInt(value.source);
  if (big > INT64_MAX || big < -INT64_MAX - 1n) {
    return err(
      `json: cannot unmarshal number ${value.source} into Go struct field ${fieldName} of type int`,
    );
  }
  // Seconds beyond 2^53 mean "never expires" just as well.
  return ok(Number(big));
}

const PATTERN_CACHE_LIMIT = 1024;
/** Compiled patterns by source: every answer of an auth server repeats the same few. */
const patternCache = new Map<string, Result<GoRegexp>>();

function compilePattern(source: string): Result<GoRegexp> {
  let compiled = patternCache.get(source);
  if (compiled === undefined) {
    compiled = compileGoRegexp(source);
    if (patternCache.size >= PATTERN_CACHE_LIMIT) patternCache.clear();
    patternCache.set(source, compiled);
  }
  return compiled;
}

/** Largest answer accepted from an auth server. */
export const MAX_AUTH_ANSWER_BYTES = 1024 * 1024;

/**
 * Decodes an auth server's answer (status 200) as nsqd's QueryAuthd does:
 * Go's json.Unmarshal into auth.State, every permission `subscribe` or
 * `publish`, every pattern a valid Go regexp, `ttl` above zero. The error
 * texts are nsqd's.
 */
export function parseAuthAnswer(body: string): Result<AuthState> {
  let json: Json;
  try {
    json = parseJson(body);
  } catch (error) {
    return err(`invalid JSON - ${error instanceof Error ? error.message : String(error)}`);
  }
  if (json === null) json = {};
  if (typeof json !== "object" || Array.isArray(json) || json instanceof JsonNumber) {
    return err(`json: cannot unmarshal ${jsonType(json)} into Go value of type auth.State`);
  }
  const ttl = goInt(field(json, "ttl"), "State.ttl");
  if (!ttl.ok) return ttl;
  const identity = goString(field(json, "identity"), "State.identity");
  if (!identity.ok) return identity;
  const identityUrl = goString(field(json, "identity_url"), "State.identity_url");
  if (!identityUrl.ok) return identityUrl;
  // Go fills the untagged Expires field from any "expires" key (QueryAuthd then overwrites it).
  const expires = field(json, "expires");
  if (expires !== undefined && expires !== null) {
    if (typeof expires !== "string") return err(typeError(expires, "State.Expires", "time.Time"));
    if (!RFC3339.test(expires)) return err(`parsing time ${JSON.stringify(expires)} as RFC 3339`);
  }
  const list = field(json, "authorizations");
  if (list !== undefined && list !== null && !Array.isArray(list)) {
    return err(typeError(list, "State.authorizations", "[]auth.Authorization"));
  }
  const authorizations: Authorization[] = [];
  for (const entry of list ?? []) {
    const parsed = parseAuthorization(entry);
    if (!parsed.ok) return parsed;
    authorizations.push(parsed.value);
  }
  if (ttl.value <= 0) return err(`invalid TTL ${ttl.value} (must be >0)`);
  return ok({
    ttlSeconds: ttl.value,
    identity: identity.value,
    identityUrl: identityUrl.value,
    authorizations,
  });
}

function parseAuthorization(entry: Json): Result<Authorization> {
  if (entry === null) entry = {};
  if (typeof entry !== "object" || Array.isArray(entry) || entry instanceof JsonNumber) {
    return err(typeError(entry, "State.authorizations", "auth.Authorization"));
  }
  const topic = goString(field(entry, "topic"), "Authorization.topic");
  if (!topic.ok) return topic;
  const channels = goStringSlice(field(entry, "channels"), "Authorization.channels");
  if (!channels.ok) return channels;
  const permissions = goStringSlice(field(entry, "permissions"), "Authorization.permissions");
  if (!permissions.ok) return permissions;
  for (const p of permissions.value) {
    if (p !== "subscribe" && p !== "publish") return err(`unknown permission ${p}`);
  }
  const topicRegexp = compilePattern(topic.value);
  if (!topicRegexp.ok) {
    return err(`unable to compile topic ${JSON.stringify(topic.value)} ${topicRegexp.error}`);
  }
  const channelRegexps: GoRegexp[] = [];
  for (const channel of channels.value) {
    const compiled = compilePattern(channel);
    if (!compiled.ok) {
      return err(`unable to compile channel ${JSON.stringify(channel)} ${compiled.error}`);
    }
    channelRegexps.push(compiled.value);
  }
  return ok({
    topic: topicRegexp.value,
    channels: channelRegexps,
    subscribe: permissions.value.includes("subscribe"),
    publish: permissions.value.includes("publish"),
  });
}

// ---- The rules ---------------------------------------------------------------

/** nsqd's Authorization.IsAllowed: subscribe with a channel, publish without. */
export function authorizationAllows(a: Authorization, topic: string, channel: string): boolean {
  if (channel !== "" ? !a.subscribe : !a.publish) return false;
  if (!a.topic.matchString(topic)) return false;
  return a.channels.some((c) => c.matchString(channel));
}

/** nsqd's State.IsAllowed. */
export function isAllowed(state: AuthState, topic: string, channel: string): boolean {
  return state.authorizations.some((a) => authorizationAllows(a, topic, channel));
}

/**
 * Whether the secret may subscribe to `topic` on some channel: nsqd would let
 * it SUB there. Names nsqd would refuse are never allowed, which also keeps
 * pattern inputs short.
 */
export function maySubscribe(state: AuthState, topic: string): boolean {
  if (!isValidTopicName(topic)) return false;
  return state.authorizations.some((a) =>
    a.subscribe && a.channels.length > 0 && a.topic.matchString(topic)
  );
}

/** Whether the secret may subscribe to `topic` on `channel` (valid names only). */
export function maySubscribeChannel(state: AuthState, topic: string, channel: string): boolean {
  return isValidTopicName(topic) && isValidChannelName(channel) && isAllowed(state, topic, channel);
}

/** Whether the secret may publish to `topic` or subscribe to it: what `/topics` lists. */
export function mayUseTopic(state: AuthState, topic: string): boolean {
  if (!isValidTopicName(topic)) return false;
  return state.authorizations.some((a) =>
    (a.publish || (a.subscribe && a.channels.length > 0)) && a.topic.matchString(topic)
  );
}

/** Whether every topic is listed for the secret (a pattern like `.*` allows them all). */
export function seesEveryTopic(state: AuthState): boolean {
  return state.authorizations.some((a) =>
    (a.publish || (a.subscribe && a.channels.length > 0)) && a.topic.matchesEverything
  );
}

/** Whether every channel of `topic` is listed for the secret. */
export function seesEveryChannel(state: AuthState, topic: string): boolean {
  return isValidTopicName(topic) &&
    state.authorizations.some((a) =>
      a.subscribe && a.channels.some((c) => c.matchesEverything) && a.topic.matchString(topic)
    );
}

/** The secret of an `Authorization: Bearer <secret>` header (scheme case-insensitive). */
export function bearerSecret(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  // What go-nsq and pynsq send, without a regexp.
  if (header.startsWith("Bearer ") && header.charCodeAt(7) !== 32) {
    const secret = header.slice(7).trimEnd();
    return secret === "" ? undefined : secret;
  }
  const match = /^[Bb][Ee][Aa][Rr][Ee][Rr] +(.*)$/.exec(header);
  if (match === null) return undefined;
  const secret = match[1].trim();
  return secret === "" ? undefined : secret;
}
