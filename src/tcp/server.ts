// The socket edge of the TCP protocol: admission on accept, one loop per
// connection feeding a LookupSession in turns, batched writes, and a sweeper
// that closes connections that never sent their magic, went silent, or
// stopped reading their responses.
//
// Staying available with one JavaScript thread:
// - turns (turns.ts): each batch of at most COMMANDS_PER_TURN commands, and
//   each disconnect's cleanup, runs as a unit of a shared scheduler, so a
//   peer that pipelines without pause gets one batch per round and the event
//   loop (other peers, timers, HTTP) runs every few milliseconds;
// - back-pressure: a connection is not read again until the replies to its
//   last batch are handed to the kernel, so one that never reads holds at
//   most one batch of replies (PENDING_REPLY_BYTES_PER_CONNECTION) and is
//   closed after the write timeout; all blocked writes together hold at most
//   `maxPendingReplyBytes`, beyond which the longest-blocked is closed;
// - admission (admission.ts): at the connection cap a newcomer replaces the
//   longest-silent connection that never sent its magic, else one that never
//   IDENTIFIED; identified peers are never displaced; one host holds at most
//   `maxPerRemote` connections; the access-control hook (`admit`) refuses
//   before anything is read, for the cost of the accept;
// - the read buffer starts small and grows only for clients that fill it;
//   accept() failures (EMFILE) back off instead of spinning.

import { acceptLoop, closeQuietly, sleepMs } from "../gocompat/accept_loop.ts";
import { formatNetAddr } from "../gocompat/address.ts";
import { formatDuration } from "../gocompat/duration.ts";
import type { Logger } from "../ops/logger.ts";
import { LoopbackTurn } from "../ops/loopback_turn.ts";
import type { Registry } from "../registry.ts";
import {
  type AdmissionLimits,
  ConnectionTable,
  defaultMaxPerHost,
  hostKey,
  type Standing,
  type Tracked,
} from "./admission.ts";
import { NOOP_TCP_OBSERVER, type RefusalReason, type TcpObserver } from "./observer.ts";
import { LookupSession, MAX_LINE_LENGTH } from "./protocol.ts";
import { deferWithTimer, SchedulerClosedError, TurnScheduler } from "./turns.ts";

export const MAGIC_TIMEOUT_MS = 10_000;
/** How long a write may stay blocked on a client that does not read. */
export const WRITE_TIMEOUT_MS = 10_000;
/**
 * First read buffer of a connection; doubled after each read that fills it.
 * Small: a connection that has sent nothing (thousands of them, in an attack)
 * pins this much outside the heap, and the runtime collects garbage more often
 * the more it holds.
 */
export const MIN_READ_BUFFER_BYTES = 256;
/** Largest read buffer. */
export const MAX_READ_BUFFER_BYTES = 16 * 1024;
/** Commands executed per turn; the rest of a read waits for the connection's next turn. */
export const COMMANDS_PER_TURN = 128;
/**
 * Most reply bytes one connection can have pending: a turn's replies (6-byte
 * `OK` frames), or one error frame (which echoes at most a command line) or
 * IDENTIFY reply, after which the connection closes or its turn ends.
 */
export const PENDING_REPLY_BYTES_PER_CONNECTION = COMMANDS_PER_TURN * 6 + MAX_LINE_LENGTH + 64;
/**
 * Default bound on reply bytes held by all writes in progress together; a write
 * that would pass it closes the connection whose write has been blocked the longest.
 */
export const MAX_PENDING_REPLY_BYTES = 16 * 1024 * 1024;
/**
 * Evicted connections whose descriptor is not released yet (Deno frees it once
 * the pending read is cancelled, on the next event-loop turn); while this many
 * are pending, accepting pauses (newcomers wait in the kernel's backlog, in
 * order), so descriptors stay within the cap.
 */
export const MAX_EVICTIONS_IN_FLIGHT = 32;
/**
 * Registrations a disconnected peer leaves per turn: a peer with 25,000 of
 * them took 25-68 ms in one go (sorting them, then leaving each).
 */
export const CLEANUP_REGISTRATIONS_PER_TURN = 2_000;
/**
 * Accepting is paced while this many connections have sent nothing. Each
 * connection costs the one thread ~150 µs over its life (accept, the pending
 * read, close; measured, about what a bare Deno server pays), so an attacker
 * opening thousands a second takes most of a core and everyone else waits
 * behind it; past this many silent ones, newcomers wait in the kernel's
 * backlog instead. A real nsqd sends its magic with the connection, so a
 * fleet reconnecting at once stays under it, and accepts at full speed.
 */
export const SILENT_PACING_THRESHOLD = 1_024;
/**
 * Accepts per second while paced: about a sixth of a core at that cost (with
 * 2,000 an attacker still held /ping at 125-140 ms on our 2 cores; with 1,000,
 * 52 ms).
 */
export const PACED_ACCEPTS_PER_SECOND = 1_000;
/** At most this many connections are closed per sweep; the rest wait for the next one. */
export const MAX_DROPS_PER_SWEEP = 1024;
/** Per sweep, drops beyond this many are logged as one summary line. */
const LOGGED_DROPS_PER_SWEEP = 16;
/** Refusals and evictions are logged at most once per this interval (per reason). */
const REFUSAL_LOG_INTERVAL_MS = 10_000;
/** A peer closing without a byte is logged at most once per this interval. */
const SILENT_EOF_LOG_INTERVAL_MS = 1_000;
/** How long a refused peer is read (and ignored) after its frame, at most. */
const REFUSAL_LINGER_MS = 250;
/** Refused peers lingering at once, at most; beyond, a refusal closes at once. */
const MAX_LINGERING_REFUSALS = 256;

/** What the access-control policy answers for a refused client. */
export interface Refusal {
  /** A complete error frame (length prefix included), written before closing. */
  frame: Uint8Array;
  /** Why, for the rate-limited log line. */
  reason: string;
}

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
  /**
   * Paces accepting while `silentThreshold` connections have sent nothing
   * (default SILENT_PACING_THRESHOLD, PACED_ACCEPTS_PER_SECOND).
   */
  acceptPacing?: { silentThreshold: number; perSecond: number };
  /** Monotonic milliseconds; injectable so the sweeper can be tested without sleeping. */
  clock?: () => number;
  /** Period of the idle sweeper; 0 disables the timer (tests call sweep() themselves). */
  sweepIntervalMs?: number;
  observer?: TcpObserver;
  /**
   * Connections held at once (below the descriptor limit, see ops/limits.ts).
   * At the cap a newcomer replaces a connection that has not proven itself
   * (see admission.ts), else it is closed at once without a reply. Default: no cap.
   */
  maxConnections?: number;
  /**
   * Connections one host (IPv4 address, IPv6 /64) may hold at once; a newcomer
   * beyond it replaces that host's own longest-silent unidentified connection,
   * else is closed. Default: 1/8 of `maxConnections`.
   */
  maxPerRemote?: number;
  /** Reply bytes all blocked writes may hold together (default MAX_PENDING_REPLY_BYTES). */
  maxPendingReplyBytes?: number;
  /**
   * Access control, asked first for every accepted connection: a refusal is
   * written (without waiting on the peer), the connection closed and counted
   * before anything is read from it.
   */
  admit?: (remote: Deno.NetAddr) => Refusal | undefined;
  /** The scheduler connections take turns on; one is created when absent. */
  turns?: TurnScheduler;
  /** Wraps listener.accept() (to inject accept failures). */
  accept?: (listener: Deno.TcpListener) => Promise<Deno.TcpConn>;
  /** How the accept loop pauses after a failure, and while paced (default setTimeout). */
  sleep?: (ms: number) => Promise<void>;
}

/** Counters and gauges of the server, for metrics and diagnostics. */
export interface TcpServerStats {
  connections: number;
  /** Open connections by how far they got: no magic, magic, IDENTIFY. */
  byStanding: Record<Standing, number>;
  /** Reply bytes handed to writes that have not completed. */
  pendingReplyBytes: number;
  /** Connections with a write in progress. */
  blockedWrites: number;
  /** Bytes read from all clients so far. */
  bytesRead: number;
  /** Connections refused at accept or evicted, by reason. */
  refused: Record<RefusalReason, number>;
  /** Times accepting paused because too many connections were silent. */
  pacedAccepts: number;
  /** Pauses between slices taken through the loopback connection (the rest by timer). */
  loopbackTurns: number;
}

interface Connection extends Tracked {
  readonly conn: Deno.TcpConn;
  readonly remote: string;
  readonly session: LookupSession;
  readonly connectedAt: number;
  /** Clock time the pending write started, or undefined when not writing. */
  writingSince: number | undefined;
  writingBytes: number;
  closeReason: string | undefined;
  /** Closed by the sweeper for silence: its producers are removed as idle, not disconnected. */
  idle: boolean;
  /** Closed to make room; counted in #evicting until its handler ends. */
  evicted: boolean;
}

function defaultSweepInterval(idleTimeoutMs: number): number {
  return Math.min(1000, Math.max(10, idleTimeoutMs / 10));
}

/** At most one log line per interval; the line counts what was not logged. */
class Throttle {
  #last = -Infinity;
  #since = 0;
  constructor(readonly intervalMs: number) {}

  /** The number of events since the last line if one may be logged now, else undefined. */
  take(now: number): number | undefined {
    this.#since++;
    if (now - this.#last < this.intervalMs) return undefined;
    this.#last = now;
    const count = this.#since;
    this.#since = 0;
    return count;
  }
}

export class TcpServer {
  readonly #options: TcpServerOptions;
  readonly #clock: () => number;
  readonly #observer: TcpObserver;
  readonly #turns: TurnScheduler;
  /** How the owned scheduler yields, once open (see ops/loopback_turn.ts). */
  #loopback: LoopbackTurn | undefined;
  #opening: Promise<void> | undefined;
  /** The loopback turn in progress, awaited before the connection closes. */
  #turnInProgress: Promise<void> | undefined;
  #loopbackTurns = 0;
  readonly #ownsTurns: boolean;
  #limits: AdmissionLimits;
  readonly #maxPendingReplyBytes: number;
  readonly #table = new ConnectionTable<Connection>();
  readonly #blocked = new Set<Connection>();
  readonly #handlers = new Set<Promise<void>>();
  /** Refused peers being read before their close (see refuse()). */
  #lingering = 0;
  readonly #refused: Record<RefusalReason, number> = {
    admit: 0,
    limit: 0,
    per_remote: 0,
    evicted: 0,
  };
  readonly #throttles: Record<RefusalReason, Throttle> = {
    admit: new Throttle(REFUSAL_LOG_INTERVAL_MS),
    limit: new Throttle(REFUSAL_LOG_INTERVAL_MS),
    per_remote: new Throttle(REFUSAL_LOG_INTERVAL_MS),
    evicted: new Throttle(REFUSAL_LOG_INTERVAL_MS),
  };
  readonly #pacing: { silentThreshold: number; perSecond: number };
  /** While paced: when the next accept may happen (clock milliseconds). */
  #pacedUntil = 0;
  /** Times accepting paused for pacing. */
  #pacedAccepts = 0;
  readonly #silentEofs = new Throttle(SILENT_EOF_LOG_INTERVAL_MS);
  #pendingReplyBytes = 0;
  #bytesRead = 0;
  #evicting = 0;
  /** Resolved when an eviction in flight completes (the accept loop waits on it). */
  #evictionDone: (() => void) | undefined;
  #acceptLoop: Promise<void> | undefined;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #closing = false;
  readonly addr: Deno.NetAddr;

  constructor(options: TcpServerOptions) {
    this.#options = options;
    this.#clock = options.clock ?? (() => performance.now());
    this.#observer = options.observer ?? NOOP_TCP_OBSERVER;
    this.#ownsTurns = options.turns === undefined;
    this.#turns = options.turns ?? new TurnScheduler({ defer: (fn) => this.#deferTurn(fn) });
    const maxConnections = options.maxConnections ?? Infinity;
    this.#limits = {
      maxConnections,
      maxPerHost: options.maxPerRemote ?? defaultMaxPerHost(maxConnections),
    };
    this.#maxPendingReplyBytes = options.maxPendingReplyBytes ?? MAX_PENDING_REPLY_BYTES;
    this.#pacing = options.acceptPacing ??
      { silentThreshold: SILENT_PACING_THRESHOLD, perSecond: PACED_ACCEPTS_PER_SECOND };
    this.addr = options.listener.addr;
  }

  /** New caps, e.g. once the descriptor limit is known; connections above them stay. */
  resize(maxConnections: number, maxPerHost: number): void {
    this.#limits = { maxConnections, maxPerHost };
  }

  get connectionCount(): number {
    return this.#table.size;
  }

  /** Connections closed on accept: refused by the policy, by the cap or by the per-host share. */
  get refusedCount(): number {
    return this.#refused.admit + this.#refused.limit + this.#refused.per_remote;
  }

  /** Connections closed to make room for a newcomer. */
  get evictedCount(): number {
    return this.#refused.evicted;
  }

  get stats(): TcpServerStats {
    return {
      connections: this.#table.size,
      byStanding: {
        silent: this.#table.count("silent"),
        started: this.#table.count("started"),
        identified: this.#table.count("identified"),
      },
      pendingReplyBytes: this.#pendingReplyBytes,
      blockedWrites: this.#blocked.size,
      bytesRead: this.#bytesRead,
      refused: { ...this.#refused },
      pacedAccepts: this.#pacedAccepts,
      loopbackTurns: this.#loopbackTurns,
    };
  }

  start(): void {
    if (this.#ownsTurns) {
      this.#opening = LoopbackTurn.open().then((loopback) => {
        if (this.#closing) loopback?.close();
        else this.#loopback = loopback;
      });
    }
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

  /** Closes connections past their magic, idle or write deadline (at most MAX_DROPS_PER_SWEEP). */
  sweep(now: number = this.#clock()): void {
    const magicTimeout = this.#options.magicTimeoutMs ?? MAGIC_TIMEOUT_MS;
    const writeTimeout = this.#options.writeTimeoutMs ?? WRITE_TIMEOUT_MS;
    const idleTimeout = this.#options.idleTimeoutMs;
    const drops: [Connection, string][] = [];
    for (const connection of this.#connections()) {
      if (drops.length >= MAX_DROPS_PER_SWEEP) break;
      if (connection.closeReason !== undefined) continue;
      if (!connection.session.started && now - connection.connectedAt > magicTimeout) {
        drops.push([connection, `no protocol magic within ${formatMs(magicTimeout)}`]);
      } else if (now - connection.lastActive > idleTimeout) {
        connection.idle = true;
        drops.push([connection, `no data for ${formatMs(idleTimeout)}`]);
      } else if (
        connection.writingSince !== undefined && now - connection.writingSince > writeTimeout
      ) {
        drops.push([connection, `responses unread for ${formatMs(writeTimeout)}`]);
      }
    }
    drops.forEach(([connection, reason], i) => this.#drop(connection, reason, i));
    if (drops.length > LOGGED_DROPS_PER_SWEEP) {
      this.#options.logger.warn(
        `TCP: closed ${drops.length - LOGGED_DROPS_PER_SWEEP} more connections in this sweep ` +
          `(first: ${drops[LOGGED_DROPS_PER_SWEEP][1]})`,
      );
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
    for (const connection of this.#connections()) {
      connection.closeReason ??= "shutdown";
      closeQuietly(connection.conn);
    }
    // Waiting turns end now; each handler then cleans up directly.
    if (this.#ownsTurns) this.#turns.close();
    this.#evictionDone?.();
    await this.#acceptLoop;
    await Promise.all(this.#handlers);
    await this.#opening;
    await this.#turnInProgress;
    this.#loopback?.close();
    this.#loopback = undefined;
  }

  /**
   * The owned scheduler's pause between slices: a loopback turn, so that the
   * runtime has polled every socket before the next slice (a zero-delay timer
   * until the loopback connection is open, or when it cannot be had).
   */
  #deferTurn(fn: () => void): () => void {
    const loopback = this.#loopback;
    if (loopback === undefined) return deferWithTimer(fn);
    let live = true;
    this.#loopbackTurns++;
    const turn = loopback.turn().catch(() => sleepMs(0)).then(() => {
      if (this.#turnInProgress === turn) this.#turnInProgress = undefined;
      if (live) fn();
    });
    this.#turnInProgress = turn;
    return () => live = false;
  }

  *#connections(): IterableIterator<Connection> {
    for (const standing of ["silent", "started", "identified"] as const) {
      yield* this.#table.entries(standing);
    }
  }

  #accept(): Promise<void> {
    const { listener, logger } = this.#options;
    return acceptLoop({
      listener,
      label: "TCP",
      logger,
      accepting: () => !this.#closing,
      accept: this.#options.accept,
      sleep: this.#options.sleep,
      take: (conn) => this.#take(conn),
      pace: () => this.#pace(),
    });
  }

  /**
   * Between two accepts: accepting is a turn too, so a connection storm cannot
   * hold the event loop; and with too many evictions in flight it waits for one.
   */
  async #pace(): Promise<void> {
    await this.#turns.run(ignore).catch(ignore);
    const pacing = this.#pacing;
    if (this.#table.count("silent") >= pacing.silentThreshold) {
      // One accept per 1/perSecond, slept in steps of at least a timer's granularity.
      const now = this.#clock();
      this.#pacedUntil = Math.max(this.#pacedUntil, now) + 1_000 / pacing.perSecond;
      if (this.#pacedUntil - now >= PACING_STEP_MS) {
        this.#pacedAccepts++;
        await (this.#options.sleep ?? sleepMs)(this.#pacedUntil - now);
      }
    }
    while (this.#evicting >= MAX_EVICTIONS_IN_FLIGHT && !this.#closing) {
      await new Promise<void>((resolve) => this.#evictionDone = resolve);
    }
  }

  #take(conn: Deno.TcpConn): void {
    const remoteAddr = conn.remoteAddr;
    const refusal = this.#options.admit?.(remoteAddr);
    if (refusal !== undefined) {
      const linger = this.#lingering < MAX_LINGERING_REFUSALS;
      if (linger) this.#lingering++;
      const refusing = refuse(conn, refusal.frame, linger);
      this.#handlers.add(refusing);
      refusing.finally(() => {
        this.#handlers.delete(refusing);
        if (linger) this.#lingering--;
      });
      this.#count(
        "admit",
        () => `refused client(${formatNetAddr(remoteAddr)}) - ${refusal.reason}`,
      );
      return;
    }
    const host = hostKey(remoteAddr.hostname);
    let decision = this.#table.admit(host, this.#limits);
    if (decision.kind === "evict" && this.#evicting >= MAX_EVICTIONS_IN_FLIGHT) {
      decision = { kind: "refuse", reason: decision.reason };
    }
    if (decision.kind === "refuse") {
      closeQuietly(conn);
      this.#count(decision.reason, () => this.#refusalText(decision.reason, remoteAddr, host));
      return;
    }
    if (decision.kind === "evict") {
      const { victim, reason } = decision;
      victim.closeReason = `evicted to admit a new client (${reason})`;
      victim.evicted = true;
      this.#evicting++;
      this.#table.remove(victim);
      closeQuietly(victim.conn);
      this.#count(
        "evicted",
        () =>
          `closing client(${victim.remote}) (${
            victim.standing === "silent" ? "no magic" : "not identified"
          }, ` +
          `idle ${formatMs(this.#clock() - victim.lastActive)}) to admit client(${
            formatNetAddr(remoteAddr)
          }) (${
            reason === "limit"
              ? `${this.#limits.maxConnections} connections open`
              : `host ${host} at its share of ${this.#limits.maxPerHost}`
          })`,
      );
    }
    const handler = this.#handle(conn, host);
    this.#handlers.add(handler);
    handler.finally(() => this.#handlers.delete(handler));
  }

  #refusalText(reason: RefusalReason, remoteAddr: Deno.NetAddr, host: string): string {
    const client = `client(${formatNetAddr(remoteAddr)})`;
    return reason === "limit"
      ? `${this.#table.size} connections open (the limit), none replaceable: closing new ${client}`
      : `host ${host} holds ${
        this.#table.countForHost(host)
      } connections (its share), none replaceable: closing new ${client}`;
  }

  /** Counts a refusal or eviction; logs at most one line per interval and reason. */
  #count(reason: RefusalReason, text: () => string): void {
    this.#refused[reason]++;
    this.#observer.connectionRefused?.(reason);
    const since = this.#throttles[reason].take(this.#clock());
    if (since === undefined) return;
    const total = this.#refused[reason];
    this.#options.logger.warn(
      `TCP: ${text()} (${total} ${reason === "evicted" ? "evicted" : "refused"} so far` +
        `${since > 1 ? `, ${since - 1} not logged` : ""})`,
    );
  }

  #drop(connection: Connection, reason: string, index: number): void {
    connection.closeReason = reason;
    if (index < LOGGED_DROPS_PER_SWEEP) {
      this.#options.logger.warn(`CLIENT(${connection.remote}): closing connection - ${reason}`, {
        client: connection.remote,
        reason,
      });
    }
    // A sweep can drop a thousand connections at once (an attacker's silent
    // ones reaching the magic timeout together).
    void this.#closeInTurn(connection.conn);
  }

  /**
   * Closes `conn` in a turn: a close costs the one thread ~20 µs (on loopback
   * the peer's side of it runs inline), so many at once are closed a slice at
   * a time. Once the scheduler is closed (shutdown), at once.
   */
  #closeInTurn(conn: Deno.TcpConn): Promise<void> {
    return this.#turns.run(() => closeQuietly(conn)).catch(() => closeQuietly(conn));
  }

  /** Runs a unit of protocol work in a turn and records how far the client got. */
  #step(connection: Connection, work: () => boolean): Promise<boolean> {
    return this.#turns.run(() => {
      const mustClose = work();
      const { session } = connection;
      if (connection.standing === "silent" && session.started) {
        this.#table.promote(connection, "started");
      }
      if (connection.standing !== "identified" && session.peer !== undefined) {
        this.#table.promote(connection, "identified");
      }
      return mustClose;
    });
  }

  async #handle(conn: Deno.TcpConn, host: string): Promise<void> {
    const { logger } = this.#options;
    const connection = this.#open(conn, host);
    const { remote } = connection;
    try {
      await this.#serve(connection);
    } catch (error) {
      // A bug in one connection's handling closes that connection only.
      if (!(error instanceof SchedulerClosedError)) {
        logger.error(`client(${remote}) - internal error: ${String(error)}`, { client: remote });
      }
    } finally {
      this.#table.remove(connection);
      // Thousands end together when an attacker lets go (row 5 of issue 12:
      // 12,000 in a second).
      await this.#closeInTurn(conn);
      // The pending read has ended, so the descriptor is released.
      if (connection.evicted) {
        this.#evicting--;
        this.#evictionDone?.();
        this.#evictionDone = undefined;
      }
      // A peer that never sent its magic has nothing to clean up (and may be one of thousands).
      if (connection.session.started) await this.#cleanUp(connection);
      else connection.session.close();
    }
  }

  /** A new connection with its protocol session, in the admission table. */
  #open(conn: Deno.TcpConn, host: string): Connection {
    const { logger, registry, maxIdentifySize, identifyResponse } = this.#options;
    const remote = formatNetAddr(conn.remoteAddr);
    // Guarded: at the default level of production setups this line is off, and
    // a connection storm should not build it for nothing.
    if (logger.enabled("info")) logger.info(`TCP: new client(${remote})`, { client: remote });
    this.#observer.connectionAccepted();
    const session = new LookupSession({
      registry,
      logger,
      remoteAddress: remote,
      maxIdentifySize,
      identifyResponse,
      observer: this.#observer,
    });
    const now = this.#clock();
    const connection: Connection = {
      conn,
      remote,
      host,
      standing: "silent",
      lastActive: now,
      session,
      connectedAt: now,
      writingSince: undefined,
      writingBytes: 0,
      closeReason: undefined,
      idle: false,
      evicted: false,
    };
    this.#table.add(connection);
    return connection;
  }

  /** Reads, runs and answers commands until the connection is to end. */
  async #serve(connection: Connection): Promise<void> {
    const { conn, remote, session } = connection;
    // Small at first: thousands of mostly idle producers should not each pin 16 KiB.
    let buffer = new Uint8Array(MIN_READ_BUFFER_BYTES);
    const out: Uint8Array[] = [];
    let received = false;
    while (connection.closeReason === undefined) {
      let mustClose: boolean;
      if (session.hasPendingWork) {
        mustClose = await this.#step(connection, () => session.resume(out, COMMANDS_PER_TURN));
      } else {
        let n: number | null;
        try {
          n = await conn.read(buffer);
        } catch (error) {
          if (connection.closeReason === undefined && !isDisconnect(error)) {
            this.#options.logger.error(`client(${remote}) - ${String(error)}`, { client: remote });
          }
          return;
        }
        if (n === null && !received) {
          this.#silentEof(connection);
          return;
        }
        if (n === null) {
          await this.#step(connection, () => {
            session.finish(out);
            return true;
          });
          await this.#write(connection, out);
          return;
        }
        if (!received) {
          received = true;
          // Only now: replies follow input, and a silent connection (one of
          // thousands, in a storm) is spared the call.
          try {
            conn.setNoDelay(true);
          } catch {
            // the peer may already be gone
          }
        }
        this.#bytesRead += n;
        this.#table.touch(connection, this.#clock());
        const chunk = buffer.subarray(0, n);
        // The session copies what it does not execute now, so the buffer can be reused.
        mustClose = await this.#step(connection, () => session.feed(chunk, out, COMMANDS_PER_TURN));
        if (n === buffer.length && buffer.length < MAX_READ_BUFFER_BYTES) {
          buffer = new Uint8Array(buffer.length * 2);
        }
      }
      // Not reading again until the replies are written is the back-pressure:
      // a client that does not read can make us hold one turn's replies, no more.
      await this.#write(connection, out);
      if (mustClose) return;
    }
  }

  /**
   * A peer that closed without sending a byte: Go's line, but at most one per
   * interval. Thousands of them end together when an attacker lets go, and
   * each would otherwise cost two turns and a log write on the one thread.
   */
  #silentEof(connection: Connection): void {
    const since = this.#silentEofs.take(this.#clock());
    if (since === undefined) return;
    this.#options.logger.error(
      `failed to read protocol version - EOF${
        since > 1 ? ` (${since - 1} more since the last such line, not logged)` : ""
      }`,
      { client: connection.remote },
    );
  }

  /** The peer leaves its registrations, CLEANUP_REGISTRATIONS_PER_TURN per turn. */
  async #cleanUp(connection: Connection): Promise<void> {
    const reason = connection.idle ? "idle_timeout" : "disconnect";
    const steps = connection.session.closeInSteps(reason, CLEANUP_REGISTRATIONS_PER_TURN);
    try {
      for (let done = false; !done;) {
        done = await this.#turns.run(() => steps.next().done === true).catch((error) => {
          if (!(error instanceof SchedulerClosedError)) throw error;
          // Shutting down: no more turns, the rest at once.
          for (const _ of steps);
          return true;
        });
      }
    } catch (error) {
      this.#options.logger.error(
        `client(${connection.remote}) - cleanup failed: ${String(error)}`,
        {
          client: connection.remote,
        },
      );
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
    if (connection.closeReason !== undefined) return;
    // The whole batch is held until its write completes (a partial write keeps
    // the buffer alive), so that is what counts against the process-wide bound.
    connection.writingSince = this.#clock();
    connection.writingBytes = bytes.length;
    this.#pendingReplyBytes += bytes.length;
    if (this.#pendingReplyBytes > this.#maxPendingReplyBytes) this.#shedBlockedWriter();
    this.#blocked.add(connection);
    try {
      while (bytes.length > 0) bytes = bytes.subarray(await connection.conn.write(bytes));
    } catch (error) {
      if (connection.closeReason === undefined && !isDisconnect(error)) {
        this.#options.logger.error(`client(${connection.remote}) - ${String(error)}`, {
          client: connection.remote,
        });
      }
      connection.closeReason ??= "write failed";
    } finally {
      this.#pendingReplyBytes -= connection.writingBytes;
      this.#blocked.delete(connection);
      connection.writingSince = undefined;
      connection.writingBytes = 0;
    }
  }

  /** Over the process-wide reply budget: the connection blocked the longest goes (not the one starting). */
  #shedBlockedWriter(): void {
    let oldest: Connection | undefined;
    for (const connection of this.#blocked) {
      if (connection.closeReason !== undefined) continue;
      if (oldest === undefined || connection.writingSince! < oldest.writingSince!) {
        oldest = connection;
      }
    }
    if (oldest === undefined) return;
    this.#drop(
      oldest,
      `responses unread while ${this.#pendingReplyBytes} reply bytes are pending (the limit is ${this.#maxPendingReplyBytes})`,
      0,
    );
  }
}

function ignore(): void {}

/** Pacing sleeps at least this long: a shorter timer is rounded up anyway. */
const PACING_STEP_MS = 5;

/**
 * Writes `frame` and closes, without reading and without making the accept
 * loop wait: a fresh socket's send buffer takes a short frame at once, so the
 * write completes on the next turn of the event loop whatever the peer does.
 * (Closing right after calling write() would drop the frame: the write is an
 * op that has not run yet.)
 */
/**
 * Writes the refusal frame and closes. nsqd writes its magic and IDENTIFY
 * before it reads: closing with that input unread would reset the connection
 * and lose the frame, so the refused peer gets a FIN first and is read (and
 * ignored) for a moment — unless `linger` is off because too many already are.
 */
async function refuse(conn: Deno.TcpConn, frame: Uint8Array, linger: boolean): Promise<void> {
  const timer = linger ? setTimeout(() => closeQuietly(conn), REFUSAL_LINGER_MS) : undefined;
  try {
    await conn.write(frame);
    if (linger) {
      await conn.closeWrite();
      const sink = new Uint8Array(4096);
      while ((await conn.read(sink)) !== null);
    }
  } catch {
    // gone, or closed by the timer
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
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
