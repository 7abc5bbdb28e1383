// A TCP front for the HTTP port. Deno.serve (Deno 2.9) has no header, idle or
// request timeout and no connection limit: a connection that sends nothing, or
// its headers one byte at a time, is held forever, and once such connections
// use up the process's descriptors, Deno.serve's accept() fails with EMFILE and
// the process dies ("Uncaught (in promise) Http: Error: Too many open files").
// So the daemon binds the public HTTP address itself, here, and relays each
// connection to Deno.serve on a private loopback port, watching the request
// framing (never changing a byte) to enforce:
// - at most `maxConnections` at once (the oldest idle one makes room, else the
//   newcomer is closed) and accept() failures back off instead of spinning;
// - a request head complete within `headerTimeoutMs` of its first byte (of the
//   connection's opening for the first request), at most MAX_HEAD_BYTES long;
// - a request body complete within `bodyTimeoutMs` of the end of its head;
// - a keep-alive connection idle for at most `idleTimeoutMs`;
// - a response write blocked for at most `writeTimeoutMs` on a client that
//   does not read (the relay reads no more from either side meanwhile).

import { formatNetAddr } from "./address.ts";
import type { Logger } from "./logger.ts";

export const HTTP_MAX_CONNECTIONS = 1024;
export const HTTP_HEADER_TIMEOUT_MS = 10_000;
export const HTTP_BODY_TIMEOUT_MS = 60_000;
/** Longer than Go's http.Transport IdleConnTimeout (90 s): clients close first. */
export const HTTP_IDLE_TIMEOUT_MS = 120_000;
export const HTTP_WRITE_TIMEOUT_MS = 10_000;
/** Longest request head (request line and headers); longer ones get 431. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Longest chunk-size or trailer line of a chunked body. */
const MAX_CHUNK_LINE_BYTES = 4 * 1024;
const RELAY_BUFFER_BYTES = 16 * 1024;
const ACCEPT_BACKOFF_MIN_MS = 5;
const ACCEPT_BACKOFF_MAX_MS = 1_000;

const HEAD_TOO_LARGE = new TextEncoder().encode(
  "HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
);

/** Where the client→server byte stream is, request by request. */
export type RequestPhase = "between" | "head" | "body";

const CR = 0x0d;
const LF = 0x0a;

/**
 * Follows HTTP/1.1 request framing over the bytes a client sends (heads,
 * Content-Length and chunked bodies, pipelined requests) without buffering
 * more than one head. It only observes: the server still parses and answers.
 */
export class RequestTracker {
  #phase: RequestPhase = "between";
  #requests = 0;
  /** Bytes of the current head so far (bounded by MAX_HEAD_BYTES). */
  #headBytes = 0;
  /** The start of a line split across reads, as a binary string. */
  #partialLine = "";
  #sawRequestLine = false;
  #contentLength: string | undefined;
  #transferEncoding: string | undefined;
  #body: "length" | "chunk-size" | "chunk-data" | "chunk-end" | "trailers" = "length";
  #remaining = 0;
  #chunkLine = "";
  #failure: string | undefined;

  get phase(): RequestPhase {
    return this.#phase;
  }

  /** Requests whose first byte has been seen. */
  get requestsStarted(): number {
    return this.#requests;
  }

  /** Why the stream cannot be followed (the server will refuse it too); sticky. */
  get failure(): string | undefined {
    return this.#failure;
  }

  feed(bytes: Uint8Array): void {
    let i = 0;
    while (i < bytes.length && this.#failure === undefined) {
      if (this.#phase === "between") {
        this.#phase = "head";
        this.#requests++;
        this.#headBytes = 0;
        this.#partialLine = "";
        this.#sawRequestLine = false;
        this.#contentLength = undefined;
        this.#transferEncoding = undefined;
      }
      if (this.#phase === "head") {
        i = this.#feedHead(bytes, i);
      } else {
        i = this.#feedBody(bytes, i);
      }
    }
  }

  /** Line by line (native indexOf); only Content-Length and Transfer-Encoding are decoded. */
  #feedHead(bytes: Uint8Array, start: number): number {
    let pos = start;
    while (pos < bytes.length) {
      const lf = bytes.indexOf(LF, pos);
      const end = lf === -1 ? bytes.length : lf + 1;
      this.#headBytes += end - pos;
      if (this.#headBytes > MAX_HEAD_BYTES) {
        this.#failure = "head too large";
        return bytes.length;
      }
      if (lf === -1) {
        this.#partialLine += binary(bytes, pos, bytes.length);
        return bytes.length;
      }
      const lineStart = pos;
      let lineEnd = lf;
      if (lineEnd > pos && bytes[lineEnd - 1] === CR) lineEnd--;
      let line: string | undefined;
      let empty: boolean;
      let first: number;
      if (this.#partialLine !== "") {
        line = (this.#partialLine + binary(bytes, pos, lf)).replace(/\r$/, "");
        this.#partialLine = "";
        empty = line === "";
        first = line.charCodeAt(0);
      } else {
        empty = lineEnd === pos;
        first = bytes[pos];
      }
      pos = lf + 1;
      if (empty) {
        // Empty lines before the request line are skipped, as servers may.
        if (this.#sawRequestLine) {
          this.#endHead();
          return pos;
        }
        continue;
      }
      if (!this.#sawRequestLine) {
        this.#sawRequestLine = true;
        continue;
      }
      const lower = first | 0x20;
      if (lower !== 0x63 && lower !== 0x74) continue; // neither c(ontent-length) nor t(ransfer-)
      line ??= binary(bytes, lineStart, lineEnd);
      this.#header(line);
    }
    return bytes.length;
  }

  #header(line: string): void {
    const colon = line.indexOf(":");
    if (colon <= 0) return;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "content-length") {
      this.#contentLength = this.#contentLength === undefined
        ? value
        : `${this.#contentLength},${value}`;
    } else if (name === "transfer-encoding") {
      this.#transferEncoding = this.#transferEncoding === undefined
        ? value
        : `${this.#transferEncoding},${value}`;
    }
  }

  #endHead(): void {
    if (this.#transferEncoding !== undefined) {
      const codings = this.#transferEncoding.toLowerCase().split(",").map((c) => c.trim());
      if (codings[codings.length - 1] !== "chunked") {
        this.#failure = "unsupported transfer-encoding";
        return;
      }
      this.#phase = "body";
      this.#body = "chunk-size";
      this.#chunkLine = "";
      return;
    }
    let length: string | undefined;
    if (this.#contentLength !== undefined) {
      // Repeated or comma-joined values must all agree.
      for (const item of this.#contentLength.split(",")) {
        const v = item.trim();
        if (!/^\d{1,15}$/.test(v) || (length !== undefined && length !== v)) {
          this.#failure = "bad content-length";
          return;
        }
        length = v;
      }
    }
    if (length !== undefined && Number(length) > 0) {
      this.#phase = "body";
      this.#body = "length";
      this.#remaining = Number(length);
    } else {
      this.#phase = "between";
    }
  }

  #feedBody(bytes: Uint8Array, start: number): number {
    if (this.#body === "length" || this.#body === "chunk-data") {
      const take = Math.min(this.#remaining, bytes.length - start);
      this.#remaining -= take;
      if (this.#remaining === 0) {
        if (this.#body === "length") {
          this.#phase = "between";
        } else {
          this.#body = "chunk-end";
          this.#chunkLine = "";
        }
      }
      return start + take;
    }
    // A line: chunk size, the CRLF after a chunk's data, or a trailer.
    let i = start;
    while (i < bytes.length && bytes[i] !== LF) i++;
    if (this.#chunkLine.length + (i - start) > MAX_CHUNK_LINE_BYTES) {
      this.#failure = "chunk line too long";
      return bytes.length;
    }
    this.#chunkLine += binary(bytes, start, i);
    if (i === bytes.length) return i;
    const line = this.#chunkLine.endsWith("\r") ? this.#chunkLine.slice(0, -1) : this.#chunkLine;
    this.#chunkLine = "";
    if (this.#body === "chunk-end") {
      if (line !== "") this.#failure = "bad chunk";
      this.#body = "chunk-size";
    } else if (this.#body === "chunk-size") {
      const hex = line.split(";")[0].trim();
      if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) {
        this.#failure = "bad chunk size";
      } else {
        const size = parseInt(hex, 16);
        if (size === 0) {
          this.#body = "trailers";
        } else {
          this.#body = "chunk-data";
          this.#remaining = size;
        }
      }
    } else if (line === "") {
      this.#phase = "between"; // the empty line after the trailers
    }
    return i + 1;
  }
}

export interface HttpGuardOptions {
  /** The public HTTP listener. */
  listener: Deno.TcpListener;
  /** Where Deno.serve listens (loopback, private). */
  upstream: Deno.NetAddr;
  logger: Logger;
  maxConnections?: number;
  headerTimeoutMs?: number;
  bodyTimeoutMs?: number;
  idleTimeoutMs?: number;
  writeTimeoutMs?: number;
  /** Monotonic milliseconds; injectable so tests drive the deadlines. */
  clock?: () => number;
  /** Period of the deadline sweeper; 0 disables the timer (tests call sweep()). */
  sweepIntervalMs?: number;
}

interface Relay {
  readonly client: Deno.TcpConn;
  readonly remote: Deno.NetAddr;
  readonly acceptedAt: number;
  upstream: Deno.TcpConn | undefined;
  upstreamPort: number | undefined;
  readonly tracker: RequestTracker;
  /** Clock time by which the current phase must end. */
  deadline: number;
  /** Clock time a write to the client started, while it is pending. */
  writingSince: number | undefined;
  closeReason: string | undefined;
  /** Settles when the relay has ended and released its connections. */
  task: Promise<void>;
}

export class HttpGuard {
  readonly #options: HttpGuardOptions;
  readonly #clock: () => number;
  readonly #relays = new Set<Relay>();
  readonly #byUpstreamPort = new Map<number, Relay>();
  readonly #tasks = new Set<Promise<void>>();
  #acceptLoop: Promise<void> | undefined;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #accepting = true;
  #refused = 0;
  #evicted = 0;
  #lastRelayError = -Infinity;
  readonly addr: Deno.NetAddr;

  constructor(options: HttpGuardOptions) {
    this.#options = options;
    this.#clock = options.clock ?? (() => performance.now());
    this.addr = options.listener.addr;
  }

  get connectionCount(): number {
    return this.#relays.size;
  }

  /** Relays with a write to the client blocked right now (for tests and diagnostics). */
  get blockedWriteCount(): number {
    let count = 0;
    for (const relay of this.#relays) if (relay.writingSince !== undefined) count++;
    return count;
  }

  /** Newcomers closed at once because `maxConnections` were busy. */
  get refusedCount(): number {
    return this.#refused;
  }

  /** Idle connections closed to make room for a newcomer. */
  get evictedCount(): number {
    return this.#evicted;
  }

  /** The real client behind a connection Deno.serve sees from the relay. */
  clientAddress(upstreamPeer: Deno.NetAddr): Deno.NetAddr {
    return this.#byUpstreamPort.get(upstreamPeer.port)?.remote ?? upstreamPeer;
  }

  start(): void {
    this.#acceptLoop = this.#accept();
    const interval = this.#options.sweepIntervalMs ?? 250;
    if (interval > 0) {
      this.#sweeper = setInterval(() => {
        try {
          this.sweep();
        } catch (error) {
          this.#options.logger.error(`HTTP: sweep failed - ${String(error)}`);
        }
      }, interval);
    }
  }

  /** Closes connections past their deadline or blocked on a write for too long. */
  sweep(now: number = this.#clock()): void {
    const writeTimeout = this.#options.writeTimeoutMs ?? HTTP_WRITE_TIMEOUT_MS;
    for (const relay of this.#relays) {
      if (relay.closeReason !== undefined) continue;
      if (relay.writingSince !== undefined && now - relay.writingSince > writeTimeout) {
        this.#drop(relay, `response unread for ${writeTimeout}ms`);
      } else if (relay.writingSince === undefined && now > relay.deadline) {
        this.#drop(relay, this.#deadlineReason(relay));
      }
    }
  }

  /** Stops accepting; open connections carry on (Deno.serve's shutdown ends them). */
  stopAccepting(): void {
    if (!this.#accepting) return;
    this.#accepting = false;
    try {
      this.#options.listener.close();
    } catch {
      // already closed
    }
  }

  /** Stops accepting, closes every connection and waits for the relays to end. */
  async close(): Promise<void> {
    this.stopAccepting();
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    for (const relay of this.#relays) this.#end(relay, "shutdown");
    await this.#acceptLoop;
    await Promise.all(this.#tasks);
  }

  #deadlineReason(relay: Relay): string {
    const { phase, requestsStarted } = relay.tracker;
    if (phase === "head") return "request head not received in time";
    if (phase === "body") return "request body not received in time";
    return requestsStarted === 0 ? "no request received in time" : "idle keep-alive connection";
  }

  #track(promise: Promise<void>): void {
    this.#tasks.add(promise);
    promise.finally(() => this.#tasks.delete(promise));
  }

  async #accept(): Promise<void> {
    const { listener, logger } = this.#options;
    const max = this.#options.maxConnections ?? HTTP_MAX_CONNECTIONS;
    let backoff = 0;
    while (this.#accepting) {
      let client: Deno.TcpConn;
      try {
        client = await listener.accept();
        backoff = 0;
      } catch (error) {
        if (!this.#accepting || error instanceof Deno.errors.BadResource) return;
        if (error instanceof Deno.errors.NotConnected) continue;
        backoff = Math.min(ACCEPT_BACKOFF_MAX_MS, Math.max(ACCEPT_BACKOFF_MIN_MS, backoff * 2));
        logger.error(`HTTP: accept() failure - ${String(error)}; retrying in ${backoff}ms`);
        await new Promise((resolve) => setTimeout(resolve, backoff));
        continue;
      }
      if (!this.#accepting) {
        closeQuietly(client);
        return;
      }
      if (this.#relays.size >= max) {
        // Wait until the evicted relay has let go of its descriptors: newcomers
        // faster than closes must not pile up half-closed relays.
        const evicted = this.#evictIdle();
        if (evicted !== undefined) {
          await evicted;
        } else {
          if (this.#refused++ % 1000 === 0) {
            logger.warn(
              `HTTP: ${this.#relays.size} connections busy (the limit): closing new client ${
                formatNetAddr(client.remoteAddr)
              } (${this.#refused} so far)`,
            );
          }
          closeQuietly(client);
          continue;
        }
      }
      if (!this.#accepting) {
        closeQuietly(client);
        return;
      }
      this.#track(this.#relay(client));
    }
  }

  /**
   * Closes the connection idle (between requests, nothing being written) the
   * longest; returns when its relay has ended, or undefined if none is idle.
   */
  #evictIdle(): Promise<void> | undefined {
    let oldest: Relay | undefined;
    for (const relay of this.#relays) {
      if (relay.closeReason !== undefined) continue;
      if (relay.tracker.phase !== "between" || relay.writingSince !== undefined) continue;
      if (oldest === undefined || relay.deadline < oldest.deadline) oldest = relay;
    }
    if (oldest === undefined) return undefined;
    this.#evicted++;
    this.#end(oldest, "evicted");
    return oldest.task;
  }

  #drop(relay: Relay, reason: string): void {
    this.#options.logger.warn(
      `HTTP: closing connection from ${formatNetAddr(relay.remote)} - ${reason}`,
      { remote_addr: formatNetAddr(relay.remote), reason },
    );
    this.#end(relay, reason);
  }

  #end(relay: Relay, reason: string): void {
    relay.closeReason ??= reason;
    closeQuietly(relay.client);
    if (relay.upstream !== undefined) closeQuietly(relay.upstream);
  }

  #relayError(what: string, error: unknown): void {
    // Rate-limited: a flood of failures must not become a flood of log lines.
    const now = performance.now();
    if (now - this.#lastRelayError < 1000) return;
    this.#lastRelayError = now;
    this.#options.logger.error(`HTTP: ${what} - ${String(error)}`);
  }

  #relay(client: Deno.TcpConn): Promise<void> {
    const now = this.#clock();
    const relay: Relay = {
      client,
      remote: client.remoteAddr,
      acceptedAt: now,
      upstream: undefined,
      upstreamPort: undefined,
      tracker: new RequestTracker(),
      deadline: now + (this.#options.headerTimeoutMs ?? HTTP_HEADER_TIMEOUT_MS),
      writingSince: undefined,
      closeReason: undefined,
      task: Promise.resolve(),
    };
    this.#relays.add(relay);
    relay.task = this.#run(relay);
    return relay.task;
  }

  async #run(relay: Relay): Promise<void> {
    const client = relay.client;
    try {
      try {
        client.setNoDelay(true);
      } catch {
        // the client may be gone already; the relay finds out soon enough
      }
      try {
        const upstream = await Deno.connect({
          hostname: this.#options.upstream.hostname,
          port: this.#options.upstream.port,
        });
        relay.upstream = upstream;
        relay.upstreamPort = upstream.localAddr.port;
        this.#byUpstreamPort.set(upstream.localAddr.port, relay);
        upstream.setNoDelay(true);
      } catch (error) {
        if (relay.closeReason === undefined) this.#relayError("relay connect failed", error);
        return;
      }
      if (relay.closeReason !== undefined) return;
      await Promise.all([this.#requests(relay), this.#responses(relay)]);
    } catch (error) {
      // A bug here closes this connection only.
      this.#relayError("relay failed", error);
    } finally {
      this.#end(relay, "done");
      this.#relays.delete(relay);
      if (relay.upstreamPort !== undefined) this.#byUpstreamPort.delete(relay.upstreamPort);
    }
  }

  /** Client → Deno.serve, following the request framing to move the deadline. */
  async #requests(relay: Relay): Promise<void> {
    const upstream = relay.upstream!;
    const buffer = new Uint8Array(RELAY_BUFFER_BYTES);
    const tracker = relay.tracker;
    while (relay.closeReason === undefined) {
      const n = await readQuietly(relay.client, buffer);
      if (n === null) {
        // Half-close: the client may still wait for its responses.
        try {
          await upstream.closeWrite();
        } catch {
          this.#end(relay, "upstream gone");
        }
        return;
      }
      const phase = tracker.phase;
      const started = tracker.requestsStarted;
      tracker.feed(buffer.subarray(0, n));
      if (tracker.failure === "head too large") {
        await writeAll(relay.client, HEAD_TOO_LARGE).catch(() => undefined);
        this.#end(relay, tracker.failure);
        return;
      }
      if (tracker.phase !== phase || tracker.requestsStarted !== started) {
        this.#setDeadline(relay, tracker.requestsStarted === 1);
      }
      if (!(await writeAll(upstream, buffer.subarray(0, n)))) {
        this.#end(relay, "upstream gone");
        return;
      }
    }
  }

  #setDeadline(relay: Relay, firstRequest: boolean): void {
    const now = this.#clock();
    const o = this.#options;
    switch (relay.tracker.phase) {
      case "head":
        relay.deadline = (firstRequest ? relay.acceptedAt : now) +
          (o.headerTimeoutMs ?? HTTP_HEADER_TIMEOUT_MS);
        break;
      case "body":
        relay.deadline = now + (o.bodyTimeoutMs ?? HTTP_BODY_TIMEOUT_MS);
        break;
      case "between":
        relay.deadline = now + (o.idleTimeoutMs ?? HTTP_IDLE_TIMEOUT_MS);
    }
  }

  /** Deno.serve → client; a response in progress keeps a keep-alive connection from idling. */
  async #responses(relay: Relay): Promise<void> {
    const upstream = relay.upstream!;
    const buffer = new Uint8Array(RELAY_BUFFER_BYTES);
    const idle = this.#options.idleTimeoutMs ?? HTTP_IDLE_TIMEOUT_MS;
    while (relay.closeReason === undefined) {
      const n = await readQuietly(upstream, buffer);
      if (n === null) {
        this.#end(relay, "server closed");
        return;
      }
      relay.writingSince = this.#clock();
      const written = await writeAll(relay.client, buffer.subarray(0, n));
      const now = this.#clock();
      relay.writingSince = undefined;
      if (!written) {
        this.#end(relay, "client gone");
        return;
      }
      if (relay.tracker.phase === "between" && relay.tracker.requestsStarted > 0) {
        relay.deadline = now + idle;
      }
    }
  }
}

/** Bytes as a binary string (one char per byte). */
function binary(bytes: Uint8Array, start: number, end: number): string {
  return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
}

async function readQuietly(conn: Deno.Conn, buffer: Uint8Array): Promise<number | null> {
  try {
    return await conn.read(buffer);
  } catch {
    return null; // reset, or closed by us
  }
}

/** Writes every byte; false when the peer is gone. */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<boolean> {
  try {
    while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
    return true;
  } catch {
    return false;
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}
