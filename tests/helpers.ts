// Shared test helpers: an in-process daemon on 127.0.0.1 port 0 with captured
// log lines, and a small TCP client that speaks protocol V1.

import assert from "node:assert/strict";
import { type Daemon, startDaemon as start } from "../src/daemon.ts";
import { createLogger, type LogLevel } from "../src/logger.ts";
import { defaultOptions, type Options } from "../src/options.ts";

export const HOSTNAME = "testhost";
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

/** Encodes a 4-byte big-endian frame header + payload, as the server frames responses. */
export function framed(payload: string): Uint8Array {
  const bytes = encoder.encode(payload);
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

export function identifyCommand(body: string | Uint8Array): Uint8Array {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const out = new Uint8Array(9 + 4 + bytes.length);
  out.set(encoder.encode("IDENTIFY\n"));
  new DataView(out.buffer).setInt32(9, bytes.length);
  out.set(bytes, 13);
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

/** A clock the test moves by hand. */
export class ManualClock {
  constructor(public ms = 1_800_000_000_000) {}
  now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}
