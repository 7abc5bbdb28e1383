// `deno task stress [--quick] [--only=ROW|name,...] [--bare]`: every row of
// issue 12's table ("Stay available under load"), one attack after another,
// against a daemon started as a separate process at fleet scale (1,000
// producers × 100 of 10,000 topics × 2 channels; --quick: 100 × 100 of 1,000),
// while a monitor measures what a real deployment would notice:
// - an emulated nsqd pings every 0.5 s with a 1 s deadline (nsqd's 15 s / 1 s,
//   scaled down) and reconnects after a miss, as nsqd does;
// - a client GETs /ping every 50 ms from a new connection, and another every
//   50 ms on a keep-alive connection it keeps (reconnecting after a failure);
// - /lookup of the monitor's topic every 250 ms (an answer without the
//   monitor producer is "missing");
// - /metrics gives the daemon's RSS every 250 ms.
// Each attack is a row: worst /ping of each probe, the daemon's event-loop
// stalls over 20 ms (from its nsqlookupd_event_loop_lag_seconds histogram;
// shown, not gated: a GC pause or the process not being scheduled on this
// shared machine counts too), missed PINGs, /lookup answers missing the
// producer, RSS at the start, peak and after, and PASS or
// MISS against the targets (/ping p100 < 100 ms, 0 missed PINGs, 0 missing,
// RSS peak within +150 MiB of the row's start, and the attack's own checks,
// e.g. 50/50 newcomers answered, RSS back within 10% after the cycles); a
// row that misses lists the worst /ping of each phase the attack went
// through (register, query, disconnect...). Exits 1 on any MISS. --quick
// shortens every attack and runs a tenth of the cycles of rows 6 and 7 (the
// row's note says so); --bare starts the daemon without the release's
// runtime flags.
//
// Traffic goes to loopback only; every attack is bounded in count and time,
// stops by itself and closes what it opened. What rows 2, 6, 7 and 8 register
// is ephemeral or deleted, and they check it is gone before the next row.
// Attacks that need many hosts use other 127.x source addresses (NetConn
// binds one; Deno.connect cannot). The monitor runs in a Worker, so that the
// attack's client-side work does not show up as the daemon's latency.
//
// Attacks are a list of `Attack` ({ name, run(target) }): the name starts
// with the issue's row number ("6: ..."); run() drives the attack, returns a
// note for the table and throws to report a failed check of its own.

import { closeQuietly } from "../src/gocompat/accept_loop.ts";
import {
  concat,
  identifyCommand,
  mib,
  readFrame,
  sleep,
  table,
  writeAll,
} from "../tests/support/harness.ts";
import { HttpConn, httpGet, type HttpRequest } from "../tests/support/http_client.ts";
import { NetConn } from "../tests/support/net_conn.ts";
import { spawnDaemon, type SpawnedDaemon } from "../tests/support/daemon_process.ts";
import { writeStderr, writeStdout } from "../src/ops/logger.ts";
import { RUNTIME_FLAGS } from "./compile_plan.ts";

const encoder = new TextEncoder();

// ---------------------------------------------------------------- targets

export const TARGET_PING_P100_MS = 100;
/** Shown, not gated: ticks of the daemon's lag timer later than this (issue 12's bound on a stall). */
export const STALL_SHOWN_MS = 20;
export const TARGET_RSS_GROWTH_BYTES = 150 * 1024 * 1024;
/**
 * Rows 6 and 7: RSS after the cycles within this fraction of the row's start.
 * (The issue also asks it of the heap, which the soak checks after a forced
 * GC; here no GC can be forced in the daemon, and the heap in use swings by
 * more than that with garbage not yet collected, so it is shown, not gated.)
 */
export const TARGET_FLAT = 0.1;
const MONITOR_TOPIC = "stress_monitor";
const MONITOR_ADDRESS = "stress-monitor";

// ---------------------------------------------------------------- the daemon

/** What an attack gets: where the daemon is, and how to reach it from many hosts. */
export interface StressTarget {
  readonly tcpPort: number;
  readonly httpPort: number;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly pid: number;
  /** --quick: smaller counts and shorter attacks. */
  readonly quick: boolean;
  /** The daemon's stderr lines so far. */
  readonly lines: readonly string[];
  /** Whether the daemon process is still running. */
  alive(): boolean;
  /** Source addresses to use as distinct hosts (127.0.1.x). */
  readonly hosts: readonly string[];
  /**
   * Names what the attack does from now on (register, query, disconnect...):
   * a row that misses its /ping target says in which phase the worst came.
   */
  phase(name: string): Promise<void>;
}

export interface Attack {
  /** Starts with the issue's row number: `6: ...`. */
  readonly name: string;
  /** Drives the attack; resolves with a note for the table, throws on a failed check. */
  run(target: StressTarget): Promise<string | void>;
}

/** Runtime flags the daemon is started with: what the release binary carries, unless --bare. */
let runtimeFlags: readonly string[] = RUNTIME_FLAGS;

/** The daemon with the release's runtime flags on free loopback ports. */
function startDaemon(args: readonly string[]): Promise<SpawnedDaemon> {
  return spawnDaemon(args, { ports: "free", runtimeFlags });
}

function targetOf(
  daemon: SpawnedDaemon,
  quick: boolean,
  phase: (name: string) => Promise<void> = () => Promise.resolve(),
): StressTarget {
  return {
    phase,
    tcpPort: daemon.tcpPort,
    httpPort: daemon.httpPort,
    url: daemon.url,
    pid: daemon.pid,
    quick,
    lines: daemon.lines,
    alive: daemon.alive,
    hosts: Array.from({ length: 24 }, (_, i) => `127.0.1.${i + 1}`),
  };
}

// ---------------------------------------------------------------- plumbing

/** `promise`, or null once `ms` have passed (the timer never outlives it). */
async function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function seconds(target: StressTarget, full: number): number {
  return (target.quick ? full / 2 : full) * 1000;
}

const count = (n: number): string => n.toLocaleString("en-US");

/** The daemon's resident memory in a /metrics reading. */
const RSS_SERIES = "process_resident_memory_bytes";

/** The daemon's /metrics as `series → value`, or an empty map when it did not answer. */
async function metrics(port: number): Promise<Map<string, number>> {
  const values = new Map<string, number>();
  try {
    const { body } = await httpGet(port, "/metrics", 2_000);
    for (const line of body.split("\n")) {
      if (line === "" || line.startsWith("#")) continue;
      const space = line.lastIndexOf(" ");
      values.set(line.slice(0, space), Number(line.slice(space + 1)));
    }
  } catch {
    // busy or gone: no figures
  }
  return values;
}

async function readRss(port: number): Promise<number | undefined> {
  return (await metrics(port)).get(RSS_SERIES);
}

/** The event-loop lag histogram in a /metrics reading: cumulative tick counts by bucket bound in ms. */
function lagOf(values: Map<string, number>): Map<number, number> {
  const buckets = new Map<number, number>();
  for (const [series, value] of values) {
    const le = series.match(/^nsqlookupd_event_loop_lag_seconds_bucket\{le="([^"]+)"\}$/)?.[1];
    if (le !== undefined) buckets.set(le === "+Inf" ? Infinity : Number(le) * 1000, value);
  }
  return buckets;
}

/**
 * The daemon's stalls between two readings of its lag histogram: how many
 * ticks came more than STALL_SHOWN_MS late, and the bucket of the worst.
 */
function stallsBetween(before: Map<number, number>, after: Map<number, number>): string {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  if (bounds.length === 0 || before.size === 0) return "-";
  const delta = (bound: number): number => (after.get(bound) ?? 0) - (before.get(bound) ?? 0);
  const total = delta(Infinity);
  const over = total - delta(STALL_SHOWN_MS);
  const at = bounds.findIndex((bound) => delta(bound) === total);
  const worst = at <= 0 ? `≤ ${bounds[0]} ms` : `${bounds[at - 1]}-${bounds[at]} ms`;
  return `${over} (worst ${worst})`;
}

interface Memory {
  rss: number;
  heap: number;
}

/** RSS and V8 heap in use, the lowest of `samples` readings 200 ms apart (GC timing varies). */
async function memoryLow(port: number, samples = 3): Promise<Memory> {
  let low: Memory = { rss: Infinity, heap: Infinity };
  for (let i = 0; i < samples; i++) {
    if (i > 0) await sleep(200);
    const m = await metrics(port);
    low = {
      rss: Math.min(low.rss, m.get(RSS_SERIES) ?? Infinity),
      heap: Math.min(low.heap, m.get("nsqlookupd_heap_used_bytes") ?? Infinity),
    };
  }
  return low;
}

/** Topic and channel registrations, as /metrics counts them. */
async function registrations(port: number): Promise<{ topics: number; channels: number }> {
  const m = await metrics(port);
  return {
    topics: m.get('nsqlookupd_registrations{category="topic"}') ?? NaN,
    channels: m.get('nsqlookupd_registrations{category="channel"}') ?? NaN,
  };
}

/** Waits (at most `ms`) until the registrations are back to `before`; throws naming what is left. */
async function untilClean(
  port: number,
  before: { topics: number; channels: number },
  ms = 15_000,
): Promise<void> {
  const deadline = performance.now() + ms;
  for (;;) {
    const now = await registrations(port);
    if (now.topics === before.topics && now.channels === before.channels) return;
    if (performance.now() > deadline) {
      throw new Error(
        `left behind: ${now.topics - before.topics} topic and ` +
          `${now.channels - before.channels} channel registrations`,
      );
    }
    await sleep(250);
  }
}

/**
 * Waits (at most `ms`) for RSS to come back within TARGET_FLAT of `start`:
 * V8 gives memory back when its memory reducer runs, a few seconds after the
 * work stops. The lowest readings seen, and how long it took.
 */
async function settleMemory(
  port: number,
  start: Memory,
  ms = 15_000,
): Promise<Memory & { waitedMs: number }> {
  const began = performance.now();
  let low: Memory = { rss: Infinity, heap: Infinity };
  for (;;) {
    const now = await memoryLow(port, 1);
    low = { rss: Math.min(low.rss, now.rss), heap: Math.min(low.heap, now.heap) };
    const waitedMs = performance.now() - began;
    if (low.rss <= start.rss * (1 + TARGET_FLAT) || waitedMs > ms) return { ...low, waitedMs };
    await sleep(500);
  }
}

function identifyBody(name: string): string {
  return JSON.stringify({
    broadcast_address: name,
    hostname: name,
    tcp_port: 4150,
    http_port: 4151,
    version: "1.3.0",
  });
}

/**
 * An nsqd from 127.0.0.1: magic, IDENTIFY as `name`, then `commands` as nsqd
 * sends them when it connects, each waiting for the reply to the one before
 * (`window` > 1: that many in flight); resolves once every reply came (and
 * was OK), the connection open.
 */
async function registeredPeer(
  port: number,
  name: string,
  commands: readonly string[],
  window = 1,
): Promise<NetConn> {
  const peer = await NetConn.open("127.0.0.1", port);
  try {
    await peer.write(concat("  V1", identifyCommand(identifyBody(name))));
    const identified = await withDeadline(peer.readFrame(), 5_000);
    if (!identified?.startsWith("{")) throw new Error(`${name}: IDENTIFY answered ${identified}`);
    for (let i = 0; i < commands.length; i += window) {
      const some = commands.slice(i, i + window);
      await peer.write(some.map((c) => c + "\n").join(""));
      await expectOks(peer, some.length, name);
    }
    return peer;
  } catch (error) {
    peer.close();
    throw error;
  }
}

/** Reads `n` replies, each of which must be OK (within 30 s in all). */
async function expectOks(peer: NetConn, n: number, what: string): Promise<void> {
  const reading = (async (): Promise<string | undefined> => {
    for (let i = 0; i < n; i++) {
      const reply = await peer.readFrame();
      if (reply !== "OK") return `reply ${i + 1} of ${n}: ${reply}`;
    }
    return undefined;
  })();
  const wrong = await withDeadline(reading, 30_000);
  if (wrong !== undefined) throw new Error(`${what}: ${wrong ?? `not all ${n} replies in 30 s`}`);
}

// ---------------------------------------------------------------- the fleet

interface Fleet {
  conns: Deno.TcpConn[];
  close(): void;
}

/** Producers registering 100 topics each, 2 channels per topic; they then stay connected. */
async function registerFleet(port: number, producers: number, topics: number): Promise<Fleet> {
  const conns: Deno.TcpConn[] = [];
  const BATCH = 100;
  for (let i = 0; i < producers; i += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, producers - i) }, async (_, j) => {
      const index = i + j;
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const lines: string[] = [];
      for (let k = 0; k < 100; k++) {
        const topic = `fleet_${(index * 100 + k * 37) % topics}`;
        lines.push(`REGISTER ${topic} c0\n`, `REGISTER ${topic} c1\n`);
      }
      await writeAll(
        conn,
        concat("  V1", identifyCommand(identifyBody(`fleet-${index}`)), lines.join("")),
      );
      for (let k = 0; k <= lines.length; k++) {
        const reply = await readFrame(conn);
        if (reply === null || (k > 0 && reply !== "OK")) {
          throw new Error(`fleet producer ${index}: ${reply}`);
        }
      }
      return conn;
    });
    conns.push(...await Promise.all(batch));
  }
  return { conns, close: () => conns.forEach(closeQuietly) };
}

// ---------------------------------------------------------------- the monitor

interface Sample {
  /** /ping from a new connection each time, ms (Infinity: failed). */
  pings: number[];
  /** /ping on the kept keep-alive connection, ms (Infinity: failed). */
  keptPings: number[];
  missedPings: number;
  lookupsMissing: number;
  rss: number[];
}

const emptySample = (): Sample => ({
  pings: [],
  keptPings: [],
  missedPings: 0,
  lookupsMissing: 0,
  rss: [],
});

interface Ports {
  tcpPort: number;
  httpPort: number;
}

/**
 * The emulated nsqd, the /ping and /lookup probes, the RSS sampler. It runs in
 * a Worker (MonitorWorker), so that the attack code's own work in this
 * process does not show up as the daemon's latency.
 */
class Monitor {
  readonly #target: Ports;
  #sample = emptySample();
  #running = true;
  #loops: Promise<void>[] = [];
  #conn: Deno.TcpConn | undefined;
  #kept: HttpConn | undefined;

  constructor(target: Ports) {
    this.#target = target;
  }

  async start(): Promise<void> {
    await this.#connectProducer();
    this.#loops = [
      this.#producerLoop(),
      this.#pingLoop(),
      this.#keptPingLoop(),
      this.#lookupLoop(),
      this.#rssLoop(),
    ];
  }

  /** The figures since the last call. */
  take(): Sample {
    const sample = this.#sample;
    this.#sample = emptySample();
    return sample;
  }

  async stop(): Promise<void> {
    this.#running = false;
    if (this.#conn !== undefined) closeQuietly(this.#conn);
    this.#kept?.close();
    await Promise.all(this.#loops);
  }

  async #connectProducer(): Promise<void> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: this.#target.tcpPort });
    this.#conn = conn;
    await writeAll(
      conn,
      concat(
        "  V1",
        identifyCommand(identifyBody(MONITOR_ADDRESS)),
        `REGISTER ${MONITOR_TOPIC} c\n`,
      ),
    );
    const identified = await withDeadline(readFrame(conn), 1_000);
    const registered = await withDeadline(readFrame(conn), 1_000);
    if (!identified?.startsWith("{") || registered !== "OK") {
      throw new Error(`monitor producer: ${identified} / ${registered}`);
    }
  }

  /** nsqd's lookup loop: PING every interval; a reply later than 1 s is a miss, then reconnect. */
  async #producerLoop(): Promise<void> {
    while (this.#running) {
      await sleep(500);
      if (!this.#running) return;
      const conn = this.#conn;
      let ok = false;
      try {
        if (conn !== undefined) {
          await writeAll(conn, encoder.encode("PING\n"));
          ok = (await withDeadline(readFrame(conn), 1_000)) === "OK";
        }
      } catch {
        // reset, closed: a miss
      }
      if (ok || !this.#running) continue;
      this.#sample.missedPings++;
      if (conn !== undefined) closeQuietly(conn);
      this.#conn = undefined;
      try {
        await this.#connectProducer();
      } catch {
        // retried at the next tick
      }
    }
  }

  async #pingLoop(): Promise<void> {
    while (this.#running) {
      const started = performance.now();
      try {
        const { body } = await httpGet(this.#target.httpPort, "/ping");
        this.#sample.pings.push(body === "OK" ? performance.now() - started : Infinity);
      } catch {
        this.#sample.pings.push(Infinity);
      }
      await sleep(50);
    }
  }

  /** /ping on a connection kept open, as a client with a connection pool asks. */
  async #keptPingLoop(): Promise<void> {
    while (this.#running) {
      const started = performance.now();
      let ms = Infinity;
      try {
        this.#kept ??= await HttpConn.open(this.#target.httpPort);
        const answer = await withDeadline(this.#kept.request("GET", "/ping"), 2_000);
        if (answer?.body === "OK") ms = performance.now() - started;
      } catch {
        // reset or closed: a failure, and a new connection next time
      }
      if (!this.#running) return;
      this.#sample.keptPings.push(ms);
      if (ms === Infinity) {
        this.#kept?.close();
        this.#kept = undefined;
      }
      await sleep(50);
    }
  }

  async #lookupLoop(): Promise<void> {
    while (this.#running) {
      try {
        const { status, body } = await httpGet(
          this.#target.httpPort,
          `/lookup?topic=${MONITOR_TOPIC}`,
        );
        const found = status === 200 &&
          (JSON.parse(body) as { producers: { broadcast_address: string }[] }).producers.some(
            (p) => p.broadcast_address === MONITOR_ADDRESS,
          );
        if (!found) this.#sample.lookupsMissing++;
      } catch {
        this.#sample.lookupsMissing++;
      }
      await sleep(250);
    }
  }

  async #rssLoop(): Promise<void> {
    while (this.#running) {
      const rss = await readRss(this.#target.httpPort);
      if (rss !== undefined) this.#sample.rss.push(rss);
      await sleep(250);
    }
  }
}

/** What the load worker needs to keep the daemon busy (plain data: it crosses to a Worker). */
interface LoadTarget extends Ports {
  hosts: string[];
}

type MonitorRequest =
  | { kind: "start"; ports: Ports }
  | { kind: "take" }
  | { kind: "stop" }
  | { kind: "load"; target: LoadTarget };

type MonitorReply =
  | { kind: "started" }
  | { kind: "sample"; sample: Sample }
  | { kind: "stopped" }
  | { kind: "failed"; message: string };

function inWorker(): boolean {
  const scope =
    (globalThis as { WorkerGlobalScope?: abstract new () => unknown }).WorkerGlobalScope;
  return scope !== undefined && globalThis instanceof scope;
}

/** This module, loaded as a Worker, answering one request at a time. */
class MonitorWorker {
  readonly #worker = new Worker(import.meta.url, { type: "module" });
  #reply: ((reply: MonitorReply) => void) | undefined;

  constructor() {
    this.#worker.onmessage = (event: MessageEvent<MonitorReply>) => this.#reply?.(event.data);
  }

  /** One request, answered within 15 s (the worker's figures come back at once). */
  async #ask(request: MonitorRequest): Promise<MonitorReply> {
    const reply = await withDeadline(
      new Promise<MonitorReply>((resolve) => {
        this.#reply = resolve;
        this.#worker.postMessage(request);
      }),
      15_000,
    );
    if (reply === null) throw new Error(`the monitor did not answer ${request.kind}`);
    if (reply.kind === "failed") throw new Error(`monitor: ${reply.message}`);
    return reply;
  }

  async start(ports: Ports): Promise<void> {
    await this.#ask({ kind: "start", ports });
  }

  /** Turns this worker into a load generator (see busyLoad) instead. */
  async load(target: LoadTarget): Promise<void> {
    await this.#ask({ kind: "load", target });
  }

  terminate(): void {
    this.#worker.terminate();
  }

  async take(): Promise<Sample> {
    const reply = await this.#ask({ kind: "take" });
    return reply.kind === "sample" ? reply.sample : emptySample();
  }

  async stop(): Promise<void> {
    await this.#ask({ kind: "stop" });
    this.#worker.terminate();
  }
}

function serveMonitor(): void {
  const scope = globalThis as unknown as {
    onmessage: (event: MessageEvent<MonitorRequest>) => void;
    postMessage(reply: MonitorReply): void;
  };
  let monitor: Monitor | undefined;
  scope.onmessage = async ({ data }) => {
    if (data.kind === "start") {
      monitor = new Monitor(data.ports);
      try {
        await monitor.start();
        scope.postMessage({ kind: "started" });
      } catch (error) {
        scope.postMessage({ kind: "failed", message: String(error) });
      }
    } else if (data.kind === "load") {
      // Busy until the daemon goes (see busyLoad).
      void busyLoad(data.target);
      scope.postMessage({ kind: "started" });
    } else if (data.kind === "take") {
      scope.postMessage({ kind: "sample", sample: monitor?.take() ?? emptySample() });
    } else {
      await monitor?.stop();
      scope.postMessage({ kind: "stopped" });
    }
  };
}

// ---------------------------------------------------------------- HTTP attacks (rows 1, 2, 4, 13, 14)

/** Reads and discards everything `conn` receives until it closes or `until` resolves. */
async function discard(conn: Deno.Conn, until: Promise<unknown>): Promise<number> {
  const buffer = new Uint8Array(256 * 1024);
  let total = 0;
  let done = false;
  void until.then(() => {
    done = true;
    closeQuietly(conn);
  });
  try {
    while (!done) {
      const n = await conn.read(buffer);
      if (n === null) break;
      total += n;
    }
  } catch {
    // closed
  }
  return total;
}

/**
 * One TCP packet holding 400 pipelined GET `path`, for `rounds` rounds of
 * `ms` each (a new connection each), the answers read as fast as they come
 * and discarded.
 */
async function pipelined(
  target: StressTarget,
  path: string,
  { rounds = 3, ms = seconds(target, 3) } = {},
): Promise<string> {
  const packet = encoder.encode(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(400));
  let received = 0;
  for (let round = 0; round < rounds; round++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: target.httpPort });
    await writeAll(conn, packet);
    received += await discard(conn, sleep(ms));
  }
  return `${(packet.length / 1024).toFixed(1)} KiB packet; ${rounds} × ${ms / 1000} s, ${
    mib(received)
  } of answers read`;
}

export const pipelinedDebug: Attack = {
  name: "1: one 13 KB packet of 400 pipelined GET /debug",
  run: (target) => pipelined(target, "/debug"),
};

/** Row 2's topic: ephemeral, as are its channels, so that the peer's disconnect removes them. */
const WIDE_TOPIC = "stress_wide#ephemeral";

export const pipelinedChannels: Attack = {
  name: "2: the same with /channels of a topic of 5,000 channels",
  async run(target): Promise<string> {
    const before = await registrations(target.httpPort);
    await target.phase("register");
    const channels = Array.from(
      { length: 5_000 },
      (_, c) => `REGISTER ${WIDE_TOPIC} ch${c}#ephemeral`,
    );
    const peer = await registeredPeer(target.tcpPort, "stress-wide", channels);
    let note: string;
    try {
      await target.phase("pipelined");
      note = await pipelined(target, `/channels?topic=${encodeURIComponent(WIDE_TOPIC)}`);
    } finally {
      await target.phase("disconnect");
      peer.close();
    }
    await untilClean(target.httpPort, before);
    return note;
  },
};

/**
 * Opens `n` connections from `hosts`, 50 every 100 ms: an attack that builds
 * up over seconds. (A burst of a thousand connects is another attack: Deno
 * accepts one connection per event-loop turn, so a newcomer behind such a
 * burst waits in the kernel's accept queue.)
 */
async function openAttackers(
  port: number,
  n: number,
  hosts: readonly string[],
): Promise<NetConn[]> {
  const conns: NetConn[] = [];
  for (let i = 0; i < n; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 50); j++) {
      batch.push(NetConn.open(hosts[j % hosts.length], port).catch(() => undefined));
    }
    for (const conn of await Promise.all(batch)) if (conn !== undefined) conns.push(conn);
    await sleep(100);
  }
  return conns;
}

async function closeAll(conns: readonly NetConn[]): Promise<void> {
  for (const conn of conns) conn.close();
  await Promise.all(conns.map((conn) => conn.closed));
}

export const slowloris: Attack = {
  name: "4: 1,100 HTTP connections sending their heads at 1 byte/s (slowloris)",
  async run(target): Promise<string> {
    const conns = await openAttackers(target.httpPort, 1_100, target.hosts.slice(0, 8));
    const head = "GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: " + "a".repeat(64);
    const ticks = seconds(target, 8) / 1000;
    for (let i = 0; i < ticks; i++) {
      for (const conn of conns) if (!conn.isClosed) void conn.write(head[i % head.length]);
      await sleep(1_000);
    }
    const closed = conns.filter((conn) => conn.isClosed).length;
    await closeAll(conns);
    return `${count(conns.length)} for ${ticks} s, ${count(closed)} closed by the daemon`;
  },
};

export const unsentBodies: Attack = {
  name: "4: 1,100 HTTP connections announcing bodies they never send",
  async run(target): Promise<string> {
    const conns = await openAttackers(target.httpPort, 1_100, target.hosts.slice(0, 8));
    for (const conn of conns) {
      void conn.write(
        "POST /topic/create?topic=never HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
      );
    }
    await sleep(seconds(target, 8));
    const closed = conns.filter((conn) => conn.isClosed).length;
    await closeAll(conns);
    return `${count(conns.length)} held, ${count(closed)} closed by the daemon`;
  },
};

export const idleThenNewcomers: Attack = {
  name: "13: 1,024 idle keep-alive connections, then 50 new clients",
  async run(target): Promise<string> {
    // 4 hosts × 256: each host at its share (25 %) of the HTTP cap, the cap full.
    const conns = await openAttackers(target.httpPort, 1_024, target.hosts.slice(0, 4));
    await Promise.all(conns.map(async (conn) => {
      await conn.write("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n");
      await withDeadline(conn.waitForBytes(), 5_000);
    }));
    await sleep(500); // they are idle now
    const answers = await Promise.all(
      Array.from(
        { length: 50 },
        () => httpGet(target.httpPort, "/ping", 5_000).catch(() => undefined),
      ),
    );
    const answered = answers.filter((answer) => answer?.body === "OK").length;
    const closed = conns.filter((conn) => conn.isClosed).length;
    await closeAll(conns);
    const note = `${count(conns.length)} idle held; newcomers answered ${answered}/50; ` +
      `${closed} idle closed to make room`;
    if (answered !== 50) throw new Error(note);
    return note;
  },
};

export const garbage: Attack = {
  name: "14: unparseable bytes on the HTTP port (400 at once, the slot released)",
  async run(target): Promise<string> {
    // The first bytes of a TLS ClientHello: cannot start a request line.
    const hello = new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03]);
    const one = async (): Promise<{ ms: number; answer: string }> => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: target.httpPort });
      const started = performance.now();
      try {
        await writeAll(conn, hello);
        let answer = "";
        const buffer = new Uint8Array(4096);
        const reading = (async (): Promise<void> => {
          for (;;) {
            const n = await conn.read(buffer).catch(() => null);
            if (n === null) return;
            answer += new TextDecoder().decode(buffer.subarray(0, n));
          }
        })();
        const ended = await withDeadline(reading, 15_000);
        return { ms: ended === null ? Infinity : performance.now() - started, answer };
      } finally {
        closeQuietly(conn);
      }
    };
    const held: Promise<{ ms: number; answer: string }>[] = [];
    for (let tick = 0; tick < seconds(target, 3) / 50; tick++) {
      for (let i = 0; i < 10; i++) held.push(one());
      await sleep(50);
    }
    const results = await Promise.all(held);
    const worst = Math.max(...results.map((r) => r.ms));
    const not400 = results.filter((r) => !r.answer.startsWith("HTTP/1.1 400 ")).length;
    const note = `${results.length} connections; slot held ${worst.toFixed(0)} ms at worst; ` +
      `${not400} without a 400`;
    if (worst >= 1_000 || not400 > 0) throw new Error(note);
    return note;
  },
};

// ---------------------------------------------------------------- TCP and process attacks (rows 3, 5, 9, 10, 12, 15)

/** Peers that IDENTIFY, then pipeline PING and REGISTER without ever reading a reply. */
export const pipelineFlood: Attack = {
  name: "3: 50 TCP peers pipelining PING/REGISTER, never reading",
  async run(target): Promise<void> {
    const chunk = encoder.encode("PING\nREGISTER flood_topic flood_channel\n".repeat(2_000));
    const until = performance.now() + seconds(target, 10);
    const peers = await Promise.all(
      Array.from(
        { length: 50 },
        (_, i) => NetConn.open(target.hosts[i % target.hosts.length], target.tcpPort),
      ),
    );
    await Promise.all(peers.map(async (peer, i) => {
      await peer.write(concat("  V1", identifyCommand(identifyBody(`flood-${i}`))));
      // One chunk in flight at a time: its write completes once the kernel took it,
      // so it stays pending when the daemon stops reading (and nothing piles up here).
      let inFlight: Promise<void> | undefined;
      while (performance.now() < until && !peer.isClosed) {
        inFlight ??= peer.write(chunk).then(() => void (inFlight = undefined));
        await withDeadline(inFlight, 250);
      }
    }));
    await closeAll(peers);
  },
};

/** 16,500 connections that never send a byte, spread over hosts; then a new nsqd registers. */
export const silentConnections: Attack = {
  name: "5: 16,500 silent TCP connections, then a new nsqd",
  async run(target): Promise<void> {
    const total = 16_500;
    const until = performance.now() + seconds(target, 12);
    const held = new Set<NetConn>();
    let opened = 0;
    let stop = false;
    let stuck = false;
    // Keep the pressure on: whatever the daemon closes is opened again, at a bounded rate.
    const openOne = async (i: number): Promise<void> => {
      while (!stop) {
        try {
          const conn = await NetConn.open(target.hosts[i % target.hosts.length], target.tcpPort);
          opened++;
          if (stop) {
            // Connected after the others were closed: nobody else would close it.
            conn.close();
            break;
          }
          held.add(conn);
          await conn.closed;
          held.delete(conn);
        } catch {
          // refused or reset: try again shortly
        }
        await sleep(50);
      }
    };
    const holders: Promise<void>[] = [];
    await target.phase("open");
    for (let i = 0; i < total; i += 500) {
      for (let j = i; j < Math.min(total, i + 500); j++) holders.push(openOne(j));
      await sleep(100);
    }
    await sleep(1_000);
    // A new nsqd arrives while the attacker holds (or churns) every slot it can.
    await target.phase("hold, new nsqd");
    const newcomer = await Deno.connect({ hostname: "127.0.0.1", port: target.tcpPort });
    try {
      await writeAll(
        newcomer,
        concat(
          "  V1",
          identifyCommand(identifyBody("stress-newcomer")),
          "REGISTER stress_newcomer c\n",
        ),
      );
      const identified = await withDeadline(readFrame(newcomer), 2_000);
      const registered = await withDeadline(readFrame(newcomer), 2_000);
      if (!identified?.startsWith("{") || registered !== "OK") {
        throw new Error(`the new nsqd was not served: ${identified} / ${registered}`);
      }
      const { status, body } = await httpGet(target.httpPort, "/lookup?topic=stress_newcomer");
      if (status !== 200 || !body.includes('"stress-newcomer"')) {
        throw new Error(`the new nsqd is not in /lookup: ${status} ${body.slice(0, 200)}`);
      }
      while (performance.now() < until) await sleep(200);
    } finally {
      await target.phase("close");
      closeQuietly(newcomer);
      stop = true;
      for (const conn of held) conn.close();
      stuck = (await withDeadline(Promise.all(holders), 10_000)) === null;
    }
    if (stuck) throw new Error(`${held.size} connections still open 10 s after closing them`);
    if (opened < total) throw new Error(`only ${opened} of ${total} connections were opened`);
  },
};

/** Signals whose default action would end a Deno process, sent to the running daemon. */
export const straySignals: Attack = {
  name: "9: SIGUSR2 SIGALRM SIGVTALRM SIGPROF SIGXCPU SIGIO (and SIGHUP SIGPIPE)",
  async run(target): Promise<void> {
    for (
      const signal of [
        "SIGUSR2",
        "SIGALRM",
        "SIGVTALRM",
        "SIGPROF",
        "SIGXCPU",
        "SIGIO",
        "SIGHUP",
        "SIGPIPE",
      ] as const
    ) {
      Deno.kill(target.pid, signal);
      await sleep(200);
      if (!target.alive()) throw new Error(`${signal} killed the daemon`);
    }
    await sleep(1_000);
    if (!target.alive()) throw new Error("the daemon died");
  },
};

/** Whether a debugger answers on 127.0.0.1:9229 for `pid`. */
async function debuggerFor(pid: number): Promise<boolean> {
  try {
    const { body } = await httpGet(9229, "/json/list", 2_000);
    return body.includes(`[pid: ${pid}]`);
  } catch {
    return false;
  }
}

/** SIGUSR1 to a daemon in its first half second, and to the fleet daemon. */
export const sigusr1: Attack = {
  name: "10: SIGUSR1 (early, and later): no debugger on 9229, still serving",
  async run(target): Promise<void> {
    const fresh = await startDaemon(["--log-level=warn"]);
    try {
      Deno.kill(fresh.pid, "SIGUSR1");
      await sleep(1_000);
      if (!fresh.alive()) throw new Error("an early SIGUSR1 killed a starting daemon");
    } finally {
      await fresh.stop();
    }
    Deno.kill(target.pid, "SIGUSR1");
    await sleep(1_000);
    if (!target.alive()) throw new Error("SIGUSR1 killed the daemon");
    const banner = target.lines.find((l) => l.includes("Debugger listening"));
    if (banner !== undefined || await debuggerFor(target.pid)) {
      throw new Error(
        `SIGUSR1 opened a debugger any local user can reach (Deno ${Deno.version.deno}): ${
          banner ?? "127.0.0.1:9229"
        }`,
      );
    }
    if ((await httpGet(target.httpPort, "/ping")).body !== "OK") {
      throw new Error("/ping failed after SIGUSR1");
    }
  },
};

/** IDENTIFY bodies nested deep inside an ignored member. */
export const deepIdentify: Attack = {
  name: "15: IDENTIFY nested 4,000 deep in an ignored member (and 20,000)",
  async run(target): Promise<void> {
    const fields = '"broadcast_address":"deep","tcp_port":1,"http_port":2,"version":"1"';
    for (const [depth, expected] of [[4_000, "{"], [20_000, "E_BAD_BODY"]] as const) {
      for (let i = 0; i < 20; i++) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: target.tcpPort });
        try {
          const body = `{"x":${"[".repeat(depth)}${"]".repeat(depth)},${fields}}`;
          await writeAll(conn, concat("  V1", identifyCommand(body)));
          const reply = await withDeadline(readFrame(conn), 2_000);
          // Like Go's encoding/json: accepted up to 10,000 levels, an error frame beyond.
          if (reply === null || !reply.startsWith(expected)) {
            throw new Error(`depth ${depth}: ${reply === null ? "closed without a reply" : reply}`);
          }
        } finally {
          closeQuietly(conn);
        }
      }
    }
  },
};

/** Line breaks and controls in what clients send, against a daemon logging at INFO. */
export const logForgery: Attack = {
  name: "12: %0a in a request path, \\n in IDENTIFY fields (log forgery)",
  async run(): Promise<void> {
    const logging = await startDaemon(["--log-level=info"]);
    const forged = "[nsqlookupd] 2026/01/01 00:00:00.000000 INFO: forged";
    let lines: readonly string[];
    try {
      await httpGet(logging.httpPort, `/ping%0a${encodeURIComponent(forged)}`);
      await httpGet(logging.httpPort, `/x%0d%0a${encodeURIComponent(forged)}%e2%80%a8`);
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: logging.tcpPort });
      await writeAll(conn, concat("  V1", identifyCommand(identifyBody(`a\n${forged}`))));
      await withDeadline(readFrame(conn), 2_000);
      closeQuietly(conn);
      await sleep(300);
    } finally {
      lines = (await logging.stop()).lines;
    }
    const line = /^\[nsqlookupd\] \d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\.\d{6} [A-Z]+: /;
    // deno-lint-ignore no-control-regex
    const bad = lines.filter((l) => !line.test(l) || /[\x00-\x1f\u2028\u2029]/.test(l));
    if (bad.length > 0) {
      throw new Error(`forged or unsafe log lines: ${JSON.stringify(bad.slice(0, 3))}`);
    }
  },
};

// ---------------------------------------------------------------- churn and size (rows 6, 7, 8)

/** "RSS 90.1 → 95.0 (halfway) → 92.0 MiB (+2.1%)" */
function memoryPath(what: string, start: number, halfway: number, after: number): string {
  const percent = ((after / start - 1) * 100).toFixed(1);
  const middle = Number.isNaN(halfway) ? "" : ` → ${(halfway / 1024 / 1024).toFixed(1)} (halfway)`;
  return `${what} ${(start / 1024 / 1024).toFixed(1)}${middle} → ${mib(after)} (${
    after >= start ? "+" : ""
  }${percent}%)`;
}

/**
 * Rows 6 and 7: `cycles` cycles that each create something, look it up and
 * delete it, by `run(from, to)` (cycles are numbered, each name used once),
 * then checks nothing is left and RSS came back within TARGET_FLAT of the
 * start. The start is read after a warm-up of a tenth as many cycles, as the
 * soak does: the first cycles raise RSS to a high-water mark (V8's heap and
 * the allocator's arenas) that a daemon keeps, leak or not. The note has the
 * heap and the RSS halfway too: memory that grows in the second half as in
 * the first is held per cycle.
 */
async function churn(
  target: StressTarget,
  cycles: number,
  run: (from: number, to: number) => Promise<void>,
): Promise<string> {
  const before = await registrations(target.httpPort);
  const warmUp = cycles / 10;
  await target.phase("warm-up");
  await run(cycles, cycles + warmUp);
  const start = await memoryLow(target.httpPort);
  await target.phase("cycles");
  const began = performance.now();
  await run(0, cycles / 2);
  const halfway = (await readRss(target.httpPort)) ?? NaN;
  await run(cycles / 2, cycles);
  const rate = cycles / ((performance.now() - began) / 1000);
  await target.phase("settle");
  await untilClean(target.httpPort, before);
  const after = await settleMemory(target.httpPort, start);
  const note = `${count(cycles)} cycles${target.quick ? " (--quick: a tenth)" : ""} after ${
    count(warmUp)
  } of warm-up, ${count(Math.round(rate))}/s, nothing left; ${
    memoryPath("RSS", start.rss, halfway, after.rss)
  }, ${memoryPath("heap", start.heap, NaN, after.heap)}, ${
    (after.waitedMs / 1000).toFixed(1)
  } s after`;
  if (!(after.rss <= start.rss * (1 + TARGET_FLAT))) {
    throw new Error(`RSS not back within ${TARGET_FLAT * 100}%: ${note}`);
  }
  return note;
}

/** Row 6's batch: this many cycles pipelined on one connection (3 requests each). */
const CYCLE_BATCH = 100;

export const topicCycles: Attack = {
  name: "6: 300,000 cycles of topic create, /lookup, delete (HTTP)",
  run(target): Promise<string> {
    // One batch of cycles pipelined on one of 4 keep-alive connections.
    const batch = async (conn: HttpConn, first: number): Promise<void> => {
      const requests: HttpRequest[] = [];
      for (let i = first; i < first + CYCLE_BATCH; i++) {
        const topic = `stress_cycle_${i}`;
        requests.push(
          { method: "POST", path: `/topic/create?topic=${topic}` },
          { method: "GET", path: `/lookup?topic=${topic}` },
          { method: "POST", path: `/topic/delete?topic=${topic}` },
        );
      }
      const answers = await conn.pipeline(requests);
      answers.forEach((answer, i) => {
        const expected = i % 3 === 1 ? '{"channels":[],"producers":[]}' : "";
        if (answer.status !== 200 || answer.body !== expected) {
          throw new Error(
            `${requests[i].method} ${requests[i].path}: ${answer.status} ${
              answer.body.slice(0, 100)
            }`,
          );
        }
      });
    };
    return churn(target, target.quick ? 30_000 : 300_000, async (from, to) => {
      const conns = await Promise.all(
        Array.from({ length: 4 }, () => HttpConn.open(target.httpPort)),
      );
      let next = from;
      try {
        await Promise.all(conns.map(async (conn) => {
          while (next < to) {
            const first = next;
            next += CYCLE_BATCH;
            await batch(conn, first);
          }
        }));
      } finally {
        for (const conn of conns) conn.close();
      }
    });
  },
};

/** Row 7's batch: this many cycles at a time (REGISTERs pipelined, then lookups, then UNREGISTERs). */
const EPHEMERAL_BATCH = 500;

export const ephemeralCycles: Attack = {
  name: "7: 150,000 cycles of ephemeral REGISTER, /lookup, UNREGISTER (one nsqd)",
  async run(target): Promise<string> {
    const peer = await registeredPeer(target.tcpPort, "stress-ephemeral", []);
    const http = await Promise.all(Array.from({ length: 4 }, () => HttpConn.open(target.httpPort)));
    const batch = async (first: number, n: number): Promise<void> => {
      // The channel is ephemeral too: UNREGISTER of a plain channel keeps its
      // registration without producers (as the Go daemon does).
      const topics = Array.from({ length: n }, (_, i) => `stress_eph_${first + i}#ephemeral`);
      await peer.write(topics.map((t) => `REGISTER ${t} c#ephemeral\n`).join(""));
      await expectOks(peer, topics.length, "REGISTER");
      await Promise.all(http.map(async (conn, c) => {
        const mine = topics.filter((_, i) => i % http.length === c);
        const answers = await conn.pipeline(
          mine.map((t) => ({ method: "GET", path: `/lookup?topic=${encodeURIComponent(t)}` })),
        );
        answers.forEach((answer, i) => {
          if (answer.status !== 200 || !answer.body.includes('"stress-ephemeral"')) {
            throw new Error(`/lookup ${mine[i]}: ${answer.status} ${answer.body.slice(0, 100)}`);
          }
        });
      }));
      await peer.write(
        topics.map((t) => `UNREGISTER ${t} c#ephemeral\nUNREGISTER ${t}\n`).join(""),
      );
      await expectOks(peer, topics.length * 2, "UNREGISTER");
    };
    try {
      return await churn(target, target.quick ? 15_000 : 150_000, async (from, to) => {
        for (let first = from; first < to; first += EPHEMERAL_BATCH) {
          await batch(first, Math.min(EPHEMERAL_BATCH, to - first));
        }
      });
    } finally {
      peer.close();
      for (const conn of http) conn.close();
    }
  },
};

export const debugAtScale: Attack = {
  name: "8: GET /debug at 100,000 topics, 3 at once",
  async run(target): Promise<string> {
    const TOPICS = 100_000;
    const PEERS = 4;
    const rounds = target.quick ? 1 : 2;
    const rssStart = (await readRss(target.httpPort)) ?? NaN;
    const before = await registrations(target.httpPort);
    // Ephemeral topics: the peers' disconnect removes them.
    await target.phase("register");
    const registering = await Promise.allSettled(
      Array.from({ length: PEERS }, (_, p) =>
        registeredPeer(
          target.tcpPort,
          `stress-many-${p}`,
          Array.from(
            { length: TOPICS / PEERS },
            (_, i) => `REGISTER stress_many_${p * (TOPICS / PEERS) + i}#ephemeral`,
          ),
        )),
    );
    const peers = registering.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
    const failed = registering.find((r) => r.status === "rejected");
    if (failed !== undefined) {
      for (const peer of peers) peer.close();
      throw failed.reason;
    }
    let note: string;
    try {
      const rssRegistered = (await readRss(target.httpPort)) ?? NaN;
      await target.phase("3 × /debug");
      const answers = await Promise.all(Array.from({ length: 3 }, async () => {
        const conn = await HttpConn.open(target.httpPort);
        try {
          const got: { status: number; bytes: number; ms: number }[] = [];
          for (let r = 0; r < rounds; r++) {
            const started = performance.now();
            const answer = await withDeadline(
              conn.request("GET", "/debug", { discard: true }),
              120_000,
            );
            if (answer === null) throw new Error("a /debug took longer than 120 s");
            got.push({ ...answer, ms: performance.now() - started });
          }
          return got;
        } finally {
          conn.close();
        }
      }));
      const all = answers.flat();
      const wrong = all.find((a) => a.status !== 200);
      if (wrong !== undefined) throw new Error(`/debug answered ${wrong.status}`);
      note = `${count(TOPICS)} topics registered: RSS +${
        mib(rssRegistered - rssStart)
      }; ${all.length} × /debug of ${mib(all[0].bytes)}, slowest ${
        (Math.max(...all.map((a) => a.ms)) / 1000).toFixed(1)
      } s`;
    } finally {
      await target.phase("disconnect");
      for (const peer of peers) peer.close();
    }
    await untilClean(target.httpPort, before, 30_000);
    return note;
  },
};

// ---------------------------------------------------------------- SIGTERM (row 11)

/**
 * Keeps the daemon busy until it goes: TCP peers flooding without reading,
 * HTTP clients pipelining /ping and /debug (reading /debug as fast as it
 * comes), slow heads holding slots.
 */
async function busyLoad(target: LoadTarget): Promise<void> {
  const never = new Promise<void>(() => {});
  const pings = encoder.encode("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n".repeat(100_000));
  const debugs = encoder.encode("GET /debug HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200));
  const connect = (): Promise<Deno.TcpConn | undefined> =>
    Deno.connect({ hostname: "127.0.0.1", port: target.httpPort }).catch(() => undefined);
  for (let i = 0; i < 10; i++) {
    const conn = await connect();
    if (conn !== undefined) {
      writeAll(conn, pings).catch(() => {}).finally(() => closeQuietly(conn));
    }
  }
  for (let i = 0; i < 20; i++) {
    const conn = await connect();
    if (conn !== undefined) {
      writeAll(conn, debugs).then(() => discard(conn, never)).catch(() => closeQuietly(conn));
    }
  }
  for (const conn of await openAttackers(target.httpPort, 200, target.hosts.slice(8, 12))) {
    void conn.write("GET /ping HTTP/1.1\r\n");
  }
  const stressTarget: StressTarget = {
    ...target,
    url: "",
    pid: 0,
    lines: [],
    alive: () => true,
    quick: false,
    phase: () => Promise.resolve(),
  };
  await pipelineFlood.run(stressTarget).catch(() => {});
}

/**
 * Last: SIGTERM while busy; must exit 0 within 5 s. The load comes from a
 * Worker, so that this thread measures the exit, not its own backlog of work.
 */
async function sigtermWhileBusy(daemon: SpawnedDaemon, hosts: readonly string[]): Promise<string> {
  const load = new MonitorWorker();
  try {
    await load.load({ tcpPort: daemon.tcpPort, httpPort: daemon.httpPort, hosts: [...hosts] });
    await sleep(2_000);
    const { code, elapsedMs } = await daemon.stop("SIGTERM", 10_000);
    if (code !== 0 || elapsedMs >= 5_000) {
      throw new Error(`exit ${code} ${(elapsedMs / 1000).toFixed(1)} s after SIGTERM`);
    }
    return `exit 0 in ${(elapsedMs / 1000).toFixed(2)} s`;
  } finally {
    load.terminate();
  }
}

/** Bound on one attack's run (the longest, row 6, takes about a minute). */
const ATTACK_LIMIT_MS = 300_000;

const SIGTERM_ROW = "11: SIGTERM while TCP peers flood, HTTP answers go unread, /debug streams";

// ---------------------------------------------------------------- the run

/**
 * Every row of the issue's table, in the order they run: HTTP first, then the
 * churn rows on a daemon not yet swollen by the connection storm (7 before 6:
 * row 6's /lookup answers of deleted topics stay cached, and would be row 7's
 * start), then /debug at scale, the storm and the process rows; SIGTERM (row
 * 11) always comes last.
 */
export const ATTACKS: readonly Attack[] = [
  pipelinedDebug,
  pipelinedChannels,
  pipelineFlood,
  slowloris,
  unsentBodies,
  idleThenNewcomers,
  garbage,
  ephemeralCycles,
  topicCycles,
  debugAtScale,
  silentConnections,
  deepIdentify,
  straySignals,
  sigusr1,
  logForgery,
];

interface Row {
  name: string;
  worstPing: number;
  worstKeptPing: number;
  missedPings: number;
  lookupsMissing: number;
  rssStart: number;
  rssPeak: number;
  rssAfter: number;
  /** Event-loop stalls over STALL_SHOWN_MS during the row, and the worst's bucket. */
  stalls: string;
  misses: string[];
  note: string;
  /** Worst /ping of each phase the attack named, shown with a MISS. */
  phases: string;
}

const worst = (values: readonly number[]): number =>
  values.length === 0 ? NaN : Math.max(...values);

function merge(samples: readonly Sample[]): Sample {
  return {
    pings: samples.flatMap((s) => s.pings),
    keptPings: samples.flatMap((s) => s.keptPings),
    missedPings: samples.reduce((n, s) => n + s.missedPings, 0),
    lookupsMissing: samples.reduce((n, s) => n + s.lookupsMissing, 0),
    rss: samples.flatMap((s) => s.rss),
  };
}

/** "register 12.0 ms, /debug 230.1 ms, ..." (the worse of both probes). */
function phaseFigures(phases: readonly { name: string; sample: Sample }[]): string {
  return phases.map(({ name, sample }) =>
    `${name} ${showMs(worst([...sample.pings, ...sample.keptPings]))}`
  ).join(", ");
}

const showMs = (value: number): string =>
  Number.isNaN(value) ? "-" : value === Infinity ? "timeout" : `${value.toFixed(1)} ms`;

function verdict(row: Row): string[] {
  const misses = [...row.misses];
  for (const [what, value] of [["new", row.worstPing], ["kept", row.worstKeptPing]] as const) {
    if (!Number.isNaN(value) && !(value < TARGET_PING_P100_MS)) {
      misses.push(`/ping (${what}) p100 ${value === Infinity ? "timeout" : showMs(value)}`);
    }
  }
  if (row.missedPings > 0) misses.push(`${row.missedPings} producer PINGs missed`);
  if (row.lookupsMissing > 0) {
    misses.push(`${row.lookupsMissing} /lookup answers missing the producer`);
  }
  if (row.rssPeak - row.rssStart > TARGET_RSS_GROWTH_BYTES) {
    misses.push(`RSS +${mib(row.rssPeak - row.rssStart)}`);
  }
  if (misses.length > row.misses.length && row.phases !== "") {
    misses.push(`worst /ping by phase: ${row.phases}`);
  }
  return misses;
}

/** Whether `--only` selects the attack: a row number (`6`, or `4` for both of row 4) or a word. */
function selected(name: string, only: readonly string[] | undefined): boolean {
  if (only === undefined) return true;
  const row = name.slice(0, name.indexOf(":"));
  return only.some((o) => /^\d+$/.test(o) ? row === o : name.includes(o));
}

export async function runStress(options: {
  quick: boolean;
  only?: readonly string[];
  attacks?: readonly Attack[];
  log?: (text: string) => void;
}): Promise<{ rows: Row[]; misses: number }> {
  const log = options.log ?? (() => {});
  const attacks = (options.attacks ?? ATTACKS).filter((a) => selected(a.name, options.only));
  const producers = options.quick ? 100 : 1_000;
  const topics = options.quick ? 1_000 : 10_000;
  const daemon = await startDaemon(["--log-level=warn"]);
  const target = targetOf(daemon, options.quick);
  const rows: Row[] = [];
  let fleet: Fleet | undefined;
  let monitor: MonitorWorker | undefined;
  try {
    log(`fleet: ${producers} producers x 100 of ${topics} topics x 2 channels...`);
    const started = performance.now();
    fleet = await registerFleet(daemon.tcpPort, producers, topics);
    log(`  registered in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    monitor = new MonitorWorker();
    await monitor.start({ tcpPort: daemon.tcpPort, httpPort: daemon.httpPort });
    await sleep(2_000);
    await monitor.take();
    for (const attack of attacks) {
      if (!daemon.alive()) break;
      log(`attack ${attack.name}`);
      const began = performance.now();
      // One /metrics reading gives both.
      const start = await metrics(daemon.httpPort);
      const rssStart = start.get(RSS_SERIES) ?? NaN;
      const lagStart = lagOf(start);
      await monitor.take();
      const misses: string[] = [];
      let note = "";
      const phases: { name: string; sample: Sample }[] = [];
      let current = "attack";
      const phase = async (name: string): Promise<void> => {
        phases.push({ name: current, sample: await monitor!.take() });
        current = name;
        log(`  ${name}`);
      };
      try {
        // Every attack stops by itself; this bound only keeps a bug in one from hanging the run.
        const ran = await withDeadline(
          attack.run(targetOf(daemon, options.quick, phase)).then((n) => n ?? ""),
          ATTACK_LIMIT_MS,
        );
        if (ran === null) throw new Error(`did not finish within ${ATTACK_LIMIT_MS / 1000} s`);
        note = ran;
      } catch (error) {
        misses.push(error instanceof Error ? error.message : String(error));
      }
      phases.push({ name: current, sample: await monitor.take() });
      await sleep(3_000);
      phases.push({ name: "3 s after", sample: await monitor.take() });
      const after = daemon.alive() ? await metrics(daemon.httpPort) : new Map<string, number>();
      const rssAfter = after.get(RSS_SERIES) ?? NaN;
      const lagAfter = lagOf(after);
      log(`  ${((performance.now() - began) / 1000).toFixed(1)} s`);
      const all = merge(phases.map((p) => p.sample));
      const row: Row = {
        name: attack.name,
        worstPing: worst(all.pings),
        worstKeptPing: worst(all.keptPings),
        missedPings: all.missedPings,
        lookupsMissing: all.lookupsMissing,
        rssStart,
        rssPeak: Math.max(rssStart, ...all.rss),
        rssAfter,
        stalls: stallsBetween(lagStart, lagAfter),
        misses,
        note,
        phases: phases.length > 2 ? phaseFigures(phases) : "",
      };
      rows.push(row);
    }
    if (selected(SIGTERM_ROW, options.only) && daemon.alive()) {
      log(`attack ${SIGTERM_ROW}`);
      const misses: string[] = [];
      let note = "";
      await monitor.stop();
      monitor = undefined;
      try {
        note = await sigtermWhileBusy(daemon, target.hosts);
      } catch (error) {
        misses.push(error instanceof Error ? error.message : String(error));
      }
      rows.push({
        name: SIGTERM_ROW,
        worstPing: NaN,
        worstKeptPing: NaN,
        missedPings: 0,
        lookupsMissing: 0,
        rssStart: NaN,
        rssPeak: NaN,
        rssAfter: NaN,
        stalls: "-",
        misses,
        note,
        phases: "",
      });
    }
  } finally {
    await monitor?.stop();
    fleet?.close();
    await daemon.stop("SIGTERM", 2_000).catch(() => undefined);
  }
  let misses = 0;
  for (const row of rows) {
    row.misses = verdict(row);
    if (row.misses.length > 0) misses++;
  }
  return { rows, misses };
}

export function stressTable(rows: readonly Row[]): string[][] {
  const rss = (bytes: number): string => Number.isNaN(bytes) ? "-" : mib(bytes);
  return [
    [
      "attack",
      "/ping new",
      "/ping kept",
      `stalls > ${STALL_SHOWN_MS} ms`,
      "missed PINGs",
      "lookups missing",
      "RSS start",
      "peak",
      "after",
      "result",
    ],
    ...rows.map((row) => [
      row.name,
      showMs(row.worstPing),
      showMs(row.worstKeptPing),
      row.stalls,
      String(row.missedPings),
      String(row.lookupsMissing),
      rss(row.rssStart),
      rss(row.rssPeak),
      rss(row.rssAfter),
      row.misses.length === 0
        ? `PASS${row.note === "" ? "" : ` (${row.note})`}`
        : `MISS: ${row.misses.join("; ")}${row.note === "" ? "" : ` (${row.note})`}`,
    ]),
  ];
}

if (inWorker()) {
  serveMonitor();
} else if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  if (Deno.args.includes("--bare")) runtimeFlags = [];
  const onlyArg = Deno.args.find((a) => a.startsWith("--only="));
  const unknown = Deno.args.filter((a) =>
    a !== "--quick" && a !== "--bare" && !a.startsWith("--only=")
  );
  if (unknown.length > 0) {
    writeStderr(
      `unknown argument ${unknown[0]}; ` +
        "usage: deno task stress [--quick] [--bare] [--only=ROW|word,...]\n",
    );
    Deno.exit(2);
  }
  const started = performance.now();
  const { rows, misses } = await runStress({
    quick,
    only: onlyArg?.slice("--only=".length).split(","),
    log: (text) => writeStderr(text + "\n"),
  });
  table(stressTable(rows), writeStdout);
  writeStdout(
    `targets: /ping p100 < ${TARGET_PING_P100_MS} ms (from a new connection and on a kept ` +
      `one, every 50 ms), 0 missed PINGs, 0 missing producers, RSS peak within ` +
      `+${mib(TARGET_RSS_GROWTH_BYTES)}, rows 6-7 RSS back within ` +
      `${TARGET_FLAT * 100}%; ${rows.length} attacks, ${misses} MISS, ` +
      `${((performance.now() - started) / 1000).toFixed(0)} s${quick ? " (--quick)" : ""} ` +
      `(Deno ${Deno.version.deno}, daemon runtime flags: ${runtimeFlags.join(" ") || "none"})\n`,
  );
  Deno.exit(misses === 0 ? 0 : 1);
}
