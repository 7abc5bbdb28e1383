// Decoding of the IDENTIFY body the way Go's encoding/json fills nsqlookupd's
// PeerInfo struct: unknown keys ignored, keys matched case-insensitively,
// `null` leaves a field as it was, a value of the wrong JSON type is an error,
// integers must be integer literals within int64, members apply in source
// order (a repeated key sets its field again).

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

/** Marks a number whose source text is not a Go int literal (`1.0`, `1e3`, too large). */
const NOT_AN_INT = Symbol("not an int");

export type IdentifyDecodeResult =
  | { ok: true; fields: IdentifyFields }
  | { ok: false; reason: "decode" | "missing" };

// ignoreBOM keeps a leading byte order mark in the text, so JSON.parse rejects it as Go does.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

// The third reviver argument (JSON.parse source text access) is in V8 but not yet in TS's lib.
type Reviver = (key: string, value: unknown, context?: { source?: string }) => unknown;

const reviver: Reviver = (_key, value, context) => {
  if (typeof value !== "number") return value;
  const source = context?.source;
  if (source === undefined || !INTEGER_LITERAL.test(source)) return NOT_AN_INT;
  const big = BigInt(source);
  return big < INT64_MIN || big > INT64_MAX ? NOT_AN_INT : value;
};

function isSpace(char: string | undefined): boolean {
  return char === " " || char === "\t" || char === "\n" || char === "\r";
}

function skipSpace(text: string, i: number): number {
  while (isSpace(text[i])) i++;
  return i;
}

/** Index just past the string literal starting at `i`. */
function stringEnd(text: string, i: number): number {
  let j = i + 1;
  while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
  return j + 1;
}

/** Index just past the value starting at `i`. */
function valueEnd(text: string, i: number): number {
  const first = text[i];
  if (first === '"') return stringEnd(text, i);
  if (first !== "{" && first !== "[") {
    let j = i;
    while (j < text.length && !isSpace(text[j]) && !",}]".includes(text[j])) j++;
    return j;
  }
  let depth = 0;
  let j = i;
  do {
    const char = text[j];
    if (char === '"') {
      j = stringEnd(text, j);
      continue;
    }
    if (char === "{" || char === "[") depth++;
    else if (char === "}" || char === "]") depth--;
    j++;
  } while (depth > 0 && j < text.length);
  return j;
}

/**
 * The members of the top-level object of `text`, which JSON.parse has already
 * accepted, in source order with repeats: JSON.parse keeps only the last value
 * of a repeated key, while Go applies each one in turn.
 */
function members(text: string): [string, unknown][] {
  const out: [string, unknown][] = [];
  let i = skipSpace(text, 0) + 1;
  // The bounds only matter for text JSON.parse has not accepted, which never gets here.
  while (i < text.length) {
    i = skipSpace(text, i);
    if (text[i] === "}") return out;
    const keyEnd = stringEnd(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipSpace(text, skipSpace(text, keyEnd) + 1);
    const end = valueEnd(text, i);
    out.push([key, JSON.parse(text.slice(i, end), reviver as (k: string, v: unknown) => unknown)]);
    i = skipSpace(text, end);
    if (text[i] === ",") i++;
  }
  return out;
}

export function decodeIdentifyBody(body: Uint8Array): IdentifyDecodeResult {
  let parsed: unknown;
  const text = decoder.decode(body);
  try {
    // Checks the syntax; members() then decodes the values, with the reviver.
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, reason: "decode" };
  }
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
  if (parsed !== null) {
    if (typeof parsed !== "object" || Array.isArray(parsed)) return { ok: false, reason: "decode" };
    for (const [key, value] of members(text)) {
      const field = EXACT.get(key) ?? FOLDED.get(foldKey(key));
      if (field === undefined || value === null) continue;
      const [name, kind] = field;
      if (kind === "string") {
        if (typeof value !== "string") return { ok: false, reason: "decode" };
        (fields[name] as string) = value;
      } else {
        if (typeof value !== "number") return { ok: false, reason: "decode" };
        (fields[name] as number) = value;
      }
    }
  }
  if (
    fields.broadcastAddress === "" || fields.tcpPort === 0 || fields.httpPort === 0 ||
    fields.version === ""
  ) {
    return { ok: false, reason: "missing" };
  }
  return { ok: true, fields };
}
