// A small Prometheus text exposition (format 0.0.4) writer: counters, gauges
// and histograms with labels. Hand-written because the npm clients pull in
// Node-only modules; updates are a Map lookup and an add, cheap enough for
// the /lookup hot path.

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

type Labels = readonly string[];

/** Label values escape `\`, `"` and newline. */
export function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** HELP text escapes `\` and newline. */
export function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/** Go's strconv 'g'-like float text as Prometheus expects (`+Inf`, `NaN`). */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function labelText(names: Labels, values: Labels, extra = ""): string {
  const parts: string[] = [];
  for (let i = 0; i < names.length; i++) {
    parts.push(`${names[i]}="${escapeLabelValue(values[i])}"`);
  }
  if (extra !== "") parts.push(extra);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

interface Metric {
  readonly name: string;
  render(lines: string[]): void;
}

/** Sets a series' value; what a metric read at scrape time is given. */
export type Collector = (set: (labels: Labels, value: number) => void) => void;

abstract class LabelledMetric<T> implements Metric {
  protected readonly series = new Map<string, { labels: Labels; value: T }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: Labels,
    readonly type: "counter" | "gauge" | "histogram",
  ) {}

  protected entry(labels: Labels): { labels: Labels; value: T } {
    // Concatenation, not join(): this runs on every request, and join() costs several times more.
    let key = labels.length === 0 ? "" : labels[0];
    for (let i = 1; i < labels.length; i++) key += "\u0000" + labels[i];
    let entry = this.series.get(key);
    if (entry === undefined) {
      if (labels.length !== this.labelNames.length) {
        throw new Error(`${this.name}: expected ${this.labelNames.length} label values`);
      }
      entry = { labels: [...labels], value: this.initial() };
      this.series.set(key, entry);
    }
    return entry;
  }

  protected abstract initial(): T;
  protected abstract renderSeries(lines: string[], labels: Labels, value: T): void;

  render(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${escapeHelp(this.help)}`);
    lines.push(`# TYPE ${this.name} ${this.type}`);
    const entries = [...this.series.values()].sort((a, b) =>
      a.labels.join("\u0000") < b.labels.join("\u0000") ? -1 : 1
    );
    for (const { labels, value } of entries) this.renderSeries(lines, labels, value);
  }
}

/** A counter or gauge: one number per series, optionally read from its source at scrape time. */
abstract class ValueMetric extends LabelledMetric<number> {
  constructor(
    name: string,
    help: string,
    labelNames: Labels,
    type: "counter" | "gauge",
    private readonly collect: Collector | undefined,
  ) {
    super(name, help, labelNames, type);
  }
  set(labels: Labels, value: number): void {
    this.entry(labels).value = value;
  }
  protected initial(): number {
    return 0;
  }
  override render(lines: string[]): void {
    this.collect?.((labels, value) => this.set(labels, value));
    super.render(lines);
  }
  protected renderSeries(lines: string[], labels: Labels, value: number): void {
    lines.push(`${this.name}${labelText(this.labelNames, labels)} ${formatValue(value)}`);
  }
}

/**
 * A counter: bumped with inc(), or, with a collector, read at scrape time
 * from a source that only grows (such as the process's CPU time).
 */
export class Counter extends ValueMetric {
  constructor(name: string, help: string, labelNames: Labels = [], collect?: Collector) {
    super(name, help, labelNames, "counter", collect);
  }
  inc(labels: Labels = [], amount = 1): void {
    this.entry(labels).value += amount;
  }
  get(labels: Labels = []): number {
    return this.entry(labels).value;
  }
}

/** A gauge whose value is read at scrape time. */
export class Gauge extends ValueMetric {
  constructor(name: string, help: string, labelNames: Labels = [], collect?: Collector) {
    super(name, help, labelNames, "gauge", collect);
  }
}

interface HistogramValue {
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram extends LabelledMetric<HistogramValue> {
  constructor(
    name: string,
    help: string,
    labelNames: Labels,
    readonly buckets: readonly number[],
  ) {
    super(name, help, labelNames, "histogram");
  }
  observe(labels: Labels, value: number): void {
    const entry = this.entry(labels).value;
    const buckets = this.buckets;
    let i = 0;
    while (i < buckets.length && value > buckets[i]) i++;
    if (i < buckets.length) entry.counts[i]++;
    entry.sum += value;
    entry.count++;
  }
  protected initial(): HistogramValue {
    return { counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0 };
  }
  protected renderSeries(lines: string[], labels: Labels, value: HistogramValue): void {
    let cumulative = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += value.counts[i];
      const le = `le="${formatValue(this.buckets[i])}"`;
      lines.push(`${this.name}_bucket${labelText(this.labelNames, labels, le)} ${cumulative}`);
    }
    lines.push(
      `${this.name}_bucket${labelText(this.labelNames, labels, 'le="+Inf"')} ${value.count}`,
    );
    lines.push(`${this.name}_sum${labelText(this.labelNames, labels)} ${formatValue(value.sum)}`);
    lines.push(`${this.name}_count${labelText(this.labelNames, labels)} ${value.count}`);
  }
}

export class MetricsRegistry {
  readonly #metrics: Metric[] = [];

  add<T extends Metric>(metric: T): T {
    if (this.#metrics.some((m) => m.name === metric.name)) {
      throw new Error(`metric ${metric.name} registered twice`);
    }
    this.#metrics.push(metric);
    return metric;
  }

  render(): string {
    const lines: string[] = [];
    for (const metric of this.#metrics) metric.render(lines);
    return lines.join("\n") + "\n";
  }
}
