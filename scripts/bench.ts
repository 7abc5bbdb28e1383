// `deno task bench [--quick] [--startup-only] [--producers N] [--scale] [--daemon-v8-flags=F]`:
// loads a separately started daemon (as `deno task start` runs it, V8 flags
// included, log level warn) at fleet scale and prints one table, each target
// with PASS or MISS.
//
// Fleet scale: N producers (default 1,000), each registered for 100 of 10,000
// topics with 2 channels per topic: 300,000 producer registrations at 1,000.
// Ten of them also hold `bench-probe`, whose /lookup answer is the same at
// every scale: its throughput is compared across scales and, as a ratio, with
// a bare Deno.serve answering a constant body of the same size (loaded by the
// same client in the same run: absolute numbers are noise on shared machines).
// Heap per registration is the registry's alone, built in a child process
// under --expose-gc and measured after a GC. Reference figures are nsqlookupd
// v1.3.0's at 1,000 producers (issue 13).
//
// --scale runs N and 3N producers (1,000 and 3,000) and prints them side by
// side: memory must grow linearly, the listing endpoints' latency only with
// their answers, and /lookup throughput stay within 20%. --quick: small sizes
// (< 1 min), for CI. --daemon-v8-flags=F replaces the start task's V8 flags
// (empty: none), to compare flags. --startup-only prints the start-up rows
// alone (process start to the first /ping, next to the runtime's floors).

import { writeStderr, writeStdout } from "../src/ops/logger.ts";
import { type PeerInfo, Registry } from "../src/registry.ts";
import { startTaskV8Flags, startTaskWords } from "./start_task.ts";
import {
  concat,
  freePort,
  identifyCommand,
  mib,
  percentile,
  scrape,
  sleep,
} from "../tests/support/harness.ts";

// ---- arguments and sizes ----

interface Args {
  quick: boolean;
  startupOnly: boolean;
  scale: boolean;
  producers: number | undefined;
  /** V8 flags for the daemon, in place of the start task's (for comparing flags). */
  daemonV8Flags: string | undefined;
  /** Internal: print the registry's heap per registration (run under --expose-gc). */
  measureHeap: boolean;
}

function parseArgs(args: readonly string[]): Args {
  const parsed: Args = {
    quick: false,
    startupOnly: false,
    scale: false,
    producers: undefined,
    daemonV8Flags: undefined,
    measureHeap: false,
  };
  for (let i = 0; i < args.length; i++) {
    const [name, inline] = args[i].split(/=(.*)/s, 2);
    const value = (): string => inline ?? args[++i] ?? "";
    if (name === "--quick") parsed.quick = true;
    else if (name === "--startup-only") parsed.startupOnly = true;
    else if (name === "--scale") parsed.scale = true;
    else if (name === "--measure-heap") parsed.measureHeap = true;
    else if (name === "--daemon-v8-flags") parsed.daemonV8Flags = value();
    else if (name === "--producers") {
      const text = value();
      if (!/^[1-9]\d*$/.test(text)) fail(`--producers needs a positive integer, not ${text}`);
      parsed.producers = Number(text);
    } else fail(`unknown argument ${args[i]}`);
  }
  return parsed;
}

function fail(message: string): never {
  writeStderr(
    `${message}; arguments: --quick, --startup-only, --scale, --producers N, ` +
      `--daemon-v8-flags=F\n`,
  );
  Deno.exit(2);
}

interface Size {
  producers: number;
  topicsPerProducer: number;
  topicUniverse: number;
  channels: number;
  /** Seconds per load run, and runs per setup (ours and the baseline alternate). */
  seconds: number;
  runs: number;
}

function sizeOf(producers: number | undefined, quick: boolean): Size {
  return quick
    ? {
      producers: producers ?? 100,
      topicsPerProducer: 20,
      topicUniverse: 1000,
      channels: 2,
      seconds: 2,
      runs: 3,
    }
    : {
      producers: producers ?? 1000,
      topicsPerProducer: 100,
      topicUniverse: 10000,
      channels: 2,
      seconds: 5,
      runs: 5,
    };
}

/** nsqlookupd v1.3.0 (Go) at 1,000 producers, as measured for issue 13. */
const REFERENCE = {
  rssIdleMiB: 6,
  rssLoadedMiB: 70,
  lookupRps: 2_500,
  nodesMs: 8_800,
  disconnectMs: 9_600,
  startupMs: 15,
};

const TARGET = {
  rssLoadedMiB: 105,
  heapPerEntry: 120,
  lookupRatio: 0.9,
  lookupP99Ms: 5,
  nodesP50Ms: 20,
  listingP50Ms: 10,
  disconnectMs: 500,
  startupMs: 60,
  stormPerSecond: 100_000,
  /** --scale: /lookup throughput at 3,000 within this fraction of 1,000's. */
  scaleLookup: 0.2,
  /** --scale: memory per registration at 3,000 at most this times 1,000's. */
  scaleMemory: 1.2,
  /** --scale: latency ratio at most this times the answer-size ratio (or +1 ms). */
  scaleLatency: 1.5,
};

const PROBE = "bench-probe";
const PROBE_HOLDERS = 10;
const LOAD_CONNECTIONS = 50;
const STARTUP_RUNS = 15;
const STORM_ROUNDS = 3;
const ROOT = new URL("..", import.meta.url).pathname;
const encoder = new TextEncoder();

/** Producer i's topics: a deterministic spread over the universe. */
function topicsOf(size: Size, i: number): number[] {
  const topics: number[] = [];
  for (let k = 0; k < size.topicsPerProducer; k++) {
    topics.push((i * 7919 + k * 104729) % size.topicUniverse);
  }
  return [...new Set(topics)];
}

/** Producer i's REGISTER lines (topic names as the wire carries them). */
function registerLines(size: Size, i: number): string[] {
  const lines: string[] = [];
  const topics = topicsOf(size, i).map((t) => `topic${t}`);
  if (i < PROBE_HOLDERS) topics.push(PROBE);
  for (const topic of topics) {
    for (let c = 0; c < size.channels; c++) lines.push(`REGISTER ${topic} ch${c}`);
    lines.push(`REGISTER ${topic}`);
  }
  return lines;
}

function identifyBody(i: number): string {
  return JSON.stringify({
    broadcast_address: `nsqd-${i}.bench`,
    hostname: `nsqd-${i}`,
    tcp_port: 4150,
    http_port: 4151,
    version: "1.3.0",
  });
}

// ---- rows ----

interface Row {
  metric: string;
  value: string;
  target?: string;
  ok?: boolean;
}

interface Target {
  text: string;
  ok: boolean;
}

function row(metric: string, value: string, target?: Target): Row {
  writeStderr(
    `  ${metric}: ${value}${
      target ? ` (target ${target.text}: ${target.ok ? "PASS" : "MISS"})` : ""
    }\n`,
  );
  return { metric, value, target: target?.text, ok: target?.ok };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const MiB = 1024 * 1024;

// ---- processes ----

interface Proc {
  child: Deno.ChildProcess;
  stop(): Promise<void>;
}

/**
 * With two or more cores and taskset, the server under load runs on CPU 0 and
 * the load generator on CPU 1, so that neither steals the other's core. Set by main().
 */
let PINNED = false;

async function canPin(): Promise<boolean> {
  if (navigator.hardwareConcurrency < 2) return false;
  try {
    const out = await new Deno.Command("taskset", { args: ["-c", "0", "true"] }).output();
    return out.success;
  } catch {
    return false;
  }
}

function spawn(args: string[], pinned = false): Proc {
  const command = pinned ? "taskset" : Deno.execPath();
  if (pinned) args = ["-c", "0", Deno.execPath(), ...args];
  const child = new Deno.Command(command, { args, stdout: "null", stderr: "null", cwd: ROOT })
    .spawn();
  return {
    child,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      await child.status;
    },
  };
}

/** The start task's command (deno.json), V8 flags included, or with `v8Flags` in their place. */
async function startTaskArgs(v8Flags: string | undefined): Promise<string[]> {
  const words = await startTaskWords();
  const args = words.filter((w) => !w.startsWith("--v8-flags="));
  // An empty --daemon-v8-flags= measures the daemon without any.
  const flags = v8Flags === undefined ? await startTaskV8Flags() : v8Flags || undefined;
  if (flags !== undefined) args.splice(1, 0, `--v8-flags=${flags}`);
  return args;
}

let DAEMON_ARGS: string[] = [];

function startDaemon(tcpPort: number, httpPort: number, extra: string[] = []): Proc {
  return spawn([
    ...DAEMON_ARGS,
    `--tcp-address=127.0.0.1:${tcpPort}`,
    `--http-address=127.0.0.1:${httpPort}`,
    "--broadcast-address=127.0.0.1",
    "--log-level=warn",
    ...extra,
  ], PINNED);
}

async function waitForPing(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!await pingOnce(port)) {
    if (performance.now() > deadline) throw new Error(`no /ping on ${port}`);
    await sleep(1);
  }
}

/** `cat` of a /proc file: Deno's sandbox refuses /proc files short of --allow-all. */
async function procFile(path: string): Promise<string> {
  try {
    const out = await new Deno.Command("cat", { args: [path], stderr: "null" }).output();
    return new TextDecoder().decode(out.stdout);
  } catch {
    return "";
  }
}

/** Steal and total ticks of all CPUs, from /proc/stat (NaN elsewhere). */
async function cpuTicks(): Promise<{ steal: number; total: number }> {
  const line = (await procFile("/proc/stat")).split("\n")[0] ?? "";
  const fields = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (fields.length < 8) return { steal: NaN, total: NaN };
  return { steal: fields[7], total: fields.reduce((a, b) => a + b, 0) };
}

/** A process's CPU time (user + system) in ms, from /proc (NaN elsewhere). */
async function cpuMs(pid: number): Promise<number> {
  const stat = await procFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 (1-based), in clock ticks (100 Hz on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

// ---- start-up ----

/** A process whose start-up is timed: to its first answered /ping, or to its first output. */
interface StartupSubject {
  args: (tcpPort: number, httpPort: number) => string[];
  readyWhen: "ping" | "output";
}

/** Ours and the runtime's floors (scripts/bench_floor.ts, scripts/bench_baseline.ts). */
function startupSubjects(): Record<StartupName, StartupSubject> {
  // The floors run with the daemon's V8 flags, so that only the scripts differ.
  const v8 = DAEMON_ARGS.filter((word) => word.startsWith("--v8-flags="));
  const floor = (...args: string[]): string[] => ["run", ...v8, ...args];
  return {
    ours: {
      args: (tcp, http) => [
        ...DAEMON_ARGS,
        `--tcp-address=127.0.0.1:${tcp}`,
        `--http-address=127.0.0.1:${http}`,
        "--broadcast-address=127.0.0.1",
        "--log-level=warn",
      ],
      readyWhen: "ping",
    },
    script: { args: () => floor("scripts/bench_floor.ts"), readyWhen: "output" },
    listen: {
      args: (_tcp, http) => floor("--allow-net", "scripts/bench_floor.ts", String(http)),
      readyWhen: "ping",
    },
    timer: {
      args: (_tcp, http) => floor("--allow-net", "scripts/bench_floor.ts", String(http), "timer"),
      readyWhen: "ping",
    },
    serve: {
      args: (_tcp, http) => floor("--allow-net", "scripts/bench_baseline.ts", String(http), "2"),
      readyWhen: "ping",
    },
  };
}

type StartupName = "ours" | "script" | "listen" | "timer" | "serve";

/** Milliseconds from spawning `subject` to it being ready; then it is stopped. */
async function startOnce(name: StartupName, subject: StartupSubject): Promise<number> {
  const http = freePort();
  let tcp = freePort();
  // A port just released may be handed out again at once.
  while (tcp === http) tcp = freePort();
  const args = subject.args(tcp, http);
  const started = performance.now();
  const child = new Deno.Command(PINNED ? "taskset" : Deno.execPath(), {
    args: PINNED ? ["-c", "0", Deno.execPath(), ...args] : args,
    stdout: subject.readyWhen === "output" ? "piped" : "null",
    stderr: "piped",
    cwd: ROOT,
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let exited = false;
  child.status.then(() => exited = true);
  try {
    if (subject.readyWhen === "output") await child.stdout.getReader().read();
    else {
      while (!await pingOnce(http)) {
        if (exited) throw new Error(`start-up of ${name} ended before /ping: ${await stderr}`);
        await sleep(1);
      }
    }
    return performance.now() - started;
  } finally {
    try {
      child.kill("SIGTERM");
    } catch {
      // ended by itself
    }
    await child.status;
    await stderr;
  }
}

/** Whether /ping answers 200 now (false while nothing listens). */
async function pingOnce(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/ping`);
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

/**
 * Each subject's start-up times, `rounds` of them after a warm-up round (the
 * module cache warm). A round starts every subject once, in an order that
 * rotates, so that a change in the machine's load hits all of them alike.
 */
async function startupTimes(rounds: number): Promise<Record<StartupName, number[]>> {
  const subjects = startupSubjects();
  const names = Object.keys(subjects) as StartupName[];
  const times: Record<StartupName, number[]> = {
    ours: [],
    script: [],
    listen: [],
    timer: [],
    serve: [],
  };
  for (let round = -1; round < rounds; round++) {
    const order = names.map((_, i) => names[(i + Math.max(0, round)) % names.length]);
    for (const name of order) {
      const ms = await startOnce(name, subjects[name]);
      if (round >= 0) times[name].push(ms);
    }
  }
  return times;
}

function startupRows(times: Record<StartupName, number[]>): Row[] {
  const figure = (name: StartupName): string =>
    `${median(times[name]).toFixed(1)} ms (min ${Math.min(...times[name]).toFixed(1)})`;
  // Differences within a round: both processes started under the same load.
  const above = (floor: StartupName): string =>
    `${median(times.ours.map((ms, i) => ms - times[floor][i])).toFixed(1)} ms`;
  return [
    row(
      `start-up to first /ping (median of ${STARTUP_RUNS}; reference ${REFERENCE.startupMs} ms)`,
      `${figure("ours")}; ${above("listen")} above the bare Deno.listen floor`,
      { text: `< ${TARGET.startupMs} ms`, ok: median(times.ours) < TARGET.startupMs },
    ),
    row("floor: `deno run` of a one-line script, to its output", figure("script")),
    row("floor: a bare Deno.listen answering /ping", figure("listen")),
    row(
      "floor: the same with a timer armed (Deno loads node:timers)",
      `${figure("timer")}; ours ${above("timer")} above it`,
    ),
    row("a bare Deno.serve answering /ping", figure("serve")),
  ];
}

// ---- load generation ----

interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  client: string;
  /** The server's CPU time (user + system) per request, in microseconds. */
  cpuUs: number;
  /** Share of the machine's CPU time the hypervisor gave to others during the run (%). */
  stealPct: number;
}

type Load = Omit<LoadResult, "cpuUs" | "stealPct">;

/** Whether wrk is installed (else a Deno fetch client loads the server). Set by main(). */
let wrk = false;

async function hasWrk(): Promise<boolean> {
  try {
    const out = await new Deno.Command("wrk", {
      args: ["--version"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return new TextDecoder().decode(out.stdout).includes("wrk") ||
      new TextDecoder().decode(out.stderr).includes("wrk");
  } catch {
    return false;
  }
}

function wrkMs(text: string, label: string): number {
  const match = text.match(new RegExp(`${label}\\s+([\\d.]+)(us|ms|s)`));
  if (!match) return NaN;
  const value = Number(match[1]);
  return match[2] === "us" ? value / 1000 : match[2] === "s" ? value * 1000 : value;
}

async function loadWithWrk(url: string, seconds: number): Promise<Load> {
  const args = [PINNED ? "-t1" : "-t2", `-c${LOAD_CONNECTIONS}`, `-d${seconds}s`, "--latency", url];
  const out = await new Deno.Command(PINNED ? "taskset" : "wrk", {
    args: PINNED ? ["-c", "1", "wrk", ...args] : args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const rps = Number(text.match(/Requests\/sec:\s+([\d.]+)/)?.[1] ?? NaN);
  const non2xx = text.match(/Non-2xx or 3xx responses: (\d+)/);
  if (non2xx) throw new Error(`wrk saw ${non2xx[1]} error responses from ${url}`);
  return { rps, p50: wrkMs(text, "50%"), p99: wrkMs(text, "99%"), client: "wrk" };
}

async function loadWithFetch(url: string, seconds: number): Promise<Load> {
  const latencies: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const started = performance.now();
      const res = await fetch(url);
      await res.arrayBuffer();
      latencies.push(performance.now() - started);
    }
  };
  const began = performance.now();
  await Promise.all(Array.from({ length: LOAD_CONNECTIONS }, worker));
  const elapsed = (performance.now() - began) / 1000;
  return {
    rps: latencies.length / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    client: "deno fetch",
  };
}

const load = (url: string, seconds: number): Promise<Load> =>
  wrk ? loadWithWrk(url, seconds) : loadWithFetch(url, seconds);

/** Loads `url`; also reports the serving process's CPU time per request and the steal. */
async function measure(url: string, pid: number, seconds: number): Promise<LoadResult> {
  const cpuBefore = await cpuMs(pid);
  const ticksBefore = await cpuTicks();
  const result = await load(url, seconds);
  const cpu = (await cpuMs(pid)) - cpuBefore;
  const ticksAfter = await cpuTicks();
  return {
    ...result,
    cpuUs: (cpu * 1000) / (result.rps * seconds),
    stealPct: (100 * (ticksAfter.steal - ticksBefore.steal)) /
      (ticksAfter.total - ticksBefore.total),
  };
}

/** Ours and the baseline alternately, `runs` times each: drifts hit both, each pair gives a ratio. */
async function alternate(
  runs: number,
  ours: () => Promise<LoadResult>,
  floor: () => Promise<LoadResult>,
): Promise<{ ours: LoadResult[]; floor: LoadResult[] }> {
  const result = { ours: [] as LoadResult[], floor: [] as LoadResult[] };
  for (let run = 0; run < runs; run++) {
    result.floor.push(await floor());
    result.ours.push(await ours());
  }
  return result;
}

/**
 * Latency of `count` GETs over one keep-alive connection, read into one
 * reused buffer: a fetch() client allocates each body, and for answers of
 * megabytes its own GC then shows up in the figures as the server's latency.
 */
async function sampleLatency(
  url: string,
  count: number,
): Promise<{ p50: number; p99: number; bytes: number }> {
  const { hostname, port, pathname, search } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  const request = encoder.encode(`GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`);
  const buffer = new Uint8Array(256 * 1024);
  const latencies: number[] = [];
  let bytes = 0;
  try {
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      let rest = request;
      while (rest.length > 0) rest = rest.subarray(await conn.write(rest));
      // The head (small: it fits in the first reads), then Content-Length bytes of body.
      let head = "";
      let received = 0;
      let bodyStart = -1;
      while (bodyStart === -1) {
        const n = await conn.read(buffer);
        if (n === null) throw new Error(`${url}: closed before the head`);
        head += new TextDecoder().decode(buffer.subarray(0, Math.min(n, 4096)));
        received += n;
        const end = head.indexOf("\r\n\r\n");
        if (end !== -1) bodyStart = end + 4;
      }
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
      if (Number.isFinite(length)) {
        while (received < bodyStart + length) {
          const n = await conn.read(buffer);
          if (n === null) throw new Error(`${url}: closed inside the body`);
          received += n;
        }
        bytes = length;
      } else {
        // Bodies over 2048 bytes come chunked, as the reference sends them.
        const chunks = new ChunkedBody();
        const headBytes = new TextEncoder().encode(head.slice(0, bodyStart)).length;
        let first = buffer.subarray(headBytes, received);
        while (!chunks.feed(first)) {
          const n = await conn.read(buffer);
          if (n === null) throw new Error(`${url}: closed inside the body`);
          first = buffer.subarray(0, n);
        }
        bytes = chunks.bodyBytes;
      }
      latencies.push(performance.now() - started);
    }
  } finally {
    conn.close();
  }
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), bytes };
}

/** Follows a chunked body over the reads that carry it; counts its bytes. */
class ChunkedBody {
  bodyBytes = 0;
  #line = "";
  #remaining = 0;
  #state: "size" | "data" | "crlf" | "trailer" = "size";

  /** Consumes `bytes`; true once the last chunk and the trailer's empty line are in. */
  feed(bytes: Uint8Array): boolean {
    let i = 0;
    while (i < bytes.length) {
      if (this.#state === "data") {
        const take = Math.min(this.#remaining, bytes.length - i);
        this.#remaining -= take;
        this.bodyBytes += take;
        i += take;
        if (this.#remaining === 0) this.#state = "crlf";
        continue;
      }
      const c = bytes[i++];
      if (c !== 0x0a) {
        if (c !== 0x0d) this.#line += String.fromCharCode(c);
        continue;
      }
      const line = this.#line;
      this.#line = "";
      if (this.#state === "crlf") {
        this.#state = "size";
      } else if (this.#state === "trailer") {
        if (line === "") return true;
      } else {
        this.#remaining = parseInt(line, 16);
        this.#state = this.#remaining === 0 ? "trailer" : "data";
      }
    }
    return false;
  }
}

// ---- registration and disconnect storms ----

async function readAtLeast(conn: Deno.Conn, total: number): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  let received = 0;
  while (received < total) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("server closed during the storm");
    received += n;
  }
}

/** Every producer connects, identifies and registers everything at once. */
async function registrationStorm(
  size: Size,
  tcpPort: number,
  producers: number[] = Array.from({ length: size.producers }, (_, i) => i),
): Promise<{ conns: Deno.Conn[]; commands: number; seconds: number }> {
  const conns = await Promise.all(
    producers.map(() => Deno.connect({ hostname: "127.0.0.1", port: tcpPort })),
  );
  const payloads = producers.map((i) => {
    const lines = registerLines(size, i);
    const bytes = concat(
      encoder.encode("  V1"),
      identifyCommand(identifyBody(i)),
      encoder.encode(lines.join("\n") + "\n"),
    );
    return { bytes, commands: lines.length + 1, okBytes: lines.length * 6 };
  });
  const started = performance.now();
  await Promise.all(conns.map(async (conn, i) => {
    const { bytes, okBytes } = payloads[i];
    const writing = (async () => {
      let rest = bytes;
      while (rest.length > 0) rest = rest.subarray(await conn.write(rest));
    })();
    // The IDENTIFY reply frame, then one 6-byte OK frame per REGISTER.
    const header = new Uint8Array(4);
    let got = 0;
    while (got < 4) {
      const n = await conn.read(header.subarray(got));
      if (n === null) throw new Error("closed before IDENTIFY reply");
      got += n;
    }
    await readAtLeast(conn, new DataView(header.buffer).getUint32(0) + okBytes);
    await writing;
  }));
  const seconds = (performance.now() - started) / 1000;
  return { conns, commands: payloads.reduce((sum, p) => sum + p.commands, 0), seconds };
}

/** Closes every producer connection; ms until the registry holds none of their entries. */
async function disconnectStorm(conns: Deno.Conn[], base: string): Promise<number> {
  const dropped = performance.now();
  for (const conn of conns) conn.close();
  while (true) {
    const m = await scrape(base);
    const left = (m.get("nsqlookupd_producers_identified") ?? 1) +
      (m.get('nsqlookupd_producer_registrations{category="topic"}') ?? 1) +
      (m.get('nsqlookupd_producer_registrations{category="channel"}') ?? 1);
    if (left === 0) return performance.now() - dropped;
    if (performance.now() - dropped > 30_000) throw new Error("disconnect storm did not drain");
    await sleep(5);
  }
}

// ---- heap per registration (a child process under --expose-gc) ----

/** Builds the fleet's registry directly, names decoded from bytes as the TCP side does. */
function measureHeapHere(size: Size): { entries: number; bytes: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("--measure-heap needs --v8-flags=--expose-gc");
  const decoder = new TextDecoder();
  const wire = (text: string): string => decoder.decode(encoder.encode(text));
  gc();
  const before = Deno.memoryUsage().heapUsed;
  const registry = new Registry({
    now: Date.now,
    inactiveProducerTimeoutMs: 300_000,
    tombstoneLifetimeMs: 45_000,
  });
  for (let i = 0; i < size.producers; i++) {
    const id = wire(`127.0.0.1:${10_000 + i}`);
    const body = JSON.parse(identifyBody(i));
    const peer: PeerInfo = {
      id,
      remoteAddress: id,
      hostname: body.hostname,
      broadcastAddress: body.broadcast_address,
      tcpPort: body.tcp_port,
      httpPort: body.http_port,
      version: body.version,
      topologyZone: "",
      topologyRegion: "",
      lastUpdate: Date.now(),
    };
    registry.identify(peer);
    for (const line of registerLines(size, i)) {
      const [, topic, channel] = wire(line).split(" ");
      if (channel !== undefined) registry.registerChannel(peer, topic, channel);
      else registry.registerTopic(peer, topic);
    }
  }
  gc();
  const after = Deno.memoryUsage().heapUsed;
  const counts = registry.entryCounts();
  return { entries: counts.client + counts.topic + counts.channel, bytes: after - before };
}

async function measureHeap(args: Args): Promise<{ entries: number; bytes: number }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--v8-flags=--expose-gc",
      `${ROOT}scripts/bench.ts`,
      "--measure-heap",
      ...(args.quick ? ["--quick"] : []),
      ...(args.producers === undefined ? [] : ["--producers", String(args.producers)]),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("heap measurement failed");
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

// ---- one fleet ----

interface FleetResult {
  size: Size;
  entries: number;
  heapPerEntry: number;
  rssIdle: number;
  rssLoaded: number;
  heapLoaded: number;
  heapIdle: number;
  stormPerSecond: number;
  stormCommands: number;
  lookup: { ours: LoadResult[]; floor: LoadResult[]; bytes: number; producers: number };
  latencies: Map<string, { p50: number; p99: number; bytes: number }>;
  padded: Map<string, { p50: number; added: number }>;
  disconnectMs: number;
  rssAfterDisconnect: number;
  heapAfterDisconnect: number;
}

async function runFleet(size: Size, args: Args): Promise<FleetResult> {
  writeStderr(
    `fleet: ${size.producers} producers x ${size.topicsPerProducer} topics of ` +
      `${size.topicUniverse}, ${size.channels} channels each\n`,
  );
  const heap = await measureHeap({ ...args, producers: size.producers });
  const tcpPort = freePort();
  const httpPort = freePort();
  const daemon = startDaemon(tcpPort, httpPort);
  await waitForPing(httpPort);
  const base = `http://127.0.0.1:${httpPort}`;
  let baseline: Proc | undefined;
  let conns: Deno.Conn[] = [];
  try {
    await sleep(300);
    const idle = await scrape(base);

    // Registration storm (memory is read after the first one, on a fresh daemon), then
    // disconnect and register again: STORM_ROUNDS of each; the last state stays loaded.
    const stormRuns: { commands: number; seconds: number }[] = [];
    const drainRuns: number[] = [];
    const storm = await registrationStorm(size, tcpPort);
    conns = storm.conns;
    stormRuns.push(storm);
    await sleep(1000);
    const loaded = await scrape(base);
    for (let round = 1; round < STORM_ROUNDS; round++) {
      drainRuns.push(await disconnectStorm(conns, base));
      conns = [];
      const again = await registrationStorm(size, tcpPort);
      conns = again.conns;
      stormRuns.push(again);
    }
    const entries = ["client", "topic", "channel"].reduce(
      (sum, c) => sum + (loaded.get(`nsqlookupd_producer_registrations{category="${c}"}`) ?? 0),
      0,
    );

    // /lookup of the probe against the baseline, alternately.
    const lookupUrl = `${base}/lookup?topic=${PROBE}`;
    const lookupBody = await (await fetch(lookupUrl)).text();
    const baselinePort = freePort();
    baseline = spawn([
      "run",
      "--allow-net",
      "scripts/bench_baseline.ts",
      String(baselinePort),
      String(lookupBody.length),
    ], PINNED);
    await waitForPing(baselinePort);
    const baselineUrl = `http://127.0.0.1:${baselinePort}/lookup?topic=${PROBE}`;
    const lookup = await alternate(
      size.runs,
      () => measure(lookupUrl, daemon.child.pid, size.seconds),
      () => measure(baselineUrl, baseline!.child.pid, size.seconds),
    );

    await baseline.stop();
    baseline = undefined;

    // The listing endpoints, then with as many unrelated registrations again.
    const typical = `topic${topicsOf(size, 0)[0]}`;
    const endpoints: [string, string][] = [
      ["/nodes", `${base}/nodes`],
      ["/topics", `${base}/topics`],
      ["/channels", `${base}/channels?topic=${typical}`],
      ["/lookup", `${base}/lookup?topic=${typical}`],
      ["/debug", `${base}/debug`],
    ];
    const samples = args.quick ? 10 : 20;
    const latencies = new Map<string, { p50: number; p99: number; bytes: number }>();
    for (const [name, url] of endpoints) {
      // /debug dumps every entry (tens of MB at full size): a few samples suffice.
      latencies.set(name, await sampleLatency(url, name === "/debug" ? 3 : samples));
    }
    const extraChannels = size.producers * size.topicsPerProducer * size.channels;
    const topicsToPad = [
      ...new Set(Array.from({ length: size.producers }, (_, i) => topicsOf(size, i)).flat()),
    ].filter((t) => `topic${t}` !== typical);
    const perTopic = Math.ceil(extraChannels / topicsToPad.length);
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < topicsToPad.length) {
        const t = topicsToPad[next++];
        for (let c = 0; c < perTopic; c++) {
          const res = await fetch(`${base}/channel/create?topic=topic${t}&channel=pad${c}`, {
            method: "POST",
          });
          await res.body?.cancel();
        }
      }
    }));
    const padded = new Map<string, { p50: number; added: number }>();
    for (const [name, url] of endpoints) {
      if (name === "/debug") continue;
      const result = await sampleLatency(url, samples);
      padded.set(name, { p50: result.p50, added: topicsToPad.length * perTopic });
    }

    drainRuns.push(await disconnectStorm(conns, base));
    conns = [];
    await sleep(1000);
    const end = await scrape(base);
    return {
      size,
      entries,
      heapPerEntry: heap.bytes / heap.entries,
      rssIdle: idle.get("process_resident_memory_bytes") ?? NaN,
      rssLoaded: loaded.get("process_resident_memory_bytes") ?? NaN,
      heapIdle: idle.get("nsqlookupd_heap_used_bytes") ?? NaN,
      heapLoaded: loaded.get("nsqlookupd_heap_used_bytes") ?? NaN,
      stormPerSecond: median(stormRuns.map((r) => r.commands / r.seconds)),
      stormCommands: storm.commands,
      lookup: {
        ...lookup,
        bytes: lookupBody.length,
        producers: JSON.parse(lookupBody).producers.length,
      },
      latencies,
      padded,
      disconnectMs: median(drainRuns),
      rssAfterDisconnect: end.get("process_resident_memory_bytes") ?? NaN,
      heapAfterDisconnect: end.get("nsqlookupd_heap_used_bytes") ?? NaN,
    };
  } finally {
    for (const conn of conns) conn.close();
    await baseline?.stop();
    await daemon.stop();
  }
}

// ---- reports ----

function summary(runs: LoadResult[]): string {
  return `${Math.round(median(runs.map((r) => r.rps)))} req/s, p50 ${
    median(runs.map((r) => r.p50)).toFixed(2)
  } ms, p99 ${median(runs.map((r) => r.p99)).toFixed(2)} ms`;
}

const lookupRatio = (r: { ours: LoadResult[]; floor: LoadResult[] }): number =>
  median(r.ours.map((run, i) => run.rps / r.floor[i].rps));

function fleetRows(f: FleetResult, quick: boolean): Row[] {
  // The issue's targets are for the fleet (1,000 producers; 100 with --quick); another
  // size (--scale's second) is judged against the first, side by side.
  const atFleet = f.size.producers === (quick ? 100 : 1000);
  const when = (text: string, ok: boolean): Target | undefined =>
    atFleet ? { text, ok } : undefined;
  const rows: Row[] = [];
  rows.push(row(
    `registration storm (median of ${STORM_ROUNDS})`,
    `${f.stormCommands} commands, ${Math.round(f.stormPerSecond)} commands/s`,
    quick ? undefined : when(
      `>= ${TARGET.stormPerSecond.toLocaleString("en")}/s`,
      f.stormPerSecond >= TARGET.stormPerSecond,
    ),
  ));
  rows.push(row(
    "RSS idle (reference nsqlookupd v1.3.0: 6 MiB)",
    mib(f.rssIdle),
  ));
  rows.push(row(
    `RSS loaded, ${f.entries} registrations (reference: ${REFERENCE.rssLoadedMiB} MiB)`,
    `${mib(f.rssLoaded)} (${
      (f.rssLoaded / MiB / REFERENCE.rssLoadedMiB).toFixed(2)
    }x the reference)`,
    quick ? undefined : when(
      `<= ${TARGET.rssLoadedMiB} MiB`,
      f.rssLoaded <= TARGET.rssLoadedMiB * MiB,
    ),
  ));
  rows.push(row(
    "heap per producer registration (registry alone, after GC)",
    `${f.heapPerEntry.toFixed(1)} bytes`,
    { text: `<= ${TARGET.heapPerEntry} bytes`, ok: f.heapPerEntry <= TARGET.heapPerEntry },
  ));
  rows.push(row(
    "daemon V8 heap idle / loaded (no forced GC)",
    `${mib(f.heapIdle)} / ${mib(f.heapLoaded)}`,
  ));
  const lookup = f.lookup;
  rows.push(row(
    `/lookup ${PROBE} (${lookup.bytes} B, ${lookup.producers} producers), ${LOAD_CONNECTIONS} conns`,
    summary(lookup.ours),
  ));
  rows.push(row("baseline Deno.serve, same body size", summary(lookup.floor)));
  const ratio = lookupRatio(lookup);
  rows.push(row(
    `/lookup throughput ratio to baseline (median of pairs; reference ${REFERENCE.lookupRps} req/s)`,
    `${ratio.toFixed(2)}x`,
    when(`>= ${TARGET.lookupRatio}x`, ratio >= TARGET.lookupRatio),
  ));
  const p99 = median(lookup.ours.map((r) => r.p99));
  rows.push(row(
    `/lookup p99 at ${LOAD_CONNECTIONS} concurrent`,
    `${p99.toFixed(2)} ms`,
    when(`< ${TARGET.lookupP99Ms} ms`, p99 < TARGET.lookupP99Ms),
  ));
  rows.push(row(
    "/lookup p99 ratio to baseline p99 (median of pairs)",
    `${median(lookup.ours.map((r, i) => r.p99 / lookup.floor[i].p99)).toFixed(2)}x`,
  ));
  const cpu = median(lookup.ours.map((r) => r.cpuUs));
  const floorCpu = median(lookup.floor.map((r) => r.cpuUs));
  rows.push(row(
    "server CPU per request: /lookup / baseline",
    `${cpu.toFixed(1)} us / ${floorCpu.toFixed(1)} us = ${(cpu / floorCpu).toFixed(2)}x`,
  ));
  const steals = [...lookup.ours, ...lookup.floor].map((r) => r.stealPct);
  rows.push(row(
    "hypervisor steal during those runs",
    `median ${median(steals).toFixed(0)}%, least ${Math.min(...steals).toFixed(0)}%`,
  ));
  const targets: Record<string, number> = {
    "/nodes": TARGET.nodesP50Ms,
    "/topics": TARGET.listingP50Ms,
    "/channels": TARGET.listingP50Ms,
  };
  for (const [name, l] of f.latencies) {
    const target = targets[name];
    const reference = name === "/nodes" ? ` (reference ${REFERENCE.nodesMs} ms)` : "";
    rows.push(row(
      `${name} latency${reference}`,
      `p50 ${l.p50.toFixed(2)} ms, p99 ${l.p99.toFixed(2)} ms, body ${l.bytes} B`,
      target === undefined ? undefined : when(`p50 < ${target} ms`, l.p50 < target),
    ));
  }
  for (const [name, p] of f.padded) {
    const ratio = p.p50 / f.latencies.get(name)!.p50;
    rows.push(row(
      `${name} p50 with ${p.added} unrelated channels added`,
      `${p.p50.toFixed(2)} ms (${ratio.toFixed(2)}x)`,
    ));
  }
  rows.push(row(
    `disconnect storm: all producers gone (median of ${STORM_ROUNDS}; reference ${
      (REFERENCE.disconnectMs / 1000).toFixed(1)
    } s)`,
    `${f.disconnectMs.toFixed(0)} ms`,
    when(`< ${TARGET.disconnectMs} ms`, f.disconnectMs < TARGET.disconnectMs),
  ));
  rows.push(row(
    "after the disconnect storm: RSS / V8 heap",
    `${mib(f.rssAfterDisconnect)} / ${mib(f.heapAfterDisconnect)}`,
  ));
  return rows;
}

/** --scale: the two fleets side by side, with the scale targets. */
function scaleRows(a: FleetResult, b: FleetResult): string[][] {
  const n = (f: FleetResult): string => `${f.size.producers} producers`;
  const rows: string[][] = [["metric", n(a), n(b), "ratio", "target", ""]];
  const verdict = (ok: boolean): string => ok ? "PASS" : "MISS";
  const entryRatio = b.entries / a.entries;
  rows.push([
    "registrations",
    String(a.entries),
    String(b.entries),
    `${entryRatio.toFixed(2)}x`,
    "",
    "",
  ]);
  const perEntry = (f: FleetResult): number => (f.rssLoaded - f.rssIdle) / f.entries;
  const memoryRatio = perEntry(b) / perEntry(a);
  rows.push([
    "RSS loaded",
    mib(a.rssLoaded),
    mib(b.rssLoaded),
    `${(b.rssLoaded / a.rssLoaded).toFixed(2)}x`,
    "",
    "",
  ]);
  rows.push([
    "RSS growth per registration (loaded - idle)",
    `${perEntry(a).toFixed(0)} B`,
    `${perEntry(b).toFixed(0)} B`,
    `${memoryRatio.toFixed(2)}x`,
    `linear: <= ${TARGET.scaleMemory}x`,
    verdict(memoryRatio <= TARGET.scaleMemory),
  ]);
  rows.push([
    "heap per registration (registry alone)",
    `${a.heapPerEntry.toFixed(1)} B`,
    `${b.heapPerEntry.toFixed(1)} B`,
    `${(b.heapPerEntry / a.heapPerEntry).toFixed(2)}x`,
    `<= ${TARGET.scaleMemory}x`,
    verdict(b.heapPerEntry <= a.heapPerEntry * TARGET.scaleMemory),
  ]);
  // Throughput as a ratio to the baseline measured beside it: the two fleets run minutes
  // apart on a shared machine, and raw req/s drift with its load (both are printed).
  const rps = (f: FleetResult): number => median(f.lookup.ours.map((r) => r.rps));
  const normalized = lookupRatio(b.lookup) / lookupRatio(a.lookup);
  rows.push([
    `/lookup ${PROBE} req/s (same answer at both scales)`,
    String(Math.round(rps(a))),
    String(Math.round(rps(b))),
    `${(rps(b) / rps(a)).toFixed(2)}x`,
    "",
    "",
  ]);
  rows.push([
    "/lookup throughput as a ratio to the baseline",
    `${lookupRatio(a.lookup).toFixed(2)}x`,
    `${lookupRatio(b.lookup).toFixed(2)}x`,
    `${normalized.toFixed(2)}x`,
    `within ${TARGET.scaleLookup * 100}%`,
    verdict(Math.abs(1 - normalized) <= TARGET.scaleLookup),
  ]);
  for (const name of ["/lookup", "/channels", "/topics", "/nodes"]) {
    const la = a.latencies.get(name)!;
    const lb = b.latencies.get(name)!;
    const latencyRatio = lb.p50 / la.p50;
    const bodyRatio = lb.bytes / la.bytes;
    const ok = latencyRatio <= TARGET.scaleLatency * Math.max(1, bodyRatio) ||
      lb.p50 - la.p50 < 1;
    rows.push([
      `${name} p50 (body)`,
      `${la.p50.toFixed(2)} ms (${la.bytes} B)`,
      `${lb.p50.toFixed(2)} ms (${lb.bytes} B)`,
      `${latencyRatio.toFixed(2)}x (body ${bodyRatio.toFixed(2)}x)`,
      `<= ${TARGET.scaleLatency} x body ratio or +1 ms`,
      verdict(ok),
    ]);
  }
  rows.push([
    "disconnect storm",
    `${a.disconnectMs.toFixed(0)} ms`,
    `${b.disconnectMs.toFixed(0)} ms`,
    `${(b.disconnectMs / a.disconnectMs).toFixed(2)}x`,
    "",
    "",
  ]);
  return rows;
}

function renderTable(header: string[], body: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? "").length)));
  const line = (cells: string[]): string =>
    "| " + cells.map((c, i) => (c ?? "").padEnd(widths[i])).join(" | ") + " |";
  return [
    line(header),
    "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|",
    ...body.map(line),
    "",
  ].join("\n");
}

function rowsTable(rows: Row[]): string {
  return renderTable(
    ["metric", "value", "target", ""],
    rows.map((
      r,
    ) => [r.metric, r.value, r.target ?? "", r.ok === undefined ? "" : r.ok ? "PASS" : "MISS"]),
  );
}

// ---- the run ----

async function main(): Promise<void> {
  const args = parseArgs(Deno.args);
  if (args.measureHeap) {
    writeStdout(JSON.stringify(measureHeapHere(sizeOf(args.producers, args.quick))) + "\n");
    return;
  }
  DAEMON_ARGS = await startTaskArgs(args.daemonV8Flags);
  PINNED = await canPin();
  wrk = await hasWrk();
  writeStderr(
    `nsqlookupd benchmark (${args.quick ? "quick" : "full"}): daemon as \`deno ${
      DAEMON_ARGS.join(" ")
    }\`; HTTP load by ${wrk ? "wrk" : "a Deno fetch keep-alive client"}, ${LOAD_CONNECTIONS} ` +
      `connections${
        PINNED ? "; servers under load pinned to CPU 0, the load generator to CPU 1" : ""
      }\n`,
  );

  // Start-up: process start to the first answered /ping (warm module cache), next
  // to the runtime's floors measured in the same rounds.
  const startup = startupRows(await startupTimes(STARTUP_RUNS));
  if (args.startupOnly) {
    writeStdout(rowsTable(startup));
    if (startup.some((r) => r.ok === false)) {
      writeStdout("\nsome targets were missed (MISS above)\n");
    }
    return;
  }

  const first = await runFleet(sizeOf(args.producers, args.quick), args);
  const rows = [...startup, ...fleetRows(first, args.quick)];
  writeStdout(rowsTable(rows));
  let missed = rows.some((r) => r.ok === false);
  if (args.scale) {
    const second = await runFleet(
      sizeOf((args.producers ?? (args.quick ? 100 : 1000)) * 3, args.quick),
      args,
    );
    writeStdout(`\n${second.size.producers} producers:\n`);
    const secondRows = fleetRows(second, args.quick);
    writeStdout(rowsTable(secondRows));
    writeStdout("\nside by side:\n");
    const [header, ...body] = scaleRows(first, second);
    writeStdout(renderTable(header, body));
    missed ||= body.some((r) => r[5] === "MISS");
  }
  if (missed) writeStdout("\nsome targets were missed (MISS above)\n");
}

await main();
