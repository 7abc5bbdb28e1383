// `--log-format=json` (and `log_format` in the config file): one JSON object
// per line with `time` (RFC 3339, microseconds), `level`, `msg` and the
// values the text format interpolates as structured fields. The text format
// stays the reference's: `[nsqlookupd] YYYY/MM/DD HH:MM:SS.micros LEVEL: msg`.

import assert from "node:assert/strict";
import { type Daemon, startDaemon as start } from "../../src/daemon.ts";
import {
  createLogger,
  formatJsonLine,
  formatRfc3339,
  type LogFields,
  type Logger,
  type LogLevel,
  preciseNow,
} from "../../src/ops/logger.ts";
import type { Options } from "../../src/options.ts";
import {
  escapeRegExp,
  eventually,
  freePort,
  HOSTNAME,
  LOG_TIMESTAMP,
  makeTempConfig,
  peerBody,
  removeTempConfig,
  spawnDaemon,
  TcpClient,
  testOptions,
} from "../support/helpers.ts";

const LEVELS: ReadonlySet<string> = new Set(["debug", "info", "warn", "error", "fatal"]);
const TEXT_LABEL: Record<string, string> = {
  debug: "DEBUG",
  info: "INFO",
  warn: "WARNING",
  error: "ERROR",
  fatal: "FATAL",
};
const RFC3339_MICROS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const TEXT_LINE = new RegExp(
  `^\\[nsqlookupd\\] (${LOG_TIMESTAMP}) (DEBUG|INFO|WARNING|ERROR|FATAL): `,
);

type JsonRecord = Record<string, unknown>;

/** Parses one line; asserts an object whose first keys are time, level, msg. */
function parseJsonLine(line: string): JsonRecord {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    assert.fail(`not JSON: ${line} (${String(error)})`);
  }
  assert.ok(typeof value === "object" && value !== null && !Array.isArray(value), line);
  const record = value as JsonRecord;
  assert.deepEqual(Object.keys(record).slice(0, 3), ["time", "level", "msg"], line);
  assert.match(String(record.time), RFC3339_MICROS, line);
  assert.ok(!Number.isNaN(Date.parse(String(record.time))), line);
  assert.ok(LEVELS.has(String(record.level)), line);
  assert.equal(typeof record.msg, "string", line);
  for (const [key, field] of Object.entries(record)) {
    assert.ok(["string", "number", "boolean"].includes(typeof field), `${key} in ${line}`);
  }
  return record;
}

// ---- both formats of every call, at the same instant ----

interface DualLogger {
  logger: Logger;
  json: string[];
  text: string[];
}

/** A Logger that writes every call through a JSON and a text createLogger. */
function dualLogger(level: LogLevel): DualLogger {
  let instant = 0;
  const now = (): number => instant;
  const json: string[] = [];
  const text: string[] = [];
  const prefix = "[nsqlookupd] ";
  const j = createLogger({ level, prefix, format: "json", sink: (l) => json.push(l), now });
  const t = createLogger({ level, prefix, format: "text", sink: (l) => text.push(l), now });
  const both = (name: LogLevel) => (msg: string, fields?: LogFields): void => {
    instant = preciseNow();
    j[name](msg, fields);
    t[name](msg, fields);
  };
  return {
    json,
    text,
    logger: {
      level,
      enabled: j.enabled,
      debug: both("debug"),
      info: both("info"),
      warn: both("warn"),
      error: both("error"),
      fatal: both("fatal"),
    },
  };
}

interface JsonDaemon extends AsyncDisposable {
  readonly daemon: Daemon;
  readonly json: string[];
  readonly text: string[];
  readonly url: string;
  connect(): Promise<TcpClient>;
  /** Shuts down (idempotent), so that the closing lines are logged. */
  shutdown(): Promise<void>;
}

/**
 * tests/helpers.ts' startDaemon builds a text logger; this one hands the
 * daemon the dual logger above, with `logFormat: "json"` in the options.
 */
function startJsonDaemon(overrides: Partial<Options> = {}): JsonDaemon {
  const options = testOptions({ logFormat: "json", ...overrides });
  const { logger, json, text } = dualLogger(options.logLevel);
  const daemon = start(options, { logger, hostname: HOSTNAME });
  const clients: TcpClient[] = [];
  const shutdown = async (): Promise<void> => {
    for (const client of clients) client.close();
    await daemon.shutdown();
  };
  return {
    daemon,
    json,
    text,
    url: `http://127.0.0.1:${daemon.httpAddr.port}`,
    connect: async () => {
      const client = await TcpClient.connect(daemon.tcpAddr.port);
      clients.push(client);
      return client;
    },
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}

// ---- which fields each message carries ----

type Expected = Record<string, string | number | RegExp>;

interface Rule {
  readonly name: string;
  readonly pattern: RegExp;
  readonly fields: (m: RegExpExecArray) => Expected;
}

const ADDR = /^127\.0\.0\.1:\d+$/;

/** Every message the scenario can log, and the fields its JSON line must carry. */
const RULES: readonly Rule[] = [
  { name: "version", pattern: /^nsqlookupd v\d+\.\d+\.\d+ \(.+\)$/, fields: () => ({}) },
  {
    name: "listening",
    pattern: /^(?:TCP|HTTP): listening on (.+)$/,
    fields: (m) => ({ address: m[1] }),
  },
  { name: "closing", pattern: /^(?:TCP|HTTP): closing (.+)$/, fields: (m) => ({ address: m[1] }) },
  { name: "new client", pattern: /^TCP: new client\((.+)\)$/, fields: (m) => ({ client: m[1] }) },
  {
    name: "magic",
    pattern: /^CLIENT\((.+?)\): desired protocol magic '.*'$/s,
    fields: (m) => ({ client: m[1] }),
  },
  {
    name: "identify",
    pattern: /^CLIENT\((.+?)\): IDENTIFY Address:(.*) TCP:(\d+) HTTP:(\d+) Version:(.*)$/,
    fields: (m) => ({
      client: m[1],
      broadcast_address: m[2],
      tcp_port: Number(m[3]),
      http_port: Number(m[4]),
      version: m[5],
    }),
  },
  {
    name: "pinged",
    pattern: /^CLIENT\((.+?)\): pinged \(last ping \S+\)$/,
    fields: (m) => ({ client: m[1] }),
  },
  {
    name: "idle close",
    pattern: /^CLIENT\((.+?)\): closing connection - (.+)$/,
    fields: (m) => ({ client: m[1], reason: m[2] }),
  },
  {
    name: "registration",
    pattern: /^DB: client\((.+?)\) (REGISTER|UNREGISTER) category:(\w+) key:(.*) subkey:(.*)$/,
    fields: (m) => ({ client: m[1], action: m[2], category: m[3], topic: m[4], channel: m[5] }),
  },
  {
    name: "unexpected UNREGISTER",
    pattern: /^client\((.+?)\) unexpected UNREGISTER category:channel key:(.*) subkey:(.*)$/,
    fields: (m) => ({ client: m[1], category: "channel", topic: m[2], channel: m[3] }),
  },
  {
    name: "exiting ioloop",
    pattern: /^PROTOCOL\(V1\): \[(.+)\] exiting ioloop$/,
    fields: (m) => ({ client: m[1] }),
  },
  {
    name: "bad magic",
    pattern: /^client\((.+?)\) bad protocol magic '.*'$/s,
    fields: (m) => ({ client: m[1] }),
  },
  {
    name: "protocol error",
    pattern: /^\[(.+?)\] - (E_[A-Z_]+) /,
    fields: (m) => ({ client: m[1], code: m[2] }),
  },
  {
    name: "EOF before magic",
    pattern: /^failed to read protocol version - EOF$/,
    fields: () => ({ client: ADDR }),
  },
  { name: "adding topic", pattern: /^DB: adding topic\((.*)\)$/, fields: (m) => ({ topic: m[1] }) },
  {
    name: "removing topic",
    pattern: /^DB: removing topic\((.*)\)$/,
    fields: (m) => ({ topic: m[1] }),
  },
  {
    name: "adding channel",
    pattern: /^DB: adding channel\((.*)\) in topic\((.*)\)$/,
    fields: (m) => ({ channel: m[1], topic: m[2] }),
  },
  {
    name: "removing channel",
    pattern: /^DB: removing channel\((.*)\) from topic\((.*)\)$/,
    fields: (m) => ({ channel: m[1], topic: m[2] }),
  },
  {
    name: "tombstone",
    pattern: /^DB: setting tombstone for producer@(.*) of topic\((.*)\)$/,
    fields: (m) => ({ node: m[1], topic: m[2] }),
  },
  {
    name: "http request",
    pattern: /^(\d{3}) ([A-Z]+) (\S+) \((.+)\) (\S+)$/,
    fields: (m) => ({ status: Number(m[1]), method: m[2], uri: m[3], remote_addr: m[4] }),
  },
];

/** Go's time.Duration text for sub-minute values, in milliseconds. */
function goDurationMs(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ns|µs|ms|s)$/.exec(text);
  if (m === null) return text === "0s" ? 0 : undefined;
  const scale = { ns: 1e-6, "µs": 1e-3, ms: 1, s: 1000 }[m[2] as "ns" | "µs" | "ms" | "s"];
  return Number(m[1]) * scale;
}

/** The rule the message matches (exactly one), after checking its fields. */
function checkFields(record: JsonRecord, line: string): string {
  const msg = String(record.msg);
  const matches = RULES.filter((rule) => rule.pattern.test(msg));
  assert.equal(matches.length, 1, `rules matching ${JSON.stringify(msg)}: ${matches.length}`);
  const rule = matches[0];
  const m = rule.pattern.exec(msg)!;
  for (const [key, expected] of Object.entries(rule.fields(m))) {
    if (expected instanceof RegExp) assert.match(String(record[key]), expected, `${key}: ${line}`);
    else assert.equal(record[key], expected, `${key}: ${line}`);
  }
  if (rule.name === "http request") {
    const elapsed = record.elapsed_ms;
    assert.equal(typeof elapsed, "number", line);
    assert.ok((elapsed as number) >= 0, line);
    const fromText = goDurationMs(m[5]);
    if (fromText !== undefined) {
      assert.ok(Math.abs((elapsed as number) - fromText) <= 0.0006, `elapsed_ms vs ${m[5]}`);
    }
  }
  return rule.name;
}

/**
 * Checks the paired lines: each JSON line parses, its `msg` is the text
 * line's message after `LEVEL: `, its level and instant those of the text
 * line; returns the parsed records.
 */
function checkPairs(json: readonly string[], text: readonly string[]): JsonRecord[] {
  assert.equal(json.length, text.length);
  return json.map((line, i) => {
    const record = parseJsonLine(line);
    const m = TEXT_LINE.exec(text[i]);
    assert.ok(m !== null, `text line: ${text[i]}`);
    assert.equal(m[2], TEXT_LABEL[String(record.level)], text[i]);
    assert.equal(record.msg, text[i].slice(m[0].length), text[i]);
    // Same instant: the text timestamp is local time, the JSON one UTC.
    const [, y, mo, d, h, mi, s, micros] = /^(\d+)\/(\d+)\/(\d+) (\d+):(\d+):(\d+)\.(\d+)$/
      .exec(m[1])!;
    const local = new Date(+y, +mo - 1, +d, +h, +mi, +s).getTime();
    const time = String(record.time);
    assert.equal(local, Date.parse(time.slice(0, 19) + "Z"), `${time} vs ${m[1]}`);
    assert.equal(time.slice(20, 26), micros);
    return record;
  });
}

async function request(url: string, method: string, status: number): Promise<void> {
  const res = await fetch(url, { method });
  await res.body?.cancel();
  assert.equal(res.status, status, `${method} ${url}`);
}

// ---- in process: a full scenario ----

Deno.test("json logs: every line of a full TCP + HTTP scenario parses and carries its fields", async () => {
  await using d = startJsonDaemon();
  // A producer's whole life.
  const producer = await d.connect();
  await producer.identify(peerBody({ broadcast_address: "10.0.0.9", http_port: 4151 }));
  for (
    const line of ["REGISTER t c", "REGISTER t c2", "REGISTER t2", "PING", "UNREGISTER t c"]
  ) {
    assert.equal(await producer.command(line), "OK", line);
  }
  assert.equal(await producer.command("UNREGISTER t"), "OK"); // warns about c2
  await request(`${d.url}/topic/tombstone?topic=t2&node=10.0.0.9:4151`, "POST", 200);
  const producerAddr = producer.localAddress;
  producer.close();
  await eventually(() => d.json.some((l) => l.includes(`[${producerAddr}] exiting ioloop`)));

  // Bad protocol magic, EOF before any magic, a bad topic.
  const magic = await d.connect();
  await magic.send("  V2");
  assert.equal(await magic.readFrame(), "E_BAD_PROTOCOL");
  await magic.expectClosed();
  const silent = await d.connect();
  await eventually(() => d.daemon.tcpServer.connectionCount === 1);
  silent.close();
  await eventually(() => d.json.some((l) => l.includes("failed to read protocol version")));
  const bad = await d.connect();
  await bad.identify(peerBody());
  assert.match(await bad.command("REGISTER bad!topic"), /^E_BAD_TOPIC /);
  await bad.expectClosed();

  // The HTTP API.
  await request(`${d.url}/topic/create?topic=h`, "POST", 200);
  await request(`${d.url}/channel/create?topic=h&channel=hc`, "POST", 200);
  await request(`${d.url}/lookup?topic=h`, "GET", 200);
  await request(`${d.url}/lookup?topic=missing`, "GET", 404);
  await request(`${d.url}/nope?x=1`, "GET", 404);
  await request(`${d.url}/channel/delete?topic=h&channel=nope`, "POST", 404);
  await request(`${d.url}/topic/create?topic=h`, "GET", 405);
  await request(`${d.url}/topic/delete?topic=h`, "POST", 200);

  // A connection closed by the idle sweep.
  await eventually(() => d.daemon.tcpServer.connectionCount === 0);
  const quiet = await d.connect();
  await quiet.magic();
  await eventually(() => d.json.some((l) => l.includes(`CLIENT(${quiet.localAddress}): desired`)));
  d.daemon.tcpServer.sweep(performance.now() + 300_001);
  await quiet.expectClosed();
  await eventually(() => d.daemon.tcpServer.connectionCount === 0);
  await d.shutdown();

  const records = checkPairs(d.json, d.text);
  const seen = new Set(records.map((record, i) => checkFields(record, d.json[i])));
  assert.deepEqual(
    RULES.map((rule) => rule.name).filter((name) => !seen.has(name)),
    [],
    "every kind of line was produced",
  );

  // Spot checks of exact lines.
  const find = (msg: string): JsonRecord => {
    const found = records.find((r) => r.msg === msg);
    assert.ok(found, `no line ${msg}`);
    return found;
  };
  const { time: _t, ...identify } = find(
    `CLIENT(${producerAddr}): IDENTIFY Address:10.0.0.9 TCP:4150 HTTP:4151 Version:1.3.0`,
  );
  assert.deepEqual(identify, {
    level: "info",
    msg: `CLIENT(${producerAddr}): IDENTIFY Address:10.0.0.9 TCP:4150 HTTP:4151 Version:1.3.0`,
    client: producerAddr,
    broadcast_address: "10.0.0.9",
    tcp_port: 4150,
    http_port: 4151,
    version: "1.3.0",
  });
  const warn = find(
    `client(${producerAddr}) unexpected UNREGISTER category:channel key:t subkey:c2`,
  );
  assert.equal(warn.level, "warn");
  const { time: _t2, elapsed_ms: _e, remote_addr: remote, ...lookup } = records.find((r) =>
    String(r.msg).startsWith("404 GET /lookup?topic=missing ")
  )!;
  assert.match(String(remote), ADDR);
  assert.deepEqual(lookup, {
    level: "info",
    msg: lookup.msg,
    status: 404,
    method: "GET",
    uri: "/lookup?topic=missing",
  });
  const error = records.find((r) => String(r.msg).includes("E_BAD_TOPIC"))!;
  assert.equal(error.level, "error");
  assert.equal(error.code, "E_BAD_TOPIC");
});

Deno.test("json logs: fields never replace time, level or msg", () => {
  const ms = Date.UTC(2026, 10, 22, 7, 2, 3, 123) + 0.456;
  assert.equal(
    formatJsonLine(ms, "warn", "m", { time: "x", level: "y", msg: "z", a: 1, b: true, c: "s" }),
    '{"time":"2026-11-22T07:02:03.123456Z","level":"warn","msg":"m","a":1,"b":true,"c":"s"}',
  );
  // A quote is JSON-escaped; control characters are first escaped for the log (as in the
  // text format), so the decoded msg shows `\n` and `\x01`, never a raw line break.
  assert.equal(
    formatJsonLine(ms, "info", 'q"\n\u0001'),
    `{"time":"2026-11-22T07:02:03.123456Z",` +
      `"level":"info","msg":"q\\"\\\\n\\\\x01"}`,
  );
});

Deno.test("json logs: time is RFC 3339 in UTC with exactly six fractional digits", () => {
  assert.equal(formatRfc3339(0), "1970-01-01T00:00:00.000000Z");
  assert.equal(formatRfc3339(Date.UTC(2026, 0, 2, 3, 4, 5, 6)), "2026-01-02T03:04:05.006000Z");
  assert.equal(
    formatRfc3339(Date.UTC(2026, 0, 2, 3, 4, 5, 999) + 0.5),
    "2026-01-02T03:04:05.999500Z",
  );
  const now = preciseNow();
  const text = formatRfc3339(now);
  assert.match(text, RFC3339_MICROS);
  assert.equal(Date.parse(text), Math.floor(now));
});

Deno.test("text logs stay the reference's format, structured fields not printed", () => {
  const lines: string[] = [];
  const ms = Date.UTC(2026, 10, 22, 7, 2, 3, 123) + 0.456;
  const logger = createLogger({
    level: "info",
    prefix: "[nsqlookupd] ",
    sink: (line) => lines.push(line),
    now: () => ms,
  });
  logger.info("TCP: new client(1.2.3.4:5)", { client: "1.2.3.4:5" });
  logger.warn("w", { a: 1 });
  logger.debug("hidden");
  const local = new Date(Math.floor(ms));
  const p = (n: number, w = 2): string => String(n).padStart(w, "0");
  const stamp = `${local.getFullYear()}/${p(local.getMonth() + 1)}/${p(local.getDate())} ` +
    `${p(local.getHours())}:${p(local.getMinutes())}:${p(local.getSeconds())}.123456`;
  assert.deepEqual(lines, [
    `[nsqlookupd] ${stamp} INFO: TCP: new client(1.2.3.4:5)`,
    `[nsqlookupd] ${stamp} WARNING: w`,
  ]);
});

// ---- end to end: main.ts ----

/** TCP and HTTP traffic against a spawned daemon, so that most kinds of line appear. */
async function drive(tcpPort: number, httpPort: number): Promise<void> {
  const client = await TcpClient.connect(tcpPort);
  try {
    await client.identify(peerBody());
    assert.equal(await client.command("REGISTER t c"), "OK");
    assert.equal(await client.command("PING"), "OK");
    const url = `http://127.0.0.1:${httpPort}`;
    await request(`${url}/lookup?topic=t`, "GET", 200);
    await request(`${url}/lookup?topic=nope`, "GET", 404);
    await request(`${url}/topic/create?topic=x`, "POST", 200);
    assert.match(await client.command("REGISTER bad!"), /^E_BAD_TOPIC/);
  } finally {
    client.close();
  }
}

/** Every stderr line is a JSON log record; returns them. */
function allJson(lines: readonly string[]): JsonRecord[] {
  assert.ok(lines.length > 0);
  return lines.map(parseJsonLine);
}

/** What the daemon logs when a client sends a bad topic, in each format. */
const JSON_BAD_TOPIC = /"code":"E_BAD_TOPIC"/;
const TEXT_BAD_TOPIC = / ERROR: \[127\.0\.0\.1:\d+\] - E_BAD_TOPIC /;

/**
 * Starts the daemon with `args`, lets `driver` talk to it, waits until it has
 * logged `until`, and stops it, which must be clean: its stderr lines, and
 * the TCP port it listened on.
 */
async function loggedRun(
  args: string[],
  driver: (tcp: number, http: number) => Promise<void>,
  until: RegExp,
  ports?: { tcp: number; http: number },
): Promise<{ lines: string[]; tcpPort: number; httpPort: number }> {
  await using daemon = await spawnDaemon(args, { ports });
  await driver(daemon.tcpPort, daemon.httpPort);
  await daemon.waitForLine(until);
  const stopped = await daemon.stop("SIGTERM");
  assert.equal(stopped.code, 0);
  return { lines: stopped.lines, tcpPort: daemon.tcpPort, httpPort: daemon.httpPort };
}

/** A run in the JSON format on free ports. */
function jsonRun(
  driver: (tcp: number, http: number) => Promise<void>,
): Promise<{ lines: string[]; tcpPort: number; httpPort: number }> {
  const tcp = freePort();
  const http = freePort();
  return loggedRun(
    ["--log-format=json", `--tcp-address=127.0.0.1:${tcp}`, `--http-address=127.0.0.1:${http}`],
    driver,
    JSON_BAD_TOPIC,
    { tcp, http },
  );
}

Deno.test("main.ts --log-format=json: every stderr line is a JSON object", async () => {
  const stopped = await jsonRun(drive);
  const records = allJson(stopped.lines);
  const messages = records.map((r) => r.msg);
  for (
    const msg of [
      `TCP: listening on 127.0.0.1:${stopped.tcpPort}`,
      `HTTP: listening on 127.0.0.1:${stopped.httpPort}`,
      `TCP: closing 127.0.0.1:${stopped.tcpPort}`,
      `HTTP: closing 127.0.0.1:${stopped.httpPort}`,
    ]
  ) {
    assert.ok(messages.includes(msg), `${msg} in ${messages.join("\n")}`);
  }
  const lookup = records.find((r) => String(r.msg).startsWith("200 GET /lookup?topic=t "));
  assert.ok(lookup);
  assert.equal(lookup.status, 200);
  assert.equal(lookup.uri, "/lookup?topic=t");
  assert.equal(typeof lookup.elapsed_ms, "number");
  assert.ok(records.some((r) => r.topic === "t" && r.channel === "c" && r.action === "REGISTER"));
});

Deno.test('main.ts with log_format = "json" in the config file: every stderr line is JSON', async () => {
  const tcp = freePort();
  const http = freePort();
  const config = await makeTempConfig(
    `log_format = "json"\nlog_level = "debug"\ntcp_address = "127.0.0.1:${tcp}"\n` +
      `http_address = "127.0.0.1:${http}"\nno_such_key = 1\n`,
  );
  try {
    const stopped = await loggedRun([`--config=${config}`], drive, JSON_BAD_TOPIC, { tcp, http });
    const records = allJson(stopped.lines);
    // The unknown-key warning, written before the daemon starts, is JSON too.
    const warning = records.find((r) => String(r.msg).includes("no_such_key"));
    assert.ok(warning, stopped.lines.join("\n"));
    assert.equal(warning.level, "warn");
    assert.ok(records.some((r) => r.msg === `TCP: listening on 127.0.0.1:${tcp}`));
  } finally {
    await removeTempConfig(config);
  }
});

Deno.test("main.ts without --log-format: every stderr line is the reference's text format", async () => {
  const stopped = await loggedRun(
    ["--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0"],
    drive,
    TEXT_BAD_TOPIC,
  );
  for (const line of stopped.lines) assert.match(line, TEXT_LINE);
  const expected = new RegExp(
    `^\\[nsqlookupd\\] ${LOG_TIMESTAMP} INFO: ${
      escapeRegExp(`TCP: listening on 127.0.0.1:${stopped.tcpPort}`)
    }$`,
  );
  assert.ok(stopped.lines.some((line) => expected.test(line)), stopped.lines.join("\n"));
  assert.ok(!stopped.lines.some((line) => line.includes('"msg"')));
});

// ---- what clients send cannot forge or hide lines ----

const FORGED = "[nsqlookupd] 2026/01/01 00:00:00.000000 INFO: forged";
/** What must never reach a log line raw. */
// deno-lint-ignore no-control-regex
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202e]/;

/** Traffic carrying line breaks and terminal controls wherever a client can put them. */
async function hostileDrive(tcpPort: number, httpPort: number): Promise<void> {
  const url = `http://127.0.0.1:${httpPort}`;
  for (
    const path of [
      `/ping%0a${encodeURIComponent(FORGED)}`,
      `/nope%0d%0a${encodeURIComponent(FORGED)}`,
      "/lookup?topic=%E2%80%A8x%C2%85y%1B%5B31m",
      `/%E2%80%AEdesrever`,
    ]
  ) {
    const res = await fetch(url + path);
    await res.body?.cancel();
  }
  const client = await TcpClient.connect(tcpPort);
  try {
    await client.identify(peerBody({
      broadcast_address: `a\n${FORGED}`,
      hostname: "h\r\u2028\u2029\x1b[2J",
      version: "1.3.0\u0085",
    }));
    assert.match(await client.command(`REGISTER t\r${FORGED}`), /^E_BAD_TOPIC/);
  } finally {
    client.close();
  }
}

Deno.test("main.ts: line breaks and terminal controls sent by clients are escaped, never a new line (text format)", async () => {
  const stopped = await loggedRun(
    ["--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0"],
    hostileDrive,
    TEXT_BAD_TOPIC,
  );
  for (const line of stopped.lines) {
    assert.match(line, TEXT_LINE);
    // deno-lint-ignore no-control-regex
    assert.doesNotMatch(line, /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202e]/, JSON.stringify(line));
  }
  assert.ok(!stopped.lines.some((l) => l.startsWith(FORGED)));
  // The escapes are there to read: the IDENTIFY line shows the client's newline as \n.
  assert.ok(
    stopped.lines.some((l) => l.includes(`IDENTIFY Address:a\\n${FORGED} TCP:4150`)),
    stopped.lines.join("\n"),
  );
});

Deno.test("main.ts --log-format=json: line breaks and controls sent by clients are escaped in msg and fields", async () => {
  const stopped = await jsonRun(hostileDrive);
  const records = allJson(stopped.lines);
  for (const line of stopped.lines) assert.doesNotMatch(line, /[\u2028\u2029\x85]/);
  for (const record of records) {
    for (const value of Object.values(record)) {
      if (typeof value === "string") assert.doesNotMatch(value, UNSAFE, JSON.stringify(record));
    }
  }
  const identify = records.find((r) => String(r.msg).includes("IDENTIFY Address:"));
  assert.ok(identify, stopped.lines.join("\n"));
  assert.equal(identify.broadcast_address, `a\\n${FORGED}`);
  assert.equal(identify.version, "1.3.0\\x85");
});
