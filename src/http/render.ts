// What routes produce (Outcome) and the one place where outcomes become wire
// answers: the v1 format (the document itself, flagged by X-NSQ-Content-Type)
// or NSQ 0.x's `{"status_code","status_txt","data"}` wrapper.

import type { HttpAnswer } from "../gocompat/http1.ts";
import { goJsonString } from "../gocompat/json.ts";
import {
  type HttpError,
  METHOD_NOT_ALLOWED,
  NOT_FOUND,
  PAYLOAD_TOO_LARGE,
  URI_TOO_LONG,
} from "../errors.ts";
import type { PeerInfo } from "../registry.ts";

export const X_NSQ_CONTENT_TYPE = "X-NSQ-Content-Type";
export const NSQ_CONTENT_TYPE_V1 = "nsq; version=1.0";
export const JSON_CONTENT_TYPE = "application/json; charset=utf-8";
export const TEXT_CONTENT_TYPE = "text/plain; charset=utf-8";

/** A route's result, before it is given a wire format. */
export type Outcome =
  /** `encoded`: the body's UTF-8 bytes, kept with a cached answer so it is encoded once. */
  | { readonly kind: "json"; readonly body: string; readonly encoded?: Uint8Array<ArrayBuffer> }
  /** A JSON document produced in slices (large answers: the event loop stays free between them). */
  | { readonly kind: "json-slices"; readonly slices: Iterator<string, void, undefined> }
  | { readonly kind: "empty" }
  | { readonly kind: "text"; readonly body: string; readonly contentType?: string }
  | HttpError;

export const EMPTY: Outcome = { kind: "empty" };

/** `v1`: the document as it is. `legacy`: wrapped, for 0.x clients under --legacy-http-api. */
export type Format = "v1" | "legacy";

const JSON_HEADERS: [string, string][] = [
  ["Content-Type", JSON_CONTENT_TYPE],
  [X_NSQ_CONTENT_TYPE, NSQ_CONTENT_TYPE_V1],
];
const EMPTY_HEADERS: [string, string][] = [[X_NSQ_CONTENT_TYPE, NSQ_CONTENT_TYPE_V1]];
/** Wrapped (legacy) bodies must not claim to be unwrapped v1 bodies. */
const LEGACY_HEADERS: [string, string][] = [["Content-Type", JSON_CONTENT_TYPE]];

/** Errors the reference's router produces itself keep their status in legacy mode. */
const ROUTER_ERRORS: ReadonlySet<string> = new Set([
  NOT_FOUND,
  METHOD_NOT_ALLOWED,
  PAYLOAD_TOO_LARGE,
  URI_TOO_LONG,
]);

/** The one place where outcomes become wire answers. */
export function toAnswer(
  outcome: Outcome,
  format: Format,
  extraHeaders: [string, string][] = [],
): HttpAnswer {
  if (format === "legacy") return toLegacyAnswer(outcome, extraHeaders);
  switch (outcome.kind) {
    case "json":
      return { status: 200, headers: JSON_HEADERS, body: outcome.encoded ?? outcome.body };
    case "json-slices":
      return { status: 200, headers: JSON_HEADERS, body: { slices: outcome.slices } };
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
        body: errorBody(outcome.code),
      };
  }
}

/** `{"message":CODE}`, the reference's error document. */
export function errorBody(code: string): string {
  return `{"message":${goJsonString(code)}}`;
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
    case "json-slices":
      return {
        status: 200,
        headers: LEGACY_HEADERS,
        body: {
          slices: framed(`{"status_code":200,"status_txt":"OK","data":`, outcome.slices, "}"),
        },
      };
    case "empty":
      return wrapped(200, "OK", "null");
    case "text":
      return toAnswer(outcome, "v1");
    case "http-error":
      // NSQ 0.x answered every handler error with 500 and the code as status_txt.
      return wrapped(ROUTER_ERRORS.has(outcome.code) ? outcome.status : 500, outcome.code, "null");
  }
}

function* framed(
  before: string,
  inner: Iterator<string, void, undefined>,
  after: string,
): Generator<string, void, undefined> {
  try {
    yield before;
    for (let r = inner.next(); !r.done; r = inner.next()) yield r.value;
    yield after;
  } finally {
    inner.return?.();
  }
}

// A peer's public fields never change after IDENTIFY: serialize each once.
const peerJsonCache = new WeakMap<PeerInfo, string>();

/** A peer's fields in the wire order of /lookup and /nodes, without the braces. */
export function peerJson(peer: PeerInfo): string {
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
}

/** A /debug producer: keys in Go's map order (sorted), as the reference prints them. */
export function debugProducerJson(
  peer: PeerInfo,
  tombstoned: boolean,
  tombstonedAt: number,
): string {
  return `{"broadcast_address":${goJsonString(peer.broadcastAddress)},"hostname":${
    goJsonString(peer.hostname)
  },"http_port":${peer.httpPort},"id":${goJsonString(peer.id)},"last_update":${
    unixNanos(peer.lastUpdate)
  },"tcp_port":${peer.tcpPort},"tombstoned":${tombstoned},"tombstoned_at":${
    tombstoned ? unixNanos(tombstonedAt) : "0"
  },"topology_region":${goJsonString(peer.topologyRegion)},"topology_zone":${
    goJsonString(peer.topologyZone)
  },"version":${goJsonString(peer.version)}}`;
}

/** Clock milliseconds to Unix nanoseconds, exact to the microsecond. */
function unixNanos(ms: number): string {
  return (BigInt(Math.floor(ms * 1000)) * 1000n).toString();
}
