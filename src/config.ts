// nsqlookupd's command line and config file, resolved into Options the way the
// reference resolves them: flags parsed first (errors exit 2), --version next,
// then the TOML file, then per option "flag given > file key > default".
// Pure apart from the injected file reader, so every rule is unit-testable.

import { parse as parseToml, TomlError } from "smol-toml";
import type { TomlTable, TomlValue } from "smol-toml";
import { MAX_DURATION, MIN_DURATION, msToNs, nsToMs, parseDuration } from "./gocompat/duration.ts";
import { FlagSet, goQuote, parseGoBool } from "./gocompat/flags.ts";
import type { FlagRef } from "./gocompat/flags.ts";
import { LOG_LEVEL_NAMES, logLevelName, parseLogLevel } from "./ops/logger.ts";
import type { LogFormat, LogLevel } from "./ops/logger.ts";
import { defaultOptions } from "./options.ts";
import type { Options } from "./options.ts";
import { versionLine } from "./version.ts";

export const PROGRAM_NAME = "nsqlookupd";

export const LOG_FORMAT_NAMES = "text, json";

/** Case-insensitive, like log levels. */
export function parseLogFormat(text: string): LogFormat | undefined {
  const lower = text.toLowerCase();
  return lower === "text" || lower === "json" ? lower : undefined;
}

function logLevelError(text: string): string {
  // The reference's lg.ParseLogLevel wording.
  return `invalid log level '${text}' (${LOG_LEVEL_NAMES})`;
}

function logFormatError(text: string): string {
  return `invalid log format '${text}' (${LOG_FORMAT_NAMES})`;
}

function identifySizeError(size: number): string | undefined {
  // Beyond 2^53 the number would silently change; nobody means such a size anyway.
  if (!Number.isSafeInteger(size)) return "value out of range";
  return size > 0 ? undefined : "must be a positive number of bytes";
}

export interface NsqlookupdFlags {
  readonly set: FlagSet;
  readonly config: FlagRef<string>;
  readonly version: FlagRef<boolean>;
  readonly verbose: FlagRef<boolean>;
  readonly logLevel: FlagRef<LogLevel>;
  readonly logPrefix: FlagRef<string>;
  readonly logFormat: FlagRef<LogFormat>;
  readonly tcpAddress: FlagRef<string>;
  readonly httpAddress: FlagRef<string>;
  readonly broadcastAddress: FlagRef<string>;
  /** Nanoseconds. */
  readonly inactiveProducerTimeout: FlagRef<bigint>;
  /** Nanoseconds. */
  readonly tombstoneLifetime: FlagRef<bigint>;
  readonly maxIdentifySize: FlagRef<number>;
  readonly legacyHttpApi: FlagRef<boolean>;
}

/** The reference's flag set (names, usage strings, defaults) plus our additions. */
export function createFlags(hostname: string): NsqlookupdFlags {
  const d = defaultOptions(hostname);
  const set = new FlagSet(PROGRAM_NAME);
  return {
    set,
    config: set.string("config", "", "path to config file"),
    version: set.bool("version", false, "print version string"),
    logLevel: set.value<LogLevel>("log-level", {
      initial: d.logLevel,
      format: logLevelName,
      // Go's LogLevel zero value prints as "invalid", so the default is always shown.
      zeroText: "invalid",
      parse: (text) => {
        const value = parseLogLevel(text);
        return value === undefined
          ? { ok: false, error: logLevelError(text) }
          : { ok: true, value };
      },
    }, "set log verbosity: debug, info, warn, error, or fatal"),
    logPrefix: set.string("log-prefix", d.logPrefix, "log message prefix"),
    verbose: set.bool("verbose", false, "[deprecated] has no effect, use --log-level"),
    tcpAddress: set.string(
      "tcp-address",
      d.tcpAddress,
      "<addr>:<port> to listen on for TCP clients",
    ),
    httpAddress: set.string(
      "http-address",
      d.httpAddress,
      "<addr>:<port> to listen on for HTTP clients",
    ),
    broadcastAddress: set.string(
      "broadcast-address",
      d.broadcastAddress,
      "address of this lookupd node, (default to the OS hostname)",
    ),
    inactiveProducerTimeout: set.duration(
      "inactive-producer-timeout",
      msToNs(d.inactiveProducerTimeoutMs),
      "duration of time a producer will remain in the active list since its last ping",
    ),
    tombstoneLifetime: set.duration(
      "tombstone-lifetime",
      msToNs(d.tombstoneLifetimeMs),
      "duration of time a producer will remain tombstoned if registration remains",
    ),
    maxIdentifySize: set.int(
      "max-identify-size",
      d.maxIdentifySize,
      "largest IDENTIFY body in bytes accepted from a TCP client",
      identifySizeError,
    ),
    legacyHttpApi: set.bool(
      "legacy-http-api",
      d.legacyHttpApi,
      "serve the NSQ 0.x HTTP API (wrapped responses, GET on mutating routes, old route names) " +
        "to clients that do not ask for v1",
    ),
    logFormat: set.value<LogFormat>("log-format", {
      initial: d.logFormat,
      format: (v) => v,
      zeroText: "",
      parse: (text) => {
        const value = parseLogFormat(text);
        return value === undefined
          ? { ok: false, error: logFormatError(text) }
          : { ok: true, value };
      },
    }, "log line format: text or json"),
  };
}

/** The full `-h` text: `Usage of nsqlookupd:` and every flag. */
export function usageText(hostname: string): string {
  return createFlags(hostname).set.usage();
}

export interface CliEnv {
  /** The OS hostname: the default broadcast address. */
  hostname: string;
  /** Reads the config file; throws when it cannot. */
  readTextFile(path: string): string;
}

export type CliResult =
  | { kind: "run"; options: Options; warnings: string[] }
  | {
    kind: "exit";
    code: 0 | 1 | 2;
    stdout?: string;
    stderr?: string;
    /** Message for the logger's FATAL line (it adds prefix, time and level). */
    fatal?: string;
    /** How to log `fatal`: the command line's log format (or its default). */
    log?: { format: LogFormat };
  };

/** Flags that exist only on the command line; the reference never reads them from the file. */
const COMMAND_LINE_ONLY: ReadonlySet<string> = new Set(["config", "version", "verbose"]);

function configKey(flagName: string): string {
  return flagName.replaceAll("-", "_");
}

function tomlTypeName(value: TomlValue): string {
  if (typeof value === "string") return "string";
  if (typeof value === "bigint") return "integer";
  if (typeof value === "number") return "float";
  if (typeof value === "boolean") return "boolean";
  if (Array.isArray(value)) return "array";
  if (value instanceof Date) return "date-time";
  return "table";
}

/** Roughly how Go's `%v` shows a decoded TOML value, for the log_level message. */
function goValueText(value: TomlValue): string {
  if (typeof value === "string") return value;
  if (typeof value !== "object") return String(value);
  if (Array.isArray(value)) return `[${value.map(goValueText).join(" ")}]`;
  if (value instanceof Date) return value.toISOString();
  const table = value as TomlTable;
  return `map[${Object.keys(table).sort().map((k) => `${k}:${goValueText(table[k])}`).join(" ")}]`;
}

type Coerced<T> = { ok: true; value: T } | { ok: false; error: string };

function wrongType(value: TomlValue, wanted: string): { ok: false; error: string } {
  return { ok: false, error: `expected ${wanted}, got ${tomlTypeName(value)}` };
}

function coerceString(value: TomlValue): Coerced<string> {
  return typeof value === "string" ? { ok: true, value } : wrongType(value, "a string");
}

function coerceBool(value: TomlValue): Coerced<boolean> {
  if (typeof value === "boolean") return { ok: true, value };
  if (typeof value === "string") {
    const parsed = parseGoBool(value);
    if (parsed.ok) return parsed;
    return { ok: false, error: `${goQuote(value)} is not a boolean` };
  }
  return wrongType(value, "a boolean");
}

/** A duration string with units, or an integer of milliseconds (the reference's rule). */
function coerceDuration(value: TomlValue): Coerced<bigint> {
  if (typeof value === "string") {
    const ns = parseDuration(value);
    if (ns.ok) return ns;
    return {
      ok: false,
      error: `${goQuote(value)} is not a duration (a number with a unit such as "300s" or ` +
        `"5m", or an integer of milliseconds)`,
    };
  }
  if (typeof value === "bigint") {
    const ns = value * 1_000_000n;
    if (ns > MAX_DURATION || ns < MIN_DURATION) {
      return { ok: false, error: `${value} milliseconds is out of range` };
    }
    return { ok: true, value: ns };
  }
  return wrongType(value, "a duration string or an integer of milliseconds");
}

function coerceIdentifySize(value: TomlValue): Coerced<number> {
  if (typeof value !== "bigint") return wrongType(value, "an integer");
  const size = Number(value);
  const error = identifySizeError(size);
  return error === undefined ? { ok: true, value: size } : { ok: false, error };
}

function coerceLogFormat(value: TomlValue): Coerced<LogFormat> {
  if (typeof value !== "string") return wrongType(value, "a string");
  const format = parseLogFormat(value);
  return format === undefined
    ? { ok: false, error: logFormatError(value) }
    : { ok: true, value: format };
}

function firstLine(text: string): string {
  return text.split(/\r?\n/, 1)[0].trim();
}

function describeError(err: unknown): string {
  if (err instanceof TomlError) {
    const reason = firstLine(err.message).replace(/^Invalid TOML document: /, "");
    return `toml: line ${err.line}, column ${err.column}: ${reason}`;
  }
  return firstLine(err instanceof Error ? err.message : String(err));
}

class FatalConfigError extends Error {}

/**
 * Parses the command line and config file into Options, or says how to exit:
 * help (0), --version (0, stdout), a flag error (2, stderr + usage) or a fatal
 * config problem (1, `fatal` for the logger).
 */
export function resolveCommandLine(args: readonly string[], env: CliEnv): CliResult {
  const flags = createFlags(env.hostname);
  const outcome = flags.set.parse(args);
  if (outcome.kind === "help") return { kind: "exit", code: 0, stderr: flags.set.usage() };
  if (outcome.kind === "error") {
    return { kind: "exit", code: 2, stderr: `${outcome.message}\n${flags.set.usage()}` };
  }
  if (flags.version.value) return { kind: "exit", code: 0, stdout: versionLine() + "\n" };

  const path = flags.config.value;
  let file: TomlTable | undefined;
  if (path !== "") {
    try {
      file = parseToml(env.readTextFile(path), { integersAsBigInt: true });
    } catch (err) {
      return {
        kind: "exit",
        code: 1,
        fatal: `failed to load config file ${path} - ${describeError(err)}`,
        log: { format: flags.logFormat.value },
      };
    }
  }

  try {
    return {
      kind: "run",
      options: resolveOptions(flags, file, path),
      warnings: warnings(flags, file, path),
    };
  } catch (err) {
    if (err instanceof FatalConfigError) {
      return {
        kind: "exit",
        code: 1,
        fatal: err.message,
        log: { format: flags.logFormat.value },
      };
    }
    throw err;
  }
}

function resolveOptions(
  flags: NsqlookupdFlags,
  file: TomlTable | undefined,
  path: string,
): Options {
  // The reference validates log_level in the file before anything else, and
  // even when --log-level overrides it.
  let fileLogLevel: LogLevel | undefined;
  if (file !== undefined && Object.hasOwn(file, "log_level")) {
    const raw = file["log_level"];
    fileLogLevel = typeof raw === "string" ? parseLogLevel(raw) : undefined;
    if (fileLogLevel === undefined) {
      throw new FatalConfigError(`failed parsing log_level ${goValueText(raw)}`);
    }
  }

  const pick = <T>(ref: FlagRef<T>, coerce: (value: TomlValue) => Coerced<T>): T => {
    if (flags.set.isSet(ref.name)) return ref.value;
    const key = configKey(ref.name);
    if (file === undefined || !Object.hasOwn(file, key)) return ref.value;
    const result = coerce(file[key]);
    if (!result.ok) {
      throw new FatalConfigError(
        `failed to load config file ${path} - invalid value for ${key}: ${result.error}`,
      );
    }
    return result.value;
  };

  return {
    logLevel: flags.set.isSet("log-level")
      ? flags.logLevel.value
      : fileLogLevel ?? flags.logLevel.value,
    logPrefix: pick(flags.logPrefix, coerceString),
    logFormat: pick(flags.logFormat, coerceLogFormat),
    tcpAddress: pick(flags.tcpAddress, coerceString),
    httpAddress: pick(flags.httpAddress, coerceString),
    broadcastAddress: pick(flags.broadcastAddress, coerceString),
    inactiveProducerTimeoutMs: nsToMs(pick(flags.inactiveProducerTimeout, coerceDuration)),
    tombstoneLifetimeMs: nsToMs(pick(flags.tombstoneLifetime, coerceDuration)),
    maxIdentifySize: pick(flags.maxIdentifySize, coerceIdentifySize),
    legacyHttpApi: pick(flags.legacyHttpApi, coerceBool),
  };
}

/** One warning naming every key that is no flag of ours (the reference ignores them silently). */
function warnings(flags: NsqlookupdFlags, file: TomlTable | undefined, path: string): string[] {
  if (file === undefined) return [];
  const unknown = Object.keys(file).filter((key) => {
    const flag = flags.set.lookup(key.replaceAll("_", "-"));
    // Dashed spellings are not config keys, even though they name a flag.
    return flag === undefined || key.includes("-");
  }).filter((key) => !COMMAND_LINE_ONLY.has(key));
  return unknown.length === 0
    ? []
    : [`config file ${path}: ignoring unknown keys: ${unknown.join(", ")}`];
}
