// The one place that writes to stdout/stderr. Lines follow the reference's
// text format: `PREFIX YYYY/MM/DD HH:MM:SS.micros LEVEL: message`.
//
// Messages interpolate what clients send (request URIs, topic names,
// IDENTIFY fields, protocol magic), so every message and every string field
// is escaped here, in both formats, before it is written: no call site can
// forget it, and a client cannot start a forged line or hide text.

export type LogLevel = "debug" | "info" | "warn" | "error" | "fatal";
export type LogFormat = "text" | "json";
export type LogFields = Record<string, string | number | boolean>;

const SEVERITY: Record<LogLevel, number> = { debug: 1, info: 2, warn: 3, error: 4, fatal: 5 };
const LABEL: Record<LogLevel, string> = {
  debug: "DEBUG",
  info: "INFO",
  warn: "WARNING",
  error: "ERROR",
  fatal: "FATAL",
};

export const LOG_LEVEL_NAMES = "debug, info, warn, error, fatal";

/** Case-insensitive, as the reference's `ParseLogLevel`. */
export function parseLogLevel(text: string): LogLevel | undefined {
  const lower = text.toLowerCase();
  return lower in SEVERITY ? lower as LogLevel : undefined;
}

/** The upper-case name Go's LogLevel.String() prints (`INFO`, `WARNING`). */
export function logLevelName(level: LogLevel): string {
  return LABEL[level];
}

export interface Logger {
  readonly level: LogLevel;
  enabled(level: LogLevel): boolean;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  fatal(msg: string, fields?: LogFields): void;
}

export type LineSink = (line: string) => void;

export interface LoggerOptions {
  level: LogLevel;
  prefix: string;
  format?: LogFormat;
  sink?: LineSink;
  /** Wall clock in milliseconds since the epoch (fractional for microseconds). */
  now?: () => number;
}

/**
 * What could forge, split or hide a log line: C0 controls (tab, CR and LF
 * included), DEL, C1 controls (U+0085 is a newline to some readers), the
 * Unicode line and paragraph separators, and the bidirectional controls that
 * make a terminal show text in another order than it was written.
 */
// deno-lint-ignore no-control-regex
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const UNSAFE_ALL = new RegExp(UNSAFE.source, "g");
const NAMED_ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function escapeChar(char: string): string {
  const named = NAMED_ESCAPES[char];
  if (named !== undefined) return named;
  const code = char.charCodeAt(0);
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : `\\u${code.toString(16).padStart(4, "0")}`;
}

/**
 * `text` with every unsafe character written as an escape (`\n`, `\x1b`,
 * `\u2028`); ordinary text, non-ASCII letters included, is returned as is.
 */
export function escapeLogText(text: string): string {
  return UNSAFE.test(text) ? text.replace(UNSAFE_ALL, escapeChar) : text;
}

const encoder = new TextEncoder();

function writeAllSync(file: { writeSync(p: Uint8Array): number }, text: string): void {
  let bytes = encoder.encode(text);
  while (bytes.length > 0) {
    const n = file.writeSync(bytes);
    bytes = bytes.subarray(n);
  }
}

export function writeStdout(text: string): void {
  writeAllSync(Deno.stdout, text);
}

export function writeStderr(text: string): void {
  writeAllSync(Deno.stderr, text);
}

export const stderrSink: LineSink = (line) => writeStderr(line + "\n");

export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/** Go's log.Ldate|log.Ltime|log.Lmicroseconds in local time. */
export function formatTimestamp(ms: number): string {
  const d = new Date(Math.floor(ms));
  const micros = Math.floor(ms * 1000) % 1_000_000;
  return `${d.getFullYear()}/${pad(d.getMonth() + 1, 2)}/${pad(d.getDate(), 2)} ` +
    `${pad(d.getHours(), 2)}:${pad(d.getMinutes(), 2)}:${pad(d.getSeconds(), 2)}.${pad(micros, 6)}`;
}

/** RFC 3339 in UTC with microseconds: `2026-11-22T07:02:03.123456Z`. */
export function formatRfc3339(ms: number): string {
  const iso = new Date(Math.floor(ms)).toISOString(); // 2026-11-22T07:02:03.123Z
  const micros = Math.floor(ms * 1000) % 1_000_000;
  return `${iso.slice(0, 19)}.${pad(micros, 6)}Z`;
}

/** One JSON object per line; fields come after time, level and msg and never replace them. */
export function formatJsonLine(
  ms: number,
  level: LogLevel,
  msg: string,
  fields?: LogFields,
): string {
  const record: Record<string, string | number | boolean> = {
    time: formatRfc3339(ms),
    level,
    msg: escapeLogText(msg),
  };
  if (fields !== undefined) {
    for (const [key, value] of Object.entries(fields)) {
      if (!(key in record)) {
        record[escapeLogText(key)] = typeof value === "string" ? escapeLogText(value) : value;
      }
    }
  }
  return JSON.stringify(record);
}

export function createLogger(options: LoggerOptions): Logger {
  const threshold = SEVERITY[options.level];
  const sink = options.sink ?? stderrSink;
  const now = options.now ?? preciseNow;
  const prefix = options.prefix;
  const json = options.format === "json";
  const emit = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (SEVERITY[level] < threshold) return;
    sink(
      json
        ? formatJsonLine(now(), level, msg, fields)
        : `${prefix}${formatTimestamp(now())} ${LABEL[level]}: ${escapeLogText(msg)}`,
    );
  };
  return {
    level: options.level,
    enabled: (level) => SEVERITY[level] >= threshold,
    debug: (msg, fields) => emit("debug", msg, fields),
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
    fatal: (msg, fields) => emit("fatal", msg, fields),
  };
}
