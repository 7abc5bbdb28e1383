// The HTTP/1.1 server on the public HTTP port, on Deno.listen. Deno.serve
// (Deno 2.9) has no header, idle or request timeout and no connection limit:
// a connection that sends nothing, or its headers one byte at a time, is held
// forever, and once such connections use up the process's descriptors its
// accept() fails with EMFILE and the process dies. This server enforces:
// - at most `maxConnections` at once (the oldest idle one makes room, else the
//   newcomer is closed) and accept() failures back off instead of spinning;
// - a request head complete within `headerTimeoutMs` of its first byte (of the
//   connection's opening for the first request), at most MAX_HEAD_BYTES long;
// - a request body complete within `bodyTimeoutMs` of the end of its head, at
//   most `maxBodyBytes` long (413 without waiting for the rest);
// - a keep-alive connection idle for at most `idleTimeoutMs`;
// - a response write blocked for at most `writeTimeoutMs` on a client that
//   does not read (nothing more is read from it meanwhile).
// Every route answers synchronously, so the requests of one read are answered
// in one write, in order.

import { acceptLoop, closeQuietly } from "../gocompat/accept_loop.ts";
import { formatNetAddr } from "../gocompat/address.ts";
import type { ApiRequest } from "./api.ts";
import {
  type HttpAnswer,
  httpDate,
  type HttpRequestHead,
  RequestParser,
  ResponseBuffer,
} from "../gocompat/http1.ts";
import type { Logger } from "../ops/logger.ts";

export const HTTP_MAX_CONNECTIONS = 1024;
export const HTTP_HEADER_TIMEOUT_MS = 10_000;
export const HTTP_BODY_TIMEOUT_MS = 60_000;
/** Longer than Go's http.Transport IdleConnTimeout (90 s): clients close first. */
export const HTTP_IDLE_TIMEOUT_MS = 120_000;
export const HTTP_WRITE_TIMEOUT_MS = 10_000;
/** After the last response of a closing connection, how long unread input is drained. */
const LINGER_MS = 500;
const READ_BUFFER_BYTES = 16 * 1024;
/** Response buffers kept for reuse, and the largest size worth keeping. */
const POOLED_BUFFERS = 64;
const POOLED_BUFFER_BYTES = 64 * 1024;
const CONTINUE = new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n");
const encoder = new TextEncoder();

export interface HttpServerOptions {
  listener: Deno.TcpListener;
  api: { answer(request: ApiRequest): HttpAnswer | Promise<HttpAnswer> };
  logger: Logger;
  maxBodyBytes: number;
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

interface Connection {
  readonly conn: Deno.TcpConn;
  readonly remote: string;
  readonly acceptedAt: number;
  readonly parser: RequestParser;
  /** Clock time by which the current phase must end. */
  deadline: number;
  /** Clock time a write to the client started, while it is pending. */
  writingSince: number | undefined;
  /** Set when the connection is to end; closes it at once unless a response is being written. */
  closeReason: string | undefined;
  closed: boolean;
  /** Settles when the connection has ended and released its descriptor. */
  task: Promise<void>;
}

export class HttpServer {
  readonly #options: HttpServerOptions;
  readonly #clock: () => number;
  readonly #connections = new Set<Connection>();
  readonly #buffers: ResponseBuffer[] = [];
  #acceptLoop: Promise<void> | undefined;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #accepting = true;
  #refused = 0;
  #evicted = 0;
  #lastError = -Infinity;
  readonly addr: Deno.NetAddr;

  constructor(options: HttpServerOptions) {
    this.#options = options;
    this.#clock = options.clock ?? (() => performance.now());
    this.addr = options.listener.addr;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Connections with a response write blocked right now (for tests and diagnostics). */
  get blockedWriteCount(): number {
    let count = 0;
    for (const c of this.#connections) if (c.writingSince !== undefined) count++;
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
    for (const c of this.#connections) {
      if (c.closed) continue;
      if (c.writingSince !== undefined) {
        if (now - c.writingSince > writeTimeout) {
          this.#drop(c, `response unread for ${writeTimeout}ms`);
        }
      } else if (c.closeReason === undefined && now > c.deadline) {
        this.#drop(c, this.#deadlineReason(c));
      }
    }
  }

  /**
   * Stops accepting; idle connections close now, the others after the
   * response in progress (at most `graceMs`, then they are closed too).
   */
  async close(graceMs = 0): Promise<void> {
    this.#accepting = false;
    try {
      this.#options.listener.close();
    } catch {
      // already closed
    }
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    for (const c of this.#connections) this.#end(c, "shutdown");
    await this.#acceptLoop;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const busy = Promise.all([...this.#connections].map((c) => c.task));
    if (graceMs > 0) {
      const grace = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), graceMs);
      });
      const finished = await Promise.race([busy.then(() => true), grace]);
      clearTimeout(timer);
      if (!finished) {
        this.#options.logger.warn(`HTTP: in-flight requests still running after ${graceMs}ms`);
      }
    }
    for (const c of this.#connections) this.#forceClose(c);
    await busy;
  }

  #deadlineReason(c: Connection): string {
    const { phase, requestsStarted } = c.parser;
    if (phase === "head") return "request head not received in time";
    if (phase === "body") return "request body not received in time";
    return requestsStarted === 0 ? "no request received in time" : "idle keep-alive connection";
  }

  #accept(): Promise<void> {
    const { listener, logger } = this.#options;
    const max = this.#options.maxConnections ?? HTTP_MAX_CONNECTIONS;
    return acceptLoop({
      listener,
      label: "HTTP",
      logger,
      accepting: () => this.#accepting,
      take: async (conn) => {
        if (this.#connections.size >= max) {
          // Wait until the evicted connection has let go of its descriptor:
          // newcomers faster than closes must not pile up.
          const evicted = this.#evictIdle();
          if (evicted === undefined) {
            if (this.#refused++ % 1000 === 0) {
              logger.warn(
                `HTTP: ${this.#connections.size} connections busy (the limit): closing new client ${
                  formatNetAddr(conn.remoteAddr)
                } (${this.#refused} so far)`,
              );
            }
            closeQuietly(conn);
            return;
          }
          await evicted;
        }
        if (this.#accepting) this.#open(conn);
        else closeQuietly(conn);
      },
    });
  }

  /**
   * Closes the connection idle (between requests, nothing being written) the
   * longest; returns when it has ended, or undefined if none is idle.
   */
  #evictIdle(): Promise<void> | undefined {
    let oldest: Connection | undefined;
    for (const c of this.#connections) {
      if (c.closeReason !== undefined || c.writingSince !== undefined) continue;
      if (c.parser.phase !== "between") continue;
      if (oldest === undefined || c.deadline < oldest.deadline) oldest = c;
    }
    if (oldest === undefined) return undefined;
    this.#evicted++;
    this.#end(oldest, "evicted");
    return oldest.task;
  }

  #drop(c: Connection, reason: string): void {
    this.#options.logger.warn(`HTTP: closing connection from ${c.remote} - ${reason}`, {
      remote_addr: c.remote,
      reason,
    });
    if (c.writingSince !== undefined) this.#forceClose(c);
    this.#end(c, reason);
  }

  /** Ends the connection now, or after the response being written. */
  #end(c: Connection, reason: string): void {
    c.closeReason ??= reason;
    if (c.writingSince === undefined) this.#forceClose(c);
  }

  #forceClose(c: Connection): void {
    if (c.closed) return;
    c.closed = true;
    closeQuietly(c.conn);
  }

  #error(what: string, error: unknown): void {
    // Rate-limited: a flood of failures must not become a flood of log lines.
    const now = performance.now();
    if (now - this.#lastError < 1000) return;
    this.#lastError = now;
    this.#options.logger.error(`HTTP: ${what} - ${String(error)}`);
  }

  #open(conn: Deno.TcpConn): void {
    const now = this.#clock();
    const c: Connection = {
      conn,
      remote: formatNetAddr(conn.remoteAddr),
      acceptedAt: now,
      parser: new RequestParser({ maxBodyBytes: this.#options.maxBodyBytes }),
      deadline: now + (this.#options.headerTimeoutMs ?? HTTP_HEADER_TIMEOUT_MS),
      writingSince: undefined,
      closeReason: undefined,
      closed: false,
      task: Promise.resolve(),
    };
    this.#connections.add(c);
    c.task = this.#serve(c);
  }

  async #serve(c: Connection): Promise<void> {
    try {
      try {
        c.conn.setNoDelay(true);
      } catch {
        // the client may be gone already; the first read finds out
      }
      const buffer = new Uint8Array(READ_BUFFER_BYTES);
      // The next read is waited for while the last responses are being written
      // (one event-loop turn less per request); a new write waits for the last.
      let writing: Promise<boolean> | undefined;
      while (c.closeReason === undefined) {
        const n = await readQuietly(c.conn, buffer);
        if (n === null) {
          await writing;
          return;
        }
        const { parser } = c;
        const phase = parser.phase;
        const started = parser.requestsStarted;
        const out = this.#answer(c, buffer.subarray(0, n));
        if (parser.phase !== phase || parser.requestsStarted !== started) {
          this.#setDeadline(c, parser.requestsStarted === 1 && parser.phase === "head");
        }
        if (out !== undefined) {
          if (writing !== undefined && !(await writing)) {
            this.#release(out);
            return;
          }
          writing = this.#write(c, out);
        }
        if (parser.phase === "closed") {
          if (writing !== undefined && !(await writing)) return;
          await this.#linger(c);
          return;
        }
      }
      await writing;
    } catch (error) {
      // A bug here closes this connection only.
      this.#error("connection failed", error);
    } finally {
      this.#forceClose(c);
      this.#connections.delete(c);
    }
  }

  /** Feeds the bytes to the parser; the responses they complete, in one buffer. */
  #answer(c: Connection, bytes: Uint8Array): ResponseBuffer | undefined {
    const events = c.parser.feed(bytes);
    if (events.length === 0) return undefined;
    const out = this.#buffers.pop() ?? new ResponseBuffer();
    for (const event of events) {
      if (event.kind === "continue") {
        out.appendBytes(CONTINUE);
      } else if (event.kind === "error") {
        this.#options.logger.debug(`HTTP: bad request from ${c.remote} - ${event.reason}`);
        out.appendBytes(encoder.encode(event.response));
      } else if (event.kind === "reject") {
        this.#options.logger.debug(`HTTP: request refused from ${c.remote} - ${event.reason}`);
        out.append(event.answer, { date: httpDate() });
      } else {
        this.#respond(c, event.head, event.bodyTooLarge, out);
      }
    }
    return out;
  }

  /** Back to the pool once written; a buffer grown for a large body is let go. */
  #release(buffer: ResponseBuffer): void {
    if (buffer.capacity > POOLED_BUFFER_BYTES || this.#buffers.length >= POOLED_BUFFERS) return;
    buffer.reset();
    this.#buffers.push(buffer);
  }

  #respond(
    c: Connection,
    head: HttpRequestHead,
    bodyTooLarge: boolean,
    out: ResponseBuffer,
  ): void {
    const answer = this.#options.api.answer({
      method: head.method,
      target: head.target,
      accept: head.accept,
      remote: c.remote,
      bodyTooLarge,
    });
    // TEMPORARY until the server awaits answers: no route is asynchronous yet.
    if (answer instanceof Promise) throw new Error("asynchronous answers are not served yet");
    const close = !head.keepAlive || bodyTooLarge || c.closeReason !== undefined;
    out.append(answer, {
      date: httpDate(),
      omitBody: head.method === "HEAD",
      close,
      keepAlive: !close && head.version === "HTTP/1.0",
      http10: head.version === "HTTP/1.0",
    });
  }

  /** Writes the responses and gives their buffer back; false when the connection is to end. */
  async #write(c: Connection, out: ResponseBuffer): Promise<boolean> {
    c.writingSince = this.#clock();
    let written = true;
    for (const part of out.parts()) if (written) written = await writeAll(c.conn, part);
    c.writingSince = undefined;
    this.#release(out);
    if (!written || c.closeReason !== undefined) {
      // Ended while writing (#end waited for it): the pending read ends now.
      this.#forceClose(c);
      return false;
    }
    if (c.parser.phase === "between") {
      c.deadline = this.#clock() + (this.#options.idleTimeoutMs ?? HTTP_IDLE_TIMEOUT_MS);
    }
    return true;
  }

  /**
   * Like Go's closeWriteAndWait: FIN first, then read and discard what the
   * client still sends for a moment, so closing with unread input (a refused
   * body, pipelined requests after `Connection: close`) does not reset the
   * connection before the client has read the last response.
   */
  async #linger(c: Connection): Promise<void> {
    c.closeReason ??= "closing after the response";
    try {
      await c.conn.closeWrite();
    } catch {
      return;
    }
    const timer = setTimeout(() => this.#forceClose(c), LINGER_MS);
    try {
      const sink = new Uint8Array(READ_BUFFER_BYTES);
      while ((await readQuietly(c.conn, sink)) !== null);
    } finally {
      clearTimeout(timer);
    }
  }

  #setDeadline(c: Connection, firstHead: boolean): void {
    const o = this.#options;
    const now = this.#clock();
    switch (c.parser.phase) {
      case "head":
        c.deadline = (firstHead ? c.acceptedAt : now) +
          (o.headerTimeoutMs ?? HTTP_HEADER_TIMEOUT_MS);
        break;
      case "body":
        c.deadline = now + (o.bodyTimeoutMs ?? HTTP_BODY_TIMEOUT_MS);
        break;
      case "between":
        c.deadline = now + (o.idleTimeoutMs ?? HTTP_IDLE_TIMEOUT_MS);
    }
  }
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
