import assert from "node:assert/strict";
import {
  Counter,
  escapeHelp,
  escapeLabelValue,
  formatValue,
  Gauge,
  Histogram,
  MetricsRegistry,
} from "../../../src/ops/prometheus.ts";

Deno.test("label values escape backslash, double quote and newline", () => {
  assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
});

Deno.test("HELP text escapes backslash and newline but not quotes", () => {
  assert.equal(escapeHelp('x\\y\n"z"'), 'x\\\\y\\n"z"');
});

Deno.test("special float values are written +Inf, -Inf and NaN", () => {
  assert.deepEqual([Infinity, -Infinity, NaN, 1.5, 0].map(formatValue), [
    "+Inf",
    "-Inf",
    "NaN",
    "1.5",
    "0",
  ]);
});

Deno.test("a counter renders HELP, TYPE and one sample per label set, sorted", () => {
  const registry = new MetricsRegistry();
  const counter = registry.add(new Counter("x_total", "Things.", ["kind"]));
  counter.inc(["b"]);
  counter.inc(["a"], 2);
  counter.inc(["b"]);
  assert.equal(
    registry.render(),
    '# HELP x_total Things.\n# TYPE x_total counter\nx_total{kind="a"} 2\nx_total{kind="b"} 2\n',
  );
});

Deno.test("a gauge without labels collects its value at scrape time", () => {
  const registry = new MetricsRegistry();
  let value = 3;
  registry.add(new Gauge("g", "A gauge.", [], (set) => set([], value)));
  assert.match(registry.render(), /^g 3$/m);
  value = 7;
  assert.match(registry.render(), /^g 7$/m);
});

Deno.test("a histogram renders cumulative buckets with le, +Inf, _sum and _count", () => {
  const registry = new MetricsRegistry();
  const histogram = registry.add(new Histogram("d_seconds", "Durations.", ["route"], [0.1, 1]));
  histogram.observe(["/a"], 0.05);
  histogram.observe(["/a"], 0.1);
  histogram.observe(["/a"], 0.5);
  histogram.observe(["/a"], 5);
  assert.equal(
    registry.render(),
    [
      "# HELP d_seconds Durations.",
      "# TYPE d_seconds histogram",
      'd_seconds_bucket{route="/a",le="0.1"} 2',
      'd_seconds_bucket{route="/a",le="1"} 3',
      'd_seconds_bucket{route="/a",le="+Inf"} 4',
      'd_seconds_sum{route="/a"} 5.65',
      'd_seconds_count{route="/a"} 4',
      "",
    ].join("\n"),
  );
});

Deno.test("a metric name can be registered only once", () => {
  const registry = new MetricsRegistry();
  registry.add(new Counter("a_total", "A."));
  assert.throws(() => registry.add(new Counter("a_total", "A.")));
});

Deno.test("a label value list of the wrong length is refused", () => {
  const counter = new Counter("c_total", "C.", ["a", "b"]);
  assert.throws(() => counter.inc(["only-one"]));
});
