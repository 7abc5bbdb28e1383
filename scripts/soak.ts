// `deno task soak [--cycles N]`: no leak in the registry. N cycles (default
// 300,000), each creating, registering, tombstoning, unregistering and
// deleting names no other cycle uses, with a new peer every time and ten
// long-lived peers joining and leaving along the way. Then nothing is left
// registered, and the heap and RSS after a full GC must be within 10% of what
// they were after a warm-up. Prints the figures with PASS or MISS; exits 1 on
// a MISS.
//
// The cycles run in a child process of their own (so that its RSS is the
// registry's and the runtime's only), with the V8 flags of `deno task start`
// plus --expose-gc. RSS is read after the GC and after glibc's malloc_trim()
// (through FFI, where there is glibc): glibc keeps memory V8 frees off its
// heap (GC side tables) and RSS would show the allocator's high-water mark,
// not what is still in use.

import { COMPACT_SLACK, type PeerInfo, Registry, registryInternals } from "../src/registry.ts";
import { assertConsistent } from "../src/registry_testing.ts";
import { writeStderr, writeStdout } from "../src/ops/logger.ts";
import { intArgs, mib, table } from "../tests/support/harness.ts";
import { startTaskV8Flags } from "./start_task.ts";

export const GROWTH_LIMIT = 1.1;
const WARM_UP_CYCLES = 10_000;
const RESIDENT_PEERS = 10;

type Gc = (options?: { type: "major"; execution: "sync"; flavor: "last-resort" }) => void;

interface Memory {
  heap: number;
  rss: number;
}

/** The clock the registry sees; each cycle moves it. */
class Clock {
  ms = 1_700_000_000_000;
  readonly now = (): number => this.ms;
}

function peerInfo(n: number, clock: Clock): PeerInfo {
  const id = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}:${4000 + n % 50}`;
  return {
    id,
    remoteAddress: id,
    hostname: `host-${n}`,
    broadcastAddress: `nsqd-${n % 10}`,
    tcpPort: 4150,
    httpPort: 4151,
    version: "1.3.0",
    topologyZone: "",
    topologyRegion: "",
    lastUpdate: clock.now(),
  };
}

/** One cycle's worth of every kind of change, with names no other cycle uses. */
function cycle(registry: Registry, clock: Clock, i: number, resident: PeerInfo[]): void {
  const p = peerInfo(i, clock);
  const topic = `soak-${i}`;
  registry.identify(p);
  registry.registerChannel(p, topic, `c-${i}`);
  registry.registerTopic(p, topic);
  registry.registerTopic(p, `${topic}#ephemeral`);
  registry.registerChannel(p, "shared", `c-${i}#ephemeral`);
  const other = resident[i % resident.length];
  registry.registerChannel(other, topic, "archive");
  registry.registerTopic(other, topic);
  registry.createTopic(`admin-${i}`);
  registry.createChannel(`admin-${i}`, "c");
  registry.tombstone(topic, `${p.broadcastAddress}:4151`);
  clock.ms += i % 7 === 0 ? 50_000 : 10;
  registry.touch(p);
  if (i % 500 === 0) {
    registry.lookup(topic);
    registry.nodesAnswer();
    registry.debug();
    registry.tombstonedCount();
  }
  if (i % 2 === 0) registry.unregisterChannel(p.id, topic, `c-${i}`);
  if (i % 3 === 0) registry.unregisterTopic(other.id, topic);
  registry.deleteTopic(`admin-${i}`);
  registry.deleteTopic(topic);
  registry.removePeer(p.id);
}

export interface SoakResult {
  cycles: number;
  start: Memory;
  end: Memory;
  /** What the registry still holds once the long-lived peers are gone too (all 0 when clean). */
  left: { topics: number; peers: number; tombstoned: number; entries: number };
  /** The long-lived peers' membership arrays at the end (bounded by compaction). */
  residentEntries: number;
}

/** glibc's malloc_trim(0), where the process has glibc (and --allow-ffi); else nothing. */
function mallocTrim(): void {
  try {
    const libc = Deno.dlopen("libc.so.6", {
      malloc_trim: { parameters: ["usize"], result: "i32" },
    });
    libc.symbols.malloc_trim(0n);
    libc.close();
  } catch {
    // not glibc, or no FFI permission: RSS then includes what the allocator keeps
  }
}

function settled(gc: Gc): Memory {
  // "last-resort" collects until nothing more frees and hands the freed pages back to
  // the OS; a plain gc() keeps them committed, and RSS would not show what was freed.
  gc({ type: "major", execution: "sync", flavor: "last-resort" });
  mallocTrim();
  const { heapUsed, rss } = Deno.memoryUsage();
  return { heap: heapUsed, rss };
}

export function soak(cycles: number, gc: Gc): SoakResult {
  const clock = new Clock();
  const registry = new Registry({
    now: clock.now,
    inactiveProducerTimeoutMs: 300_000,
    tombstoneLifetimeMs: 45_000,
  });
  const resident = Array.from(
    { length: RESIDENT_PEERS },
    (_, k) => peerInfo(1_000_000 + k, clock),
  );
  for (const p of resident) registry.identify(p);
  for (let i = 0; i < WARM_UP_CYCLES; i++) cycle(registry, clock, i, resident);
  const start = settled(gc);
  for (let i = WARM_UP_CYCLES; i < WARM_UP_CYCLES + cycles; i++) {
    cycle(registry, clock, i, resident);
  }
  const end = settled(gc);
  assertConsistent(registry);
  const internals = registryInternals(registry);
  let residentEntries = 0;
  for (const p of resident) residentEntries += internals.peers.get(p.id)?.memberships.length ?? 0;
  for (const p of resident) registry.removePeer(p.id);
  assertConsistent(registry);
  const counts = registry.entryCounts();
  return {
    cycles,
    start,
    end,
    left: {
      topics: internals.topics.size,
      peers: internals.peers.size,
      tombstoned: internals.tombstoned.size,
      entries: counts.client + counts.topic + counts.channel,
    },
    residentEntries,
  };
}

/** Rows of figures with PASS/MISS, and whether everything passed. */
export function soakReport(result: SoakResult): { rows: string[][]; ok: boolean } {
  const heapOk = result.end.heap <= result.start.heap * GROWTH_LIMIT;
  const rssOk = result.end.rss <= result.start.rss * GROWTH_LIMIT;
  const left = result.left;
  const emptyOk = left.topics + left.peers + left.tombstoned + left.entries === 0;
  // Each is left in `client` only: at most 2 x 1 live + the slack before compaction.
  const residentBound = RESIDENT_PEERS * (2 + COMPACT_SLACK);
  const residentOk = result.residentEntries <= residentBound;
  const ratio = (a: number, b: number): string => `${(a / b).toFixed(3)}x`;
  const verdict = (ok: boolean): string => ok ? "PASS" : "MISS";
  const rows = [
    ["figure", "after warm-up", `after ${result.cycles} cycles`, "target", ""],
    [
      "V8 heap after GC",
      mib(result.start.heap),
      `${mib(result.end.heap)} (${ratio(result.end.heap, result.start.heap)})`,
      "<= 1.1x",
      verdict(heapOk),
    ],
    [
      "RSS after GC",
      mib(result.start.rss),
      `${mib(result.end.rss)} (${ratio(result.end.rss, result.start.rss)})`,
      "<= 1.1x",
      verdict(rssOk),
    ],
    [
      "left registered (topics, peers, tombstoned, entries)",
      "",
      `${left.topics}, ${left.peers}, ${left.tombstoned}, ${left.entries}`,
      "0, 0, 0, 0",
      verdict(emptyOk),
    ],
    [
      `long-lived peers' membership entries (${RESIDENT_PEERS} peers)`,
      "",
      String(result.residentEntries),
      `<= ${residentBound}`,
      verdict(residentOk),
    ],
  ];
  return { rows, ok: heapOk && rssOk && emptyOk && residentOk };
}

/** The command that runs the cycles: the start task's V8 flags, --expose-gc, FFI for malloc_trim. */
export async function soakCommand(cycles: number): Promise<Deno.Command> {
  const flags = await startTaskV8Flags();
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-ffi",
      `--v8-flags=--expose-gc${flags === undefined ? "" : `,${flags}`}`,
      decodeURIComponent(new URL(import.meta.url).pathname),
      "--child",
      String(cycles),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

function runChild(cycles: number): void {
  const gc = (globalThis as { gc?: Gc }).gc;
  if (gc === undefined) {
    writeStderr("soak: the cycles need --v8-flags=--expose-gc\n");
    Deno.exit(2);
  }
  const started = performance.now();
  const { rows, ok } = soakReport(soak(cycles, gc));
  table(rows, writeStdout);
  writeStdout(`${ok ? "PASS" : "MISS"} (${((performance.now() - started) / 1000).toFixed(1)} s)\n`);
  if (!ok) Deno.exit(1);
}

if (import.meta.main) {
  if (Deno.args[0] === "--child") {
    runChild(Number(Deno.args[1]));
  } else {
    const { cycles } = intArgs(Deno.args, { cycles: 300_000 });
    const out = await (await soakCommand(cycles)).output();
    writeStdout(new TextDecoder().decode(out.stdout));
    writeStderr(new TextDecoder().decode(out.stderr));
    Deno.exit(out.code);
  }
}
