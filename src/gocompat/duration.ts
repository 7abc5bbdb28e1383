// Go's time.ParseDuration and time.Duration.String(), reproduced step by step
// (including the float64 arithmetic for fractions) so that every flag value and
// config string means exactly what it means to the reference daemon.

import { err, ok, type Result } from "../result.ts";

const NANOSECOND = 1n;
const MICROSECOND = 1000n * NANOSECOND;
const MILLISECOND = 1000n * MICROSECOND;
const SECOND = 1000n * MILLISECOND;
const MINUTE = 60n * SECOND;
const HOUR = 60n * MINUTE;

/** 1<<63: one past the largest int64, but the magnitude of the smallest. */
const TWO_63 = 1n << 63n;
export const MAX_DURATION = TWO_63 - 1n;
export const MIN_DURATION = -TWO_63;

const UNITS: ReadonlyMap<string, bigint> = new Map([
  ["ns", NANOSECOND],
  ["us", MICROSECOND],
  ["\u00b5s", MICROSECOND], // micro sign
  ["\u03bcs", MICROSECOND], // Greek small letter mu
  ["ms", MILLISECOND],
  ["s", SECOND],
  ["m", MINUTE],
  ["h", HOUR],
]);

function isDigit(c: string): boolean {
  return c >= "0" && c <= "9";
}

/** Go's leadingInt: undefined on uint64 overflow past 1<<63. */
function leadingInt(s: string): { x: bigint; rest: string } | undefined {
  let i = 0;
  let x = 0n;
  for (; i < s.length && isDigit(s[i]); i++) {
    if (x > TWO_63 / 10n) return undefined;
    x = x * 10n + BigInt(s.charCodeAt(i) - 48);
    if (x > TWO_63) return undefined;
  }
  return { x, rest: s.slice(i) };
}

/**
 * Go's leadingFraction: digits past int64 precision are consumed but ignored,
 * and `scale` is a float64 built by repeated multiplication, as in Go.
 */
function leadingFraction(s: string): { f: bigint; scale: number; rest: string } {
  let i = 0;
  let f = 0n;
  let scale = 1;
  let overflow = false;
  for (; i < s.length && isDigit(s[i]); i++) {
    if (overflow) continue;
    if (f > (TWO_63 - 1n) / 10n) {
      overflow = true;
      continue;
    }
    const y = f * 10n + BigInt(s.charCodeAt(i) - 48);
    if (y > TWO_63) {
      overflow = true;
      continue;
    }
    f = y;
    scale *= 10;
  }
  return { f, scale, rest: s.slice(i) };
}

const INVALID = err("invalid duration");

/**
 * Go's `time.ParseDuration`: nanoseconds, or an error where Go returns one
 * (bad syntax, missing or unknown unit, int64 overflow).
 */
export function parseDuration(text: string): Result<bigint> {
  let s = text;
  let neg = false;
  if (s !== "" && (s[0] === "-" || s[0] === "+")) {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "0") return ok(0n);
  if (s === "") return INVALID;
  let d = 0n;
  while (s !== "") {
    if (!(s[0] === "." || isDigit(s[0]))) return INVALID;
    const before = s.length;
    const int = leadingInt(s);
    if (int === undefined) return INVALID;
    let v = int.x;
    s = int.rest;
    const pre = before !== s.length;

    let f = 0n;
    let scale = 1;
    let post = false;
    if (s !== "" && s[0] === ".") {
      s = s.slice(1);
      const afterDot = s.length;
      const frac = leadingFraction(s);
      f = frac.f;
      scale = frac.scale;
      s = frac.rest;
      post = afterDot !== s.length;
    }
    if (!pre && !post) return INVALID;

    let i = 0;
    while (i < s.length && !(s[i] === "." || isDigit(s[i]))) i++;
    if (i === 0) return INVALID;
    const unit = UNITS.get(s.slice(0, i));
    s = s.slice(i);
    if (unit === undefined) return INVALID;

    if (v > TWO_63 / unit) return INVALID;
    v *= unit;
    if (f > 0n) {
      // Same float64 operations in the same order as Go, so rounding matches.
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > TWO_63) return INVALID;
    }
    d += v;
    if (d > TWO_63) return INVALID;
  }
  if (neg) return ok(-d);
  if (d > MAX_DURATION) return INVALID;
  return ok(d);
}

/** Go's fmtFrac: digits of v/10**prec after the point, trailing zeros (and the point) omitted. */
function fmtFrac(v: bigint, prec: number): { text: string; v: bigint } {
  let text = "";
  let print = false;
  for (let i = 0; i < prec; i++) {
    const digit = v % 10n;
    print = print || digit !== 0n;
    if (print) text = String(digit) + text;
    v /= 10n;
  }
  return { text: print ? "." + text : "", v };
}

/**
 * Go's `time.Duration.String()` ("5m0s", "1.5s", "250ms", "1µs", "0s").
 * Values outside int64 are clamped, since Go cannot hold them either.
 */
export function formatDuration(ns: bigint): string {
  const d = ns > MAX_DURATION ? MAX_DURATION : ns < MIN_DURATION ? MIN_DURATION : ns;
  const neg = d < 0n;
  let u = neg ? -d : d;
  let out: string;
  if (u < SECOND) {
    if (u === 0n) return "0s";
    let prec: number;
    let unit: string;
    if (u < MICROSECOND) {
      prec = 0;
      unit = "ns";
    } else if (u < MILLISECOND) {
      prec = 3;
      unit = "\u00b5s";
    } else {
      prec = 6;
      unit = "ms";
    }
    const frac = fmtFrac(u, prec);
    out = String(frac.v) + frac.text + unit;
  } else {
    const frac = fmtFrac(u, 9);
    u = frac.v;
    out = String(u % 60n) + frac.text + "s";
    u /= 60n;
    if (u > 0n) {
      out = String(u % 60n) + "m" + out;
      u /= 60n;
      // Go stops at hours because days vary in length.
      if (u > 0n) out = String(u) + "h" + out;
    }
  }
  return neg ? "-" + out : out;
}

/** Nanoseconds to (fractional) milliseconds, exact for the integer part. */
export function nsToMs(ns: bigint): number {
  return Number(ns / MILLISECOND) + Number(ns % MILLISECOND) / 1e6;
}

/** Milliseconds (fractional allowed) to nanoseconds, rounded to the nearest nanosecond. */
export function msToNs(ms: number): bigint {
  const whole = Math.trunc(ms);
  return BigInt(whole) * MILLISECOND + BigInt(Math.round((ms - whole) * 1e6));
}
