// A command-line parser that behaves like Go's `flag` package with
// ContinueOnError: scripts written for the reference daemon (flag spellings,
// error texts, usage layout) must keep working and keep matching. Nothing here
// prints or exits; the caller turns the outcome into output and an exit code.

import { err, ok, type Result } from "../result.ts";
import { formatDuration, parseDuration } from "./duration.ts";

/** The type word Go's PrintDefaults shows after the flag name ("" for bools). */
export type FlagKind = "string" | "bool" | "duration" | "int" | "value";

/** One registered flag, in the shape of Go's `flag.Flag`. */
export interface Flag {
  readonly name: string;
  readonly kind: FlagKind;
  readonly usage: string;
  /** Go's `DefValue`: the default rendered by the value's String(). */
  readonly defValue: string;
  /** String() of the type's zero value: a default equal to it is not printed in usage. */
  readonly zeroValue: string;
  /** Parses and stores `text`; the error is Go's text (the part after the colon). */
  set(text: string): Result<void>;
}

/** A typed handle on a registered flag's current value. */
export interface FlagRef<T> {
  readonly name: string;
  readonly value: T;
}

/** A custom flag type, like a Go `flag.Value` registered with `Var`. */
export interface ValueSpec<T> {
  initial: T;
  /** Go's String() of the value. */
  format(value: T): string;
  /** String() of the type's zero value (decides whether usage shows the default). */
  zeroText: string;
  parse(text: string): Result<T>;
}

export type ParseOutcome =
  /** `rest`: the arguments left after the flags (Go's `FlagSet.Args()`). */
  | { kind: "ok"; rest: string[] }
  /** `-h`, `-help` or `--help` when no such flag is defined (Go's ErrHelp). */
  | { kind: "help" }
  /** `message` is the line Go prints before the usage. */
  | { kind: "error"; message: string };

/** Go's `errParse`, the error every built-in flag type reports for bad syntax. */
export const PARSE_ERROR = "parse error";
/** Go's `errRange`, reported by integer flags. */
export const RANGE_ERROR = "value out of range";

/** Go's `strconv.ParseBool`. */
export function parseGoBool(text: string): Result<boolean> {
  switch (text) {
    case "1":
    case "t":
    case "T":
    case "true":
    case "TRUE":
    case "True":
      return ok(true);
    case "0":
    case "f":
    case "F":
    case "false":
    case "FALSE":
    case "False":
      return ok(false);
  }
  return err("invalid syntax");
}

const UINT64_MAX = (1n << 64n) - 1n;
const INT64_CUTOFF = 1n << 63n;

/** Go's strconv.underscoreOK: underscores only between digits (or after a base prefix). */
function underscoreOK(s: string): boolean {
  let saw = "^";
  let i = 0;
  if (s.length >= 1 && (s[0] === "-" || s[0] === "+")) s = s.slice(1);
  let hex = false;
  if (s.length >= 2 && s[0] === "0" && "box".includes(asciiLower(s[1]))) {
    i = 2;
    saw = "0";
    hex = asciiLower(s[1]) === "x";
  }
  for (; i < s.length; i++) {
    const c = s[i];
    if ((c >= "0" && c <= "9") || (hex && asciiLower(c) >= "a" && asciiLower(c) <= "f")) {
      saw = "0";
      continue;
    }
    if (c === "_") {
      if (saw !== "0") return false;
      saw = "_";
      continue;
    }
    if (saw === "_") return false;
    saw = "!";
  }
  return saw !== "_";
}

/** Go's `lower` on one byte: ASCII letters fold, nothing else can become a letter. */
function asciiLower(c: string): string {
  const code = c.charCodeAt(0);
  return c.length === 1 && code < 0x80 ? String.fromCharCode(code | 0x20) : c;
}

/** Why strconv refuses a number: not a number at all, or out of range. */
export type NumError = "syntax" | "range";

/** Go's `strconv.ParseUint(s, 0, 64)`. */
function parseGoUint(s: string): Result<bigint, NumError> {
  if (s === "") return err("syntax");
  const original = s;
  let base = 10n;
  if (s[0] === "0") {
    const prefix = s.length >= 3 ? asciiLower(s[1]) : "";
    if (prefix === "b" || prefix === "o" || prefix === "x") {
      base = prefix === "b" ? 2n : prefix === "o" ? 8n : 16n;
      s = s.slice(2);
    } else {
      base = 8n;
      s = s.slice(1);
    }
  }
  let n = 0n;
  let underscores = false;
  for (const c of s) {
    const lower = asciiLower(c);
    let d: bigint;
    if (c === "_") {
      underscores = true;
      continue;
    } else if (c >= "0" && c <= "9") {
      d = BigInt(c.charCodeAt(0) - 48);
    } else if (lower.length === 1 && lower >= "a" && lower <= "z") {
      d = BigInt(lower.charCodeAt(0) - 87);
    } else {
      return err("syntax");
    }
    if (d >= base) return err("syntax");
    // Go reports overflow as soon as it happens, before looking at later characters.
    n = n * base + d;
    if (n > UINT64_MAX) return err("range");
  }
  if (underscores && !underscoreOK(original)) return err("syntax");
  return ok(n);
}

/** Go's `strconv.ParseInt(s, 0, 64)`: decimal, 0x/0o/0b/0 prefixes, `_` separators. */
export function parseGoInt(text: string): Result<bigint, NumError> {
  if (text === "") return err("syntax");
  let s = text;
  let neg = false;
  if (s[0] === "+") s = s.slice(1);
  else if (s[0] === "-") {
    neg = true;
    s = s.slice(1);
  }
  const parsed = parseGoUint(s);
  if (!parsed.ok) return parsed;
  const un = parsed.value;
  if (!neg && un >= INT64_CUTOFF) return err("range");
  if (neg && un > INT64_CUTOFF) return err("range");
  return ok(neg ? -un : un);
}

// Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and ASCII space.
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;

/** Go's `%q` / `strconv.Quote` for a string. */
export function goQuote(text: string): string {
  let out = '"';
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    switch (ch) {
      case '"':
        out += '\\"';
        continue;
      case "\\":
        out += "\\\\";
        continue;
      case "\x07":
        out += "\\a";
        continue;
      case "\b":
        out += "\\b";
        continue;
      case "\f":
        out += "\\f";
        continue;
      case "\n":
        out += "\\n";
        continue;
      case "\r":
        out += "\\r";
        continue;
      case "\t":
        out += "\\t";
        continue;
      case "\v":
        out += "\\v";
        continue;
    }
    if (PRINTABLE.test(ch)) {
      out += ch;
    } else if (cp < 0x20 || cp === 0x7f) {
      out += "\\x" + cp.toString(16).padStart(2, "0");
    } else if (cp >= 0xd800 && cp <= 0xdfff) {
      // A lone surrogate is not a valid rune; Go would show the replacement character.
      out += "\\ufffd";
    } else if (cp < 0x10000) {
      out += "\\u" + cp.toString(16).padStart(4, "0");
    } else {
      out += "\\U" + cp.toString(16).padStart(8, "0");
    }
  }
  return out + '"';
}

/** Go's flag.UnquoteUsage: a back-quoted word in the usage names the argument. */
function unquoteUsage(flag: Flag): { name: string; usage: string } {
  const usage = flag.usage;
  const start = usage.indexOf("`");
  if (start >= 0) {
    const end = usage.indexOf("`", start + 1);
    if (end >= 0) {
      const name = usage.slice(start + 1, end);
      return { name, usage: usage.slice(0, start) + name + usage.slice(end + 1) };
    }
  }
  return { name: flag.kind === "bool" ? "" : flag.kind, usage };
}

export class FlagSet {
  readonly name: string;
  readonly #formal = new Map<string, Flag>();
  readonly #actual = new Set<string>();

  constructor(name: string) {
    this.name = name;
  }

  /** Go's `Var`: registers any flag; redefinition is a programming error, as in Go. */
  define(flag: Flag): void {
    if (this.#formal.has(flag.name)) throw new Error(`${this.name} flag redefined: ${flag.name}`);
    this.#formal.set(flag.name, flag);
  }

  string(name: string, initial: string, usage: string): FlagRef<string> {
    return this.#typed(name, "string", usage, {
      initial,
      format: (v) => v,
      zeroText: "",
      parse: (text) => ok(text),
    });
  }

  bool(name: string, initial: boolean, usage: string): FlagRef<boolean> {
    return this.#typed(name, "bool", usage, {
      initial,
      format: (v) => String(v),
      zeroText: "false",
      parse: (text) => {
        const value = parseGoBool(text);
        return value.ok ? value : err(PARSE_ERROR);
      },
    });
  }

  /** A Go `time.Duration` flag, in nanoseconds. */
  duration(name: string, initial: bigint, usage: string): FlagRef<bigint> {
    return this.#typed(name, "duration", usage, {
      initial,
      format: formatDuration,
      zeroText: "0s",
      parse: (text) => {
        const value = parseDuration(text);
        return value.ok ? value : err(PARSE_ERROR);
      },
    });
  }

  /**
   * A Go `int` flag (64-bit). `validate` adds a range rule of our own; its
   * message becomes the part after `invalid value "X" for flag -name: `.
   */
  int(
    name: string,
    initial: number,
    usage: string,
    validate?: (value: number) => string | undefined,
  ): FlagRef<number> {
    return this.#typed(name, "int", usage, {
      initial,
      format: (v) => String(v),
      zeroText: "0",
      parse: (text) => {
        const parsed = parseGoInt(text);
        if (!parsed.ok) return err(parsed.error === "syntax" ? PARSE_ERROR : RANGE_ERROR);
        const value = Number(parsed.value);
        const error = validate?.(value);
        return error === undefined ? ok(value) : err(error);
      },
    });
  }

  /** Go's `Var` with a custom value type; usage shows it as `value`. */
  value<T>(name: string, spec: ValueSpec<T>, usage: string): FlagRef<T> {
    return this.#typed(name, "value", usage, spec);
  }

  #typed<T>(name: string, kind: FlagKind, usage: string, spec: ValueSpec<T>): FlagRef<T> {
    let current = spec.initial;
    this.define({
      name,
      kind,
      usage,
      defValue: spec.format(spec.initial),
      zeroValue: spec.zeroText,
      set: (text) => {
        const result = spec.parse(text);
        if (!result.ok) return result;
        current = result.value;
        return ok(undefined);
      },
    });
    return {
      name,
      get value(): T {
        return current;
      },
    };
  }

  lookup(name: string): Flag | undefined {
    return this.#formal.get(name);
  }

  /** Whether the flag was given on the command line (Go's `actual` map), even with its default. */
  isSet(name: string): boolean {
    return this.#actual.has(name);
  }

  /** Go's `FlagSet.Parse`, stopping at the first error. */
  parse(args: readonly string[]): ParseOutcome {
    const rest = [...args];
    for (;;) {
      const step = this.#parseOne(rest);
      if (step === "done") return { kind: "ok", rest };
      if (step !== "more") return step;
    }
  }

  /** Go's `parseOne`; consumes from `args` in place. */
  #parseOne(args: string[]): "done" | "more" | ParseOutcome {
    if (args.length === 0) return "done";
    const s = args[0];
    if (s.length < 2 || s[0] !== "-") return "done";
    let minuses = 1;
    if (s[1] === "-") {
      minuses = 2;
      if (s.length === 2) {
        args.shift();
        return "done";
      }
    }
    let name = s.slice(minuses);
    if (name.length === 0 || name[0] === "-" || name[0] === "=") {
      return { kind: "error", message: `bad flag syntax: ${s}` };
    }
    args.shift();
    let value: string | undefined;
    const eq = name.indexOf("=", 1);
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const flag = this.#formal.get(name);
    if (flag === undefined) {
      if (name === "help" || name === "h") return { kind: "help" };
      return { kind: "error", message: `flag provided but not defined: -${name}` };
    }
    if (flag.kind === "bool") {
      const set = flag.set(value ?? "true");
      if (!set.ok) {
        return {
          kind: "error",
          message: value === undefined
            ? `invalid boolean flag ${name}: ${set.error}`
            : `invalid boolean value ${goQuote(value)} for -${name}: ${set.error}`,
        };
      }
    } else {
      // The next argument is the value even if it looks like a flag, as in Go.
      if (value === undefined && args.length > 0) value = args.shift();
      if (value === undefined) {
        return { kind: "error", message: `flag needs an argument: -${name}` };
      }
      const set = flag.set(value);
      if (!set.ok) {
        return {
          kind: "error",
          message: `invalid value ${goQuote(value)} for flag -${name}: ${set.error}`,
        };
      }
    }
    this.#actual.add(name);
    return "more";
  }

  /** Go's `PrintDefaults` output: every flag, sorted by name. */
  defaults(): string {
    const names = [...this.#formal.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    let out = "";
    for (const name of names) {
      const flag = this.#formal.get(name);
      if (flag === undefined) continue;
      const { name: typeWord, usage } = unquoteUsage(flag);
      let line = `  -${flag.name}`;
      if (typeWord.length > 0) line += ` ${typeWord}`;
      // Go keeps one-letter bool flags on one line; everything else gets its own usage line.
      line += line.length <= 4 ? "\t" : "\n    \t";
      line += usage.replaceAll("\n", "\n    \t");
      if (flag.defValue !== flag.zeroValue) {
        line += flag.kind === "string"
          ? ` (default ${goQuote(flag.defValue)})`
          : ` (default ${flag.defValue})`;
      }
      out += line + "\n";
    }
    return out;
  }

  /** Go's default usage message: `Usage of NAME:` and the defaults. */
  usage(): string {
    return `Usage of ${this.name}:\n${this.defaults()}`;
  }
}
