import assert from "node:assert/strict";
import {
  formatDuration,
  MAX_DURATION,
  MIN_DURATION,
  msToNs,
  nsToMs,
  parseDuration,
} from "../../../src/gocompat/duration.ts";

const NS = 1n;
const US = 1000n * NS;
const MS = 1000n * US;
const S = 1000n * MS;
const M = 60n * S;
const H = 60n * M;

function checkParses(cases: ReadonlyArray<readonly [string, bigint]>): void {
  for (const [text, want] of cases) {
    assert.deepEqual(parseDuration(text), { ok: true, value: want }, JSON.stringify(text));
  }
}

function checkRejects(cases: readonly string[]): void {
  for (const text of cases) {
    assert.equal(parseDuration(text).ok, false, `parseDuration(${JSON.stringify(text)})`);
  }
}

// Cases below come from Go's time package tests (parseDurationTests,
// parseDurationErrorTests, durationTests) unless noted.

Deno.test("parseDuration: simple values", () => {
  checkParses([
    ["0", 0n],
    ["5s", 5n * S],
    ["30s", 30n * S],
    ["1478s", 1478n * S],
  ]);
});

Deno.test("parseDuration: sign", () => {
  checkParses([
    ["-5s", -5n * S],
    ["+5s", 5n * S],
    ["-0", 0n],
    ["+0", 0n],
  ]);
});

Deno.test("parseDuration: decimal fractions", () => {
  checkParses([
    ["5.0s", 5n * S],
    ["5.6s", 5n * S + 600n * MS],
    ["5.s", 5n * S],
    [".5s", 500n * MS],
    ["1.0s", 1n * S],
    ["1.00s", 1n * S],
    ["1.004s", 1n * S + 4n * MS],
    ["1.0040s", 1n * S + 4n * MS],
    ["100.00100s", 100n * S + 1n * MS],
  ]);
});

Deno.test("parseDuration: every unit, both micro signs", () => {
  checkParses([
    ["10ns", 10n * NS],
    ["11us", 11n * US],
    ["12\u00b5s", 12n * US],
    ["12\u03bcs", 12n * US],
    ["13ms", 13n * MS],
    ["14s", 14n * S],
    ["15m", 15n * M],
    ["16h", 16n * H],
  ]);
});

Deno.test("parseDuration: composite values", () => {
  checkParses([
    ["3h30m", 3n * H + 30n * M],
    ["10.5s4m", 4n * M + 10n * S + 500n * MS],
    ["-2m3.4s", -(2n * M + 3n * S + 400n * MS)],
    ["1h2m3s4ms5us6ns", H + 2n * M + 3n * S + 4n * MS + 5n * US + 6n * NS],
    ["39h9m14.425s", 39n * H + 9n * M + 14n * S + 425n * MS],
  ]);
});

Deno.test("parseDuration: values the daemon's users write", () => {
  // Not from Go's tables; expected values worked out by Go's algorithm.
  checkParses([
    ["1.5h", 90n * M],
    ["1h30m", 90n * M],
    ["2.5ms", 2500n * US],
    ["1.000000001s", S + 1n],
    ["-1.5s", -1500n * MS],
    ["300ms", 300n * MS],
    ["300s", 300n * S],
    ["5m0s", 5n * M],
    ["45s", 45n * S],
    ["1\u00b5s", US],
    ["1.1us", 1100n * NS],
    ["1.0000000001s", S],
  ]);
});

Deno.test("parseDuration: large values and int64 limits", () => {
  checkParses([
    ["52763797000ns", 52763797000n * NS],
    ["9007199254740993ns", (1n << 53n) + 1n],
    ["9223372036854775807ns", MAX_DURATION],
    ["9223372036854775.807us", MAX_DURATION],
    ["9223372036s854ms775us807ns", MAX_DURATION],
    ["-9223372036854775808ns", MIN_DURATION],
    ["-9223372036854775.808us", MIN_DURATION],
    ["-9223372036s854ms775us808ns", MIN_DURATION],
    ["-2562047h47m16.854775808s", MIN_DURATION],
  ]);
});

Deno.test("parseDuration: fraction digits beyond precision are dropped the Go way", () => {
  checkParses([
    ["0.3333333333333333333h", 20n * M],
    ["0.100000000000000000000h", 6n * M],
    ["0.830103483285477580700h", 49n * M + 48n * S + 372539827n * NS],
  ]);
});

Deno.test("parseDuration: malformed text is rejected", () => {
  checkRejects(["", "3", "-", "s", ".", "-.", ".s", "+.s", "1d", "\x85\x85", "\xffff"]);
  checkRejects(["hello \xffff world", "\ufffd", "\ufffd hello \ufffd world"]);
});

Deno.test("parseDuration: missing unit after a later number, spaces and junk", () => {
  checkRejects(["1ms2", "300", "1h30", " 1s", "1s ", "1 s", "1s-1s", "1..5s", "1.5.s", "++1s"]);
  checkRejects(["-+1s", "1S", "1H", "1sec", "1e3s", "0x10s", "1,5s"]);
});

Deno.test("parseDuration: overflow is rejected", () => {
  checkRejects([
    "9223372036854775810ns",
    "9223372036854775808ns",
    "-9223372036854775809ns",
    "9223372036854776us",
    "3000000h",
    "9223372036854775.808us",
    "9223372036854ms775us808ns",
    "99999999999999999999999ns",
  ]);
});

Deno.test("formatDuration: Go's durationTests", () => {
  const cases: ReadonlyArray<readonly [string, bigint]> = [
    ["0s", 0n],
    ["1ns", 1n * NS],
    ["1.1\u00b5s", 1100n * NS],
    ["2.2ms", 2200n * US],
    ["3.3s", 3300n * MS],
    ["4m5s", 4n * M + 5n * S],
    ["4m5.001s", 4n * M + 5001n * MS],
    ["5h6m7.001s", 5n * H + 6n * M + 7001n * MS],
    ["8m0.000000001s", 8n * M + 1n * NS],
    ["2562047h47m16.854775807s", MAX_DURATION],
    ["-2562047h47m16.854775808s", MIN_DURATION],
  ];
  for (const [want, ns] of cases) assert.equal(formatDuration(ns), want);
});

Deno.test("formatDuration: defaults and common values", () => {
  const cases: ReadonlyArray<readonly [string, bigint]> = [
    ["5m0s", 5n * M],
    ["45s", 45n * S],
    ["1h0m0s", H],
    ["1h30m0s", 90n * M],
    ["250ms", 250n * MS],
    ["1.5s", 1500n * MS],
    ["1\u00b5s", US],
    ["100ns", 100n * NS],
    ["1.234567ms", 1234567n * NS],
    ["-1.5s", -1500n * MS],
    ["-1ns", -1n],
    ["999.999999ms", S - 1n],
    ["1m0s", M],
    ["59.999999999s", M - 1n],
  ];
  for (const [want, ns] of cases) assert.equal(formatDuration(ns), want);
});

Deno.test("formatDuration: out-of-range values clamp to int64", () => {
  assert.equal(formatDuration(MAX_DURATION + 1n), "2562047h47m16.854775807s");
  assert.equal(formatDuration(MIN_DURATION - 1n), "-2562047h47m16.854775808s");
});

Deno.test("formatDuration and parseDuration round-trip", () => {
  const values = [0n, 1n, 999n, US, 1500n * US, 2n * S, 90n * M, 5n * H + 1n, MAX_DURATION];
  for (const ns of values) {
    assert.deepEqual(parseDuration(formatDuration(ns)), { ok: true, value: ns });
    assert.deepEqual(parseDuration(formatDuration(-ns)), { ok: true, value: -ns });
  }
});

Deno.test("nsToMs keeps sub-millisecond precision", () => {
  assert.equal(nsToMs(0n), 0);
  assert.equal(nsToMs(5n * M), 300_000);
  assert.equal(nsToMs(1500n * US), 1.5);
  assert.equal(nsToMs(1n), 0.000001);
  assert.equal(nsToMs(-1500n * US), -1.5);
});

Deno.test("msToNs converts and rounds to a nanosecond", () => {
  assert.equal(msToNs(0), 0n);
  assert.equal(msToNs(300_000), 5n * M);
  assert.equal(msToNs(1.5), 1500n * US);
  assert.equal(msToNs(0.000001), 1n);
  assert.equal(msToNs(-1.5), -1500n * US);
});
