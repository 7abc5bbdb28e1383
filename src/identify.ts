// Decoding of the IDENTIFY body the way Go's encoding/json fills nsqlookupd's
// PeerInfo struct: unknown keys ignored, keys matched case-insensitively,
// `null` leaves a field empty, a value of the wrong JSON type is an error,
// integers must be integer literals within int64.

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

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INTEGER_LITERAL = /^-?(0|[1-9][0-9]*)$/;

/** Marks a number whose source text is not a Go int literal (`1.0`, `1e3`, too large). */
const NOT_AN_INT = Symbol("not an int");

export type IdentifyDecodeResult =
  | { ok: true; fields: IdentifyFields }
  | { ok: false; reason: "decode" | "missing" };

const decoder = new TextDecoder();

// The third reviver argument (JSON.parse source text access) is in V8 but not yet in TS's lib.
type Reviver = (key: string, value: unknown, context?: { source?: string }) => unknown;

const reviver: Reviver = (_key, value, context) => {
  if (typeof value !== "number") return value;
  const source = context?.source;
  if (source === undefined || !INTEGER_LITERAL.test(source)) return NOT_AN_INT;
  const big = BigInt(source);
  return big < INT64_MIN || big > INT64_MAX ? NOT_AN_INT : value;
};

export function decodeIdentifyBody(body: Uint8Array): IdentifyDecodeResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(body), reviver as (k: string, v: unknown) => unknown);
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
    for (const [key, value] of Object.entries(parsed)) {
      const field = EXACT.get(key) ?? FOLDED.get(key.toLowerCase());
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
