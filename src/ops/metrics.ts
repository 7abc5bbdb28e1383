// The daemon's Prometheus metrics: what they are, and the observer hooks the
// TCP and HTTP sides call. Gauges are read from their sources at scrape time.

import type { HttpObserver } from "../http/api.ts";
import { Counter, Gauge, Histogram, MetricsRegistry } from "./prometheus.ts";
import type { Registry } from "../registry.ts";
import { DENO_PROCESS_SOURCES, type ProcessStats, processStatsReader } from "./process_stats.ts";

export type RemovalReason = "disconnect" | "idle_timeout" | "unregister";

/** What the TCP side reports; every method is a counter bump. */
export interface TcpObserver {
  connectionAccepted(): void;
  /** `result` is `ok` or the error code the command failed with. */
  command(command: string, result: string): void;
  protocolError(code: string): void;
  /** Producer entries (peer × registration) removed, by why. */
  producersRemoved(reason: RemovalReason, count: number): void;
}

export const NOOP_TCP_OBSERVER: TcpObserver = {
  connectionAccepted: () => {},
  command: () => {},
  protocolError: () => {},
  producersRemoved: () => {},
};

/** Commands that label `command`; anything else is counted as `invalid`. */
const KNOWN_COMMANDS: ReadonlySet<string> = new Set(["PING", "IDENTIFY", "REGISTER", "UNREGISTER"]);

export const HTTP_DURATION_BUCKETS = [
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
];

export interface DaemonMetricsSources {
  registry: Registry;
  openConnections: () => number;
  /** Wall-clock milliseconds when the process started: the start time where /proc cannot say. */
  startTimeMs: number;
  /** The standard process figures; a figure undefined at creation is left out of every scrape. */
  process?: () => ProcessStats;
  /** The V8 heap (read once per scrape). */
  heap?: () => { heapUsed: number; heapTotal: number };
}

/** The process_* families, named, typed and worded as the official Prometheus clients do. */
const PROCESS_FAMILIES: readonly {
  name: string;
  help: string;
  type: "counter" | "gauge";
  value: (stats: ProcessStats) => number | undefined;
}[] = [
  {
    name: "process_cpu_seconds_total",
    help: "Total user and system CPU time spent in seconds.",
    type: "counter",
    value: (s) => s.cpuSeconds,
  },
  {
    name: "process_open_fds",
    help: "Number of open file descriptors.",
    type: "gauge",
    value: (s) => s.openFds,
  },
  {
    name: "process_max_fds",
    help: "Maximum number of open file descriptors.",
    type: "gauge",
    value: (s) => s.maxFds,
  },
  {
    name: "process_virtual_memory_bytes",
    help: "Virtual memory size in bytes.",
    type: "gauge",
    value: (s) => s.virtualBytes,
  },
  {
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes.",
    type: "gauge",
    value: (s) => s.residentBytes,
  },
  {
    name: "process_start_time_seconds",
    help: "Start time of the process since unix epoch in seconds.",
    type: "gauge",
    value: (s) => s.startTimeSeconds,
  },
];

export interface DaemonMetrics {
  readonly tcp: TcpObserver;
  readonly http: HttpObserver;
  render(): string;
}

export function createDaemonMetrics(sources: DaemonMetricsSources): DaemonMetrics {
  const { registry } = sources;
  const readProcess = sources.process ??
    processStatsReader({ ...DENO_PROCESS_SOURCES, timeOrigin: sources.startTimeMs });
  const heap = sources.heap ?? (() => Deno.memoryUsage());
  const metrics = new MetricsRegistry();

  addRegistryGauges(metrics, registry, sources.openConnections);
  const newScrape = addProcessGauges(metrics, readProcess, heap);

  const accepted = metrics.add(
    new Counter("nsqlookupd_tcp_connections_accepted_total", "TCP connections accepted."),
  );
  // A series without labels exists from the start (0), as client libraries print it.
  accepted.inc([], 0);
  const commands = metrics.add(
    new Counter(
      "nsqlookupd_tcp_commands_total",
      "TCP commands handled, by command and result (ok or the error code).",
      ["command", "result"],
    ),
  );
  const protocolErrors = metrics.add(
    new Counter(
      "nsqlookupd_tcp_protocol_errors_total",
      "TCP protocol errors sent to clients, by code.",
      ["code"],
    ),
  );
  const removed = metrics.add(
    new Counter(
      "nsqlookupd_producers_removed_total",
      "Producer entries removed, by reason (disconnect, idle_timeout, unregister).",
      ["reason"],
    ),
  );
  for (const reason of ["disconnect", "idle_timeout", "unregister"]) removed.inc([reason], 0);
  const httpRequests = metrics.add(
    new Counter(
      "nsqlookupd_http_requests_total",
      "HTTP requests, by route and status code.",
      ["route", "code"],
    ),
  );
  const httpDuration = metrics.add(
    new Histogram(
      "nsqlookupd_http_request_duration_seconds",
      "HTTP request duration in seconds, by route.",
      ["route"],
      HTTP_DURATION_BUCKETS,
    ),
  );

  return {
    tcp: {
      connectionAccepted: () => accepted.inc(),
      command: (command, result) =>
        commands.inc([KNOWN_COMMANDS.has(command) ? command : "invalid", result]),
      protocolError: (code) => protocolErrors.inc([code]),
      producersRemoved: (reason, count) => removed.inc([reason], count),
    },
    http: {
      request: (route, status, seconds) => {
        httpRequests.inc([route, String(status)]);
        httpDuration.observe([route], seconds);
      },
    },
    render: () => {
      newScrape();
      return metrics.render();
    },
  };
}

/** Gauges read from the registry (and the TCP server) when scraped. */
function addRegistryGauges(
  metrics: MetricsRegistry,
  registry: Registry,
  openConnections: () => number,
): void {
  metrics.add(
    new Gauge(
      "nsqlookupd_tcp_connections",
      "TCP connections currently open.",
      [],
      (set) => set([], openConnections()),
    ),
  );
  metrics.add(
    new Gauge(
      "nsqlookupd_producers_identified",
      "Producers (nsqd peers) that have identified over TCP and are connected.",
      [],
      (set) => set([], registry.stats().clientProducers),
    ),
  );
  metrics.add(
    new Gauge(
      "nsqlookupd_producers_active",
      "Identified producers seen within --inactive-producer-timeout.",
      [],
      (set) => set([], registry.activeProducerCount()),
    ),
  );
  metrics.add(
    new Gauge(
      "nsqlookupd_registrations",
      "Registrations by category (client: the one registration of identified peers).",
      ["category"],
      (set) => {
        const stats = registry.stats();
        set(["client"], stats.clientProducers > 0 ? 1 : 0);
        set(["topic"], stats.topics);
        set(["channel"], stats.channels);
      },
    ),
  );
  metrics.add(
    new Gauge(
      "nsqlookupd_producer_registrations",
      "Producer entries (producer x registration) by category.",
      ["category"],
      (set) => {
        const entries = registry.entryCounts();
        set(["client"], entries.client);
        set(["topic"], entries.topic);
        set(["channel"], entries.channel);
      },
    ),
  );
  metrics.add(
    new Gauge(
      "nsqlookupd_tombstoned_producers",
      "Producer entries currently hidden by a tombstone.",
      [],
      (set) => set([], registry.tombstonedCount()),
    ),
  );
}

/** The process_* families (where readable) and the V8 heap; returns what starts a new scrape. */
function addProcessGauges(
  metrics: MetricsRegistry,
  readProcess: () => ProcessStats,
  heap: () => { heapUsed: number; heapTotal: number },
): () => void {
  // Read once per scrape, however many families use them (see render below).
  let processNow: ProcessStats | undefined;
  let heapNow: { heapUsed: number; heapTotal: number } | undefined;
  const stats = (): ProcessStats => processNow ??= readProcess();
  const heapStats = (): { heapUsed: number; heapTotal: number } => heapNow ??= heap();
  const first = stats();
  for (const family of PROCESS_FAMILIES) {
    if (family.value(first) === undefined) continue;
    const collect = (set: (labels: readonly string[], value: number) => void): void => {
      const value = family.value(stats());
      if (value !== undefined) set([], value);
    };
    metrics.add(
      family.type === "counter"
        ? new Counter(family.name, family.help, [], collect)
        : new Gauge(family.name, family.help, [], collect),
    );
  }
  metrics.add(
    new Gauge(
      "nsqlookupd_heap_used_bytes",
      "V8 heap in use in bytes.",
      [],
      (set) => set([], heapStats().heapUsed),
    ),
  );
  metrics.add(
    new Gauge(
      "nsqlookupd_heap_total_bytes",
      "V8 heap reserved in bytes.",
      [],
      (set) => set([], heapStats().heapTotal),
    ),
  );
  return () => {
    processNow = undefined;
    heapNow = undefined;
  };
}
