// The API's routes: one small named function each, over the registry. They
// know nothing of wire formats, logging or metrics (see policies.ts) and
// nothing of paths and methods (see api.ts, the table).

import {
  CHANNEL_NOT_FOUND,
  type HttpError,
  httpError,
  INVALID_ARG_CHANNEL,
  INVALID_ARG_TOPIC,
  MISSING_ARG_CHANNEL,
  MISSING_ARG_NODE,
  MISSING_ARG_TOPIC,
  TOPIC_NOT_FOUND,
} from "../errors.ts";
import { goJsonString, goJsonStringArray } from "../gocompat/json.ts";
import type { QueryParams } from "../gocompat/query.ts";
import { isValidChannelName, isValidTopicName } from "../names.ts";
import type { Logger } from "../ops/logger.ts";
import { PROMETHEUS_CONTENT_TYPE } from "../ops/prometheus.ts";
import { compareStrings, type Registry } from "../registry.ts";
import { err, ok, type Result } from "../result.ts";
import { NSQ_VERSION } from "../version.ts";
import type { ApiRequest } from "./api.ts";
import type { AnswerCache } from "./cache.ts";
import { debugProducerJson, EMPTY, type Outcome, peerJson } from "./render.ts";
import { mergeRuns, sortedRuns } from "../sorted.ts";

/** What a client may see, set by an access policy; absent means everything. */
export interface Visibility {
  topic(topic: string): boolean;
  channel(topic: string, channel: string): boolean;
}

export interface RouteRequest {
  readonly params: QueryParams;
  readonly request: ApiRequest;
  readonly visible?: Visibility;
}

export type RouteFn = (req: RouteRequest) => Outcome | Promise<Outcome>;

export interface RouteContext {
  readonly registry: Registry;
  readonly logger: Logger;
  readonly lookupCache: AnswerCache;
  /** Holds at most the /topics and the /nodes answer. */
  readonly listCache: AnswerCache;
  /** One /debug at a time: its size is the registry's, so concurrency would multiply it. */
  readonly debugTurns: OneAtATime;
  /** The /metrics exposition text, when metrics are served. */
  readonly metricsText?: () => string;
}

/** Characters of JSON per slice of a sliced answer: well under a millisecond of work. */
export const SLICE_CHARS = 64 * 1024;
/** Names in an answer above which it is produced in slices. */
export const SLICED_ITEMS = 2_000;

const encoder = new TextEncoder();

export function ping(): Outcome {
  return { kind: "text", body: "OK" };
}

export function info(): Outcome {
  return { kind: "json", body: `{"version":${goJsonString(NSQ_VERSION)}}` };
}

export function metrics(ctx: RouteContext): Outcome {
  return { kind: "text", body: ctx.metricsText?.() ?? "", contentType: PROMETHEUS_CONTENT_TYPE };
}

export function topics(ctx: RouteContext, req: RouteRequest): Outcome {
  const { registry, listCache } = ctx;
  const visible = req.visible;
  if (registry.entryCounts().topic > SLICED_ITEMS) {
    return { kind: "json-slices", slices: topicSlices(registry, visible) };
  }
  if (visible !== undefined) {
    return jsonArray("topics", registry.topics().filter((t) => visible.topic(t)));
  }
  const version = registry.topicsVersion;
  const cached = listCache.get("/topics", version, -Infinity);
  if (cached !== undefined) return { kind: "json", body: cached.body, encoded: cached.encoded };
  const body = `{"topics":${goJsonStringArray(registry.topics())}}`;
  const encoded = encoder.encode(body);
  listCache.set("/topics", { version, validThrough: Infinity, body, encoded });
  return { kind: "json", body, encoded };
}

/** Every topic name, sorted a run per slice, then merged as it is written. */
function* topicSlices(
  registry: Registry,
  visible: Visibility | undefined,
): Generator<string, void, undefined> {
  const runs: string[][] = [];
  for (const run of sortedRuns(registry.topicNames(), SLICED_ITEMS, compareStrings)) {
    runs.push(visible === undefined ? run : run.filter((t) => visible.topic(t)));
    yield "";
  }
  yield* jsonArraySlices("topics", mergeRuns(runs, compareStrings));
}

export function channels(ctx: RouteContext, req: RouteRequest): Outcome {
  const topic = topicArg(req.params);
  if (!topic.ok) return topic.error;
  let names = ctx.registry.channels(topic.value);
  const visible = req.visible;
  if (visible !== undefined) names = names.filter((c) => visible.channel(topic.value, c));
  return jsonArray("channels", names);
}

export function lookup(ctx: RouteContext, req: RouteRequest): Outcome {
  const topic = topicArg(req.params);
  if (!topic.ok) return topic.error;
  const { registry, lookupCache } = ctx;
  const name = topic.value;
  const version = registry.topicVersion(name);
  if (version === undefined) {
    lookupCache.delete(name);
    return httpError(404, TOPIC_NOT_FOUND);
  }
  const visible = req.visible;
  const cached = visible === undefined ? lookupCache.get(name, version, registry.now()) : undefined;
  if (cached !== undefined) return { kind: "json", body: cached.body };
  const found = registry.lookup(name)!;
  const channelNames = visible === undefined
    ? found.channels
    : found.channels.filter((c) => visible.channel(name, c));
  const producers = found.producers.map((peer) => `{${peerJson(peer)}}`).join(",");
  const body = `{"channels":${goJsonStringArray(channelNames)},"producers":[${producers}]}`;
  if (visible === undefined) {
    lookupCache.set(name, { version: found.version, validThrough: found.validThrough, body });
  }
  return { kind: "json", body };
}

export function nodes(ctx: RouteContext): Outcome {
  const { registry, listCache } = ctx;
  const now = registry.now();
  const cached = listCache.get("/nodes", registry.nodesVersion, now);
  if (cached !== undefined) return { kind: "json", body: cached.body, encoded: cached.encoded };
  return { kind: "json-slices", slices: nodesSlices(ctx, now) };
}

/** /nodes built a few producers at a time, and kept for the next request. */
function* nodesSlices(ctx: RouteContext, now: number): Generator<string, void, undefined> {
  const { registry, listCache } = ctx;
  const version = registry.nodesVersion;
  const validThrough = registry.nodesValidThrough(now);
  const pieces: string[] = [];
  let piece = `{"producers":[`;
  let first = true;
  for (const node of registry.iterateNodes(now)) {
    piece += `${first ? "" : ","}{${peerJson(node.peer)},"tombstones":[${
      node.tombstones.join(",")
    }],"topics":${goJsonStringArray(node.topics)}}`;
    first = false;
    if (piece.length >= SLICE_CHARS) {
      pieces.push(piece);
      yield piece;
      piece = "";
    }
  }
  piece += "]}";
  pieces.push(piece);
  // Labelled with the version it started from: if anything changed meanwhile, it never serves.
  const body = pieces.join("");
  listCache.set("/nodes", { version, validThrough, body, encoded: encoder.encode(body) });
  yield piece;
}

/** Every registration with its producers; waits its turn behind another /debug. */
export function debug(ctx: RouteContext): Outcome | Promise<Outcome> {
  const answer = (): Outcome => ({
    kind: "json-slices",
    slices: onEnd(debugSlices(ctx.registry), () => ctx.debugTurns.release()),
  });
  return ctx.debugTurns.tryAcquire() ? answer() : ctx.debugTurns.acquire().then(answer);
}

function* debugSlices(registry: Registry): Generator<string, void, undefined> {
  let piece = "{";
  let first = true;
  for (const entry of registry.iterateDebug(SLICED_ITEMS)) {
    // A run of registrations was sorted: a step without output.
    if (entry === null) {
      yield "";
      continue;
    }
    const { name, producers } = entry;
    const list = producers.map(({ peer, tombstoned, tombstonedAt }) =>
      debugProducerJson(peer, tombstoned, tombstonedAt)
    );
    piece += `${first ? "" : ","}${goJsonString(name)}:[${list.join(",")}]`;
    first = false;
    if (piece.length >= SLICE_CHARS) {
      yield piece;
      piece = "";
    }
  }
  yield piece + "}";
}

export function topicCreate(ctx: RouteContext, req: RouteRequest): Outcome {
  const topic = validTopicArg(req.params);
  if (!topic.ok) return topic.error;
  ctx.logger.info(`DB: adding topic(${topic.value})`, { topic: topic.value });
  ctx.registry.createTopic(topic.value);
  return EMPTY;
}

export function topicDelete(ctx: RouteContext, req: RouteRequest): Outcome {
  const arg = topicArg(req.params);
  if (!arg.ok) return arg.error;
  const topic = arg.value;
  const deleted = ctx.registry.deleteTopic(topic);
  for (const channel of deleted.channels) {
    ctx.logger.info(`DB: removing channel(${channel}) from topic(${topic})`, { topic, channel });
  }
  if (deleted.topic) ctx.logger.info(`DB: removing topic(${topic})`, { topic });
  return EMPTY;
}

export function channelCreate(ctx: RouteContext, req: RouteRequest): Outcome {
  const args = topicChannelArgs(req.params);
  if (!args.ok) return args.error;
  const [topic, channel] = args.value;
  ctx.logger.info(`DB: adding channel(${channel}) in topic(${topic})`, { topic, channel });
  ctx.registry.createChannel(topic, channel);
  ctx.logger.info(`DB: adding topic(${topic})`, { topic });
  ctx.registry.createTopic(topic);
  return EMPTY;
}

export function channelDelete(ctx: RouteContext, req: RouteRequest): Outcome {
  const args = topicChannelArgs(req.params);
  if (!args.ok) return args.error;
  const [topic, channel] = args.value;
  if (!ctx.registry.deleteChannel(topic, channel)) return httpError(404, CHANNEL_NOT_FOUND);
  ctx.logger.info(`DB: removing channel(${channel}) from topic(${topic})`, { topic, channel });
  return EMPTY;
}

export function topicTombstone(ctx: RouteContext, req: RouteRequest): Outcome {
  const arg = topicArg(req.params);
  if (!arg.ok) return arg.error;
  const topic = arg.value;
  const node = req.params.get("node");
  if (node === undefined) return httpError(400, MISSING_ARG_NODE);
  ctx.logger.info(`DB: setting tombstone for producer@${node} of topic(${topic})`, {
    topic,
    node,
  });
  ctx.registry.tombstone(topic, node);
  return EMPTY;
}

function topicArg(params: QueryParams): Result<string, HttpError> {
  const topic = params.get("topic");
  return topic === undefined ? err(httpError(400, MISSING_ARG_TOPIC)) : ok(topic);
}

function validTopicArg(params: QueryParams): Result<string, HttpError> {
  const topic = topicArg(params);
  if (!topic.ok || isValidTopicName(topic.value)) return topic;
  return err(httpError(400, INVALID_ARG_TOPIC));
}

function topicChannelArgs(params: QueryParams): Result<[string, string], HttpError> {
  const topic = validTopicArg(params);
  if (!topic.ok) return topic;
  const channel = params.get("channel");
  if (channel === undefined) return err(httpError(400, MISSING_ARG_CHANNEL));
  if (!isValidChannelName(channel)) return err(httpError(400, INVALID_ARG_CHANNEL));
  return ok([topic.value, channel]);
}

/** `{"key":[names]}`, in slices when the list is long. */
function jsonArray(key: string, names: readonly string[]): Outcome {
  if (names.length <= SLICED_ITEMS) {
    return { kind: "json", body: `{${goJsonString(key)}:${goJsonStringArray(names)}}` };
  }
  return { kind: "json-slices", slices: jsonArraySlices(key, names) };
}

function* jsonArraySlices(
  key: string,
  names: Iterable<string>,
): Generator<string, void, undefined> {
  let piece = `{${goJsonString(key)}:[`;
  let first = true;
  for (const name of names) {
    piece += (first ? "" : ",") + goJsonString(name);
    first = false;
    if (piece.length >= SLICE_CHARS) {
      yield piece;
      piece = "";
    }
  }
  yield piece + "]}";
}

/**
 * The iterator, with `release` called once when it ends, however it ends:
 * exhausted, abandoned through `return()`, or abandoned before its first
 * slice (a generator's `finally` would not run then).
 */
function onEnd<T>(
  inner: Iterator<T, void, undefined>,
  release: () => void,
): Iterator<T, void, undefined> {
  let ended = false;
  const end = (): void => {
    if (!ended) {
      ended = true;
      release();
    }
  };
  return {
    next(): IteratorResult<T, void> {
      if (ended) return { done: true, value: undefined };
      try {
        const result = inner.next();
        if (result.done) end();
        return result;
      } catch (error) {
        end();
        throw error;
      }
    },
    return(): IteratorResult<T, void> {
      inner.return?.();
      end();
      return { done: true, value: undefined };
    },
  };
}

/** A turn at a time, in arrival order. */
export class OneAtATime {
  #busy = false;
  readonly #waiting: (() => void)[] = [];

  /** Takes the turn if nobody has it; call release() when done. */
  tryAcquire(): boolean {
    if (this.#busy) return false;
    this.#busy = true;
    return true;
  }

  /** Resolves when the caller's turn has come; call release() when done. */
  acquire(): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next === undefined) this.#busy = false;
    else next();
  }

  get waiting(): number {
    return this.#waiting.length;
  }
}
