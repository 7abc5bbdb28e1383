// Shared test helpers: an in-process daemon on 127.0.0.1 port 0 with captured
// log lines, and a small TCP client that speaks protocol V1.

import assert from "node:assert/strict";
import { type Daemon, loadAccessRules, startDaemon as start } from "../../src/daemon.ts";
import { type Network, parseNetworkList } from "../../src/access/networks.ts";
import { createLogger, type Logger, type LogLevel } from "../../src/ops/logger.ts";
import { defaultOptions, type Options } from "../../src/options.ts";
import { type PeerInfo, Registry } from "../../src/registry.ts";
import { TcpServer, type TcpServerOptions } from "../../src/tcp/server.ts";

// Shared with scripts/, which cannot start an in-process daemon.
export { concat, freePort, identifyCommand, sleep, withTimeout } from "./harness.ts";
import { identifyCommand, withTimeout } from "./harness.ts";
// The daemon as a process: one launcher for tests and scripts.
export {
  daemonCommand,
  MAIN_PATH,
  spawnDaemon,
  type SpawnedDaemon,
  type SpawnOptions,
  type StoppedDaemon,
} from "./daemon_process.ts";
import { daemonCommand } from "./daemon_process.ts";

// startDaemon below is synchronous, access flags or not; main.ts loads the
// access rules only for runs that ask for them.
await loadAccessRules();

export const HOSTNAME = "testhost";

/** A network list the test knows to be valid (`10.0.0.0/8,127.0.0.1`). */
export function networkList(text: string): Network[] {
  const parsed = parseNetworkList(text);
  assert.ok(parsed.ok, JSON.stringify(parsed));
  return parsed.ok ? parsed.value : [];
}

/** Access settings with every rule off. */
export const NO_ACCESS = {
  producerNetworks: undefined,
  adminNetworks: undefined,
  authHttpAddresses: [],
  httpClientRequestTimeoutMs: 5000,
};
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface TestDaemon extends Daemon {
  /** Every log line, without prefix and timestamp: `INFO: TCP: new client(...)`. */
  readonly logs: string[];
  readonly httpUrl: string;
  get(pathAndQuery: string, init?: RequestInit): Promise<Response>;
  post(pathAndQuery: string, init?: RequestInit): Promise<Response>;
  connect(): Promise<TcpClient>;
  [Symbol.asyncDispose](): Promise<void>;
}

export function testOptions(overrides: Partial<Options> = {}): Options {
  return {
    ...defaultOptions(HOSTNAME),
    tcpAddress: "127.0.0.1:0",
    httpAddress: "127.0.0.1:0",
    broadcastAddress: "127.0.0.1",
    logLevel: "debug" as LogLevel,
    ...overrides,
  };
}

/** Starts a daemon on loopback port 0; dispose it (`await using`) to shut it down. */
export function startDaemon(
  overrides: Partial<Options> = {},
  deps: { now?: () => number } = {},
): TestDaemon {
  const options = testOptions(overrides);
  const logs: string[] = [];
  const logger = createLogger({
    level: options.logLevel,
    prefix: options.logPrefix,
    sink: (line) => logs.push(line.replace(/^.*? \d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\.\d{6} /, "")),
  });
  const daemon = start(options, { logger, hostname: HOSTNAME, now: deps.now });
  const httpUrl = `http://127.0.0.1:${daemon.httpAddr.port}`;
  const clients: TcpClient[] = [];
  return {
    ...daemon,
    logs,
    httpUrl,
    get: (path, init) => fetch(httpUrl + path, init),
    post: (path, init) => fetch(httpUrl + path, { method: "POST", ...init }),
    connect: async () => {
      const client = await TcpClient.connect(daemon.tcpAddr.port);
      clients.push(client);
      return client;
    },
    [Symbol.asyncDispose]: async () => {
      for (const client of clients) client.close();
      await daemon.shutdown();
    },
  };
}

/** Bytes of a binary string: each char code (0–255) is one byte. */
export function bin(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff) throw new Error(`not a binary string: ${text}`);
    out[i] = code;
  }
  return out;
}

/** Printable, exact rendering of bytes (like Python's repr) so failures are readable. */
export function show(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) {
    out += b >= 0x20 && b < 0x7f && b !== 0x5c
      ? String.fromCharCode(b)
      : `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return out;
}

/** Encodes a 4-byte big-endian frame header + payload, as the server frames responses. */
export function framed(payload: string): Uint8Array {
  const bytes = encoder.encode(payload);
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

export const VALID_IDENTIFY =
  '{"broadcast_address":"127.0.0.1","tcp_port":1,"http_port":2,"version":"1.3.0"}';

export function peerBody(fields: Record<string, unknown> = {}): string {
  return JSON.stringify({
    broadcast_address: "127.0.0.1",
    hostname: "h1",
    tcp_port: 4150,
    http_port: 4151,
    version: "1.3.0",
    ...fields,
  });
}

/** A raw TCP client: send bytes, read whole frames, observe the server closing. */
export class TcpClient {
  #buffer = new Uint8Array(0);
  #closed = false;
  #magicSent = false;

  private constructor(readonly conn: Deno.TcpConn) {}

  static async connect(port: number): Promise<TcpClient> {
    return new TcpClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** `ip:port` of our end: the peer id the daemon sees. */
  get localAddress(): string {
    return `${this.conn.localAddr.hostname}:${this.conn.localAddr.port}`;
  }

  async send(data: string | Uint8Array): Promise<void> {
    let bytes = typeof data === "string" ? encoder.encode(data) : data;
    while (bytes.length > 0) bytes = bytes.subarray(await this.conn.write(bytes));
  }

  /** Reads until at least `n` bytes are buffered; false on EOF first. */
  async #fill(n: number): Promise<boolean> {
    while (this.#buffer.length < n) {
      const chunk = new Uint8Array(64 * 1024);
      let read: number | null;
      try {
        read = await this.conn.read(chunk);
      } catch (error) {
        if (error instanceof Deno.errors.ConnectionReset) read = null;
        else throw error;
      }
      if (read === null) return false;
      const merged = new Uint8Array(this.#buffer.length + read);
      merged.set(this.#buffer);
      merged.set(chunk.subarray(0, read), this.#buffer.length);
      this.#buffer = merged;
    }
    return true;
  }

  /** The raw bytes of the next frame (header included). */
  async readFrameBytes(): Promise<Uint8Array> {
    assert.ok(await this.#fill(4), "connection closed before a frame header");
    const size = new DataView(this.#buffer.buffer, this.#buffer.byteOffset, 4).getUint32(0);
    assert.ok(await this.#fill(4 + size), "connection closed inside a frame");
    const bytes = this.#buffer.slice(0, 4 + size);
    this.#buffer = this.#buffer.slice(4 + size);
    return bytes;
  }

  async readFrame(): Promise<string> {
    return decoder.decode((await this.readFrameBytes()).subarray(4));
  }

  /** Asserts the server closes the connection with nothing more to read. */
  async expectClosed(): Promise<void> {
    const more = await this.#fill(this.#buffer.length + 1);
    assert.equal(more, false, `expected EOF, got ${decoder.decode(this.#buffer)}`);
  }

  /** Sends the protocol magic `  V1`. */
  async magic(): Promise<void> {
    this.#magicSent = true;
    await this.send("  V1");
  }

  /** Magic (unless sent) then an IDENTIFY; returns the reply. */
  async identify(body: string = VALID_IDENTIFY): Promise<string> {
    if (!this.#magicSent) await this.magic();
    await this.send(identifyCommand(body));
    return await this.readFrame();
  }

  /** Sends one command line and returns the reply frame. */
  async command(line: string): Promise<string> {
    await this.send(line + "\n");
    return await this.readFrame();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}

/** Polls `check` until it returns true (server-side effects of a disconnect are asynchronous). */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  ms = 2000,
): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A peer as IDENTIFY stores it; `id` follows `remoteAddress` unless given. */
export function testPeer(fields: Partial<PeerInfo> = {}): PeerInfo {
  const remoteAddress = fields.remoteAddress ?? "10.0.0.1:5000";
  return {
    id: remoteAddress,
    remoteAddress,
    hostname: "h1",
    broadcastAddress: "127.0.0.1",
    tcpPort: 4150,
    httpPort: 4151,
    version: "1.3.0",
    topologyZone: "",
    topologyRegion: "",
    lastUpdate: 0,
    ...fields,
  };
}

/** A clock the test moves by hand. */
export class ManualClock {
  constructor(public ms = 1_800_000_000_000) {}
  now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

// ---- End-to-end: the daemon as a real process (`deno run main.ts`) ----

/** The `YYYY/MM/DD HH:MM:SS.micros` timestamp of a log line, as a RegExp source. */
export const LOG_TIMESTAMP = String.raw`\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6}`;

/** Escapes `text` for use inside a RegExp. */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Whether this test run may write files (the project's test task grants it). */
function mayWrite(): boolean {
  return Deno.permissions.querySync({ name: "write" }).state === "granted";
}

/**
 * Runs `code` with `deno eval` (all permissions) and returns its stdout: how
 * temporary config files are made and removed when the test run has no
 * --allow-write (Deno refuses /dev/stdin & co. as a config path without
 * --allow-all, so a file on disk is the only way to hand one to the daemon).
 */
async function evalInChild(code: string, args: string[], stdin: string): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", code, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  const writer = child.stdin.getWriter();
  await writer.write(encoder.encode(stdin));
  await writer.close();
  const { success, stdout, stderr } = await withTimeout(output, 20_000, "deno eval");
  if (!success) throw new Error(`deno eval failed: ${decoder.decode(stderr)}`);
  return decoder.decode(stdout);
}

const TEMP_CONFIG = { prefix: "nsqlookupd-test-", suffix: ".toml" };

/** Creates a temporary `.toml` file holding `text`; returns its absolute path. */
export async function makeTempConfig(text: string): Promise<string> {
  if (mayWrite()) {
    const path = await Deno.makeTempFile(TEMP_CONFIG);
    await Deno.writeTextFile(path, text);
    return path;
  }
  return await evalInChild(
    `const path = Deno.makeTempFileSync(${JSON.stringify(TEMP_CONFIG)});
     Deno.writeTextFileSync(path, await new Response(Deno.stdin.readable).text());
     Deno.stdout.writeSync(new TextEncoder().encode(path));`,
    [],
    text,
  );
}

/** Removes a file made by makeTempConfig. */
export async function removeTempConfig(path: string): Promise<void> {
  if (mayWrite()) await Deno.remove(path);
  else await evalInChild("Deno.removeSync(Deno.args[0]);", [path], "");
}

export interface CliRun {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/** Runs the daemon to completion (flag errors, --version, fatal startup); kills it after `ms`. */
export async function runCli(args: readonly string[], ms = 20_000): Promise<CliRun> {
  const { code, signal, stdout, stderr } = await outputWithin(
    daemonCommand(args).spawn(),
    ms,
    `nsqlookupd ${args.join(" ")} to exit`,
  );
  return { code, signal, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

/** The child's output once it exits; killed (and reaped) if it runs longer than `ms`. */
export async function outputWithin(
  child: Deno.ChildProcess,
  ms: number,
  what: string,
): Promise<Deno.CommandOutput> {
  const output = child.output();
  try {
    return await withTimeout(output, ms, what);
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch {
      // it exited meanwhile
    }
    await output.catch(() => undefined);
    throw error;
  }
}

// ---- HTTP API assertions (shared by http_api_test.ts and scenario_test.ts) ----

export const NSQ_V1_CONTENT_TYPE = "nsq; version=1.0";
export const JSON_CONTENT_TYPE = "application/json; charset=utf-8";

/**
 * A JSON success or error: exact status and body bytes, `Content-Type: application/json;
 * charset=utf-8` and `X-NSQ-Content-Type: nsq; version=1.0`; Content-Length (set only by
 * a real server) must match the body. Always consumes the body.
 */
export async function expectJson(res: Response, status: number, body: string): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, status, `status of ${res.url || "response"}: ${text}`);
  assert.equal(text, body);
  assert.equal(res.headers.get("content-type"), JSON_CONTENT_TYPE);
  assert.equal(res.headers.get("x-nsq-content-type"), NSQ_V1_CONTENT_TYPE);
  const length = res.headers.get("content-length");
  if (length !== null) assert.equal(Number(length), encoder.encode(body).length);
}

/** An error: status and `{"message":"CODE"}` with the JSON headers. */
export function expectError(res: Response, status: number, code: string): Promise<void> {
  return expectJson(res, status, `{"message":"${code}"}`);
}

/** An empty success: 200, no body, X-NSQ-Content-Type, no Content-Type. */
export async function expectEmpty(res: Response): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assert.equal(text, "");
  assert.equal(res.headers.get("x-nsq-content-type"), NSQ_V1_CONTENT_TYPE);
  assert.equal(res.headers.get("content-type"), null);
  const length = res.headers.get("content-length");
  if (length !== null) assert.equal(length, "0");
}

/** A logger at `level` whose lines (without prefix and timestamp) land in `logs`. */
export function captureLogger(level: LogLevel = "debug"): { logger: Logger; logs: string[] } {
  const logs: string[] = [];
  const logger = createLogger({
    level,
    prefix: "[nsqlookupd] ",
    sink: (line) => logs.push(line.replace(/^.*? \d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\.\d{6} /, "")),
  });
  return { logger, logs };
}

/** The Accept header go-nsq, nsqd and nsqadmin send to nsqlookupd. */
export const NSQ_V1_ACCEPT = "application/vnd.nsq; version=1.0";

/** A response as a BreakingProxy hands it to its mutation. */
export interface ProxiedResponse {
  status: number;
  headers: Headers;
  body: string;
}

/**
 * An HTTP proxy on 127.0.0.1:0 in front of `target` that rewrites every
 * response with `mutate`: smoke_script_test.ts runs the smoke script against it to
 * show that it catches a daemon that gets a header, the body's shape or a field wrong.
 */
export function startBreakingProxy(
  target: string,
  mutate: (response: ProxiedResponse, path: string) => ProxiedResponse,
): { url: string; port: number } & AsyncDisposable {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const upstream = await fetch(target + url.pathname + url.search, {
      method: req.method,
      headers: req.headers,
      body: req.body === null ? undefined : await req.arrayBuffer(),
      redirect: "manual",
    });
    const headers = new Headers(upstream.headers);
    headers.delete("content-length");
    headers.delete("content-encoding");
    const out = mutate(
      { status: upstream.status, headers, body: await upstream.text() },
      url.pathname,
    );
    return new Response(out.body === "" ? null : out.body, {
      status: out.status,
      headers: out.headers,
    });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    port: server.addr.port,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** A bare TcpServer on loopback whose deadlines are driven by hand: `sweep(now)` with a ManualClock. */
export interface BareTcpServer extends AsyncDisposable {
  readonly server: TcpServer;
  readonly registry: Registry;
  readonly clock: ManualClock;
  /** Log lines without prefix and timestamp: `WARNING: ...`. */
  readonly logs: string[];
  /** How often the server has read the clock (each read and each write does). */
  clockReads(): number;
  connect(): Promise<TcpClient>;
}

export function startTcpServer(
  options: {
    logLevel?: LogLevel;
    /** Both the server's idle timeout and the registry's inactivity timeout. */
    idleTimeoutMs?: number;
    server?: Partial<TcpServerOptions>;
  } = {},
): BareTcpServer {
  const clock = new ManualClock();
  let reads = 0;
  const { logger, logs } = captureLogger(options.logLevel ?? "debug");
  const idleTimeoutMs = options.idleTimeoutMs ?? 300_000;
  const registry = new Registry({
    now: clock.now,
    inactiveProducerTimeoutMs: idleTimeoutMs,
    tombstoneLifetimeMs: 45_000,
  });
  const server = new TcpServer({
    listener: Deno.listen({ hostname: "127.0.0.1", port: 0 }),
    registry,
    logger,
    maxIdentifySize: 65536,
    identifyResponse: "{}",
    idleTimeoutMs,
    clock: () => {
      reads++;
      return clock.now();
    },
    sweepIntervalMs: 0,
    ...options.server,
  });
  server.start();
  const clients: TcpClient[] = [];
  return {
    server,
    registry,
    clock,
    logs,
    clockReads: () => reads,
    connect: async () => {
      const client = await TcpClient.connect(server.addr.port);
      clients.push(client);
      return client;
    },
    [Symbol.asyncDispose]: async () => {
      for (const client of clients) client.close();
      await server.close();
    },
  };
}

// ---- raw HTTP over a socket ----

/** Reads until EOF (or `ms`); returns what came. */
export async function readAll(conn: Deno.Conn, ms = 5_000): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  await withTimeout(
    (async () => {
      while (true) {
        let n: number | null;
        try {
          n = await conn.read(buffer);
        } catch {
          n = null;
        }
        if (n === null) return;
        chunks.push(buffer.slice(0, n));
      }
    })(),
    ms,
    "EOF",
  );
  return chunks.map((c) => decoder.decode(c)).join("");
}

/** Reads until what came matches `pattern`. */
export async function readUntil(conn: Deno.Conn, pattern: RegExp, ms = 5_000): Promise<string> {
  let text = "";
  const buffer = new Uint8Array(64 * 1024);
  await withTimeout(
    (async () => {
      while (!pattern.test(text)) {
        const n = await conn.read(buffer);
        if (n === null) throw new Error(`EOF after ${JSON.stringify(text)}`);
        text += decoder.decode(buffer.subarray(0, n));
      }
    })(),
    ms,
    `a reply matching ${pattern}`,
  );
  return text;
}

export async function rawRequest(port: number, request: string | Uint8Array): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    let bytes = typeof request === "string" ? encoder.encode(request) : request;
    while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
    return await readAll(conn);
  } finally {
    conn.close();
  }
}

/** One HTTP response as it came: the head (up to the empty line) and the body bytes. */
export interface RawResponse {
  readonly head: string;
  readonly body: string;
  /** Head and body as one string, with the Date header's value replaced by `DATE`. */
  readonly normalized: string;
}

/**
 * An HTTP/1.1 client over one raw socket: sends bytes as given and reads
 * responses one by one (framed by Content-Length), to assert exact bytes.
 */
export class RawHttpConn {
  #pending = new Uint8Array(0);
  private constructor(readonly conn: Deno.TcpConn) {}

  static async open(port: number): Promise<RawHttpConn> {
    return new RawHttpConn(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async send(request: string | Uint8Array): Promise<void> {
    let bytes = typeof request === "string" ? encoder.encode(request) : request;
    while (bytes.length > 0) bytes = bytes.subarray(await this.conn.write(bytes));
  }

  /** The next response; a HEAD response (`noBody`) has a Content-Length but no body. */
  async response(options: { noBody?: boolean; ms?: number } = {}): Promise<RawResponse> {
    return await withTimeout(
      this.#response(options.noBody ?? false),
      options.ms ?? 5_000,
      "a response",
    );
  }

  async #response(noBody: boolean): Promise<RawResponse> {
    let end: number;
    while ((end = findHeadEnd(this.#pending)) === -1) await this.#fill();
    const head = decoder.decode(this.#pending.subarray(0, end));
    const length = /^HTTP\/1\.1 1\d\d /.test(head) || noBody
      ? 0
      : Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? "0");
    while (this.#pending.length < end + length) await this.#fill();
    const body = decoder.decode(this.#pending.subarray(end, end + length));
    this.#pending = this.#pending.slice(end + length);
    const normalized = (head + body).replace(/\r\nDate: [^\r]*/, "\r\nDate: DATE");
    return { head, body, normalized };
  }

  /** Everything until the server closes (what was buffered included). */
  async rest(ms = 5_000): Promise<string> {
    const buffered = decoder.decode(this.#pending);
    this.#pending = new Uint8Array(0);
    return buffered + await readAll(this.conn, ms);
  }

  async #fill(): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    const n = await this.conn.read(buffer);
    if (n === null) {
      throw new Error(`EOF after ${JSON.stringify(decoder.decode(this.#pending))}`);
    }
    const joined = new Uint8Array(this.#pending.length + n);
    joined.set(this.#pending);
    joined.set(buffer.subarray(0, n), this.#pending.length);
    this.#pending = joined;
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // closed already
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Index just past the empty line ending a response head, or -1. */
function findHeadEnd(bytes: Uint8Array): number {
  for (let i = 3; i < bytes.length; i++) {
    if (
      bytes[i] === 0x0a && bytes[i - 1] === 0x0d && bytes[i - 2] === 0x0a && bytes[i - 3] === 0x0d
    ) {
      return i + 1;
    }
  }
  return -1;
}
