// Differential mode: an answer of ours and the reference nsqlookupd's answer
// to the same request, brought to one canonical text each so that they can be
// compared as strings. Nothing is normalised except what is listed in
// NORMALISATIONS, each for a named reason; everything else must be equal:
// status line, every header line but Date in order, and the body.

import type { RawAnswer } from "./raw_http.ts";

/** What is normalised, and why. The keys appear in failure messages. */
export const NORMALISATIONS = {
  DATE: "the Date header is the clock (the issue excludes it)",
  CONTENT_LENGTH: "Content-Length is checked against its own body, then stands for that body's " +
    "length: the bodies are compared below, and the named differences change their lengths",
  REMOTE_ADDRESS: "remote_address (and /debug's id): each daemon sees its own TCP connection " +
    "from nsqd, so the port differs",
  DEBUG_CLOCK: "/debug last_update and a tombstone's tombstoned_at are each daemon's own clock " +
    "(checked to be a time within the last 10 minutes)",
  TOPOLOGY_FIELDS: "ours only: peer objects carry topology_zone and topology_region (README, " +
    "Differences from the Go daemon); nsqd 1.3.0 sends none, so both must be empty",
  NEVER_TOMBSTONED: "/debug tombstoned_at of a producer never tombstoned: 0 in ours, Go's zero " +
    "time in the reference (README, Differences from the Go daemon)",
  RANDOM_ORDER: "arrays: the reference builds every one from a Go map, in random order (ours " +
    "are sorted, README); /nodes topics and tombstones are sorted as pairs",
} as const;

export type Side = "ours" | "reference";

/** `time.Time{}.UnixNano()` in Go: what the reference prints for "never tombstoned". */
export const GO_ZERO_TIME_UNIX_NANO = "-6795364578871345152";

const decoder = new TextDecoder();

export interface Canonical {
  /** Status line, header lines (Date left out), the framing. */
  readonly head: string;
  readonly body: string;
  /** Self-consistency failures of this answer alone (e.g. a wrong Content-Length). */
  readonly problems: readonly string[];
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const compare = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);

/** Context for the clock checks: the time the answer was received. */
export interface Clock {
  nowMs: number;
}

function normaliseJson(value: Json, side: Side, clock: Clock, problems: string[]): Json {
  if (Array.isArray(value)) {
    const items = value.map((item) => normaliseJson(item, side, clock, problems));
    // RANDOM_ORDER
    return items
      .map((item) => [JSON.stringify(item), item] as const)
      .sort(([x], [y]) => compare(x, y))
      .map(([, item]) => item);
  }
  if (value === null || typeof value !== "object") return value;
  const out: { [key: string]: Json } = {};
  for (const [key, child] of Object.entries(value)) {
    out[key] = normaliseJson(child, side, clock, problems);
  }
  // RANDOM_ORDER: /nodes lists a producer's topics and their tombstones by position.
  const { topics, tombstones } = value;
  if (Array.isArray(topics) && Array.isArray(tombstones)) {
    if (tombstones.length !== topics.length) {
      problems.push(`topics and tombstones differ in length: ${JSON.stringify(value)}`);
    }
    const pairs = topics.map((topic, i): [Json, Json] => [topic, tombstones[i] ?? null]);
    pairs.sort(([x], [y]) => compare(String(x), String(y)));
    out.topics = pairs.map(([topic]) => topic);
    out.tombstones = pairs.map(([, tombstone]) => tombstone);
  }
  // REMOTE_ADDRESS
  for (const key of ["remote_address", "id"]) {
    if (typeof out[key] === "string" && /^127\.0\.0\.1:\d+$/.test(out[key] as string)) {
      out[key] = "127.0.0.1:<port of this daemon's connection>";
    }
  }
  // TOPOLOGY_FIELDS
  if (side === "ours" && "topology_zone" in out && "topology_region" in out) {
    if (out.topology_zone !== "" || out.topology_region !== "") {
      problems.push(`TOPOLOGY_FIELDS: not empty: ${JSON.stringify(out)}`);
    } else {
      delete out.topology_zone;
      delete out.topology_region;
    }
  }
  // DEBUG_CLOCK and NEVER_TOMBSTONED (the numbers arrive as strings, see below)
  const isRecentNs = (v: Json): boolean => {
    if (typeof v !== "string" || !/^\d+$/.test(v)) return false;
    const ms = Number(BigInt(v) / 1_000_000n);
    return ms > clock.nowMs - 600_000 && ms <= clock.nowMs + 1_000;
  };
  if ("last_update" in out && isRecentNs(out.last_update)) out.last_update = "<clock>";
  if ("tombstoned_at" in out) {
    const never = side === "ours" ? "0" : GO_ZERO_TIME_UNIX_NANO;
    if (out.tombstoned === false && out.tombstoned_at === never) out.tombstoned_at = "<never>";
    else if (out.tombstoned === true && isRecentNs(out.tombstoned_at)) {
      out.tombstoned_at = "<clock>";
    }
  }
  return out;
}

/** The canonical text of one answer. `clock.nowMs` is when it was received. */
export function canonical(answer: RawAnswer, side: Side, clock: Clock): Canonical {
  const problems: string[] = [];
  const bodyText = decoder.decode(answer.body);
  const lines = [answer.statusLine];
  for (const [name, value] of answer.headers) {
    if (name.toLowerCase() === "date") continue; // DATE
    if (name.toLowerCase() === "content-length" && !answer.bodyless) {
      // CONTENT_LENGTH
      if (Number(value) !== answer.body.length) {
        problems.push(`Content-Length ${value} for a body of ${answer.body.length} bytes`);
        lines.push(`${name}: ${value}`);
      } else {
        lines.push(`${name}: <length of the body>`);
      }
      continue;
    }
    lines.push(`${name}: ${value}`);
  }
  lines.push(`(framing: ${answer.framing})`);
  const isJson = answer.headers.some(([name, value]) =>
    name.toLowerCase() === "content-type" && value.startsWith("application/json")
  );
  let body = bodyText;
  if (isJson && !answer.bodyless) {
    // Nanosecond times exceed 2^53: keep their digits by reading them as strings.
    const exact = bodyText.replace(/"(last_update|tombstoned_at)":(-?\d+)/g, '"$1":"$2"');
    try {
      body = JSON.stringify(normaliseJson(JSON.parse(exact), side, clock, problems));
    } catch (error) {
      problems.push(`a JSON Content-Type with a body that is not JSON: ${error}`);
    }
  }
  return { head: lines.join("\n"), body, problems };
}

/** Whether two canonical answers are equal (and each consistent in itself). */
export function same(ours: Canonical, reference: Canonical): boolean {
  return ours.head === reference.head && ours.body === reference.body &&
    ours.problems.length === 0 && reference.problems.length === 0;
}

/** Long bodies are cut to this many characters in reports (the first difference is shown apart). */
const SHOWN = 1_200;

function shown(text: string): string {
  return text.length <= SHOWN ? text : `${text.slice(0, SHOWN)}... (${text.length - SHOWN} more)`;
}

/** Both answers, normalised and as received, and where the bodies first differ. */
export function describe(
  request: string,
  ours: { canonical: Canonical; raw: RawAnswer },
  reference: { canonical: Canonical; raw: RawAnswer },
): string {
  const o = ours.canonical;
  const r = reference.canonical;
  let at = 0;
  while (at < o.body.length && o.body[at] === r.body[at]) at++;
  const bodies = o.body === r.body ? ["(bodies equal once normalised)"] : [
    `(bodies first differ at character ${at})`,
    `ours:      ...${o.body.slice(Math.max(0, at - 80), at + 120)}`,
    `reference: ...${r.body.slice(Math.max(0, at - 80), at + 120)}`,
  ];
  return [
    `==== ${request}`,
    ...o.problems.map((p) => `ours: ${p}`),
    ...r.problems.map((p) => `reference: ${p}`),
    "---- ours (normalised)",
    o.head,
    "",
    shown(o.body),
    "---- reference (normalised)",
    r.head,
    "",
    shown(r.body),
    ...bodies,
    "---- ours (as received)",
    rawText(ours.raw),
    "---- reference (as received)",
    rawText(reference.raw),
  ].join("\n");
}

/** How an answer looked before normalising, for failure messages. */
function rawText(answer: RawAnswer): string {
  return [
    answer.statusLine,
    ...answer.headers.map(([name, value]) => `${name}: ${value}`),
    "",
    shown(decoder.decode(answer.body)),
  ].join("\n");
}
