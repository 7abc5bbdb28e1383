// `deno task fuzz [--sessions N] [--seconds S] [--concurrency C] [--seed X]`:
// live fuzzing of a daemon started as a separate process. Random and
// mutated-valid TCP sessions (and raw HTTP requests) arrive split at random
// points, some never read their replies, some half-close, some are abandoned
// open, while one well-behaved producer stays registered and pings. It stops
// after N sessions or S seconds, whichever comes first, then checks:
// - /ping answered all along, and the good producer's PINGs were all OK;
// - the good producer's /lookup answer is byte-for-byte what it was;
// - no HTTP 500, every TCP reply was whole frames with an error only last;
// - the daemon forgot every fuzz connection (/metrics), logged no internal error;
// - its V8 heap came back near where it started (bound below), after the fuzz
//   topics are deleted and a settle period (GC cannot be forced from outside).
// Exits 1 on any failure. Reproduce a run with the --seed it prints.

import {
  concat,
  identifyCommand,
  intArgs,
  type Memory,
  memory,
  mib,
  readFrame,
  scrape,
  sleep,
  table,
  writeAll,
} from "../tests/support/harness.ts";
import { spawnDaemon } from "../tests/support/daemon_process.ts";
import { writeStderr, writeStdout } from "../src/ops/logger.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The heap may end at most this much above its start (generous: GC runs when V8 likes). */
export const HEAP_SLACK_BYTES = 24 * 1024 * 1024;
const GOOD_TOPIC = "good_topic";
const INACTIVE_TIMEOUT = "3s";

/** mulberry32: small, fast, seedable. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Uint8Array {
    return Uint8Array.from({ length: n }, () => this.int(0, 255));
  }
}

const FUZZ_NAMES = ["fz", "fz_1", "fz.a-b", "fz#ephemeral", "fz_" + "x".repeat(61), "bad name", ""];
const EOLS = ["\n", "\r\n", " \n"];

/** A well-formed producer session: magic, IDENTIFY, REGISTER/UNREGISTER/PING lines. */
function validSession(rng: Rng): Uint8Array {
  const body = JSON.stringify({
    broadcast_address: `fuzz-${rng.int(0, 99)}`,
    hostname: rng.pick(["h", "", "é", "\u0000"]),
    tcp_port: rng.int(1, 65535),
    http_port: rng.int(1, 65535),
    version: rng.pick(["1.3.0", "0.3.8", "x"]),
    ...(rng.chance(0.3) ? { topology_zone: "z" } : {}),
  });
  const parts: Uint8Array[] = [encoder.encode("  V1"), identifyCommand(body)];
  const n = rng.int(0, 12);
  for (let i = 0; i < n; i++) {
    const command = rng.pick(["REGISTER", "REGISTER", "UNREGISTER", "PING"]);
    const topic = rng.pick(FUZZ_NAMES.slice(0, 5));
    const channel = rng.chance(0.5) ? rng.pick([" ", "  "]) + rng.pick(FUZZ_NAMES.slice(0, 5)) : "";
    const line = command === "PING" ? "PING" : `${command} ${topic}${channel}`;
    parts.push(encoder.encode(line + rng.pick(EOLS)));
  }
  return concat(...parts);
}

/** Byte-level mutations of a valid session. */
function mutate(rng: Rng, input: Uint8Array): Uint8Array {
  let bytes: Uint8Array = input;
  const n = rng.int(1, 4);
  for (let i = 0; i < n; i++) {
    const at = rng.int(0, bytes.length);
    switch (rng.int(0, 5)) {
      case 0: // flip a byte
        if (bytes.length > 0) {
          bytes = bytes.slice();
          bytes[Math.min(at, bytes.length - 1)] ^= 1 << rng.int(0, 7);
        }
        break;
      case 1: // insert random bytes
        bytes = concat(bytes.subarray(0, at), rng.bytes(rng.int(1, 16)), bytes.subarray(at));
        break;
      case 2: // delete a range
        bytes = concat(
          bytes.subarray(0, at),
          bytes.subarray(Math.min(bytes.length, at + rng.int(1, 16))),
        );
        break;
      case 3: // duplicate a range
        bytes = concat(
          bytes.subarray(0, at),
          bytes.subarray(at, at + rng.int(1, 64)),
          bytes.subarray(at),
        );
        break;
      case 4: { // an extreme IDENTIFY size
        const where = indexOf(bytes, encoder.encode("IDENTIFY\n"));
        if (where !== -1 && where + 13 <= bytes.length) {
          bytes = bytes.slice();
          new DataView(bytes.buffer, bytes.byteOffset).setInt32(
            where + 9,
            rng.pick([-1, -2147483648, 2147483647, 65536, 65537, 0, rng.int(0, 100)]),
          );
        }
        break;
      }
      default: // truncate
        bytes = bytes.subarray(0, at);
    }
  }
  return bytes;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function httpRequest(rng: Rng): Uint8Array {
  const method = rng.pick(["GET", "GET", "POST", "PUT", "OPTIONS", "HEAD", "BREW", ""]);
  const path = rng.pick([
    "/ping",
    "/lookup",
    "/topics",
    "/channels",
    "/nodes",
    "/debug",
    "/info",
    "/metrics",
    "/topic/create",
    "/channel/create",
    "/LOOKUP",
    "/lookup/",
    "/%zz",
    "*",
    "/" + decoder.decode(rng.bytes(rng.int(0, 8))),
  ]);
  const query = rng.pick([
    "",
    "?topic=fz",
    "?topic=fz&channel=c",
    "?topic=%",
    "?a;b",
    "?topic=" + "a".repeat(rng.int(0, 17000)),
    "?" + decoder.decode(rng.bytes(rng.int(0, 20))),
  ]);
  const version = rng.pick(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", ""]);
  const headers = ["Host: fuzz"];
  if (rng.chance(0.3)) headers.push(`X-${rng.int(0, 9)}: ${"v".repeat(rng.int(0, 3000))}`);
  let body: Uint8Array = new Uint8Array(0);
  const bodyKind = rng.int(0, 4);
  if (bodyKind === 1) {
    body = rng.bytes(rng.int(0, 2000));
    headers.push(`Content-Length: ${rng.chance(0.8) ? body.length : rng.int(0, 3_000_000)}`);
  } else if (bodyKind === 2) {
    headers.push("Transfer-Encoding: chunked");
    const chunk = rng.bytes(rng.int(1, 500));
    body = concat(
      encoder.encode(`${chunk.length.toString(16)}\r\n`),
      chunk,
      encoder.encode("\r\n0\r\n\r\n"),
    );
  }
  if (rng.chance(0.5)) headers.push("Connection: close");
  const text = `${method} ${path}${query} ${version}\r\n${headers.join("\r\n")}\r\n\r\n`;
  const request = concat(encoder.encode(text), body);
  return rng.chance(0.3) ? mutate(rng, request) : request;
}

type Kind = "valid" | "mutated" | "random" | "long-line" | "http";
type Ending = "read" | "no-read" | "half-close" | "abandon";

interface Plan {
  kind: Kind;
  bytes: Uint8Array;
  /** Chunk sizes to send the bytes in, with a pause after each. */
  cuts: number[];
  pauseMs: number;
  ending: Ending;
}

function plan(rng: Rng): Plan {
  const kind = rng.pick<Kind>([
    "valid",
    "mutated",
    "mutated",
    "mutated",
    "random",
    "long-line",
    "http",
    "http",
  ]);
  let bytes: Uint8Array;
  switch (kind) {
    case "valid":
      bytes = validSession(rng);
      break;
    case "mutated":
      bytes = mutate(rng, validSession(rng));
      break;
    case "random":
      bytes = concat(
        rng.chance(0.7) ? encoder.encode("  V1") : new Uint8Array(0),
        rng.bytes(rng.int(0, 2000)),
      );
      break;
    case "long-line":
      bytes = encoder.encode("  V1" + "PING " + "a".repeat(rng.int(4000, 6000)));
      break;
    case "http":
      bytes = httpRequest(rng);
  }
  const cuts: number[] = [];
  if (rng.chance(0.6)) {
    let left = bytes.length;
    while (left > 0) {
      const size = rng.int(1, Math.max(1, Math.min(left, rng.pick([1, 3, 16, 200, 5000]))));
      cuts.push(size);
      left -= size;
    }
  } else {
    cuts.push(bytes.length);
  }
  return {
    kind,
    bytes,
    cuts: cuts.slice(0, 400).concat(cuts.length > 400 ? [bytes.length] : []),
    pauseMs: rng.chance(0.2) ? rng.int(1, 3) : 0,
    ending: rng.pick<Ending>(
      kind === "http"
        ? ["read", "read", "read", "no-read", "half-close"]
        : ["read", "read", "read", "no-read", "half-close", "abandon"],
    ),
  };
}

interface Outcome {
  /** First reply: a TCP frame's code or an HTTP status; "-" when none. */
  reply: string;
  closedByDaemon: boolean;
  problem?: string;
}

/** Reads until EOF or `idleMs` of silence; returns the bytes and whether EOF came. */
async function drain(
  conn: Deno.Conn,
  idleMs: number,
  maxMs: number,
): Promise<{ bytes: Uint8Array; eof: boolean }> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  const until = performance.now() + maxMs;
  while (performance.now() < until) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const silence = new Promise<"silence">((resolve) =>
      timer = setTimeout(() => resolve("silence"), idleMs)
    );
    const read = conn.read(buffer).catch(() => null);
    const result = await Promise.race([read, silence]);
    clearTimeout(timer);
    if (result === "silence") {
      // The pending read finishes (null) when the caller closes the connection.
      return { bytes: concat(...chunks), eof: false };
    }
    if (result === null) return { bytes: concat(...chunks), eof: true };
    chunks.push(buffer.slice(0, result));
  }
  return { bytes: concat(...chunks), eof: false };
}

/** Checks TCP replies: whole frames, an E_ error only last. */
function checkFrames(bytes: Uint8Array): { first: string; problem?: string } {
  const frames: string[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    if (pos + 4 > bytes.length) {
      return { first: frames[0] ?? "-", problem: "truncated frame header" };
    }
    const size = new DataView(bytes.buffer, bytes.byteOffset + pos).getUint32(0);
    if (pos + 4 + size > bytes.length) {
      return { first: frames[0] ?? "-", problem: "truncated frame" };
    }
    frames.push(decoder.decode(bytes.subarray(pos + 4, pos + 4 + size)));
    pos += 4 + size;
  }
  const errorAt = frames.findIndex((f) => f.startsWith("E_"));
  if (errorAt !== -1 && errorAt !== frames.length - 1) {
    return {
      first: frames[0],
      problem: `frames after an error: ${frames.slice(errorAt).join(" | ")}`,
    };
  }
  const first = frames.length === 0
    ? "-"
    : frames[0].startsWith("{")
    ? "IDENTIFY reply"
    : frames[0] === "OK"
    ? "OK"
    : frames.at(-1)!.split(" ")[0];
  return { first: errorAt === -1 ? first : frames[errorAt].split(" ")[0] };
}

async function runSession(
  p: Plan,
  tcpPort: number,
  httpPort: number,
  abandoned: { conn: Deno.Conn; plan: Plan }[],
): Promise<Outcome> {
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: p.kind === "http" ? httpPort : tcpPort,
  });
  let closedByDaemon = false;
  try {
    let offset = 0;
    for (const size of p.cuts) {
      await writeAll(conn, p.bytes.subarray(offset, offset + size));
      offset += size;
      if (p.pauseMs > 0) await sleep(p.pauseMs);
    }
  } catch {
    closedByDaemon = true; // the daemon closed on an error while we were still sending
  }
  if (p.ending === "abandon") {
    abandoned.push({ conn, plan: p });
    return { reply: "-", closedByDaemon: false };
  }
  if (p.ending === "no-read") {
    conn.close();
    return { reply: "-", closedByDaemon };
  }
  if (p.ending === "half-close") {
    try {
      await conn.closeWrite();
    } catch {
      closedByDaemon = true;
    }
  }
  const { bytes, eof } = await drain(conn, 150, 2_000);
  try {
    conn.close();
  } catch {
    // closed
  }
  closedByDaemon ||= eof;
  if (p.kind === "http") {
    const statuses = [...decoder.decode(bytes).matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => m[1]);
    const problem = statuses.includes("500")
      ? `HTTP 500 for ${JSON.stringify(decoder.decode(p.bytes.subarray(0, 120)))}`
      : undefined;
    return {
      reply: statuses.length === 0 ? "HTTP -" : `HTTP ${statuses[0]}`,
      closedByDaemon,
      problem,
    };
  }
  const { first, problem } = checkFrames(bytes);
  return { reply: first, closedByDaemon, problem };
}

export interface FuzzOptions {
  sessions: number;
  seconds: number;
  concurrency: number;
  seed: number;
  verbose?: boolean;
}

export interface FuzzResult {
  sessions: number;
  elapsedSeconds: number;
  byKind: Map<string, number>;
  byReply: Map<string, number>;
  closedByDaemon: number;
  abandoned: number;
  abandonedClosedByDaemon: number;
  pingChecks: number;
  goodPings: number;
  memory: { start: Memory; peak: Memory; end: Memory };
  failures: string[];
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzResult> {
  const log = (text: string): void => {
    if (options.verbose) writeStderr(text + "\n");
  };
  const failures: string[] = [];
  await using daemon = await spawnDaemon([
    "--log-level=warn",
    `--inactive-producer-timeout=${INACTIVE_TIMEOUT}`,
  ], { ports: "free" });
  const { url } = daemon;

  // The well-behaved producer, registered for the whole run.
  const good = await Deno.connect({ hostname: "127.0.0.1", port: daemon.tcpPort });
  const goodBody = JSON.stringify({
    broadcast_address: "good",
    hostname: "good",
    tcp_port: 4150,
    http_port: 4151,
    version: "1.3.0",
  });
  await writeAll(
    good,
    concat(
      encoder.encode("  V1"),
      identifyCommand(goodBody),
      encoder.encode(`REGISTER ${GOOD_TOPIC} good_channel\n`),
    ),
  );
  const identified = await readFrame(good);
  if (identified === null || !identified.startsWith("{") || (await readFrame(good)) !== "OK") {
    throw new Error("the good producer could not register");
  }
  const lookupBefore = await (await fetch(`${url}/lookup?topic=${GOOD_TOPIC}`)).text();
  let running = true;
  let goodPings = 0;
  let pingChecks = 0;
  const watcher = (async () => {
    while (running) {
      await sleep(500);
      try {
        await writeAll(good, encoder.encode("PING\n"));
        if ((await readFrame(good)) === "OK") goodPings++;
        else failures.push("the good producer's PING was not answered OK");
      } catch (error) {
        failures.push(`the good producer lost its connection: ${error}`);
        return;
      }
      const res = await fetch(`${url}/ping`).catch((e) => e);
      if (res instanceof Response && (await res.text()) === "OK") pingChecks++;
      else failures.push(`/ping failed during the fuzz: ${res}`);
    }
  })();

  const rng = new Rng(options.seed);
  const abandoned: { conn: Deno.Conn; plan: Plan }[] = [];
  const byKind = new Map<string, number>();
  const byReply = new Map<string, number>();
  let closedByDaemon = 0;
  let done = 0;
  const count = (map: Map<string, number>, key: string): void => {
    map.set(key, (map.get(key) ?? 0) + 1);
  };
  const execute = async (sessions: number, until: number): Promise<void> => {
    let next = 0;
    await Promise.all(Array.from({ length: options.concurrency }, async () => {
      while (next < sessions && performance.now() < until) {
        next++;
        const p = plan(rng);
        try {
          const outcome = await runSession(p, daemon.tcpPort, daemon.httpPort, abandoned);
          count(byKind, p.kind);
          count(byReply, outcome.reply);
          if (outcome.closedByDaemon) closedByDaemon++;
          if (outcome.problem !== undefined && failures.length < 20) failures.push(outcome.problem);
        } catch (error) {
          if (failures.length < 20) failures.push(`session failed to run: ${error}`);
        }
        done++;
        if (done % 500 === 0) log(`  ${done} sessions`);
      }
    }));
  };

  // Warm up (JIT, caches), settle, then measure the starting point.
  log("warming up...");
  await execute(200, performance.now() + 30_000);
  await sleep(3_000);
  const start = await lowestHeap(url, 3);
  const warmup = done;
  log(`fuzzing: ${options.sessions} sessions or ${options.seconds} s, seed ${options.seed}...`);
  const began = performance.now();
  let peak = start;
  const peakWatcher = (async () => {
    while (running) {
      const m = await memory(url).catch(() => undefined);
      if (m !== undefined && m.heapUsed > peak.heapUsed) peak = m;
      await sleep(1000);
    }
  })();
  await execute(options.sessions, began + options.seconds * 1000);
  const elapsedSeconds = (performance.now() - began) / 1000;

  // Abandoned TCP connections: the daemon must close them itself (magic timeout
  // 10 s, --inactive-producer-timeout 3 s here). (HTTP ones are not abandoned: after
  // a whole request, keep-alive lasts 120 s; hostile_test.ts covers those deadlines.)
  log(`waiting for the daemon to close ${abandoned.length} abandoned connections...`);
  const open = (await Promise.all(abandoned.map(async ({ conn, plan }) => {
    const { eof } = await drain(conn, 13_000, 13_000);
    try {
      conn.close();
    } catch {
      // closed
    }
    return eof ? undefined : plan;
  }))).filter((p) => p !== undefined);
  const abandonedClosedByDaemon = abandoned.length - open.length;
  for (const p of open.slice(0, 3)) {
    failures.push(
      `an abandoned ${p.kind} session was not closed by the daemon: ${
        JSON.stringify(decoder.decode(p.bytes.subarray(0, 200)))
      }`,
    );
  }

  running = false;
  await watcher;
  await peakWatcher;
  const lookupAfter = await (await fetch(`${url}/lookup?topic=${GOOD_TOPIC}`)).text();
  if (lookupAfter !== lookupBefore) {
    failures.push(
      `the good producer's /lookup changed:\n  before ${lookupBefore}\n  after  ${lookupAfter}`,
    );
  }
  // Every fuzz connection is gone: only the good producer remains.
  const metrics = await scrape(url);
  const connections = metrics.get("nsqlookupd_tcp_connections");
  const producers = metrics.get("nsqlookupd_producers_identified");
  if (connections !== 1 || producers !== 1) {
    failures.push(
      `after the fuzz the daemon holds ${connections} connections, ${producers} producers (expected 1, 1)`,
    );
  }
  // Registrations outlive connections by design: delete the fuzz topics, then compare memory.
  const topics = (await (await fetch(`${url}/topics`)).json() as { topics: string[] }).topics;
  for (const topic of topics.filter((t) => t !== GOOD_TOPIC)) {
    const res = await fetch(`${url}/topic/delete?topic=${encodeURIComponent(topic)}`, {
      method: "POST",
    });
    await res.body?.cancel();
  }
  await sleep(5_000);
  const end = await lowestHeap(url, 5);
  if (end.heapUsed > start.heapUsed + HEAP_SLACK_BYTES) {
    failures.push(
      `heap did not come back: ${mib(start.heapUsed)} at start, ${mib(end.heapUsed)} at the end`,
    );
  }
  if ((await (await fetch(`${url}/ping`)).text()) !== "OK") {
    failures.push("/ping failed after the fuzz");
  }
  const noise = daemon.lines.filter((l) =>
    /Uncaught|panicked|internal error|cleanup failed|sweep failed/.test(l)
  );
  if (noise.length > 0) failures.push(`daemon errors:\n${noise.slice(0, 5).join("\n")}`);
  good.close();
  const { code: exitCode } = await daemon.stop();
  if (exitCode !== 0) failures.push(`daemon exited ${exitCode} after SIGTERM`);
  return {
    sessions: done - warmup,
    elapsedSeconds,
    byKind,
    byReply,
    closedByDaemon,
    abandoned: abandoned.length,
    abandonedClosedByDaemon,
    pingChecks,
    goodPings,
    memory: { start, peak, end },
    failures,
  };
}

/** The lowest heap of `samples` scrapes a second apart (V8 collects when it likes). */
async function lowestHeap(url: string, samples: number): Promise<Memory> {
  let best: Memory | undefined;
  for (let i = 0; i < samples; i++) {
    const m = await memory(url);
    if (best === undefined || m.heapUsed < best.heapUsed) best = m;
    if (i < samples - 1) await sleep(1000);
  }
  return best!;
}

export function fuzzTable(options: FuzzOptions, r: FuzzResult): string[][] {
  const sorted = (map: Map<string, number>): string =>
    [...map].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ");
  const m = r.memory;
  return [
    ["seed / concurrency", `${options.seed} / ${options.concurrency}`],
    ["sessions fuzzed", `${r.sessions} in ${r.elapsedSeconds.toFixed(1)} s (after 200 warm-up)`],
    ["by kind", sorted(r.byKind)],
    ["first replies", sorted(r.byReply)],
    ["closed by the daemon", String(r.closedByDaemon)],
    ["abandoned open", `${r.abandoned}, closed by the daemon ${r.abandonedClosedByDaemon}`],
    ["/ping checks OK", String(r.pingChecks)],
    ["good producer PINGs OK", String(r.goodPings)],
    [
      "daemon heap",
      `start ${mib(m.start.heapUsed)}, peak ${mib(m.peak.heapUsed)}, end ${
        mib(m.end.heapUsed)
      } (bound: start + ${mib(HEAP_SLACK_BYTES)})`,
    ],
    ["daemon RSS", `start ${mib(m.start.rss)}, peak ${mib(m.peak.rss)}, end ${mib(m.end.rss)}`],
    ["result", r.failures.length === 0 ? "PASS" : `FAIL (${r.failures.length})`],
  ];
}

if (import.meta.main) {
  const options = intArgs(Deno.args, {
    sessions: 5000,
    seconds: 60,
    concurrency: 32,
    seed: Date.now() % 1_000_000,
  });
  const result = await runFuzz({ ...options, verbose: true });
  table(fuzzTable(options, result), writeStdout);
  for (const failure of result.failures) writeStderr(`FAIL: ${failure}\n`);
  Deno.exit(result.failures.length === 0 ? 0 : 1);
}
