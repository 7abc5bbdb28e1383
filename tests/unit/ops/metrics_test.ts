// GET /metrics (Prometheus text exposition 0.0.4): every scrape is read by
// the npm parser `parse-prometheus-text-format` and by a strict validator of
// our own, then the values are followed through TCP and HTTP activity.

import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import {
  createDaemonMetrics,
  type DaemonMetrics,
  EVENT_LOOP_LAG_BUCKETS,
  HTTP_DURATION_BUCKETS,
} from "../../../src/ops/metrics.ts";
import { PROMETHEUS_CONTENT_TYPE } from "../../../src/ops/prometheus.ts";
import type { ProcessStats } from "../../../src/ops/process_stats.ts";
import { type PeerInfo, Registry } from "../../../src/registry.ts";
import { spawnDaemon } from "../../support/daemon_process.ts";
import {
  eventually,
  ManualClock,
  peerBody,
  startDaemon,
  type TcpClient,
  type TestDaemon,
  testPeer,
} from "../../support/helpers.ts";

// ---- a strict exposition validator ----

type MetricType = "counter" | "gauge" | "histogram";
type Labels = Readonly<Record<string, string>>;

interface Sample {
  readonly name: string;
  readonly labels: Labels;
  readonly value: number;
}

interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly samples: Sample[];
}

/** Ours, or the standard process_* family every Prometheus client exports. */
const METRIC_NAME = /^(?:nsqlookupd|process)_[a-z_]+$/;
const LABEL_NAME = /[a-zA-Z_][a-zA-Z0-9_]*/y;
const SAMPLE_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
/** Go's strconv.ParseFloat forms that Prometheus accepts as a sample value. */
const FLOAT = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$/;
const TYPES: ReadonlySet<string> = new Set(["counter", "gauge", "histogram"]);

function parseFloatText(text: string, line: string): number {
  assert.match(text, FLOAT, `value ${JSON.stringify(text)} in: ${line}`);
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return text === "NaN" ? NaN : Number(text);
}

/** HELP text: only `\\` and `\n` are escapes. */
function unescapeHelp(text: string, line: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== "\\") {
      out += c;
      continue;
    }
    const next = text[++i];
    if (next === "\\") out += "\\";
    else if (next === "n") out += "\n";
    else assert.fail(`invalid escape \\${next ?? ""} in HELP: ${line}`);
  }
  return out;
}

/** `name{a="x",b="y"} value`: no empty braces, no trailing comma, no timestamp. */
function parseSampleLine(line: string): Sample {
  const nameMatch = SAMPLE_NAME.exec(line);
  assert.ok(nameMatch, `no metric name: ${line}`);
  const name = nameMatch[0];
  let i = name.length;
  const labels: Record<string, string> = {};
  if (line[i] === "{") {
    i++;
    while (true) {
      LABEL_NAME.lastIndex = i;
      const labelMatch = LABEL_NAME.exec(line);
      assert.ok(labelMatch, `bad label name at ${i}: ${line}`);
      const label = labelMatch[0];
      assert.ok(!label.startsWith("__"), `reserved label name ${label}: ${line}`);
      assert.ok(!(label in labels), `duplicate label ${label}: ${line}`);
      i += label.length;
      assert.equal(line.slice(i, i + 2), '="', `expected =" after ${label}: ${line}`);
      i += 2;
      let value = "";
      while (true) {
        assert.ok(i < line.length, `unterminated label value: ${line}`);
        const c = line[i++];
        if (c === '"') break;
        if (c !== "\\") {
          value += c;
          continue;
        }
        const next = line[i++];
        if (next === "\\") value += "\\";
        else if (next === '"') value += '"';
        else if (next === "n") value += "\n";
        else assert.fail(`invalid escape \\${next ?? ""} in label value: ${line}`);
      }
      labels[label] = value;
      const separator = line[i++];
      if (separator === "}") break;
      assert.equal(separator, ",", `expected , or } after a label value: ${line}`);
    }
  }
  assert.equal(line[i], " ", `expected one space before the value: ${line}`);
  const valueText = line.slice(i + 1);
  assert.ok(!valueText.includes(" "), `extra field (timestamp?) in: ${line}`);
  return { name, labels, value: parseFloatText(valueText, line) };
}

function labelKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
}

function withoutLe(labels: Labels): Labels {
  const { le: _le, ...rest } = labels;
  return rest;
}

function checkHistogram(family: Family): void {
  const series = new Map<
    string,
    { buckets: { le: number; count: number }[]; sum?: number; count?: number }
  >();
  for (const sample of family.samples) {
    const key = labelKey(withoutLe(sample.labels));
    let entry = series.get(key);
    if (entry === undefined) series.set(key, entry = { buckets: [] });
    const where = `${sample.name}${key}`;
    if (sample.name === `${family.name}_bucket`) {
      assert.ok("le" in sample.labels, `bucket without le: ${where}`);
      assert.equal(entry.sum, undefined, `bucket after _sum: ${where}`);
      const le = parseFloatText(sample.labels.le, where);
      assert.ok(!Number.isNaN(le), `le is NaN: ${where}`);
      assert.ok(Number.isInteger(sample.value) && sample.value >= 0, `bucket count: ${where}`);
      const previous = entry.buckets.at(-1);
      if (previous !== undefined) {
        assert.ok(le > previous.le, `le not ascending: ${where}`);
        assert.ok(sample.value >= previous.count, `bucket counts not cumulative: ${where}`);
      }
      entry.buckets.push({ le, count: sample.value });
    } else if (sample.name === `${family.name}_sum`) {
      assert.ok(!("le" in sample.labels), `le on _sum: ${where}`);
      assert.equal(entry.sum, undefined, `second _sum: ${where}`);
      entry.sum = sample.value;
    } else if (sample.name === `${family.name}_count`) {
      assert.ok(!("le" in sample.labels), `le on _count: ${where}`);
      assert.notEqual(entry.sum, undefined, `_count before _sum: ${where}`);
      entry.count = sample.value;
    } else {
      assert.fail(`${sample.name} in histogram ${family.name}`);
    }
  }
  for (const [key, entry] of series) {
    const last = entry.buckets.at(-1);
    assert.ok(last !== undefined && last.le === Infinity, `no +Inf bucket: ${family.name}${key}`);
    assert.notEqual(entry.sum, undefined, `no _sum: ${family.name}${key}`);
    assert.equal(entry.count, last.count, `_count differs from +Inf bucket: ${family.name}${key}`);
  }
}

/**
 * Parses an exposition strictly: LF line ends, no blank lines or free
 * comments; each family's HELP then TYPE before its samples, its lines
 * together; names `nsqlookupd_[a-z_]+`, counters `_total`, no series twice;
 * histogram buckets ascending to `+Inf` equal to `_count`.
 */
function parseStrict(text: string): Map<string, Family> {
  assert.ok(text.endsWith("\n"), "exposition must end with a newline");
  assert.ok(!text.includes("\r"), "exposition must use LF line ends");
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  let current: Family | undefined;
  let pendingHelp: { name: string; help: string } | undefined;
  for (const line of text.slice(0, -1).split("\n")) {
    assert.notEqual(line, "", "blank line in exposition");
    if (line.startsWith("# HELP ")) {
      assert.equal(pendingHelp, undefined, `HELP without TYPE before: ${line}`);
      const rest = line.slice(7);
      const space = rest.indexOf(" ");
      assert.ok(space > 0, `HELP without text: ${line}`);
      const name = rest.slice(0, space);
      assert.match(name, METRIC_NAME);
      assert.ok(!families.has(name), `second HELP for ${name}`);
      pendingHelp = { name, help: unescapeHelp(rest.slice(space + 1), line) };
      assert.notEqual(pendingHelp.help, "", `empty HELP: ${line}`);
    } else if (line.startsWith("# TYPE ")) {
      const [name, type, ...extra] = line.slice(7).split(" ");
      assert.deepEqual(extra, [], `TYPE line: ${line}`);
      assert.ok(
        pendingHelp !== undefined && pendingHelp.name === name,
        `TYPE before HELP: ${line}`,
      );
      assert.ok(TYPES.has(type), `unknown type: ${line}`);
      if (type === "counter") assert.ok(name.endsWith("_total"), `counter not _total: ${name}`);
      else assert.ok(!name.endsWith("_total"), `${type} named _total: ${name}`);
      if (type === "histogram") assert.ok(name.endsWith("_seconds"), `histogram unit: ${name}`);
      current = { name, help: pendingHelp.help, type: type as MetricType, samples: [] };
      families.set(name, current);
      pendingHelp = undefined;
    } else {
      assert.ok(!line.startsWith("#"), `free comment line: ${line}`);
      assert.equal(pendingHelp, undefined, `sample between HELP and TYPE: ${line}`);
      assert.ok(current !== undefined, `sample before any TYPE: ${line}`);
      const sample = parseSampleLine(line);
      const allowed = current.type === "histogram"
        ? ["_bucket", "_sum", "_count"].map((suffix) => current!.name + suffix)
        : [current.name];
      assert.ok(allowed.includes(sample.name), `${sample.name} outside its family: ${line}`);
      const key = sample.name + labelKey(sample.labels);
      assert.ok(!seen.has(key), `series twice: ${line}`);
      seen.add(key);
      if (current.type === "counter") {
        assert.ok(Number.isFinite(sample.value) && sample.value >= 0, `counter value: ${line}`);
      }
      current.samples.push(sample);
    }
  }
  assert.equal(pendingHelp, undefined, "HELP without TYPE at the end");
  for (const family of families.values()) {
    if (family.type === "histogram") checkHistogram(family);
  }
  return families;
}

// ---- the npm parser, as a second opinion ----

interface LibSample {
  value?: string;
  labels?: Record<string, string>;
  buckets?: Record<string, string>;
  count?: string;
  sum?: string;
}

interface LibFamily {
  name: string;
  help: string;
  type: string;
  metrics: LibSample[];
}

const parseWithLibrary = parsePrometheusTextFormat as (text: string) => LibFamily[];

function sameNumber(a: number, b: number): boolean {
  return Number.isNaN(a) ? Number.isNaN(b) : a === b;
}

/** The library must read the same families, types, HELP, label sets and values. */
function crossCheck(text: string, families: Map<string, Family>): void {
  const parsed = parseWithLibrary(text);
  assert.deepEqual(parsed.map((f) => f.name), [...families.keys()]);
  for (const lib of parsed) {
    const family = families.get(lib.name)!;
    assert.equal(lib.type, family.type.toUpperCase(), lib.name);
    assert.equal(lib.help, family.help, lib.name);
    if (family.type === "histogram") {
      // The library folds a labelled histogram into one `buckets` map (the
      // last series written wins): compare with the last series' buckets.
      const buckets = family.samples.filter((s) => s.name === `${family.name}_bucket`);
      if (buckets.length === 0) {
        assert.deepEqual(lib.metrics, [], lib.name);
        continue;
      }
      const lastKey = labelKey(withoutLe(buckets.at(-1)!.labels));
      const last = buckets.filter((s) => labelKey(withoutLe(s.labels)) === lastKey);
      assert.equal(lib.metrics.length, 1, lib.name);
      // (A JS object: integer-like keys such as "1" come first, so compare as maps.)
      assert.deepEqual(
        Object.fromEntries(
          Object.entries(lib.metrics[0].buckets ?? {}).map(([le, n]) => [le, Number(n)]),
        ),
        Object.fromEntries(last.map((s) => [s.labels.le, s.value])),
        lib.name,
      );
      continue;
    }
    assert.equal(lib.metrics.length, family.samples.length, lib.name);
    lib.metrics.forEach((libSample, i) => {
      const sample = family.samples[i];
      assert.deepEqual(libSample.labels ?? {}, sample.labels, lib.name);
      assert.ok(libSample.value !== undefined, lib.name);
      assert.ok(sameNumber(Number(libSample.value), sample.value), `${lib.name}: value`);
    });
  }
}

// ---- scraping ----

class Scrape {
  constructor(readonly text: string, readonly families: Map<string, Family>) {}

  /** The sample with exactly these labels, or undefined. */
  find(name: string, labels: Labels = {}): number | undefined {
    const key = labelKey(labels);
    for (const family of this.families.values()) {
      for (const sample of family.samples) {
        if (sample.name === name && labelKey(sample.labels) === key) return sample.value;
      }
    }
    return undefined;
  }

  get(name: string, labels: Labels = {}): number {
    const value = this.find(name, labels);
    assert.notEqual(value, undefined, `no sample ${name}${labelKey(labels)} in:\n${this.text}`);
    return value!;
  }
}

function readExposition(text: string): Scrape {
  const families = parseStrict(text);
  crossCheck(text, families);
  return new Scrape(text, families);
}

async function scrape(daemon: TestDaemon): Promise<Scrape> {
  const res = await daemon.get("/metrics");
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  assert.equal(res.headers.get("x-nsq-content-type"), null);
  return readExposition(text);
}

const P = "nsqlookupd_";
const CATEGORIES = ["client", "topic", "channel"] as const;

/** Registrations and producer entries per category, as `[client, topic, channel]`. */
function byCategory(s: Scrape, name: string): number[] {
  return CATEGORIES.map((category) => s.get(P + name, { category }));
}

function removed(s: Scrape): Record<string, number> {
  return Object.fromEntries(
    ["disconnect", "idle_timeout", "unregister"].map((reason) => [
      reason,
      s.get(`${P}producers_removed_total`, { reason }),
    ]),
  );
}

async function identified(daemon: TestDaemon, fields: Record<string, unknown> = {}): Promise<
  TcpClient
> {
  const client = await daemon.connect();
  const reply = await client.identify(peerBody(fields));
  assert.match(reply, /^\{"broadcast_address":/);
  return client;
}

const EXPECTED_FAMILIES: [string, MetricType][] = [
  ["tcp_connections", "gauge"],
  ["producers_identified", "gauge"],
  ["producers_active", "gauge"],
  ["registrations", "gauge"],
  ["producer_registrations", "gauge"],
  ["tombstoned_producers", "gauge"],
  ["heap_used_bytes", "gauge"],
  ["heap_total_bytes", "gauge"],
  ["tcp_connections_accepted_total", "counter"],
  ["tcp_commands_total", "counter"],
  ["tcp_protocol_errors_total", "counter"],
  ["producers_removed_total", "counter"],
  ["http_requests_total", "counter"],
  ["http_request_duration_seconds", "histogram"],
  ["tcp_connections_refused_total", "counter"],
  ["tcp_connections_evicted_total", "counter"],
  ["http_connections_refused_total", "counter"],
  ["http_connections_evicted_total", "counter"],
  ["http_writes_in_progress", "gauge"],
  ["event_loop_lag_seconds", "histogram"],
];

// ---- the validator itself ----

Deno.test("the strict validator refuses what the exposition format forbids", () => {
  const ok = "# HELP nsqlookupd_x_total X.\n# TYPE nsqlookupd_x_total counter\n" +
    'nsqlookupd_x_total{a="1"} 2\n';
  parseStrict(ok);
  const broken = [
    ok.slice(0, -1), // no final newline
    ok.replace("# HELP nsqlookupd_x_total X.\n", ""), // TYPE without HELP
    ok.replace("2\n", "2\n# HELP nsqlookupd_x_total Y.\n# TYPE nsqlookupd_x_total counter\n"),
    ok.replaceAll("x_total", "x"), // counter without _total
    ok.replaceAll("nsqlookupd_x_total", "nsqlookupd_x2_total"), // name outside [a-z_]
    ok.replace('{a="1"}', '{a="1",}'), // trailing comma
    ok.replace('{a="1"}', '{a="\\t"}'), // invalid escape
    ok.replace('{a="1"}', '{a="1",a="2"}'), // duplicate label
    ok.replace(" 2\n", " 2 1700000000\n"), // timestamp
    ok.replace(" 2\n", " two\n"),
    ok + 'nsqlookupd_x_total{a="1"} 3\n', // same series twice
    ok + 'nsqlookupd_y_total{a="1"} 3\n', // sample outside its family
    ok.replace("# TYPE", "# a comment\n# TYPE"),
  ];
  for (const text of broken) assert.throws(() => parseStrict(text), text);
  const histogram = (lines: string[]): string =>
    [
      "# HELP nsqlookupd_d_seconds D.",
      "# TYPE nsqlookupd_d_seconds histogram",
      ...lines,
      "",
    ].join("\n");
  parseStrict(histogram([
    'nsqlookupd_d_seconds_bucket{le="0.1"} 1',
    'nsqlookupd_d_seconds_bucket{le="+Inf"} 2',
    "nsqlookupd_d_seconds_sum 0.5",
    "nsqlookupd_d_seconds_count 2",
  ]));
  const sumAndCount = ["nsqlookupd_d_seconds_sum 1", "nsqlookupd_d_seconds_count 2"];
  const brokenHistograms = [
    // le not ascending
    ['nsqlookupd_d_seconds_bucket{le="1"} 1', 'nsqlookupd_d_seconds_bucket{le="0.1"} 1'],
    // counts not cumulative
    ['nsqlookupd_d_seconds_bucket{le="0.1"} 2', 'nsqlookupd_d_seconds_bucket{le="+Inf"} 1'],
    // no +Inf bucket
    ['nsqlookupd_d_seconds_bucket{le="0.1"} 2', ...sumAndCount],
    // +Inf bucket differs from _count
    ['nsqlookupd_d_seconds_bucket{le="+Inf"} 3', ...sumAndCount],
    // no _sum, no _count
    ['nsqlookupd_d_seconds_bucket{le="+Inf"} 2', "nsqlookupd_d_seconds_count 2"],
    ['nsqlookupd_d_seconds_bucket{le="+Inf"} 2', "nsqlookupd_d_seconds_sum 1"],
    // le on _count
    [
      'nsqlookupd_d_seconds_bucket{le="+Inf"} 2',
      sumAndCount[0],
      'nsqlookupd_d_seconds_count{le="1"} 2',
    ],
  ];
  for (const lines of brokenHistograms) {
    assert.throws(() => parseStrict(histogram(lines)), lines.join(" | "));
  }
});

// ---- createDaemonMetrics with fake sources ----

function fakePeer(remoteAddress: string, clock: ManualClock, httpPort = 4151): PeerInfo {
  return testPeer({ remoteAddress, hostname: "h", httpPort, lastUpdate: clock.now() });
}

/** What the standard process_* families show when every figure is readable (Linux, --allow-all). */
const PROCESS_FAMILIES: [string, MetricType][] = [
  ["process_cpu_seconds_total", "counter"],
  ["process_open_fds", "gauge"],
  ["process_max_fds", "gauge"],
  ["process_virtual_memory_bytes", "gauge"],
  ["process_resident_memory_bytes", "gauge"],
  ["process_start_time_seconds", "gauge"],
];

/** What they show under Deno's sandbox: /proc refused, the runtime's own figures instead. */
const SANDBOXED_PROCESS_FAMILIES = PROCESS_FAMILIES.filter(([name]) =>
  !["process_open_fds", "process_max_fds", "process_virtual_memory_bytes"].includes(name)
);

/** The process families of a daemon inside this test process: /proc is readable only with --allow-all. */
function inProcessFamilies(): [string, MetricType][] {
  try {
    Deno.readTextFileSync("/proc/self/stat");
    return PROCESS_FAMILIES;
  } catch {
    return SANDBOXED_PROCESS_FAMILIES;
  }
}

/** Every family, in order, for the given process families. */
function expectedFamilies(
  processFamilies: [string, MetricType][],
  tcpLoad = true,
): [string, MetricType][] {
  const ours = EXPECTED_FAMILIES.map(([name, type]): [string, MetricType] => [P + name, type]);
  const load: [string, MetricType][] = tcpLoad
    ? [[`${P}tcp_pending_reply_bytes`, "gauge"], [`${P}tcp_blocked_writes`, "gauge"]]
    : [];
  const heapAt = ours.findIndex(([name]) => name === `${P}heap_used_bytes`);
  return [...ours.slice(0, heapAt), ...load, ...processFamilies, ...ours.slice(heapAt)];
}

const FIXED_PROCESS: ProcessStats = {
  cpuSeconds: 1.5,
  residentBytes: 4096,
  virtualBytes: 8192,
  openFds: 12,
  maxFds: 1024,
  startTimeSeconds: 1_700_000_000.25,
};

/** Daemon metrics over an empty registry, a hand-moved clock and fixed process figures. */
function metricsFixture(): DaemonMetrics {
  const clock = new ManualClock();
  const registry = new Registry({
    now: clock.now,
    inactiveProducerTimeoutMs: 1000,
    tombstoneLifetimeMs: 500,
  });
  return createDaemonMetrics({
    registry,
    openConnections: () => 0,
    startTimeMs: clock.ms,
    process: () => FIXED_PROCESS,
    heap: () => ({ heapUsed: 1, heapTotal: 1 }),
  });
}

Deno.test("createDaemonMetrics: every family, in order, with HELP and TYPE, before any activity", () => {
  const metrics = metricsFixture();
  const s = readExposition(metrics.render());
  assert.deepEqual(
    [...s.families.values()].map((f) => [f.name, f.type]),
    expectedFamilies(PROCESS_FAMILIES, false),
  );
  assert.equal(s.get(`${P}tcp_connections_accepted_total`), 0);
  assert.deepEqual(removed(s), { disconnect: 0, idle_timeout: 0, unregister: 0 });
  assert.deepEqual(byCategory(s, "registrations"), [0, 0, 0]);
  assert.deepEqual(byCategory(s, "producer_registrations"), [0, 0, 0]);
  // Labelled counters and the histogram have no series until something happens.
  for (const name of ["tcp_commands_total", "tcp_protocol_errors_total", "http_requests_total"]) {
    assert.deepEqual(s.families.get(P + name)!.samples, [], name);
  }
  assert.deepEqual(s.families.get(`${P}http_request_duration_seconds`)!.samples, []);
  assert.deepEqual(s.families.get(`${P}event_loop_lag_seconds`)!.samples, []);
});

Deno.test("createDaemonMetrics: gauges read their sources at scrape time", () => {
  const clock = new ManualClock(1_700_000_010_750);
  const registry = new Registry({
    now: clock.now,
    inactiveProducerTimeoutMs: 1000,
    tombstoneLifetimeMs: 500,
  });
  let open = 3;
  let processReads = 0;
  let heapReads = 0;
  let cpuSeconds = 1.5;
  const metrics = createDaemonMetrics({
    registry,
    openConnections: () => open,
    startTimeMs: 1_700_000_000_500,
    process: () => {
      processReads++;
      return { ...FIXED_PROCESS, cpuSeconds };
    },
    heap: () => {
      heapReads++;
      return { heapUsed: 1024, heapTotal: 2048 };
    },
  });
  assert.equal(processReads, 1, "read once at creation, to know which figures exist");
  processReads = 0;
  const a = fakePeer("10.0.0.1:1000", clock);
  registry.identify(a);
  registry.registerChannel(a, "t", "c");
  registry.registerTopic(a, "t");
  registry.registerTopic(a, "u");
  registry.createTopic("empty");
  clock.advance(600);
  const b = fakePeer("10.0.0.2:1000", clock, 5151);
  registry.identify(b);
  registry.registerTopic(b, "t");
  registry.tombstone("t", "127.0.0.1:4151");

  let s = readExposition(metrics.render());
  assert.equal(processReads, 1, "process figures are read once per scrape");
  assert.equal(heapReads, 1, "the heap is read once per scrape");
  assert.equal(s.get(`${P}tcp_connections`), 3);
  assert.equal(s.get(`${P}producers_identified`), 2);
  assert.equal(s.get(`${P}producers_active`), 2);
  assert.deepEqual(byCategory(s, "registrations"), [1, 3, 1]);
  assert.deepEqual(byCategory(s, "producer_registrations"), [2, 3, 1]);
  assert.equal(s.get(`${P}tombstoned_producers`), 1);
  assert.equal(s.get("process_start_time_seconds"), 1_700_000_000.25);
  assert.equal(s.get("process_cpu_seconds_total"), 1.5);
  assert.equal(s.get("process_resident_memory_bytes"), 4096);
  assert.equal(s.get("process_virtual_memory_bytes"), 8192);
  assert.equal(s.get("process_open_fds"), 12);
  assert.equal(s.get("process_max_fds"), 1024);
  assert.equal(s.get(`${P}heap_used_bytes`), 1024);
  assert.equal(s.get(`${P}heap_total_bytes`), 2048);

  // 500 ms later the tombstone has expired; a, silent for 1100 ms, is inactive.
  open = 1;
  cpuSeconds = 2.75;
  clock.advance(500);
  s = readExposition(metrics.render());
  assert.equal(processReads, 2);
  assert.equal(heapReads, 2);
  assert.equal(s.get("process_cpu_seconds_total"), 2.75);
  assert.equal(s.get(`${P}tcp_connections`), 1);
  assert.equal(s.get(`${P}tombstoned_producers`), 0);
  assert.equal(s.get(`${P}producers_identified`), 2);
  assert.equal(s.get(`${P}producers_active`), 1);

  registry.removePeer(a.id);
  registry.removePeer(b.id);
  s = readExposition(metrics.render());
  assert.deepEqual(byCategory(s, "registrations"), [0, 3, 1]);
  assert.deepEqual(byCategory(s, "producer_registrations"), [0, 0, 0]);
});

Deno.test("createDaemonMetrics: observer hooks bump counters and the histogram", () => {
  const metrics = metricsFixture();
  metrics.tcp.connectionAccepted();
  metrics.tcp.connectionAccepted();
  metrics.tcp.command("PING", "ok");
  metrics.tcp.command("PING", "ok");
  metrics.tcp.command("REGISTER", "E_BAD_TOPIC");
  metrics.tcp.command("NOPE", "E_INVALID"); // unknown commands share one label value
  metrics.tcp.command("\u0000x", "E_INVALID");
  metrics.tcp.protocolError("E_BAD_TOPIC");
  metrics.tcp.protocolError("E_INVALID");
  metrics.tcp.protocolError("E_INVALID");
  metrics.tcp.producersRemoved("idle_timeout", 3);
  metrics.tcp.producersRemoved("unregister", 1);
  metrics.tcp.producersRemoved("unregister", 2);
  metrics.http.request("/lookup", 200, 0.0003);
  metrics.http.request("/lookup", 404, 3);
  metrics.http.request("/lookup", 200, 0.0005);
  const odd = 'odd "route"\\\n';
  metrics.http.request(odd, 500, 0);

  const text = metrics.render();
  const s = readExposition(text);
  const commands = `${P}tcp_commands_total`;
  assert.equal(s.get(`${P}tcp_connections_accepted_total`), 2);
  assert.equal(s.get(commands, { command: "PING", result: "ok" }), 2);
  assert.equal(s.get(commands, { command: "REGISTER", result: "E_BAD_TOPIC" }), 1);
  assert.equal(s.get(commands, { command: "invalid", result: "E_INVALID" }), 2);
  assert.equal(s.families.get(commands)!.samples.length, 3);
  assert.equal(s.get(`${P}tcp_protocol_errors_total`, { code: "E_BAD_TOPIC" }), 1);
  assert.equal(s.get(`${P}tcp_protocol_errors_total`, { code: "E_INVALID" }), 2);
  assert.deepEqual(removed(s), { disconnect: 0, idle_timeout: 3, unregister: 3 });
  const requests = `${P}http_requests_total`;
  assert.equal(s.get(requests, { route: "/lookup", code: "200" }), 2);
  assert.equal(s.get(requests, { route: "/lookup", code: "404" }), 1);
  assert.equal(s.get(requests, { route: odd, code: "500" }), 1);

  // Label values come back unescaped: the writer escaped \, " and newline.
  assert.ok(text.includes('route="odd \\"route\\"\\\\\\n"'), text);
  const duration = `${P}http_request_duration_seconds`;
  const bucket = (le: string): number => s.get(`${duration}_bucket`, { route: "/lookup", le });
  assert.equal(bucket("0.00025"), 0);
  assert.equal(bucket("0.0005"), 2, "le is inclusive");
  assert.equal(bucket("2.5"), 2);
  assert.equal(bucket("+Inf"), 3);
  assert.equal(s.get(`${duration}_count`, { route: "/lookup" }), 3);
  assert.equal(s.get(`${duration}_sum`, { route: "/lookup" }), 0.0003 + 3 + 0.0005);
  assert.deepEqual(
    s.families.get(duration)!.samples
      .filter((x) => x.name === `${duration}_bucket` && x.labels.route === "/lookup")
      .map((x) => x.labels.le),
    [...HTTP_DURATION_BUCKETS.map(String), "+Inf"],
  );
});

Deno.test("createDaemonMetrics: connections refused and evicted on both ports, by reason; HTTP writes in progress", () => {
  const metrics = metricsFixture();
  let s = readExposition(metrics.render());
  const refusedTcp = `${P}tcp_connections_refused_total`;
  const refusedHttp = `${P}http_connections_refused_total`;
  const evictedHttp = `${P}http_connections_evicted_total`;
  // Every reason exists from the start, so that rate() and alerts see a 0.
  for (const reason of ["admit", "limit", "per_remote"]) {
    assert.equal(s.get(refusedTcp, { reason }), 0);
  }
  assert.equal(s.get(`${P}tcp_connections_evicted_total`), 0);
  for (const reason of ["limit", "per_remote"]) assert.equal(s.get(refusedHttp, { reason }), 0);
  for (const reason of ["limit", "per_remote", "memory"]) {
    assert.equal(s.get(evictedHttp, { reason }), 0);
  }
  metrics.tcp.connectionRefused!("admit");
  metrics.tcp.connectionRefused!("per_remote");
  metrics.tcp.connectionRefused!("per_remote");
  metrics.tcp.connectionRefused!("evicted");
  metrics.httpServer.refused!("10.0.0.1:1", "connection limit");
  metrics.httpServer.evicted!("10.0.0.1:2", "per-remote share");
  metrics.httpServer.evicted!("10.0.0.1:3", "memory");
  metrics.httpServer.evicted!("10.0.0.1:4", "memory");
  metrics.httpServer.writeStarted!("10.0.0.1:5");
  metrics.httpServer.writeStarted!("10.0.0.1:6");
  metrics.httpServer.writeEnded!("10.0.0.1:5");
  s = readExposition(metrics.render());
  assert.equal(s.get(refusedTcp, { reason: "admit" }), 1);
  assert.equal(s.get(refusedTcp, { reason: "per_remote" }), 2);
  assert.equal(s.get(refusedTcp, { reason: "limit" }), 0);
  assert.equal(s.get(`${P}tcp_connections_evicted_total`), 1);
  assert.equal(s.get(refusedHttp, { reason: "limit" }), 1);
  assert.equal(s.get(evictedHttp, { reason: "per_remote" }), 1);
  assert.equal(s.get(evictedHttp, { reason: "memory" }), 2);
  assert.equal(s.get(`${P}http_writes_in_progress`), 1);
});

Deno.test("createDaemonMetrics: the TCP server's pending replies and blocked writes, read at scrape time", () => {
  const clock = new ManualClock();
  let load = { pendingReplyBytes: 0, blockedWrites: 0 };
  const metrics = createDaemonMetrics({
    registry: new Registry({
      now: clock.now,
      inactiveProducerTimeoutMs: 1000,
      tombstoneLifetimeMs: 1,
    }),
    openConnections: () => 0,
    tcpLoad: () => load,
    startTimeMs: clock.ms,
    process: () => FIXED_PROCESS,
    heap: () => ({ heapUsed: 1, heapTotal: 1 }),
  });
  assert.equal(readExposition(metrics.render()).get(`${P}tcp_pending_reply_bytes`), 0);
  load = { pendingReplyBytes: 65_536, blockedWrites: 3 };
  const s = readExposition(metrics.render());
  assert.equal(s.get(`${P}tcp_pending_reply_bytes`), 65_536);
  assert.equal(s.get(`${P}tcp_blocked_writes`), 3);
});

// ---- a real daemon over real sockets ----

Deno.test("GET /metrics answers the 0.0.4 content type and a valid exposition of every family", async () => {
  await using daemon = startDaemon();
  let s = await scrape(daemon);
  assert.deepEqual(
    [...s.families.values()].map((f) => [f.name, f.type]),
    expectedFamilies(inProcessFamilies()),
  );
  assert.equal(PROMETHEUS_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");

  // With activity on every family, the exposition is still valid.
  const client = await identified(daemon);
  assert.equal(await client.command("REGISTER t c"), "OK");
  await (await daemon.get("/lookup?topic=t")).body?.cancel();
  await (await daemon.get("/nope")).body?.cancel();
  const magic = await daemon.connect();
  await magic.send("  V2");
  assert.equal(await magic.readFrame(), "E_BAD_PROTOCOL");
  s = await scrape(daemon);
  for (const family of s.families.values()) {
    assert.ok(family.samples.length > 0, `${family.name} has samples`);
  }
  // In legacy mode /metrics is served as is (not wrapped).
  await using legacy = startDaemon({ legacyHttpApi: true });
  s = await scrape(legacy);
  assert.equal(s.families.size, expectedFamilies(inProcessFamilies()).length);
});

Deno.test("metrics follow a producer: connect, IDENTIFY, REGISTER, PING, UNREGISTER, disconnect", async () => {
  await using daemon = startDaemon();
  const commands = `${P}tcp_commands_total`;
  let s = await scrape(daemon);
  assert.equal(s.get(`${P}tcp_connections`), 0);
  assert.equal(s.get(`${P}tcp_connections_accepted_total`), 0);
  assert.equal(s.get(`${P}producers_identified`), 0);

  const client = await daemon.connect();
  await eventually(async () => (await scrape(daemon)).get(`${P}tcp_connections`) === 1);
  s = await scrape(daemon);
  assert.equal(s.get(`${P}tcp_connections_accepted_total`), 1);
  assert.equal(s.get(`${P}producers_identified`), 0);

  await client.identify(peerBody());
  s = await scrape(daemon);
  assert.equal(s.get(`${P}producers_identified`), 1);
  assert.equal(s.get(`${P}producers_active`), 1);
  assert.equal(s.get(commands, { command: "IDENTIFY", result: "ok" }), 1);
  assert.deepEqual(byCategory(s, "registrations"), [1, 0, 0]);
  assert.deepEqual(byCategory(s, "producer_registrations"), [1, 0, 0]);

  assert.equal(await client.command("REGISTER t c"), "OK");
  assert.equal(await client.command("REGISTER t2"), "OK");
  assert.equal(await client.command("PING"), "OK");
  s = await scrape(daemon);
  assert.equal(s.get(commands, { command: "REGISTER", result: "ok" }), 2);
  assert.equal(s.get(commands, { command: "PING", result: "ok" }), 1);
  assert.deepEqual(byCategory(s, "registrations"), [1, 2, 1]);
  assert.deepEqual(byCategory(s, "producer_registrations"), [1, 2, 1]);

  assert.equal(await client.command("UNREGISTER t c"), "OK");
  s = await scrape(daemon);
  assert.deepEqual(removed(s), { disconnect: 0, idle_timeout: 0, unregister: 1 });
  assert.deepEqual(byCategory(s, "registrations"), [1, 2, 1], "the registration stays");
  assert.deepEqual(byCategory(s, "producer_registrations"), [1, 2, 0]);

  assert.equal(await client.command("REGISTER t c"), "OK");
  assert.equal(await client.command("UNREGISTER t"), "OK"); // channel and topic
  s = await scrape(daemon);
  assert.equal(s.get(commands, { command: "UNREGISTER", result: "ok" }), 2);
  assert.deepEqual(removed(s), { disconnect: 0, idle_timeout: 0, unregister: 3 });
  assert.deepEqual(byCategory(s, "producer_registrations"), [1, 1, 0]);

  client.close();
  await eventually(async () => (await scrape(daemon)).get(`${P}tcp_connections`) === 0);
  s = await scrape(daemon);
  // client + t2 were still registered
  assert.deepEqual(removed(s), { disconnect: 2, idle_timeout: 0, unregister: 3 });
  assert.equal(s.get(`${P}producers_identified`), 0);
  assert.equal(s.get(`${P}producers_active`), 0);
  assert.deepEqual(byCategory(s, "registrations"), [0, 2, 1]);
  assert.deepEqual(byCategory(s, "producer_registrations"), [0, 0, 0]);
  assert.equal(s.get(`${P}tcp_connections_accepted_total`), 1);
});

Deno.test("metrics count failed commands and protocol errors by code", async () => {
  await using daemon = startDaemon();
  const commands = `${P}tcp_commands_total`;
  const errors = `${P}tcp_protocol_errors_total`;

  const bad = await identified(daemon);
  assert.equal(await bad.command("REGISTER t"), "OK");
  assert.equal(
    await bad.command("REGISTER bad!topic"),
    "E_BAD_TOPIC REGISTER topic name 'bad!topic' is not valid",
  );
  await bad.expectClosed();

  const unknown = await daemon.connect();
  await unknown.magic();
  assert.equal(await unknown.command("NOPE"), "E_INVALID invalid command NOPE");
  await unknown.expectClosed();

  const early = await daemon.connect();
  await early.magic();
  assert.equal(await early.command("REGISTER t"), "E_INVALID client must IDENTIFY");
  await early.expectClosed();

  const magic = await daemon.connect();
  await magic.send("  V2");
  assert.equal(await magic.readFrame(), "E_BAD_PROTOCOL");
  await magic.expectClosed();

  await eventually(async () => (await scrape(daemon)).get(`${P}tcp_connections`) === 0);
  const s = await scrape(daemon);
  assert.equal(s.get(commands, { command: "REGISTER", result: "E_BAD_TOPIC" }), 1);
  assert.equal(s.get(commands, { command: "REGISTER", result: "E_INVALID" }), 1);
  assert.equal(s.get(commands, { command: "invalid", result: "E_INVALID" }), 1);
  assert.equal(s.get(commands, { command: "REGISTER", result: "ok" }), 1);
  assert.equal(s.get(errors, { code: "E_BAD_TOPIC" }), 1);
  assert.equal(s.get(errors, { code: "E_INVALID" }), 2);
  assert.equal(s.get(errors, { code: "E_BAD_PROTOCOL" }), 1);
  assert.equal(s.get(`${P}tcp_connections_accepted_total`), 4);
  // The failed producer was removed from client and topic `t` on disconnect.
  assert.deepEqual(removed(s), { disconnect: 2, idle_timeout: 0, unregister: 0 });
});

Deno.test("tombstoned_producers counts a tombstone until its lifetime passes; active follows PINGs", async () => {
  const clock = new ManualClock();
  await using daemon = startDaemon({ tombstoneLifetimeMs: 45_000 }, { now: clock.now });
  const client = await identified(daemon, { broadcast_address: "10.1.1.1", http_port: 4151 });
  assert.equal(await client.command("REGISTER t"), "OK");
  let s = await scrape(daemon);
  assert.equal(s.get(`${P}tombstoned_producers`), 0);

  const res = await daemon.post("/topic/tombstone?topic=t&node=10.1.1.1:4151");
  assert.equal(res.status, 200);
  await res.body?.cancel();
  s = await scrape(daemon);
  assert.equal(s.get(`${P}tombstoned_producers`), 1);
  assert.equal(s.get(`${P}http_requests_total`, { route: "/topic/tombstone", code: "200" }), 1);

  clock.advance(44_999);
  assert.equal((await scrape(daemon)).get(`${P}tombstoned_producers`), 1);
  clock.advance(1);
  assert.equal((await scrape(daemon)).get(`${P}tombstoned_producers`), 0);

  // Active: seen within --inactive-producer-timeout (300 s by default) of the registry clock.
  clock.advance(300_001 - 45_000);
  s = await scrape(daemon);
  assert.equal(s.get(`${P}producers_identified`), 1);
  assert.equal(s.get(`${P}producers_active`), 0);
  assert.equal(await client.command("PING"), "OK");
  assert.equal((await scrape(daemon)).get(`${P}producers_active`), 1);
});

Deno.test("a connection closed by the idle sweep counts its producer entries as idle_timeout", async () => {
  await using daemon = startDaemon({ inactiveProducerTimeoutMs: 60_000 });
  const client = await identified(daemon);
  assert.equal(await client.command("REGISTER t c"), "OK");
  const quiet = await daemon.connect();
  await quiet.magic(); // started but never identified: nothing to remove
  await eventually(async () => (await scrape(daemon)).get(`${P}tcp_connections`) === 2);

  daemon.tcpServer.sweep(performance.now() + 60_001);
  await client.expectClosed();
  await quiet.expectClosed();
  await eventually(async () => (await scrape(daemon)).get(`${P}tcp_connections`) === 0);
  const s = await scrape(daemon);
  assert.deepEqual(removed(s), { disconnect: 0, idle_timeout: 3, unregister: 0 });
  assert.equal(s.get(`${P}producers_identified`), 0);
});

Deno.test("HTTP requests are counted by route and status; the duration histogram grows", async () => {
  await using daemon = startDaemon();
  const requests = `${P}http_requests_total`;
  const duration = `${P}http_request_duration_seconds`;
  const call = async (method: string, path: string, status: number): Promise<void> => {
    const res = await fetch(daemon.httpUrl + path, { method, redirect: "manual" });
    await res.body?.cancel();
    assert.equal(res.status, status, `${method} ${path}`);
  };
  await call("GET", "/lookup?topic=t", 404);
  await call("POST", "/topic/create?topic=t", 200);
  await call("GET", "/lookup?topic=t", 200);
  await call("GET", "/lookup?topic=t", 200);
  await call("GET", "/lookup", 400);
  await call("GET", "/nope", 404);
  await call("GET", "/debug/pprof", 404);
  await call("GET", "/topic/create?topic=t", 405);
  await call("GET", "/LOOKUP?topic=t", 301);
  await call("OPTIONS", "/lookup", 200);

  let s = await scrape(daemon);
  assert.equal(s.get(requests, { route: "/lookup", code: "200" }), 3, "2 GET + 1 OPTIONS");
  assert.equal(s.get(requests, { route: "/lookup", code: "404" }), 1);
  assert.equal(s.get(requests, { route: "/lookup", code: "400" }), 1);
  assert.equal(s.get(requests, { route: "/topic/create", code: "200" }), 1);
  assert.equal(s.get(requests, { route: "/topic/create", code: "405" }), 1);
  assert.equal(s.get(requests, { route: "unmatched", code: "404" }), 2);
  assert.equal(s.get(requests, { route: "unmatched", code: "301" }), 1);
  // Only known routes and "unmatched" appear as labels: cardinality stays bounded.
  const routes = new Set(s.families.get(requests)!.samples.map((x) => x.labels.route));
  assert.deepEqual([...routes].sort(), ["/lookup", "/topic/create", "unmatched"]);
  assert.equal(s.get(`${duration}_count`, { route: "/lookup" }), 5);
  const sum = s.get(`${duration}_sum`, { route: "/lookup" });
  assert.ok(sum > 0 && sum < 5, `sum ${sum}`);

  await call("GET", "/lookup?topic=t", 200);
  s = await scrape(daemon);
  assert.equal(s.get(`${duration}_count`, { route: "/lookup" }), 6);
  assert.equal(s.get(requests, { route: "/lookup", code: "200" }), 4);
  // Each scrape is itself counted, after it was rendered.
  const scrapes = s.get(requests, { route: "/metrics", code: "200" });
  assert.equal(scrapes, 1);
  s = await scrape(daemon);
  assert.equal(s.get(requests, { route: "/metrics", code: "200" }), 2);
  assert.equal(s.get(`${duration}_count`, { route: "/metrics" }), 2);
});

Deno.test("GET /metrics under the sandbox: process_* from the runtime, /proc-only figures left out", async () => {
  await using daemon = startDaemon();
  const s = await scrape(daemon);
  assert.deepEqual(
    [...s.families.values()].filter((f) => f.name.startsWith("process_")).map((f) => [
      f.name,
      f.type,
    ]),
    inProcessFamilies(),
  );
  plausibleProcessFigures(s);
  const used = s.get(`${P}heap_used_bytes`);
  const total = s.get(`${P}heap_total_bytes`);
  assert.ok(used > 0 && used <= total, `heap ${used} / ${total}`);
  assert.equal(s.find(`${P}process_uptime_seconds`), undefined, "old name dropped");
});

Deno.test("GET /metrics with /proc readable (--allow-all): all six process_* families", async () => {
  await using daemon = await spawnDaemon(["--log-level=warn"], {
    ports: "free",
    permissions: ["--allow-all"],
  });
  const text = await (await fetch(`${daemon.url}/metrics`)).text();
  const s = readExposition(text);
  assert.deepEqual(
    [...s.families.values()].filter((f) => f.name.startsWith("process_")).map((f) => [
      f.name,
      f.type,
    ]),
    PROCESS_FAMILIES,
  );
  plausibleProcessFigures(s);
  const open = s.get("process_open_fds");
  assert.ok(open >= 4 && open <= s.get("process_max_fds"), `open fds ${open}`);
  assert.ok(s.get("process_virtual_memory_bytes") > s.get("process_resident_memory_bytes"));
  const stopped = await daemon.stop();
  assert.equal(stopped.code, 0, stopped.lines.join("\n"));
});

function plausibleProcessFigures(s: Scrape): void {
  const nowSeconds = Date.now() / 1000;
  const start = s.get("process_start_time_seconds");
  assert.ok(start <= nowSeconds && start > nowSeconds - 3600, `start time ${start}`);
  const cpu = s.get("process_cpu_seconds_total");
  assert.ok(cpu > 0 && cpu < 3600, `cpu ${cpu}`);
  assert.ok(s.get("process_resident_memory_bytes") > 1024 * 1024);
}

Deno.test("createDaemonMetrics: each event-loop lag tick lands in the lag histogram, a stall in the bucket of its length", () => {
  const metrics = metricsFixture();
  for (let i = 0; i < 98; i++) metrics.eventLoopLag(0);
  metrics.eventLoopLag(0.015);
  metrics.eventLoopLag(0.3);
  const s = readExposition(metrics.render());
  const lag = `${P}event_loop_lag_seconds`;
  const bucket = (le: string): number => s.get(`${lag}_bucket`, { le });
  assert.equal(bucket("0.001"), 98);
  assert.equal(bucket("0.01"), 98);
  assert.equal(bucket("0.02"), 99, "the 15 ms stall");
  assert.equal(bucket("0.25"), 99);
  assert.equal(bucket("0.5"), 100, "the 300 ms stall");
  assert.equal(s.get(`${lag}_count`), 100);
  assert.deepEqual(
    s.families.get(lag)!.samples.filter((x) => x.name === `${lag}_bucket`).map((x) => x.labels.le),
    [...EVENT_LOOP_LAG_BUCKETS.map(String), "+Inf"],
  );
});
