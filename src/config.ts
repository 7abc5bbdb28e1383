// nsqlookupd's command line and config file, resolved into Options the way the
// reference resolves them: flags parsed first (errors exit 2), --version next,
// then the TOML file, then per option "flag given > file key > default".
// Pure apart from the injected file reader, so every rule is unit-testable.

// Type-only: the parser itself is loaded by loadTomlParser(), only for runs with --config.
import type { Network } from "./access/networks.ts";
import {
  formatNetworks,
  parseAuthAddress,
  parseNetworkItems,
  parseTlsVersion,
  type TlsVersion,
  tlsVersionError,
} from "./access/settings.ts";
import type { TomlTable, TomlValue } from "smol-toml";
import { MAX_DURATION, MIN_DURATION, msToNs, nsToMs, parseDuration } from "./gocompat/duration.ts";
import { FlagSet, goQuote, parseGoBool } from "./gocompat/flags.ts";
import type { FlagRef, ParseOutcome } from "./gocompat/flags.ts";
import { LOG_LEVEL_NAMES, logLevelName, parseLogLevel } from "./ops/logger.ts";
import type { LogFormat, LogLevel } from "./ops/logger.ts";
import { defaultOptions } from "./options.ts";
import type { Options } from "./options.ts";
import { err, ok, type Result } from "./result.ts";
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

function shareError(percent: number): string | undefined {
  return percent >= 1 && percent <= 100 ? undefined : "must be a percentage from 1 to 100";
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
  readonly maxSharePerHost: FlagRef<number>;
  readonly legacyHttpApi: FlagRef<boolean>;
  readonly producerNetworks: FlagRef<readonly Network[] | undefined>;
  readonly adminNetworks: FlagRef<readonly Network[] | undefined>;
  readonly authHttpAddresses: FlagRef<readonly string[] | undefined>;
  /** Nanoseconds. */
  readonly httpClientRequestTimeout: FlagRef<bigint>;
  readonly httpsAddress: FlagRef<string>;
  readonly tlsCert: FlagRef<string>;
  readonly tlsKey: FlagRef<string>;
  readonly tlsMinVersion: FlagRef<TlsVersion>;
}

/**
 * A repeatable flag (Go's StringArray pattern): each occurrence adds its
 * items; unset, its value is undefined.
 */
function listFlag<T>(
  set: FlagSet,
  name: string,
  usage: string,
  parse: (text: string) => Result<readonly T[]>,
  format: (items: readonly T[]) => string,
): FlagRef<readonly T[] | undefined> {
  let items: readonly T[] | undefined;
  return set.value<readonly T[] | undefined>(name, {
    initial: undefined,
    format: (v) => (v === undefined ? "" : format(v)),
    zeroText: "",
    parse: (text) => {
      const parsed = parse(text);
      if (!parsed.ok) return parsed;
      items = [...(items ?? []), ...parsed.value];
      return ok(items);
    },
  }, usage);
}

const NETWORKS_USAGE = "and to read without a secret under --auth-http-address " +
  "(IPv4 or IPv6; may be given multiple times)";

/** The reference's flag set (names, usage strings, defaults) plus our additions. */
export function createFlags(hostname: string): NsqlookupdFlags {
  const d = defaultOptions(hostname);
  const set = new FlagSet(PROGRAM_NAME);
  let minVersion = d.tlsMinVersion;
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
    maxSharePerHost: set.int(
      "max-share-per-host",
      d.maxSharePerHost,
      "percent of each connection cap (TCP, HTTP) one remote host may hold",
      shareError,
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
    producerNetworks: listFlag(
      set,
      "producer-networks",
      `CIDR[,CIDR...] allowed to connect over TCP to register (nsqd), ${NETWORKS_USAGE}`,
      (text) => parseNetworkItems([text]),
      formatNetworks,
    ),
    adminNetworks: listFlag(
      set,
      "admin-networks",
      `CIDR[,CIDR...] allowed to use the mutating routes and /debug (nsqadmin), ${NETWORKS_USAGE}`,
      (text) => parseNetworkItems([text]),
      formatNetworks,
    ),
    authHttpAddresses: listFlag(
      set,
      "auth-http-address",
      "<addr>:<port> or a full url to query auth server (may be given multiple times)",
      (text) => {
        const parsed = parseAuthAddress(text);
        return parsed.ok ? ok([parsed.value]) : parsed;
      },
      (items) => items.join(","),
    ),
    httpClientRequestTimeout: set.duration(
      "http-client-request-timeout",
      msToNs(d.httpClientRequestTimeoutMs),
      "timeout for a query to an auth server",
    ),
    httpsAddress: set.string(
      "https-address",
      d.httpsAddress,
      "<addr>:<port> to listen on for HTTPS clients (with --tls-cert and --tls-key)",
    ),
    tlsCert: set.string("tls-cert", d.tlsCert, "path to certificate file"),
    tlsKey: set.string("tls-key", d.tlsKey, "path to key file"),
    tlsMinVersion: set.value<TlsVersion>(
      "tls-min-version",
      {
        initial: d.tlsMinVersion,
        format: (v) => v,
        zeroText: "",
        // nsqd ignores an empty value; the last one given counts.
        parse: (text) => {
          if (text === "") return ok(minVersion);
          const parsed = parseTlsVersion(text);
          if (parsed.ok) minVersion = parsed.value;
          return parsed;
        },
      },
      "minimum SSL/TLS version acceptable ('ssl3.0', 'tls1.0', 'tls1.1', 'tls1.2' or 'tls1.3'; " +
        "TLS older than 1.2 is never accepted)",
    ),
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

type Coerced<T> = Result<T>;

function wrongType(
  value: TomlValue,
  wanted: string,
): { readonly ok: false; readonly error: string } {
  return err(`expected ${wanted}, got ${tomlTypeName(value)}`);
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

function coerceShare(value: TomlValue): Coerced<number> {
  if (typeof value !== "bigint") return wrongType(value, "an integer");
  const percent = Number(value);
  const error = shareError(percent);
  return error === undefined ? { ok: true, value: percent } : { ok: false, error };
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

/** A string of comma-separated items, or an array of strings. */
function stringItems(value: TomlValue): Coerced<string[]> {
  if (typeof value === "string") return ok([value]);
  if (Array.isArray(value) && value.every((item) => typeof item === "string")) {
    return ok(value as string[]);
  }
  return wrongType(value, "a string or an array of strings");
}

function coerceNetworks(value: TomlValue): Coerced<readonly Network[] | undefined> {
  const items = stringItems(value);
  return items.ok ? parseNetworkItems(items.value) : items;
}

function coerceAuthAddresses(value: TomlValue): Coerced<readonly string[] | undefined> {
  const items = stringItems(value);
  if (!items.ok) return items;
  for (const item of items.value) {
    const parsed = parseAuthAddress(item);
    if (!parsed.ok) return parsed;
  }
  return items;
}

function coerceTlsVersion(value: TomlValue): Coerced<TlsVersion> {
  return typeof value === "string" ? parseTlsVersion(value) : wrongType(value, "a string");
}

function firstLine(text: string): string {
  return text.split(/\r?\n/, 1)[0].trim();
}

function describeError(err: unknown): string {
  if (toml !== undefined && err instanceof toml.TomlError) {
    const reason = firstLine(err.message).replace(/^Invalid TOML document: /, "");
    return `toml: line ${err.line}, column ${err.column}: ${reason}`;
  }
  return firstLine(err instanceof Error ? err.message : String(err));
}

class FatalConfigError extends Error {}

let toml: typeof import("smol-toml") | undefined;

/**
 * Loads the TOML parser. It is an npm module whose loading costs start-up
 * time, so only runs with --config load it (resolveCommandLineLoading does).
 */
export async function loadTomlParser(): Promise<void> {
  toml ??= await import("smol-toml");
}

/** resolveCommandLine, after loading the TOML parser when the command line names a config file. */
export async function resolveCommandLineLoading(
  args: readonly string[],
  env: CliEnv,
): Promise<CliResult> {
  const flags = createFlags(env.hostname);
  const outcome = flags.set.parse(args);
  // --version exits before the file is read, as the reference does.
  if (outcome.kind === "ok" && flags.config.value !== "" && !flags.version.value) {
    await loadTomlParser();
  }
  return resolveParsed(flags, outcome, env);
}

/**
 * Parses the command line and config file into Options, or says how to exit:
 * help (0), --version (0, stdout), a flag error (2, stderr + usage) or a fatal
 * config problem (1, `fatal` for the logger).
 */
export function resolveCommandLine(args: readonly string[], env: CliEnv): CliResult {
  const flags = createFlags(env.hostname);
  return resolveParsed(flags, flags.set.parse(args), env);
}

function resolveParsed(
  flags: NsqlookupdFlags,
  outcome: ParseOutcome,
  env: CliEnv,
): CliResult {
  if (outcome.kind === "help") return { kind: "exit", code: 0, stderr: flags.set.usage() };
  if (outcome.kind === "error") {
    return { kind: "exit", code: 2, stderr: `${outcome.message}\n${flags.set.usage()}` };
  }
  if (flags.version.value) return { kind: "exit", code: 0, stdout: versionLine() + "\n" };

  const path = flags.config.value;
  let file: TomlTable | undefined;
  if (path !== "") {
    if (toml === undefined) {
      throw new Error("loadTomlParser() must finish before a config file is read");
    }
    const { parse } = toml;
    try {
      file = parse(env.readTextFile(path), { integersAsBigInt: true });
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
      options: resolveOptions(flags, file, path, env),
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

/** Config keys accepted beside `flag_name`: nsqd's spelling. */
const CONFIG_ALIASES: Readonly<Record<string, string>> = {
  auth_http_addresses: "auth-http-address",
};

type PickFn = <T>(ref: FlagRef<T>, coerce: (value: TomlValue) => Coerced<T>) => T;

/** "flag given > file key (or its nsqd alias) > default", a bad file value fatal. */
function picker(flags: NsqlookupdFlags, file: TomlTable | undefined, path: string): PickFn {
  return (ref, coerce) => {
    if (flags.set.isSet(ref.name) || file === undefined) return ref.value;
    const keys = [
      configKey(ref.name),
      ...Object.keys(CONFIG_ALIASES)
        .filter((alias) => CONFIG_ALIASES[alias] === ref.name),
    ].filter((k) => Object.hasOwn(file, k));
    if (keys.length === 0) return ref.value;
    if (keys.length > 1) {
      throw new FatalConfigError(
        `failed to load config file ${path} - ${keys.join(" and ")} both given`,
      );
    }
    const result = coerce(file[keys[0]]);
    if (!result.ok) {
      throw new FatalConfigError(
        `failed to load config file ${path} - invalid value for ${keys[0]}: ${result.error}`,
      );
    }
    return result.value;
  };
}

function resolveOptions(
  flags: NsqlookupdFlags,
  file: TomlTable | undefined,
  path: string,
  env: CliEnv,
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
  const pick = picker(flags, file, path);
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
    maxSharePerHost: pick(flags.maxSharePerHost, coerceShare),
    legacyHttpApi: pick(flags.legacyHttpApi, coerceBool),
    ...resolveAccess(flags, pick),
    ...resolveTls(flags, pick, (ref) => given(flags, file, ref), env),
  };
}

/** Whether a flag was given on the command line or in the file. */
function given<T>(flags: NsqlookupdFlags, file: TomlTable | undefined, ref: FlagRef<T>): boolean {
  return flags.set.isSet(ref.name) ||
    (file !== undefined && Object.hasOwn(file, configKey(ref.name)));
}

type AccessOptions = Pick<
  Options,
  "producerNetworks" | "adminNetworks" | "authHttpAddresses" | "httpClientRequestTimeoutMs"
>;

function resolveAccess(flags: NsqlookupdFlags, pick: PickFn): AccessOptions {
  const timeoutMs = nsToMs(pick(flags.httpClientRequestTimeout, coerceDuration));
  if (timeoutMs <= 0) {
    throw new FatalConfigError("--http-client-request-timeout must be above zero");
  }
  return {
    producerNetworks: pick(flags.producerNetworks, coerceNetworks),
    adminNetworks: pick(flags.adminNetworks, coerceNetworks),
    authHttpAddresses: pick(flags.authHttpAddresses, coerceAuthAddresses) ?? [],
    httpClientRequestTimeoutMs: timeoutMs,
  };
}

type TlsOptions = Pick<Options, "httpsAddress" | "tlsCert" | "tlsKey" | "tlsMinVersion" | "tls">;

/** HTTPS is on with both --tls-cert and --tls-key; their files are read here, fatal if they cannot be. */
function resolveTls(
  flags: NsqlookupdFlags,
  pick: PickFn,
  isGiven: (ref: FlagRef<string>) => boolean,
  env: CliEnv,
): TlsOptions {
  const tlsCert = pick(flags.tlsCert, coerceString);
  const tlsKey = pick(flags.tlsKey, coerceString);
  const httpsAddress = pick(flags.httpsAddress, coerceString);
  const tlsMinVersion = pick(flags.tlsMinVersion, coerceTlsVersion);
  const base = { httpsAddress, tlsCert, tlsKey, tlsMinVersion };
  if ((tlsCert === "") !== (tlsKey === "")) {
    throw new FatalConfigError("--tls-cert and --tls-key must be given together");
  }
  if (tlsCert === "") {
    if (isGiven(flags.httpsAddress)) {
      throw new FatalConfigError("--https-address needs --tls-cert and --tls-key");
    }
    return { ...base, tls: undefined };
  }
  const unsupported = tlsVersionError(tlsMinVersion);
  if (unsupported !== undefined) throw new FatalConfigError(unsupported);
  const read = (flag: string, file: string): string => {
    try {
      return env.readTextFile(file);
    } catch (error) {
      throw new FatalConfigError(`failed to read --${flag} ${file} - ${describeError(error)}`);
    }
  };
  return { ...base, tls: { cert: read("tls-cert", tlsCert), key: read("tls-key", tlsKey) } };
}

/** One warning naming every key that is no flag of ours (the reference ignores them silently). */
function warnings(flags: NsqlookupdFlags, file: TomlTable | undefined, path: string): string[] {
  if (file === undefined) return [];
  const unknown = Object.keys(file).filter((key) => {
    const flag = flags.set.lookup(CONFIG_ALIASES[key] ?? key.replaceAll("_", "-"));
    // Dashed spellings are not config keys, even though they name a flag.
    return flag === undefined || key.includes("-");
  }).filter((key) => !COMMAND_LINE_ONLY.has(key));
  return unknown.length === 0
    ? []
    : [`config file ${path}: ignoring unknown keys: ${unknown.join(", ")}`];
}
