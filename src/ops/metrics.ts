// The daemon's Prometheus metrics: what they are, and the observer hooks the
// TCP and HTTP sides call. Gauges are read from their sources at scrape time.

import type { HttpObserver } from "../http/api.ts";
import type { AdmissionReason } from "../http/admission.ts";
import type { EvictionReason, HttpServerObserver } from "../http/server.ts";
import type { RefusalReason, TcpObserver } from "../tcp/observer.ts";
import { Counter, Gauge, Histogram, MetricsRegistry } from "./prometheus.ts";
import type { Registry } from "../registry.ts";
import { DENO_PROCESS_SOURCES, type ProcessStats, processStatsReader } from "./process_stats.ts";

/** Commands that label `command`; anything else is counted as `invalid`. */
const KNOWN_COMMANDS: ReadonlySet<string> = new Set(["PING", "IDENTIFY", "REGISTER", "UNREGISTER"]);

/**
 * How late the event loop ran its lag timer (ops/event_loop_lag.ts): at or
 * under 1 ms is on time, 20 ms is the longest the daemon means to hold the
 * thread, 1 s is nsqd's PING deadline.
 */
export const EVENT_LOOP_LAG_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

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

/** What the TCP server holds right now, read at scrape time. */
export interface TcpLoad {
  /** Reply bytes waiting on peers that do not read (bounded process-wide). */
  pendingReplyBytes: number;
  /** Connections whose reply write is waiting on the peer. */
  blockedWrites: number;
}

export interface DaemonMetricsSources {
  registry: Registry;
  openConnections: () => number;
  /** Pending replies and blocked writes; the gauges are left out without it. */
  tcpLoad?: () => TcpLoad;
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
  /** For the HTTP (and HTTPS) servers: refusals, evictions, writes in progress. */
  readonly httpServer: HttpServerObserver;
  /** One tick of the event-loop lag timer, in seconds late. */
  eventLoopLag(seconds: number): void;
  render(): string;
}

export function createDaemonMetrics(sources: DaemonMetricsSources): DaemonMetrics {
  const { registry } = sources;
  const readProcess = sources.process ??
    processStatsReader({ ...DENO_PROCESS_SOURCES, timeOrigin: sources.startTimeMs });
  const heap = sources.heap ?? (() => Deno.memoryUsage());
  const metrics = new MetricsRegistry();

  addRegistryGauges(metrics, registry, sources.openConnections);
  if (sources.tcpLoad !== undefined) addTcpLoadGauges(metrics, sources.tcpLoad);
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

  const connections = addConnectionCounters(metrics);
  const eventLoopLag = addEventLoopLag(metrics);

  return {
    tcp: {
      connectionAccepted: () => accepted.inc(),
      command: (command, result) =>
        commands.inc([KNOWN_COMMANDS.has(command) ? command : "invalid", result]),
      protocolError: (code) => protocolErrors.inc([code]),
      producersRemoved: (reason, count) => removed.inc([reason], count),
      connectionRefused: connections.tcpRefused,
    },
    http: {
      request: (route, status, seconds) => {
        httpRequests.inc([route, String(status)]);
        httpDuration.observe([route], seconds);
      },
    },
    httpServer: connections.httpServer,
    eventLoopLag,
    render: () => {
      newScrape();
      return metrics.render();
    },
  };
}

/** The event-loop lag histogram; returns what observes one tick. */
function addEventLoopLag(metrics: MetricsRegistry): (seconds: number) => void {
  const lag = metrics.add(
    new Histogram(
      "nsqlookupd_event_loop_lag_seconds",
      "How late a timer asked for every 10 ms ran: each stall of the one JavaScript thread " +
        "(work, GC, the process not scheduled), observed as it happened.",
      [],
      EVENT_LOOP_LAG_BUCKETS,
    ),
  );
  return (seconds) => lag.observe([], seconds);
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

/** What the TCP server holds for peers that do not read. */
function addTcpLoadGauges(metrics: MetricsRegistry, load: () => TcpLoad): void {
  metrics.add(
    new Gauge(
      "nsqlookupd_tcp_pending_reply_bytes",
      "Reply bytes held for TCP peers that have not read them yet.",
      [],
      (set) => set([], load().pendingReplyBytes),
    ),
  );
  metrics.add(
    new Gauge(
      "nsqlookupd_tcp_blocked_writes",
      "TCP connections whose replies wait on the peer to read.",
      [],
      (set) => set([], load().blockedWrites),
    ),
  );
}

const TCP_REFUSALS: readonly Exclude<RefusalReason, "evicted">[] = ["admit", "limit", "per_remote"];
/** The HTTP server's reasons, as label values. */
const HTTP_REASON_LABELS: Record<EvictionReason, string> = {
  "connection limit": "limit",
  "per-remote share": "per_remote",
  memory: "memory",
};
const HTTP_REFUSALS: readonly AdmissionReason[] = ["connection limit", "per-remote share"];

/** Connections turned away or closed to make room, on both ports; HTTP writes in progress. */
function addConnectionCounters(metrics: MetricsRegistry): {
  tcpRefused: (reason: RefusalReason) => void;
  httpServer: HttpServerObserver;
} {
  const tcpRefused = metrics.add(
    new Counter(
      "nsqlookupd_tcp_connections_refused_total",
      "TCP connections closed on accept, by reason (admit: access control; limit: the " +
        "connection cap with nothing to evict; per_remote: the host's share).",
      ["reason"],
    ),
  );
  for (const reason of TCP_REFUSALS) tcpRefused.inc([reason], 0);
  const tcpEvicted = metrics.add(
    new Counter(
      "nsqlookupd_tcp_connections_evicted_total",
      "TCP connections that never identified, closed to admit a newcomer.",
    ),
  );
  tcpEvicted.inc([], 0);
  const httpRefused = metrics.add(
    new Counter(
      "nsqlookupd_http_connections_refused_total",
      "HTTP connections closed on accept, by reason (limit, per_remote).",
      ["reason"],
    ),
  );
  for (const reason of HTTP_REFUSALS) httpRefused.inc([HTTP_REASON_LABELS[reason]], 0);
  const httpEvicted = metrics.add(
    new Counter(
      "nsqlookupd_http_connections_evicted_total",
      "HTTP connections closed to make room, by reason (limit, per_remote, memory: the " +
        "process-wide bound on pending answers).",
      ["reason"],
    ),
  );
  for (const label of Object.values(HTTP_REASON_LABELS)) httpEvicted.inc([label], 0);
  let writing = 0;
  metrics.add(
    new Gauge(
      "nsqlookupd_http_writes_in_progress",
      "HTTP answers being handed to the kernel (a high figure: clients that do not read).",
      [],
      (set) => set([], writing),
    ),
  );
  return {
    tcpRefused: (reason) => reason === "evicted" ? tcpEvicted.inc() : tcpRefused.inc([reason]),
    httpServer: {
      refused: (_remote, reason) => httpRefused.inc([HTTP_REASON_LABELS[reason]]),
      evicted: (_remote, reason) => httpEvicted.inc([HTTP_REASON_LABELS[reason]]),
      writeStarted: () => void writing++,
      writeEnded: () => void writing--,
    },
  };
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
