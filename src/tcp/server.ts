// The socket edge of the TCP protocol: accept loop, one read loop per
// connection feeding a LookupSession, batched writes, and a sweeper that
// closes connections that never sent their magic, went silent, or stopped
// reading their responses.
//
// Bounds on hostile clients: a connection is not read while a write to it is
// pending (so one that never reads its responses holds at most one read's
// worth of replies, and is closed after the write timeout); the read buffer
// starts small and grows only for clients that fill it; the number of
// connections is capped (below the descriptor limit, see daemon.ts); accept()
// failures (EMFILE when descriptors run out) back off instead of spinning.

import { acceptLoop, closeQuietly } from "../gocompat/accept_loop.ts";
import { formatNetAddr } from "../gocompat/address.ts";
import { formatDuration } from "../gocompat/duration.ts";
import { NOOP_TCP_OBSERVER, type TcpObserver } from "../ops/metrics.ts";
import type { Logger } from "../ops/logger.ts";
import type { Registry } from "../registry.ts";
import { LookupSession } from "./protocol.ts";

export const MAGIC_TIMEOUT_MS = 10_000;
/** How long a write may stay blocked on a client that does not read. */
export const WRITE_TIMEOUT_MS = 10_000;
/** First read buffer of a connection; doubled after each read that fills it. */
export const MIN_READ_BUFFER_BYTES = 2 * 1024;
/** Largest read buffer, so largest batch of replies pending for one connection. */
export const MAX_READ_BUFFER_BYTES = 16 * 1024;
/** First and last pause after a failed accept() (doubling), as Go's net/http does. */

export interface TcpServerOptions {
  listener: Deno.TcpListener;
  registry: Registry;
  logger: Logger;
  maxIdentifySize: number;
  identifyResponse: string;
  /** Connections silent for longer than this are closed (`--inactive-producer-timeout`). */
  idleTimeoutMs: number;
  magicTimeoutMs?: number;
  writeTimeoutMs?: number;
  /** Monotonic milliseconds; injectable so the sweeper can be tested without sleeping. */
  clock?: () => number;
  /** Period of the idle sweeper; 0 disables the timer (tests call sweep() themselves). */
  sweepIntervalMs?: number;
  observer?: TcpObserver;
  /**
   * Connections held at once; one more is accepted and closed at once (without
   * a reply) so the process never runs out of descriptors. Default: no cap.
   */
  maxConnections?: number;
  /** Test hook: called with each session before its bytes are fed. */
  onSession?: (session: LookupSession) => void;
  /** Test hook: wraps listener.accept() (to inject accept failures). */
  accept?: (listener: Deno.TcpListener) => Promise<Deno.TcpConn>;
  /** Test hook: how the accept loop pauses after a failure (default setTimeout). */
  sleep?: (ms: number) => Promise<void>;
}

/** One connection as seen by tests and diagnostics. */
export interface ConnectionStats {
  readonly remote: string;
  /** Bytes read from the client so far. */
  readonly bytesRead: number;
  /** Bytes of replies handed to a write that has not completed. */
  readonly writingBytes: number;
  /** Unparsed bytes the session holds between reads. */
  readonly bufferedBytes: number;
  /** Size of the connection's read buffer. */
  readonly readBufferBytes: number;
}

interface Connection {
  readonly conn: Deno.TcpConn;
  readonly remote: string;
  readonly session: LookupSession;
  readonly connectedAt: number;
  lastRead: number;
  /** Clock time the pending write started, or undefined when not writing. */
  writingSince: number | undefined;
  closeReason: string | undefined;
  /** Closed by the sweeper for silence: its producers are removed as idle, not disconnected. */
  idle: boolean;
  bytesRead: number;
  writingBytes: number;
  readBufferBytes: number;
}

function defaultSweepInterval(idleTimeoutMs: number): number {
  return Math.min(1000, Math.max(10, idleTimeoutMs / 10));
}

export class TcpServer {
  readonly #options: TcpServerOptions;
  readonly #clock: () => number;
  readonly #connections = new Set<Connection>();
  readonly #handlers = new Set<Promise<void>>();
  #acceptLoop: Promise<void> | undefined;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #closing = false;
  #refused = 0;
  readonly addr: Deno.NetAddr;

  constructor(options: TcpServerOptions) {
    this.#options = options;
    this.#clock = options.clock ?? (() => performance.now());
    this.addr = options.listener.addr;
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Connections closed on accept because `maxConnections` were open. */
  get refusedCount(): number {
    return this.#refused;
  }

  connectionStats(): ConnectionStats[] {
    return [...this.#connections].map((c) => ({
      remote: c.remote,
      bytesRead: c.bytesRead,
      writingBytes: c.writingBytes,
      bufferedBytes: c.session.bufferedBytes,
      readBufferBytes: c.readBufferBytes,
    }));
  }

  start(): void {
    this.#acceptLoop = this.#accept();
    const interval = this.#options.sweepIntervalMs ??
      defaultSweepInterval(this.#options.idleTimeoutMs);
    if (interval > 0) {
      this.#sweeper = setInterval(() => {
        try {
          this.sweep();
        } catch (error) {
          // A throw here would be an uncaught exception: the process would exit.
          this.#options.logger.error(`TCP: sweep failed - ${String(error)}`);
        }
      }, interval);
    }
  }

  /** Closes connections past their magic, idle or write deadline. */
  sweep(now: number = this.#clock()): void {
    const magicTimeout = this.#options.magicTimeoutMs ?? MAGIC_TIMEOUT_MS;
    const writeTimeout = this.#options.writeTimeoutMs ?? WRITE_TIMEOUT_MS;
    const idleTimeout = this.#options.idleTimeoutMs;
    for (const connection of this.#connections) {
      if (connection.closeReason !== undefined) continue;
      if (!connection.session.started && now - connection.connectedAt > magicTimeout) {
        this.#drop(connection, `no protocol magic within ${formatMs(magicTimeout)}`);
      } else if (now - connection.lastRead > idleTimeout) {
        connection.idle = true;
        this.#drop(connection, `no data for ${formatMs(idleTimeout)}`);
      } else if (
        connection.writingSince !== undefined && now - connection.writingSince > writeTimeout
      ) {
        this.#drop(connection, `responses unread for ${formatMs(writeTimeout)}`);
      }
    }
  }

  /** Stops accepting, closes every connection and waits for their handlers. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    this.#options.logger.info(`TCP: closing ${formatNetAddr(this.addr)}`, {
      address: formatNetAddr(this.addr),
    });
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    try {
      this.#options.listener.close();
    } catch {
      // already closed
    }
    for (const connection of this.#connections) {
      connection.closeReason ??= "shutdown";
      closeQuietly(connection.conn);
    }
    await this.#acceptLoop;
    await Promise.all(this.#handlers);
  }

  #accept(): Promise<void> {
    const { listener, logger } = this.#options;
    const maxConnections = this.#options.maxConnections ?? Infinity;
    return acceptLoop({
      listener,
      label: "TCP",
      logger,
      accepting: () => !this.#closing,
      accept: this.#options.accept,
      sleep: this.#options.sleep,
      take: (conn) => {
        if (this.#connections.size >= maxConnections) {
          if (this.#refused++ % 1000 === 0) {
            logger.warn(
              `TCP: ${this.#connections.size} connections open (the limit): closing new client(${
                formatNetAddr(conn.remoteAddr)
              }) (${this.#refused} refused so far)`,
            );
          }
          closeQuietly(conn);
          return;
        }
        const handler = this.#handle(conn);
        this.#handlers.add(handler);
        handler.finally(() => this.#handlers.delete(handler));
      },
    });
  }

  #drop(connection: Connection, reason: string): void {
    connection.closeReason = reason;
    this.#options.logger.warn(`CLIENT(${connection.remote}): closing connection - ${reason}`, {
      client: connection.remote,
      reason,
    });
    closeQuietly(connection.conn);
  }

  async #handle(conn: Deno.TcpConn): Promise<void> {
    const { logger, registry, maxIdentifySize, identifyResponse } = this.#options;
    const remote = formatNetAddr(conn.remoteAddr);
    try {
      conn.setNoDelay(true);
    } catch {
      // the peer may already be gone
    }
    logger.info(`TCP: new client(${remote})`, { client: remote });
    const observer = this.#options.observer ?? NOOP_TCP_OBSERVER;
    observer.connectionAccepted();
    const session = new LookupSession({
      registry,
      logger,
      remoteAddress: remote,
      maxIdentifySize,
      identifyResponse,
      observer,
    });
    const now = this.#clock();
    const connection: Connection = {
      conn,
      remote,
      session,
      connectedAt: now,
      lastRead: now,
      writingSince: undefined,
      closeReason: undefined,
      idle: false,
      bytesRead: 0,
      writingBytes: 0,
      readBufferBytes: MIN_READ_BUFFER_BYTES,
    };
    this.#connections.add(connection);
    // Small at first: thousands of mostly idle producers should not each pin 16 KiB.
    let buffer = new Uint8Array(MIN_READ_BUFFER_BYTES);
    const out: Uint8Array[] = [];
    try {
      this.#options.onSession?.(session);
      while (connection.closeReason === undefined) {
        let n: number | null;
        try {
          n = await conn.read(buffer);
        } catch (error) {
          if (connection.closeReason === undefined && !isDisconnect(error)) {
            logger.error(`client(${remote}) - ${String(error)}`, { client: remote });
          }
          break;
        }
        if (n === null) {
          session.finish(out);
          await this.#write(connection, out);
          break;
        }
        connection.lastRead = this.#clock();
        connection.bytesRead += n;
        const mustClose = session.feed(buffer.subarray(0, n), out);
        // Not reading again until the replies are written is the back-pressure:
        // a client that does not read can make us hold one read's replies, no more.
        await this.#write(connection, out);
        if (mustClose) break;
        if (n === buffer.length && buffer.length < MAX_READ_BUFFER_BYTES) {
          buffer = new Uint8Array(buffer.length * 2);
          connection.readBufferBytes = buffer.length;
        }
      }
    } catch (error) {
      // A bug in one connection's handling closes that connection only.
      logger.error(`client(${remote}) - internal error: ${String(error)}`, { client: remote });
    } finally {
      this.#connections.delete(connection);
      closeQuietly(conn);
      try {
        session.close(connection.idle ? "idle_timeout" : "disconnect");
      } catch (error) {
        logger.error(`client(${remote}) - cleanup failed: ${String(error)}`, { client: remote });
      }
    }
  }

  /** Writes every pending frame in one buffer, looping over partial writes. */
  async #write(connection: Connection, out: Uint8Array[]): Promise<void> {
    if (out.length === 0) return;
    let bytes: Uint8Array;
    if (out.length === 1) {
      bytes = out[0];
    } else {
      let total = 0;
      for (const frame of out) total += frame.length;
      bytes = new Uint8Array(total);
      let offset = 0;
      for (const frame of out) {
        bytes.set(frame, offset);
        offset += frame.length;
      }
    }
    out.length = 0;
    connection.writingSince = this.#clock();
    try {
      while (bytes.length > 0) {
        connection.writingBytes = bytes.length;
        const written = await connection.conn.write(bytes);
        bytes = bytes.subarray(written);
      }
    } catch (error) {
      if (connection.closeReason === undefined && !isDisconnect(error)) {
        this.#options.logger.error(`client(${connection.remote}) - ${String(error)}`, {
          client: connection.remote,
        });
      }
      connection.closeReason ??= "write failed";
    } finally {
      connection.writingSince = undefined;
      connection.writingBytes = 0;
    }
  }
}

function isDisconnect(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.Interrupted ||
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.ConnectionAborted;
}

function formatMs(ms: number): string {
  return formatDuration(BigInt(Math.round(ms * 1e6)));
}
