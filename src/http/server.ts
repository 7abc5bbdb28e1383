// The HTTP/1.1 server on the public HTTP port (and an HTTPS one), on
// Deno.listen / Deno.listenTls. Deno.serve (Deno 2.9) has no header, idle or
// request timeout and no connection limit, and the reference (Go) gives each
// connection a goroutine; we have one thread. So this server enforces:
// - fairness: a connection answers one request at a time, and the next
//   pipelined one is not even parsed before the answer is handed to the
//   kernel; work runs in bounded runs between which every other connection
//   gets its turn (turns.ts); large answers are streamed in slices;
// - bounded memory: one answer in flight per connection (a streamed one holds
//   at most `maxPendingBytesPerConnection`), and no new answer or slice is
//   produced while the answers in flight hold `maxPendingBytes` (clients that
//   stopped reading are dropped first); a client that asks for more than it
//   reads is not read from, then dropped after the write timeout;
// - at most `maxConnections` at once: near the cap, newcomers take the slot of
//   the connection waiting on its client the longest (idle, or trickling its
//   request), and one host holds at most `maxPerRemote` (admission.ts);
// - a request head complete within `headerTimeoutMs` of its first byte (of the
//   accept for the first request, TLS handshake included), at most
//   MAX_HEAD_BYTES; a request line that cannot be valid is refused at once;
// - a request body complete within `bodyTimeoutMs` of the end of its head, at
//   most `maxBodyBytes` (413 without waiting for the rest);
// - a keep-alive connection idle for at most `idleTimeoutMs`;
// - a response write making no progress for at most `writeTimeoutMs`;
// - shutdown within its grace, abandoning answers being streamed.

import { HTTP_MAX_CONNECTIONS } from "../ops/limits.ts";
import { acceptLoop, closeQuietly } from "../gocompat/accept_loop.ts";
import { formatNetAddr } from "../gocompat/address.ts";
import type { ApiRequest } from "./api.ts";
import {
  type AdmissionReason,
  admit,
  defaultMaxPerRemote,
  defaultSoftLimit,
  type Occupant,
} from "./admission.ts";
import {
  type BodyMode,
  type FixedAnswer,
  type HttpAnswer,
  httpDate,
  type HttpRequestHead,
  isStreamed,
  MAX_LENGTH_BODY_BYTES,
  type ParseEvent,
  RequestParser,
  ResponseBuffer,
  type SerializeOptions,
  type StreamedBody,
} from "../gocompat/http1.ts";
import type { Logger } from "../ops/logger.ts";
import { Turns } from "./turns.ts";
import { LoopbackTurn } from "../ops/loopback_turn.ts";

export { HTTP_MAX_CONNECTIONS } from "../ops/limits.ts";
export const HTTP_HEADER_TIMEOUT_MS = 10_000;
export const HTTP_BODY_TIMEOUT_MS = 60_000;
/** Longer than Go's http.Transport IdleConnTimeout (90 s): clients close first. */
export const HTTP_IDLE_TIMEOUT_MS = 120_000;
export const HTTP_WRITE_TIMEOUT_MS = 10_000;
/**
 * Connections one sweep closes at most (every 250 ms): a slowloris attacker's
 * thousand connections reach the head timeout together, and closing and
 * logging them all in one go would hold the thread for tens of milliseconds.
 */
export const HTTP_MAX_DROPS_PER_SWEEP = 128;
/**
 * A streamed answer holds at most this much (plus one slice) per connection;
 * it goes out in chunks of about this size. An answer built whole by the API
 * is written as it is.
 */
export const HTTP_MAX_PENDING_BYTES_PER_CONNECTION = 64 * 1024;
/**
 * Answers in flight across all connections: above this, no connection starts
 * an answer or pulls a slice until some are written (an answer built whole
 * may overshoot it once).
 */
export const HTTP_MAX_PENDING_BYTES = 64 * 1024 * 1024;
/**
 * Connections waiting on their client for less than this are not evicted: a
 * newcomer gets the time to send its request (the order of eviction, longest
 * waiting first, protects it after that).
 */
export const HTTP_EVICT_MIN_WAIT_MS = 100;
/** Under memory pressure, a write that made no progress for this long is dropped. */
export const HTTP_STALLED_WRITE_MS = 500;
/** After the last response of a closing connection, how long unread input is drained. */
const LINGER_MS = 500;
const READ_BUFFER_BYTES = 16 * 1024;
/** Response buffers kept for reuse, and the largest size worth keeping. */
const POOLED_BUFFERS = 64;
const POOLED_BUFFER_BYTES = 64 * 1024;
const CONTINUE = new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n");
const encoder = new TextEncoder();

/** Events of the server's work, for metrics and tests; each callback is optional. */
/** Why a connection was closed to make room: a limit, or answers held past the process-wide bound. */
export type EvictionReason = AdmissionReason | "memory";

export interface HttpServerObserver {
  /** A response write began; writeEnded follows when it is done or abandoned. */
  writeStarted?(remote: string): void;
  writeEnded?(remote: string): void;
  /** A connection closed to make room. */
  evicted?(remote: string, reason: EvictionReason): void;
  /** A newcomer closed at once. */
  refused?(remote: string, reason: AdmissionReason): void;
  /** Work paused so that other connections could have their turn. */
  yielded?(): void;
}

export interface HttpServerOptions {
  /** A TCP listener, or a TLS one (HTTPS): the same API, limits and timeouts. */
  listener: Deno.TcpListener | Deno.TlsListener;
  api: { answer(request: ApiRequest): HttpAnswer | Promise<HttpAnswer> };
  logger: Logger;
  maxBodyBytes: number;
  maxConnections?: number;
  /** The most connections one remote host may hold; default defaultMaxPerRemote(cap). */
  maxPerRemote?: number;
  headerTimeoutMs?: number;
  bodyTimeoutMs?: number;
  idleTimeoutMs?: number;
  writeTimeoutMs?: number;
  maxPendingBytesPerConnection?: number;
  maxPendingBytes?: number;
  evictMinWaitMs?: number;
  /** Work in one go before other connections get a turn; 0 yields between any two pieces. */
  turnBudgetMs?: number;
  observer?: HttpServerObserver;
  /** Monotonic milliseconds; injectable so tests drive the deadlines. */
  clock?: () => number;
  /** Period of the deadline sweeper; 0 disables the timer (tests call sweep()). */
  sweepIntervalMs?: number;
}

/** What a connection is doing. */
type State =
  /** Waiting on its client: for a request, or the rest of one. */
  | "reading"
  /** Producing an answer (the API, an asynchronous answer, memory budget, its turn). */
  | "answering"
  /** Handing an answer to the kernel. */
  | "writing";

interface Connection {
  readonly conn: Deno.Conn;
  readonly remote: string;
  readonly remoteAddr: Deno.NetAddr;
  /** The remote host, for the per-remote share. */
  readonly host: string;
  /** Accepted by a TLS listener. */
  readonly tls: boolean;
  readonly acceptedAt: number;
  readonly parser: RequestParser;
  state: State;
  /** Clock time by which the current read phase must end. */
  deadline: number;
  /** Since when the connection waits on its client without being served (eviction order). */
  waitingSince: number;
  /** Clock time a write to the client last made progress, while one is pending. */
  writeProgressAt: number;
  /** Bytes of answers this connection holds (staged or being written). */
  held: number;
  /** Set when the connection is to end; closes it at once unless it is being served. */
  closeReason: string | undefined;
  closed: boolean;
  /** Settles when the connection is closed (so that waits on anything else end). */
  readonly closing: Promise<typeof CLOSED>;
  close(): void;
  /** Settles when the connection has ended and released its descriptor. */
  task: Promise<void>;
}

const CLOSED = Symbol("closed");

export class HttpServer {
  readonly #options: HttpServerOptions;
  readonly #clock: () => number;
  readonly #connections = new Set<Connection>();
  readonly #perHost = new Map<string, number>();
  readonly #buffers: ResponseBuffer[] = [];
  readonly #turns: Turns;
  /** The event-loop turn of #turns, once open (else a timer turn). */
  #loopback: LoopbackTurn | undefined;
  #opening: Promise<void> | undefined;
  #maxConnections: number;
  #maxPerRemote: number;
  readonly #maxHeld: number;
  readonly #maxHeldPerConnection: number;
  #held = 0;
  /** Connections waiting for answers in flight to drop below maxPendingBytes. */
  #budgetWaiters: (() => void)[] = [];
  #acceptLoop: Promise<void> | undefined;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #accepting = true;
  #refused = 0;
  #evicted = 0;
  #lastError = -Infinity;
  readonly addr: Deno.NetAddr;

  /** New caps, e.g. once the descriptor limit is known; connections above them stay. */
  resize(maxConnections: number, maxPerRemote: number): void {
    this.#maxConnections = maxConnections;
    this.#maxPerRemote = maxPerRemote;
  }

  constructor(options: HttpServerOptions) {
    this.#options = options;
    this.#clock = options.clock ?? (() => performance.now());
    this.addr = options.listener.addr;
    this.#maxConnections = options.maxConnections ?? HTTP_MAX_CONNECTIONS;
    this.#maxPerRemote = options.maxPerRemote ?? defaultMaxPerRemote(this.#maxConnections);
    this.#maxHeld = options.maxPendingBytes ?? HTTP_MAX_PENDING_BYTES;
    this.#maxHeldPerConnection = options.maxPendingBytesPerConnection ??
      HTTP_MAX_PENDING_BYTES_PER_CONNECTION;
    this.#turns = new Turns({
      budgetMs: options.turnBudgetMs,
      onYield: options.observer?.yielded,
      turn: () =>
        this.#loopback === undefined
          ? new Promise((resolve) => setTimeout(resolve, 0))
          : this.#loopback.turn(),
    });
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Newcomers closed at once (connection limit or per-remote share). */
  get refusedCount(): number {
    return this.#refused;
  }

  /** Connections closed to make room for a newcomer or to free memory. */
  get evictedCount(): number {
    return this.#evicted;
  }

  /** Bytes of answers in flight across all connections. */
  get pendingBytes(): number {
    return this.#held;
  }

  start(): void {
    this.#opening = LoopbackTurn.open().then((loopback) => {
      if (this.#accepting) this.#loopback = loopback;
      else loopback?.close();
    });
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

  /**
   * Closes connections past their deadline or whose write made no progress
   * for too long, at most HTTP_MAX_DROPS_PER_SWEEP (the rest at the next sweep).
   */
  sweep(now: number = this.#clock()): void {
    const writeTimeout = this.#options.writeTimeoutMs ?? HTTP_WRITE_TIMEOUT_MS;
    let drops = 0;
    for (const c of this.#connections) {
      if (drops === HTTP_MAX_DROPS_PER_SWEEP) break;
      if (c.closed) continue;
      if (c.state === "writing") {
        if (now - c.writeProgressAt > writeTimeout) {
          this.#drop(c, `response unread for ${writeTimeout}ms`);
          drops++;
        }
      } else if (c.state === "reading" && now > c.deadline) {
        this.#drop(c, this.#deadlineReason(c));
        drops++;
      }
    }
  }

  /**
   * Stops accepting; connections waiting on their client close now, the
   * others after the answer in progress, or when `graceMs` is over: then
   * everything still open is closed and answers being produced or streamed
   * are abandoned.
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
    for (const c of this.#connections) c.close();
    await busy;
    await this.#opening;
    await this.#turns.settled();
    this.#loopback?.close();
    this.#loopback = undefined;
  }

  #deadlineReason(c: Connection): string {
    const { phase, requestsStarted } = c.parser;
    if (phase === "head") return "request head not received in time";
    if (phase === "body") return "request body not received in time";
    return requestsStarted === 0 ? "no request received in time" : "idle keep-alive connection";
  }

  #accept(): Promise<void> {
    const { listener, logger } = this.#options;
    return acceptLoop({
      // accept_loop.ts is typed for TCP listeners; a TLS listener accepts the same way.
      listener: listener as Deno.Listener as Deno.TcpListener,
      label: "HTTP",
      logger,
      accepting: () => this.#accepting,
      take: async (conn: Deno.Conn) => {
        const remoteAddr = conn.remoteAddr as Deno.NetAddr;
        const host = remoteHost(remoteAddr);
        const decision = admit(
          { remote: host, fromRemote: this.#perHost.get(host) ?? 0 },
          this.#connections.size,
          this.#occupants(),
          {
            maxConnections: this.#maxConnections,
            softLimit: defaultSoftLimit(this.#maxConnections),
            maxPerRemote: this.#maxPerRemote,
            minWaitMs: this.#options.evictMinWaitMs ?? HTTP_EVICT_MIN_WAIT_MS,
          },
          this.#clock(),
        );
        if (decision.kind === "refuse") {
          this.#options.observer?.refused?.(formatNetAddr(remoteAddr), decision.reason);
          if (this.#refused++ % 1000 === 0) {
            logger.warn(
              `HTTP: closing new client ${
                formatNetAddr(remoteAddr)
              } - ${decision.reason} (${this.#connections.size} connections, ${
                this.#perHost.get(host) ?? 0
              } from ${host}; ${this.#refused} so far)`,
            );
          }
          closeQuietly(conn);
          return;
        }
        if (decision.kind === "evict") {
          const victim = decision.victim;
          this.#evict(victim, decision.reason);
          // Wait until the evicted connection has let go of its descriptor:
          // newcomers faster than closes must not pile up past the cap.
          if (decision.wait) await victim.task;
        }
        if (this.#accepting) this.#open(conn, remoteAddr, host);
        else closeQuietly(conn);
      },
    });
  }

  *#occupants(): Generator<Occupant<Connection>> {
    for (const c of this.#connections) {
      yield {
        id: c,
        remote: c.host,
        waiting: c.state === "reading" && c.closeReason === undefined,
        waitingSince: c.waitingSince,
      };
    }
  }

  #evict(c: Connection, reason: EvictionReason): void {
    this.#evicted++;
    this.#options.observer?.evicted?.(c.remote, reason);
    this.#options.logger.debug(`HTTP: closing connection from ${c.remote} - evicted (${reason})`);
    this.#end(c, `evicted (${reason})`);
    c.close();
  }

  #drop(c: Connection, reason: string): void {
    this.#options.logger.warn(`HTTP: closing connection from ${c.remote} - ${reason}`, {
      remote_addr: c.remote,
      reason,
    });
    this.#end(c, reason);
    c.close();
  }

  /** Ends the connection now if it waits on its client, else after the answer in progress. */
  #end(c: Connection, reason: string): void {
    c.closeReason ??= reason;
    if (c.state === "reading") c.close();
  }

  #error(what: string, error: unknown): void {
    // Rate-limited: a flood of failures must not become a flood of log lines.
    const now = performance.now();
    if (now - this.#lastError < 1000) return;
    this.#lastError = now;
    this.#options.logger.error(`HTTP: ${what} - ${String(error)}`);
  }

  #open(conn: Deno.Conn, remoteAddr: Deno.NetAddr, host: string): void {
    const now = this.#clock();
    let signal!: (value: typeof CLOSED) => void;
    const closing = new Promise<typeof CLOSED>((resolve) => signal = resolve);
    const c: Connection = {
      conn,
      remote: formatNetAddr(remoteAddr),
      remoteAddr,
      host,
      tls: typeof (conn as Partial<Deno.TlsConn>).handshake === "function",
      acceptedAt: now,
      parser: new RequestParser({ maxBodyBytes: this.#options.maxBodyBytes }),
      state: "reading",
      deadline: now + (this.#options.headerTimeoutMs ?? HTTP_HEADER_TIMEOUT_MS),
      waitingSince: now,
      writeProgressAt: now,
      held: 0,
      closeReason: undefined,
      closed: false,
      closing,
      close: () => {
        if (c.closed) return;
        c.closed = true;
        closeQuietly(conn);
        signal(CLOSED);
      },
      task: Promise.resolve(),
    };
    this.#connections.add(c);
    this.#perHost.set(host, (this.#perHost.get(host) ?? 0) + 1);
    c.task = this.#serve(c);
  }

  async #serve(c: Connection): Promise<void> {
    try {
      if ("setNoDelay" in c.conn && typeof c.conn.setNoDelay === "function") {
        try {
          c.conn.setNoDelay(true);
        } catch {
          // the client may be gone already; the first read finds out
        }
      }
      const buffer = new Uint8Array(READ_BUFFER_BYTES);
      let input = buffer.subarray(0, 0);
      while (c.closeReason === undefined) {
        const { parser } = c;
        const phase = parser.phase;
        const started = parser.requestsStarted;
        let event: ParseEvent | undefined;
        if (input.length > 0) {
          const step = parser.next(input);
          input = input.subarray(step.used);
          event = step.event;
        }
        if (parser.phase !== phase || parser.requestsStarted !== started) {
          this.#setDeadline(c, parser.requestsStarted === 1 && parser.phase === "head");
        }
        if (event === undefined) {
          if (parser.phase === "closed") return;
          // A TLS handshake happens in the first read: it counts against the head timeout.
          let n: number | null;
          try {
            n = await c.conn.read(buffer);
          } catch {
            return; // reset, closed by us, or a failed TLS handshake
          }
          if (n === null) return;
          input = buffer.subarray(0, n);
          continue;
        }
        c.state = "answering";
        const open = event.kind === "request"
          ? await this.#respond(c, event.head, event.bodyTooLarge)
          : await this.#handle(c, event);
        c.state = "reading";
        c.waitingSince = this.#clock();
        if (parser.phase === "between") {
          c.deadline = c.waitingSince + (this.#options.idleTimeoutMs ?? HTTP_IDLE_TIMEOUT_MS);
        }
        if (!open || c.closed) {
          if (!c.closed) await this.#linger(c);
          return;
        }
        // The next pipelined request only after everyone else had a turn.
        const turn = this.#turns.pass();
        if (turn !== undefined && (await Promise.race([turn, c.closing])) === CLOSED) return;
      }
    } catch (error) {
      // A bug, or a failing answer: this connection closes, the others go on (as Go's server).
      this.#error("connection failed", error);
    } finally {
      c.close();
      this.#release(c, c.held);
      this.#connections.delete(c);
      const left = (this.#perHost.get(c.host) ?? 1) - 1;
      if (left === 0) this.#perHost.delete(c.host);
      else this.#perHost.set(c.host, left);
    }
  }

  /** Answers a parse event other than a request; false when the connection is to end after it. */
  async #handle(c: Connection, event: Exclude<ParseEvent, { kind: "request" }>): Promise<boolean> {
    switch (event.kind) {
      case "continue":
        return await this.#writeBytes(c, CONTINUE) && c.closeReason === undefined;
      case "error":
        this.#options.logger.debug(`HTTP: bad request from ${c.remote} - ${event.reason}`);
        await this.#writeBytes(c, encoder.encode(event.response));
        return false;
      case "reject":
        this.#options.logger.debug(`HTTP: request refused from ${c.remote} - ${event.reason}`);
        await this.#writeAnswer(c, event.answer, { date: httpDate() });
        return false;
    }
  }

  async #respond(c: Connection, head: HttpRequestHead, bodyTooLarge: boolean): Promise<boolean> {
    if (this.#held > this.#maxHeld && !(await this.#budget(c))) return false;
    const request: ApiRequest = {
      method: head.method,
      target: head.target,
      accept: head.accept,
      authorization: head.authorization,
      remote: c.remote,
      remoteAddr: c.remoteAddr,
      tls: c.tls,
      bodyTooLarge,
    };
    let answer = this.#options.api.answer(request);
    if (answer instanceof Promise) {
      // An answer that waits on something outside (an auth server): the
      // connection waits, the others go on; a shutdown does not wait for it.
      answer.catch(() => {}); // abandoned on close, its failure is no one's
      const settled = await Promise.race([answer, c.closing]);
      if (settled === CLOSED) return false;
      answer = settled;
    }
    const close = !head.keepAlive || bodyTooLarge || c.closeReason !== undefined;
    const options: SerializeOptions = {
      date: httpDate(),
      omitBody: head.method === "HEAD",
      close,
      keepAlive: !close && head.version === "HTTP/1.0",
      http10: head.version === "HTTP/1.0",
    };
    const { body } = answer;
    if (isStreamed(body)) return await this.#stream(c, answer, body, options);
    return await this.#writeAnswer(c, answer as FixedAnswer, options);
  }

  /** Serializes an answer whose body is all there and writes it; false when the connection ends. */
  async #writeAnswer(
    c: Connection,
    answer: FixedAnswer,
    options: SerializeOptions,
  ): Promise<boolean> {
    const out = this.#buffers.pop() ?? new ResponseBuffer();
    try {
      const framing = out.append(answer, options);
      const written = await this.#write(c, out);
      return written && !framing.close && c.closeReason === undefined;
    } finally {
      this.#recycle(out);
    }
  }

  /**
   * Streams a body: pulls slices (each a bounded piece of work, with a turn
   * check between), writes them in chunks of up to the per-connection bound,
   * each write awaited before the next slice is pulled. The first
   * MAX_LENGTH_BODY_BYTES + 1 bytes decide the framing, as in Go; a body up
   * to the bound is one chunk (Go's bytes for a handler's one write), a
   * larger one several.
   */
  async #stream(
    c: Connection,
    answer: HttpAnswer,
    body: StreamedBody,
    options: SerializeOptions,
  ): Promise<boolean> {
    const slices = body.slices;
    let done = false;
    const stage = new ResponseBuffer(4096);
    /** Bytes in the stage, counted as held by the connection. */
    let staged = 0;
    const unstage = (): void => {
      this.#release(c, staged);
      staged = 0;
      stage.reset();
    };
    const out = new ResponseBuffer(1024);
    let mode: BodyMode | undefined;
    let close = false;
    try {
      while (!done) {
        // Fill the stage up to its bound (before the framing is known, just past 2048 bytes).
        const bound = mode === undefined ? MAX_LENGTH_BODY_BYTES + 1 : this.#maxHeldPerConnection;
        if (staged === 0 && this.#held > this.#maxHeld && !(await this.#budget(c))) return false;
        while (staged < bound) {
          const next = slices.next();
          if (next.done) {
            done = true;
            break;
          }
          if (typeof next.value === "string") stage.appendText(next.value);
          else stage.appendBytes(next.value);
          this.#hold(c, stage.length - staged);
          staged = stage.length;
          const turn = this.#turns.pass();
          if (turn !== undefined && (await Promise.race([turn, c.closing])) === CLOSED) {
            return false;
          }
        }
        if (mode === undefined) {
          if (done) {
            // Small after all (or complete): framed like a body that was all there.
            const whole = stage.bytes.slice();
            unstage();
            return await this.#writeAnswer(c, { ...answer, body: whole }, options);
          }
          const framing = out.appendHead(answer, options);
          mode = framing.mode;
          close = framing.close;
          if (mode === "none") {
            unstage();
            return await this.#write(c, out) && !close && c.closeReason === undefined;
          }
          // Fill on up to the bound first: a body that fits goes out as one
          // chunk, the bytes of the reference's one handler write.
          continue;
        }
        out.appendChunk(stage.bytes, mode);
        if (done) out.appendEnd(mode);
        unstage(); // its copy in `out` is held while written
        const written = await this.#write(c, out);
        out.reset();
        if (!written || c.closed) return false;
      }
      return !close && c.closeReason === undefined;
    } finally {
      this.#release(c, staged);
      if (!done) {
        try {
          slices.return?.();
        } catch (error) {
          this.#error("abandoning a streamed answer failed", error);
        }
      }
    }
  }

  async #writeBytes(c: Connection, bytes: Uint8Array): Promise<boolean> {
    const out = this.#buffers.pop() ?? new ResponseBuffer();
    try {
      out.appendBytes(bytes);
      return await this.#write(c, out);
    } finally {
      this.#recycle(out);
    }
  }

  /**
   * Hands the buffer's bytes to the kernel (counted as held meanwhile);
   * false when the connection is gone or was dropped.
   */
  async #write(c: Connection, out: ResponseBuffer): Promise<boolean> {
    const size = out.length;
    this.#hold(c, size);
    c.state = "writing";
    c.writeProgressAt = this.#clock();
    const observer = this.#options.observer;
    observer?.writeStarted?.(c.remote);
    try {
      for (const part of out.parts()) {
        let rest = part;
        while (rest.length > 0) {
          let n: number;
          try {
            n = await c.conn.write(rest);
          } catch {
            return false; // the peer is gone, or the connection was closed
          }
          if (n === rest.length) break;
          // Partly written (a large answer): progress, and the other connections' turn.
          rest = rest.subarray(n);
          c.writeProgressAt = this.#clock();
          const turn = this.#turns.pass();
          if (turn !== undefined && (await Promise.race([turn, c.closing])) === CLOSED) {
            return false;
          }
        }
      }
      return !c.closed;
    } finally {
      c.state = "answering";
      observer?.writeEnded?.(c.remote);
      this.#release(c, size);
    }
  }

  /**
   * Waits until the answers in flight hold less than maxPendingBytes, first
   * dropping clients that stopped reading; false when the connection closed
   * meanwhile.
   */
  async #budget(c: Connection): Promise<boolean> {
    while (this.#held > this.#maxHeld) {
      this.#relieve();
      if (this.#held <= this.#maxHeld) break;
      const wake = new Promise<void>((resolve) => this.#budgetWaiters.push(resolve));
      if ((await Promise.race([wake, c.closing])) === CLOSED) return false;
    }
    return !c.closed;
  }

  /** Drops the connections whose writes stalled longest while memory is short. */
  #relieve(): void {
    const now = this.#clock();
    const stalled = [...this.#connections]
      .filter((c) =>
        c.state === "writing" && !c.closed && now - c.writeProgressAt >= HTTP_STALLED_WRITE_MS
      )
      .sort((a, b) => a.writeProgressAt - b.writeProgressAt);
    let freed = 0;
    for (const c of stalled) {
      if (this.#held - freed <= this.#maxHeld) break;
      freed += c.held;
      this.#evict(c, "memory");
    }
  }

  #hold(c: Connection, bytes: number): void {
    c.held += bytes;
    this.#held += bytes;
  }

  #release(c: Connection, bytes: number): void {
    if (bytes === 0) return;
    c.held -= bytes;
    this.#held -= bytes;
    if (this.#held <= this.#maxHeld && this.#budgetWaiters.length > 0) {
      const waiters = this.#budgetWaiters;
      this.#budgetWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  /** Back to the pool once written; a buffer grown for a large body is let go. */
  #recycle(buffer: ResponseBuffer): void {
    if (buffer.capacity > POOLED_BUFFER_BYTES || this.#buffers.length >= POOLED_BUFFERS) return;
    buffer.reset();
    this.#buffers.push(buffer);
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
    const timer = setTimeout(() => c.close(), LINGER_MS);
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

/** The host part of an address, IPv4-mapped IPv6 folded to IPv4. */
function remoteHost(addr: Deno.NetAddr): string {
  const host = addr.hostname.toLowerCase();
  return host.startsWith("::ffff:") && host.includes(".") ? host.slice(7) : host;
}

async function readQuietly(conn: Deno.Conn, buffer: Uint8Array): Promise<number | null> {
  try {
    return await conn.read(buffer);
  } catch {
    return null; // reset, closed by us, or a failed TLS handshake
  }
}
