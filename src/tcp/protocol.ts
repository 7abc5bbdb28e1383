// Protocol V1 of nsqlookupd's TCP port as a pure state machine over bytes:
// feed it what the socket read, it appends framed responses to `out` and says
// when the connection must close. The socket, timers and writes live in
// tcp/server.ts. A feed can be given a budget of commands, so that one read
// full of pipelined commands is executed over several turns (resume()).

import {
  E_BAD_BODY,
  E_BAD_CHANNEL,
  E_BAD_PROTOCOL,
  E_BAD_TOPIC,
  E_INVALID,
  type TcpError,
  tcpError,
  tcpErrorText,
} from "../errors.ts";
import { decodeIdentifyBody } from "./identify.ts";
import { NOOP_TCP_OBSERVER, type RemovalReason, type TcpObserver } from "./observer.ts";
import type { Logger } from "../ops/logger.ts";
import { isValidChannelName, isValidTopicName } from "../names.ts";
import type { PeerInfo, Registry } from "../registry.ts";
import { formatDuration } from "../gocompat/duration.ts";
import { err, ok, type Result } from "../result.ts";

export const PROTOCOL_MAGIC_V1 = "  V1";
/** Longest command line accepted (bytes before `\n`); the reference has no bound. */
export const MAX_LINE_LENGTH = 4096;

const NEWLINE = 0x0a;
const EMPTY = new Uint8Array(0);
/** A pending buffer larger than this is released once it is empty again. */
const RETAINED_BUFFER_BYTES = 8 * 1024;
const encoder = new TextEncoder();
const utf8 = new TextDecoder();

/** 4-byte big-endian length, then the payload. */
export function frame(payload: string | Uint8Array): Uint8Array {
  const bytes = typeof payload === "string" ? encoder.encode(payload) : payload;
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

const OK_FRAME = frame("OK");

export interface SessionContext {
  registry: Registry;
  logger: Logger;
  /** The connection's remote `ip:port`, which is also the peer id. */
  remoteAddress: string;
  maxIdentifySize: number;
  /** The JSON answered to IDENTIFY (this daemon's addresses and version). */
  identifyResponse: string;
  /** Counts commands, errors and removals for /metrics. */
  observer?: TcpObserver;
}

type State = "magic" | "line" | "size" | "body" | "closed";

// Lines are handled as binary strings (one char per byte, like Go's string of
// bytes) so that error texts echo the client's bytes verbatim, invalid UTF-8 and
// a leading byte order mark included, as the reference does.

// Go's unicode.IsSpace, which strings.TrimSpace uses, as UTF-8 byte sequences: ASCII
// \t \n \v \f \r and space, U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029,
// U+202F, U+205F, U+3000. Only whole sequences match, as Go decodes runes to trim.
const GO_SPACE = "[\\t\\n\\v\\f\\r ]|\\xc2[\\x85\\xa0]|\\xe1\\x9a\\x80|" +
  "\\xe2\\x80[\\x80-\\x8a\\xa8\\xa9\\xaf]|\\xe2\\x81\\x9f|\\xe3\\x80\\x80";
const TRIM = new RegExp(`^(?:${GO_SPACE})+|(?:${GO_SPACE})+$`, "g");

/** Go's strings.TrimSpace over a binary string. */
export function trimSpace(line: string): string {
  return line.replace(TRIM, "");
}

/** One char per byte; never fails, never replaces bytes. */
function binaryString(bytes: Uint8Array): string {
  return String.fromCharCode.apply(null, bytes as unknown as number[]);
}

function binaryBytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

export class LookupSession {
  readonly #ctx: SessionContext;
  #state: State = "magic";
  /**
   * Unconsumed bytes carried over between reads (a partial line, size or body,
   * or commands a budget left): `#pendingLength` bytes from `#pendingStart` of
   * a buffer that grows by doubling, so a body trickled in tiny reads costs
   * linear, not quadratic, copying, and each resume() only moves the start.
   */
  #pending: Uint8Array = EMPTY;
  #pendingStart = 0;
  #pendingLength = 0;
  #bodySize = 0;
  #peer: PeerInfo | undefined;
  #startedLoop = false;
  /** The last feed stopped at its budget with bytes left: resume() before reading more. */
  #more = false;

  readonly #observer: TcpObserver;
  /** The command being executed, for the result label of its metric. */
  #command: string | undefined;

  constructor(ctx: SessionContext) {
    this.#ctx = ctx;
    this.#observer = ctx.observer ?? NOOP_TCP_OBSERVER;
  }

  get peer(): PeerInfo | undefined {
    return this.#peer;
  }

  get closed(): boolean {
    return this.#state === "closed";
  }

  /**
   * Bytes held between reads. Never more than max(MAX_LINE_LENGTH, maxIdentifySize):
   * a partial line is refused past MAX_LINE_LENGTH, a body is announced within
   * maxIdentifySize, a size or magic is under 4 bytes.
   */
  get bufferedBytes(): number {
    return this.#pendingLength;
  }

  /** Whether the client has sent its protocol magic. */
  get started(): boolean {
    return this.#startedLoop;
  }

  /** Bytes are held that the last budget left unexecuted: call resume() before feeding more. */
  get hasPendingWork(): boolean {
    return this.#more;
  }

  /**
   * Consumes bytes read from the socket; appends response frames to `out`.
   * Executes at most `budget` commands (IDENTIFY counts as one); the rest is
   * kept for resume(). Returns true when the connection must be closed after
   * writing `out`.
   */
  feed(chunk: Uint8Array, out: Uint8Array[], budget: number = Infinity): boolean {
    if (this.closed) return true;
    this.#more = false;
    let executed = 0;
    let data = chunk;
    if (this.#pendingLength > 0) {
      if (chunk.length > 0) {
        this.#reserve(this.#pendingLength + chunk.length);
        this.#pending.set(chunk, this.#pendingStart + this.#pendingLength);
        this.#pendingLength += chunk.length;
      }
      data = this.#pending.subarray(this.#pendingStart, this.#pendingStart + this.#pendingLength);
    }
    let pos = 0;
    while (!this.closed) {
      const available = data.length - pos;
      if (executed >= budget) {
        this.#more = available > 0;
        break;
      }
      if (this.#state === "magic") {
        if (available < 4) break;
        this.#acceptMagic(data.subarray(pos, pos + 4), out);
        pos += 4;
      } else if (this.#state === "line") {
        const newline = data.indexOf(NEWLINE, pos);
        if (newline === -1) {
          if (available > MAX_LINE_LENGTH) this.#fail(this.#lineTooLong(), out);
          break;
        }
        if (newline - pos > MAX_LINE_LENGTH) {
          this.#fail(this.#lineTooLong(), out);
          break;
        }
        const line = binaryString(data.subarray(pos, newline));
        pos = newline + 1;
        executed++;
        this.#execute(line, out);
      } else if (this.#state === "size") {
        if (available < 4) break;
        const size = new DataView(data.buffer, data.byteOffset + pos, 4).getInt32(0);
        pos += 4;
        if (size < 0 || size > this.#ctx.maxIdentifySize) {
          this.#fail(tcpError(E_BAD_BODY, `IDENTIFY invalid body size ${size}`), out);
        } else {
          this.#bodySize = size;
          this.#state = "body";
        }
      } else {
        if (available < this.#bodySize) break;
        const body = data.subarray(pos, pos + this.#bodySize);
        pos += this.#bodySize;
        executed++;
        this.#identify(body, out);
      }
    }
    this.#keep(data, pos);
    return this.closed;
  }

  /** Executes up to `budget` more of the commands a budgeted feed() left. */
  resume(out: Uint8Array[], budget: number = Infinity): boolean {
    return this.feed(EMPTY, out, budget);
  }

  /** Keeps `data[pos..]` for the next read (a copy: the caller reuses its read buffer). */
  #keep(data: Uint8Array, pos: number): void {
    const rest = this.closed ? 0 : data.length - pos;
    if (rest === 0) {
      this.#pendingStart = 0;
      this.#pendingLength = 0;
      // Do not hold a large buffer (an IDENTIFY body's) for the rest of the connection.
      if (this.#pending.length > RETAINED_BUFFER_BYTES) this.#pending = EMPTY;
      return;
    }
    if (this.#pendingLength > 0) {
      // `data` is the pending buffer itself: only its start moves.
      this.#pendingStart += pos;
    } else {
      this.#reserve(rest);
      this.#pending.set(data.subarray(pos));
      this.#pendingStart = 0;
    }
    this.#pendingLength = rest;
  }

  /** Makes room for `size` pending bytes (moving them to the front), keeping them. */
  #reserve(size: number): void {
    const held = this.#pending.subarray(
      this.#pendingStart,
      this.#pendingStart + this.#pendingLength,
    );
    if (this.#pending.length >= size) {
      if (this.#pendingStart + size > this.#pending.length) {
        this.#pending.copyWithin(0, this.#pendingStart, this.#pendingStart + this.#pendingLength);
        this.#pendingStart = 0;
      }
      return;
    }
    const grown = new Uint8Array(Math.max(size, this.#pending.length * 2, 256));
    grown.set(held);
    this.#pending = grown;
    this.#pendingStart = 0;
  }

  /** The client closed its side: an unfinished IDENTIFY is an error, as in the reference. */
  finish(out: Uint8Array[]): void {
    if (this.#state === "size") {
      this.#fail(tcpError(E_BAD_BODY, "IDENTIFY failed to read body size"), out);
    } else if (this.#state === "body") {
      this.#fail(tcpError(E_BAD_BODY, "IDENTIFY failed to read body"), out);
    } else if (this.#state === "magic") {
      this.#ctx.logger.error(`failed to read protocol version - EOF`, {
        client: this.#ctx.remoteAddress,
      });
      this.#state = "closed";
    } else {
      this.#state = "closed";
    }
  }

  /**
   * The connection is gone: the peer leaves every registration. Call once;
   * `reason` says why, for the removal metric.
   */
  close(reason: Exclude<RemovalReason, "unregister"> = "disconnect"): void {
    for (const _ of this.closeInSteps(reason, Infinity));
  }

  /**
   * close() in steps of at most `perStep` registrations (see
   * Registry.removePeerInSteps): a peer with tens of thousands of them would
   * otherwise hold the thread for tens of milliseconds. Run every step.
   */
  *closeInSteps(
    reason: Exclude<RemovalReason, "unregister">,
    perStep: number,
  ): Generator<void, void, undefined> {
    this.#state = "closed";
    this.#pending = EMPTY;
    this.#pendingStart = 0;
    this.#pendingLength = 0;
    const { logger, registry, remoteAddress } = this.#ctx;
    if (this.#startedLoop) {
      logger.info(`PROTOCOL(V1): [${remoteAddress}] exiting ioloop`, { client: remoteAddress });
    }
    const peer = this.#peer;
    if (peer === undefined) return;
    this.#peer = undefined;
    for (const removed of registry.removePeerInSteps(peer.id, perStep)) {
      for (const { category, key, subkey } of removed) {
        this.#logRegistration("UNREGISTER", category, key, subkey);
      }
      if (removed.length > 0) this.#observer.producersRemoved(reason, removed.length);
      // A step short of perStep is the last: the caller need not come back for the end.
      if (removed.length === 0 || removed.length === perStep) yield;
    }
  }

  #acceptMagic(bytes: Uint8Array, out: Uint8Array[]): void {
    const magic = String.fromCharCode(...bytes);
    const { logger, remoteAddress } = this.#ctx;
    logger.info(`CLIENT(${remoteAddress}): desired protocol magic '${magic}'`, {
      client: remoteAddress,
    });
    if (magic !== PROTOCOL_MAGIC_V1) {
      out.push(frame(tcpErrorText(tcpError(E_BAD_PROTOCOL))));
      this.#state = "closed";
      this.#observer.protocolError(E_BAD_PROTOCOL);
      logger.error(`client(${remoteAddress}) bad protocol magic '${magic}'`, {
        client: remoteAddress,
      });
      return;
    }
    this.#startedLoop = true;
    this.#state = "line";
  }

  #lineTooLong(): TcpError {
    this.#command = undefined;
    return tcpError(E_INVALID, `command line exceeds ${MAX_LINE_LENGTH} bytes`);
  }

  #fail(error: TcpError, out: Uint8Array[]): void {
    // The text may echo a binary command line: send its bytes as they came, log it as UTF-8.
    const bytes = binaryBytes(tcpErrorText(error));
    this.#ctx.logger.error(`[${this.#ctx.remoteAddress}] - ${utf8.decode(bytes)}`, {
      client: this.#ctx.remoteAddress,
      code: error.code,
    });
    out.push(frame(bytes));
    this.#state = "closed";
    this.#observer.protocolError(error.code);
    this.#observer.command(this.#command ?? "invalid", error.code);
  }

  #execute(rawLine: string, out: Uint8Array[]): void {
    const params = trimSpace(rawLine).split(" ");
    this.#command = params[0];
    let error: TcpError | undefined;
    switch (params[0]) {
      case "PING":
        this.#ping();
        out.push(OK_FRAME);
        this.#observer.command("PING", "ok");
        return;
      case "IDENTIFY":
        if (this.#peer !== undefined) {
          error = tcpError(E_INVALID, "cannot IDENTIFY again");
        } else {
          this.#state = "size";
          return;
        }
        break;
      case "REGISTER":
        error = this.#register(params);
        break;
      case "UNREGISTER":
        error = this.#unregister(params);
        break;
      default:
        error = tcpError(E_INVALID, `invalid command ${params[0]}`);
    }
    if (error !== undefined) {
      this.#fail(error, out);
    } else {
      out.push(OK_FRAME);
      this.#observer.command(params[0], "ok");
    }
  }

  #ping(): void {
    const peer = this.#peer;
    if (peer === undefined) return;
    const previous = this.#ctx.registry.touch(peer);
    if (this.#ctx.logger.enabled("info")) {
      const sinceNs = BigInt(Math.round((peer.lastUpdate - previous) * 1e6));
      this.#ctx.logger.info(`CLIENT(${peer.id}): pinged (last ping ${formatDuration(sinceNs)})`, {
        client: peer.id,
      });
    }
  }

  #identify(body: Uint8Array, out: Uint8Array[]): void {
    const decoded = decodeIdentifyBody(body);
    if (!decoded.ok) {
      const description = decoded.error === "decode"
        ? "IDENTIFY failed to decode JSON body"
        : "IDENTIFY missing fields";
      this.#fail(tcpError(E_BAD_BODY, description), out);
      return;
    }
    const { registry, logger, remoteAddress } = this.#ctx;
    const fields = decoded.value;
    const peer: PeerInfo = {
      ...fields,
      id: remoteAddress,
      remoteAddress,
      lastUpdate: registry.now(),
    };
    logger.info(
      `CLIENT(${remoteAddress}): IDENTIFY Address:${peer.broadcastAddress} TCP:${peer.tcpPort} HTTP:${peer.httpPort} Version:${peer.version}`,
      {
        client: remoteAddress,
        broadcast_address: peer.broadcastAddress,
        tcp_port: peer.tcpPort,
        http_port: peer.httpPort,
        version: peer.version,
      },
    );
    this.#peer = peer;
    if (registry.identify(peer)) this.#logRegistration("REGISTER", "client", "", "");
    out.push(frame(this.#ctx.identifyResponse));
    this.#observer.command("IDENTIFY", "ok");
    this.#state = "line";
  }

  /** Shared argument checks of REGISTER and UNREGISTER, in the reference's order. */
  #topicAndChannel(
    command: string,
    params: string[],
  ): Result<{ topic: string; channel: string | undefined }, TcpError> {
    if (this.#peer === undefined) return err(tcpError(E_INVALID, "client must IDENTIFY"));
    if (params.length < 2) {
      return err(tcpError(E_INVALID, `${command} insufficient number of params`));
    }
    const topic = params[1];
    if (!isValidTopicName(topic)) {
      return err(tcpError(E_BAD_TOPIC, `${command} topic name '${topic}' is not valid`));
    }
    // An empty channel (`REGISTER t  c` splits to "t", "", "c") means none, as in the reference.
    const channel = params.length >= 3 && params[2] !== "" ? params[2] : undefined;
    if (channel !== undefined && !isValidChannelName(channel)) {
      return err(tcpError(E_BAD_CHANNEL, `${command} channel name '${channel}' is not valid`));
    }
    return ok({ topic, channel });
  }

  #register(params: string[]): TcpError | undefined {
    const args = this.#topicAndChannel("REGISTER", params);
    if (!args.ok) return args.error;
    const peer = this.#peer!;
    const { registry } = this.#ctx;
    const { topic, channel } = args.value;
    if (channel !== undefined && registry.registerChannel(peer, topic, channel)) {
      this.#logRegistration("REGISTER", "channel", topic, channel);
    }
    if (registry.registerTopic(peer, topic)) this.#logRegistration("REGISTER", "topic", topic, "");
    return undefined;
  }

  #unregister(params: string[]): TcpError | undefined {
    const args = this.#topicAndChannel("UNREGISTER", params);
    if (!args.ok) return args.error;
    const { registry, logger, remoteAddress } = this.#ctx;
    const peerId = this.#peer!.id;
    const { topic, channel } = args.value;
    if (channel !== undefined) {
      if (registry.unregisterChannel(peerId, topic, channel)) {
        this.#logRegistration("UNREGISTER", "channel", topic, channel);
        this.#observer.producersRemoved("unregister", 1);
      }
      return undefined;
    }
    const removed = registry.unregisterTopic(peerId, topic);
    for (const name of removed.channels) {
      logger.warn(
        `client(${remoteAddress}) unexpected UNREGISTER category:channel key:${topic} subkey:${name}`,
        { client: remoteAddress, category: "channel", topic, channel: name },
      );
    }
    if (removed.topic) this.#logRegistration("UNREGISTER", "topic", topic, "");
    this.#observer.producersRemoved(
      "unregister",
      removed.channels.length + (removed.topic ? 1 : 0),
    );
    return undefined;
  }

  #logRegistration(action: string, category: string, key: string, subkey: string): void {
    // Skip building the message on the hot path when INFO is off (production runs at warn).
    if (!this.#ctx.logger.enabled("info")) return;
    const client = this.#ctx.remoteAddress;
    this.#ctx.logger.info(
      `DB: client(${client}) ${action} category:${category} key:${key} subkey:${subkey}`,
      { client, action, category, topic: key, channel: subkey },
    );
  }
}
