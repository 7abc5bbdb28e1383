// What /metrics costs on the /lookup hot path: the same HTTP API over the same
// registry (100 producers of topic `t`), once with the metrics observer wired
// as daemon.ts wires it and once without, measured (a) calling the handler
// directly, no sockets, and (b) over HTTP with keep-alive fetch. Runs
// rotate between the setups, plus a second one without metrics as a control
// (its ratio is the noise floor); medians are compared as ratios, since
// absolute numbers are noise on shared machines. Request logging is
// off (log level warn) in both, so the metrics' share is as large as it gets.
//
//   deno run --allow-net scripts/bench_metrics.ts [--quick]

import { createDaemonMetrics } from "../src/ops/metrics.ts";
import { createHttpApi } from "../src/http/api.ts";
import { type WebHandler as HttpHandler, webHandler } from "../tests/support/web_api.ts";
import { createLogger, writeStdout } from "../src/ops/logger.ts";
import { type PeerInfo, Registry } from "../src/registry.ts";

const quick = Deno.args.includes("--quick");
const PRODUCERS = 100;
const RUNS = quick ? 3 : 9;
const DIRECT_REQUESTS = quick ? 10_000 : 50_000;
const HTTP_REQUESTS = quick ? 2_000 : 10_000;
const HTTP_CONCURRENCY = 8;

function setup(withMetrics: boolean): HttpHandler {
  const registry = new Registry({
    now: Date.now,
    inactiveProducerTimeoutMs: 300_000,
    tombstoneLifetimeMs: 45_000,
  });
  for (let i = 0; i < PRODUCERS; i++) {
    const id = `10.0.${i >> 8}.${i & 255}:40000`;
    const peer: PeerInfo = {
      id,
      remoteAddress: id,
      hostname: `nsqd-${i}`,
      broadcastAddress: `nsqd-${i}.example`,
      tcpPort: 4150,
      httpPort: 4151,
      version: "1.3.0",
      topologyZone: "",
      topologyRegion: "",
      lastUpdate: Date.now(),
    };
    registry.identify(peer);
    registry.registerChannel(peer, "t", "c");
    registry.registerTopic(peer, "t");
  }
  const logger = createLogger({ level: "warn", prefix: "", sink: () => {} });
  if (!withMetrics) return webHandler(createHttpApi({ registry, logger }));
  const metrics = createDaemonMetrics({
    registry,
    openConnections: () => 0,
    startTimeMs: Date.now(),
  });
  return webHandler(
    createHttpApi({ registry, logger, observer: metrics.http, metrics: metrics.render }),
  );
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Milliseconds for `n` direct handler calls (the Response is built, not read).
 * Yields to the event loop every 1000 calls, as a server does: without it
 * Deno frees the Responses' bodies late and memory and time grow without bound.
 */
async function direct(handler: HttpHandler, n: number): Promise<number> {
  const request = new Request("http://127.0.0.1:4161/lookup?topic=t");
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    const response = await handler(request);
    if (response.status !== 200) throw new Error(`status ${response.status}`);
    if (i % 1000 === 999) await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return performance.now() - started;
}

/** Milliseconds for `n` keep-alive fetches of /lookup, `HTTP_CONCURRENCY` at a time. */
async function overHttp(client: Deno.HttpClient, port: number, n: number): Promise<number> {
  const url = `http://127.0.0.1:${port}/lookup?topic=t`;
  let left = n;
  const worker = async (): Promise<void> => {
    while (left > 0) {
      left--;
      const response = await fetch(url, { client });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`status ${response.status}`);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: HTTP_CONCURRENCY }, worker));
  return performance.now() - started;
}

type Variant = "without" | "control" | "with";
const VARIANTS: readonly Variant[] = ["without", "control", "with"];

/**
 * Runs the three setups in rotating order `RUNS` times after a warm-up and
 * returns each one's median time. `control` is a second setup without
 * metrics: its ratio to `without` is the noise floor of the measurement.
 */
async function compare(
  run: (variant: Variant) => Promise<number>,
): Promise<Record<Variant, number>> {
  for (const variant of VARIANTS) await run(variant);
  const times: Record<Variant, number[]> = { without: [], control: [], with: [] };
  for (let i = 0; i < RUNS; i++) {
    for (let j = 0; j < VARIANTS.length; j++) {
      const variant = VARIANTS[(i + j) % VARIANTS.length];
      times[variant].push(await run(variant));
    }
  }
  return {
    without: median(times.without),
    control: median(times.control),
    with: median(times.with),
  };
}

function line(label: string, n: number, result: Record<Variant, number>): string {
  const us = (ms: number): string => ((ms * 1000) / n).toFixed(2);
  const ratio = (ms: number): string => (result.without / ms).toFixed(3);
  return `${label}: ${us(result.without)} µs/req without metrics, ${us(result.with)} with; ` +
    `throughput with/without = ${ratio(result.with)}, ` +
    `control (no metrics either)/without = ${ratio(result.control)}\n`;
}

const handlers: Record<Variant, HttpHandler> = {
  without: setup(false),
  control: setup(false),
  with: setup(true),
};
writeStdout(
  `/lookup?topic=t, ${PRODUCERS} producers, request logging off, median of ${RUNS} rotating runs\n`,
);

const directResult = await compare((variant) => direct(handlers[variant], DIRECT_REQUESTS));
writeStdout(line(`direct handler (${DIRECT_REQUESTS} calls/run)`, DIRECT_REQUESTS, directResult));

// The observer on its own: what every request pays for /metrics, in ns.
const observer = createDaemonMetrics({
  registry: new Registry({ now: Date.now, inactiveProducerTimeoutMs: 1, tombstoneLifetimeMs: 1 }),
  openConnections: () => 0,
  startTimeMs: Date.now(),
}).http;
const OBSERVATIONS = 1_000_000;
const observerNs = median(
  Array.from({ length: RUNS }, () => {
    const started = performance.now();
    for (let i = 0; i < OBSERVATIONS; i++) observer.request("/lookup", 200, 0.00012);
    return ((performance.now() - started) * 1e6) / OBSERVATIONS;
  }),
);
writeStdout(
  `observer alone: ${observerNs.toFixed(0)} ns/request = ${
    ((observerNs / 1000 / ((directResult.without * 1000) / DIRECT_REQUESTS)) * 100).toFixed(1)
  }% of a direct handler call\n`,
);

const serve = (handler: HttpHandler): Deno.HttpServer<Deno.NetAddr> =>
  Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
const servers: Record<Variant, Deno.HttpServer<Deno.NetAddr>> = {
  without: serve(handlers.without),
  control: serve(handlers.control),
  with: serve(handlers.with),
};
const client = Deno.createHttpClient({});
try {
  const httpResult = await compare((variant) =>
    overHttp(client, servers[variant].addr.port, HTTP_REQUESTS)
  );
  writeStdout(
    line(
      `HTTP keep-alive fetch (${HTTP_REQUESTS} requests/run, ${HTTP_CONCURRENCY} concurrent)`,
      HTTP_REQUESTS,
      httpResult,
    ),
  );
} finally {
  client.close();
  for (const server of Object.values(servers)) await server.shutdown();
}
