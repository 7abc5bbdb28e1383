// `deno task load [--connections N] [--producers P] [--seconds S]`: holds N
// concurrent TCP connections to a daemon started as a separate process (P of
// them identified producers registered for topics and pinging, the rest idle
// after their magic and a PING), measures /ping and /lookup latency while they
// are held, closes them all and checks the daemon forgot every one.
// Exits 1 if p99 latency is 50 ms or more, or if anything was not cleaned up.
//
// Each connection is a descriptor in this process and one in the daemon:
// the task raises the limit with bash's `ulimit -n` before starting Deno (Deno
// cannot raise RLIMIT_NOFILE itself beyond the hard limit). Connections come
// from 16 loopback addresses (127.0.2.1-16), as from 16 hosts: the daemon lets
// one host hold at most an eighth of its connection cap.

import {
  concat,
  identifyCommand,
  intArgs,
  type Memory,
  memory,
  mib,
  ms,
  percentile,
  scrape,
  sleep,
  table,
} from "../tests/support/harness.ts";
import { spawnDaemon } from "../tests/support/daemon_process.ts";
import { writeStderr, writeStdout } from "../src/ops/logger.ts";
import { NetConn } from "../tests/support/net_conn.ts";

const encoder = new TextEncoder();
export const LATENCY_LIMIT_MS = 50;
const TOPICS = 50;

export interface LoadOptions {
  connections: number;
  producers: number;
  /** How long the load is held while latencies are sampled. */
  seconds: number;
  /** Progress lines on stderr. */
  verbose?: boolean;
}

export interface LoadResult {
  connected: number;
  identified: number;
  openSeconds: number;
  ping: number[];
  lookup: number[];
  lookupProducers: number;
  producerPings: number;
  memory: { start: Memory; loaded: Memory; end: Memory };
  /** What /metrics and /nodes said once every client had closed. */
  after: { connections: number; identified: number; nodes: number; lookupProducers: number };
  exitCode: number;
  failures: string[];
}

/** Hosts the connections come from, round-robin. */
const HOSTS = Array.from({ length: 16 }, (_, i) => `127.0.2.${i + 1}`);

async function connectWithRetry(port: number, index: number): Promise<NetConn> {
  for (let attempt = 0;; attempt++) {
    try {
      return await NetConn.open(HOSTS[index % HOSTS.length], port);
    } catch (error) {
      if (attempt >= 20) throw error;
      await sleep(20 * (attempt + 1));
    }
  }
}

/** One client: magic, then either IDENTIFY + REGISTER (a producer) or a PING. */
async function openClient(port: number, index: number, producer: boolean): Promise<NetConn> {
  const conn = await connectWithRetry(port, index);
  if (producer) {
    const body = JSON.stringify({
      broadcast_address: `load-${index}`,
      hostname: `load-${index}`,
      tcp_port: 4150,
      http_port: 4151,
      version: "1.3.0",
    });
    await conn.write(
      concat(
        encoder.encode("  V1"),
        identifyCommand(body),
        encoder.encode(`REGISTER load_${index % TOPICS} c${index % 3}\n`),
      ),
    );
    const identified = await conn.readFrame();
    const registered = await conn.readFrame();
    if (identified === null || !identified.startsWith("{") || registered !== "OK") {
      throw new Error(`producer ${index}: ${identified} / ${registered}`);
    }
  } else {
    await conn.write(encoder.encode("  V1PING\n"));
    const reply = await conn.readFrame();
    if (reply !== "OK") throw new Error(`client ${index}: ${reply}`);
  }
  return conn;
}

async function timedGet(url: string, path: string): Promise<number> {
  const started = performance.now();
  const res = await fetch(url + path);
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
  return performance.now() - started;
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const log = (text: string): void => {
    if (options.verbose) writeStderr(text + "\n");
  };
  const failures: string[] = [];
  await using daemon = await spawnDaemon(["--log-level=warn"], { ports: "free" });
  const { url } = daemon;
  const start = await memory(url);

  // Open in batches: a burst of 10,000 SYNs would overflow the listen backlog.
  log(`opening ${options.connections} connections (${options.producers} producers)...`);
  const conns: NetConn[] = [];
  const opened = performance.now();
  const BATCH = 250;
  try {
    for (let i = 0; i < options.connections; i += BATCH) {
      const batch = [];
      for (let j = i; j < Math.min(options.connections, i + BATCH); j++) {
        batch.push(openClient(daemon.tcpPort, j, j < options.producers));
      }
      conns.push(...await Promise.all(batch));
      if ((i / BATCH) % 8 === 0) log(`  ${conns.length} open`);
    }
  } catch (error) {
    for (const conn of conns) conn.close();
    await Promise.all(conns.map((conn) => conn.closed));
    throw error;
  }
  const openSeconds = (performance.now() - opened) / 1000;
  const loaded = await scrape(url);
  const connected = loaded.get("nsqlookupd_tcp_connections") ?? NaN;
  const identified = loaded.get("nsqlookupd_producers_identified") ?? NaN;
  if (connected !== options.connections) {
    failures.push(`daemon holds ${connected} connections, expected ${options.connections}`);
  }
  if (identified !== options.producers) {
    failures.push(`daemon has ${identified} producers, expected ${options.producers}`);
  }

  // Hold: producers ping (as nsqd does, only faster), a sampler measures HTTP.
  log(`holding for ${options.seconds} s, sampling /ping and /lookup...`);
  const ping: number[] = [];
  const lookup: number[] = [];
  let holding = true;
  let producerPings = 0;
  const producers = conns.slice(0, options.producers);
  const pinger = (async () => {
    const spread = Math.max(1, Math.ceil(producers.length / 20));
    while (holding) {
      // Each producer pings about once a second, 1/20 of them every 50 ms.
      for (let i = 0; i < producers.length && holding; i += spread) {
        const group = producers.slice(i, i + spread);
        await Promise.all(group.map(async (conn) => {
          await conn.write(encoder.encode("PING\n"));
          if ((await conn.readFrame()) !== "OK") throw new Error("PING not OK");
          producerPings++;
        }));
        await sleep(50);
      }
    }
  })();
  const lookupPath = `/lookup?topic=load_0`;
  const sampler = (async () => {
    const until = performance.now() + options.seconds * 1000;
    while (performance.now() < until) {
      ping.push(await timedGet(url, "/ping"));
      lookup.push(await timedGet(url, lookupPath));
      await sleep(5);
    }
  })();
  await sampler;
  holding = false;
  await pinger;
  const lookupBody = await (await fetch(url + lookupPath)).json() as { producers: unknown[] };
  const loadedMemory = await memory(url);

  log("closing every connection...");
  for (const conn of conns) conn.close();
  await Promise.all(conns.map((conn) => conn.closed));
  // Cleanup is asynchronous on the daemon's side: wait for it, bounded.
  let after = { connections: NaN, identified: NaN, nodes: NaN, lookupProducers: NaN };
  const deadline = performance.now() + 15_000;
  while (performance.now() < deadline) {
    const m = await scrape(url);
    const nodes = await (await fetch(`${url}/nodes`)).json() as { producers: unknown[] };
    const again = await (await fetch(url + lookupPath)).json() as { producers: unknown[] };
    after = {
      connections: m.get("nsqlookupd_tcp_connections") ?? NaN,
      identified: m.get("nsqlookupd_producers_identified") ?? NaN,
      nodes: nodes.producers.length,
      lookupProducers: again.producers.length,
    };
    if (after.connections === 0 && after.identified === 0 && after.nodes === 0) break;
    await sleep(100);
  }
  if (after.connections !== 0 || after.identified !== 0 || after.nodes !== 0) {
    failures.push(`not cleaned up: ${JSON.stringify(after)}`);
  }
  if (after.lookupProducers !== 0) failures.push(`/lookup still lists ${after.lookupProducers}`);
  await sleep(1000);
  const end = await memory(url);

  for (const [name, values] of [["/ping", ping], ["/lookup", lookup]] as const) {
    const p99 = percentile(values, 99);
    if (!(p99 < LATENCY_LIMIT_MS)) {
      failures.push(`${name} p99 ${ms(p99)} >= ${LATENCY_LIMIT_MS} ms`);
    }
  }
  const noise = daemon.lines.filter((l) => /Uncaught|panicked|internal error|ERROR:/.test(l));
  if (noise.length > 0) failures.push(`daemon errors:\n${noise.slice(0, 5).join("\n")}`);
  const { code: exitCode } = await daemon.stop();
  if (exitCode !== 0) failures.push(`daemon exited ${exitCode} after SIGTERM`);
  return {
    connected,
    identified,
    openSeconds,
    ping,
    lookup,
    lookupProducers: lookupBody.producers.length,
    producerPings,
    memory: { start, loaded: loadedMemory, end },
    after,
    exitCode,
    failures,
  };
}

export function loadTable(options: LoadOptions, r: LoadResult): string[][] {
  const row = (name: string, values: number[]): string[] => [
    name,
    `${values.length} samples`,
    `p50 ${ms(percentile(values, 50))}`,
    `p99 ${ms(percentile(values, 99))}`,
    `max ${ms(Math.max(...values))}`,
  ];
  return [
    [
      "connections held",
      `${r.connected} (${r.identified} producers)`,
      `opened in ${r.openSeconds.toFixed(1)} s`,
    ],
    ["load held", `${options.seconds} s`, `${r.producerPings} producer PINGs answered`],
    row("/ping", r.ping),
    row(`/lookup (${r.lookupProducers} producers)`, r.lookup),
    [
      "daemon RSS",
      `start ${mib(r.memory.start.rss)}`,
      `loaded ${mib(r.memory.loaded.rss)}`,
      `after ${mib(r.memory.end.rss)}`,
    ],
    [
      "daemon heap",
      `start ${mib(r.memory.start.heapUsed)}`,
      `loaded ${mib(r.memory.loaded.heapUsed)}`,
      `after ${mib(r.memory.end.heapUsed)}`,
    ],
    [
      "after close",
      `connections ${r.after.connections}`,
      `producers ${r.after.identified}`,
      `/nodes ${r.after.nodes}`,
    ],
    ["result", r.failures.length === 0 ? "PASS" : "FAIL"],
  ];
}

if (import.meta.main) {
  const options = intArgs(Deno.args, { connections: 10_000, producers: 2_000, seconds: 20 });
  const result = await runLoad({ ...options, verbose: true });
  table(loadTable(options, result), writeStdout);
  for (const failure of result.failures) writeStderr(`FAIL: ${failure}\n`);
  Deno.exit(result.failures.length === 0 ? 0 : 1);
}
