// Decoding of the IDENTIFY body the way Go's encoding/json fills nsqlookupd's
// PeerInfo struct: unknown keys ignored, keys matched case-insensitively,
// `null` leaves a field as it was, a value of the wrong JSON type is an error,
// integers must be integer literals within int64, members apply in source
// order (a repeated key sets its field again), nesting deeper than Go's
// 10,000 levels is an error.
//
// The body is checked by one iterative scan that builds nothing: neither its
// length nor its nesting can exhaust the stack (a recursive parser, or
// JSON.parse with a reviver, throws RangeError a few thousand levels down) or
// take long (V8 takes ~300 ms to build 100,000 nested arrays). Only the
// scalar values of known members are then decoded, with JSON.parse.

import { err, ok, type Result } from "../result.ts";

export interface IdentifyFields {
  remoteAddress: string;
  hostname: string;
  broadcastAddress: string;
  tcpPort: number;
  httpPort: number;
  version: string;
  topologyZone: string;
  topologyRegion: string;
}

/** `decode`: not JSON, or a field of the wrong type; `missing`: a required field is absent. */
export type IdentifyError = "decode" | "missing";

/** Go's encoding/json refuses documents nested deeper than this. */
export const MAX_NESTING_DEPTH = 10_000;

type FieldKind = "string" | "int";

const FIELDS: Record<string, [keyof IdentifyFields, FieldKind]> = {
  remote_address: ["remoteAddress", "string"],
  hostname: ["hostname", "string"],
  broadcast_address: ["broadcastAddress", "string"],
  tcp_port: ["tcpPort", "int"],
  http_port: ["httpPort", "int"],
  version: ["version", "string"],
  topology_zone: ["topologyZone", "string"],
  topology_region: ["topologyRegion", "string"],
};

const EXACT = new Map(Object.entries(FIELDS));
const FOLDED = new Map(Object.entries(FIELDS).map(([name, field]) => [name.toLowerCase(), field]));

/**
 * Go matches keys with Unicode simple folding, where U+017F (long s) is an `s`;
 * toLowerCase() already maps U+212A (Kelvin) to `k` and nothing else to ASCII.
 */
function foldKey(key: string): string {
  return key.toLowerCase().replaceAll("\u017f", "s");
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INTEGER_LITERAL = /^-?(0|[1-9][0-9]*)$/;

// ignoreBOM keeps a leading byte order mark in the text, so the scan rejects it as Go does.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

type ValueKind = "object" | "array" | "string" | "number" | "literal";

/** A member of the top-level object: its key's source text and its value's kind and text. */
interface Member {
  keySource: string;
  kind: ValueKind;
  /** Source text of a scalar value; empty for objects and arrays. */
  source: string;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isHex(c: number): boolean {
  return isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  return i;
}

/** Index just past the string literal starting at `i`, or -1 if it is not one. */
function stringEnd(text: string, i: number): number {
  let j = i + 1;
  while (j < text.length) {
    const c = text.charCodeAt(j);
    if (c === QUOTE) return j + 1;
    if (c < 0x20) return -1;
    if (c !== BACKSLASH) {
      j++;
      continue;
    }
    const escaped = text[j + 1];
    if (escaped === "u") {
      for (let k = j + 2; k < j + 6; k++) if (!isHex(text.charCodeAt(k))) return -1;
      j += 6;
    } else if (escaped !== undefined && '"\\/bfnrt'.includes(escaped)) {
      j += 2;
    } else {
      return -1;
    }
  }
  return -1;
}

/** Index just past the number starting at `i` (JSON grammar), or -1. */
function numberEnd(text: string, i: number): number {
  let j = i;
  if (text.charCodeAt(j) === 0x2d) j++;
  if (text.charCodeAt(j) === 0x30) {
    j++;
  } else if (isDigit(text.charCodeAt(j))) {
    while (isDigit(text.charCodeAt(j))) j++;
  } else {
    return -1;
  }
  if (text.charCodeAt(j) === 0x2e) {
    j++;
    if (!isDigit(text.charCodeAt(j))) return -1;
    while (isDigit(text.charCodeAt(j))) j++;
  }
  const e = text.charCodeAt(j);
  if (e === 0x65 || e === 0x45) {
    j++;
    const sign = text.charCodeAt(j);
    if (sign === 0x2b || sign === 0x2d) j++;
    if (!isDigit(text.charCodeAt(j))) return -1;
    while (isDigit(text.charCodeAt(j))) j++;
  }
  return j;
}

function literalEnd(text: string, i: number): number {
  for (const word of ["true", "false", "null"]) {
    if (text.startsWith(word, i)) return i + word.length;
  }
  return -1;
}

/**
 * Validates `text` as one JSON document, without recursion or building it;
 * returns the kind of the top-level value and, for an object, its members.
 */
function scan(text: string): Result<{ top: ValueKind; topSource: string; members: Member[] }> {
  const fail = err("invalid JSON");
  // Open containers, innermost last: true for an object, false for an array.
  const stack: boolean[] = [];
  const members: Member[] = [];
  let keySource = "";
  let i = skipSpace(text, 0);
  /** At `i` a key and its colon must follow; false if they do not. */
  const readKey = (): boolean => {
    const end = text.charCodeAt(i) === QUOTE ? stringEnd(text, i) : -1;
    if (end === -1) return false;
    if (stack.length === 1) keySource = text.slice(i, end);
    i = skipSpace(text, end);
    if (text.charCodeAt(i) !== 0x3a) return false;
    i = skipSpace(text, i + 1);
    return true;
  };
  while (true) {
    // A value starts at `i`.
    const c = text.charCodeAt(i);
    let kind: ValueKind;
    let source = "";
    if (c === 0x7b || c === 0x5b) {
      if (stack.length >= MAX_NESTING_DEPTH) return fail;
      const isObject = c === 0x7b;
      stack.push(isObject);
      i = skipSpace(text, i + 1);
      if (text.charCodeAt(i) !== (isObject ? 0x7d : 0x5d)) {
        if (isObject && !readKey()) return fail;
        continue;
      }
      stack.pop();
      i++;
      kind = isObject ? "object" : "array";
    } else {
      let end: number;
      if (c === QUOTE) {
        kind = "string";
        end = stringEnd(text, i);
      } else if (c === 0x2d || isDigit(c)) {
        kind = "number";
        end = numberEnd(text, i);
      } else {
        kind = "literal";
        end = literalEnd(text, i);
      }
      if (end === -1) return fail;
      source = text.slice(i, end);
      i = end;
    }
    // The value is complete; close every container it completes.
    while (true) {
      if (stack.length === 0) {
        i = skipSpace(text, i);
        return i === text.length ? ok({ top: kind, topSource: source, members }) : fail;
      }
      if (stack.length === 1 && stack[0]) members.push({ keySource, kind, source });
      i = skipSpace(text, i);
      const isObject = stack[stack.length - 1];
      const next = text.charCodeAt(i);
      if (next === 0x2c) {
        i = skipSpace(text, i + 1);
        if (isObject && !readKey()) return fail;
        break;
      }
      if (next !== (isObject ? 0x7d : 0x5d)) return fail;
      stack.pop();
      i++;
      kind = isObject ? "object" : "array";
      source = "";
    }
  }
}

export function decodeIdentifyBody(body: Uint8Array): Result<IdentifyFields, IdentifyError> {
  const scanned = scan(decoder.decode(body));
  if (!scanned.ok) return err("decode");
  const { top, topSource, members } = scanned.value;
  const fields: IdentifyFields = {
    remoteAddress: "",
    hostname: "",
    broadcastAddress: "",
    tcpPort: 0,
    httpPort: 0,
    version: "",
    topologyZone: "",
    topologyRegion: "",
  };
  // `null` decodes into nothing; any other non-object is a type error, as in Go.
  if (top !== "object" && topSource !== "null") return err("decode");
  for (const member of members) {
    const key = JSON.parse(member.keySource) as string;
    const field = EXACT.get(key) ?? FOLDED.get(foldKey(key));
    if (field === undefined || member.source === "null") continue;
    const [name, kind] = field;
    if (kind === "string") {
      if (member.kind !== "string") return err("decode");
      (fields[name] as string) = JSON.parse(member.source) as string;
    } else {
      if (member.kind !== "number" || !INTEGER_LITERAL.test(member.source)) return err("decode");
      const big = BigInt(member.source);
      if (big < INT64_MIN || big > INT64_MAX) return err("decode");
      (fields[name] as number) = Number(member.source);
    }
  }
  if (
    fields.broadcastAddress === "" || fields.tcpPort === 0 || fields.httpPort === 0 ||
    fields.version === ""
  ) {
    return err("missing");
  }
  return ok(fields);
}
