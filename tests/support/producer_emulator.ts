// An nsqd as nsqlookupd sees it (spec section 7), for tests: connects to the
// TCP port, sends `  V1`, IDENTIFY with nsqd's body fields, REGISTERs every
// topic (bare) or topic+channel pair it has, PINGs on an interval, REGISTERs /
// UNREGISTERs as topics and channels come and go, and after losing the
// connection reconnects (with backoff) and replays all of it.
//
// Unlike nsqd, which only notices a dead lookupd on its next PING, the
// emulator keeps a read pending and starts reconnecting as soon as the
// connection ends; a PING tick while disconnected also retries at once, so
// the producer is back within one ping interval of the daemon being back.

import { concat, identifyCommand } from "./helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const PROTOCOL_MAGIC_V1 = "  V1";

/** nsqd's `peerInfo`: what it decodes from the IDENTIFY reply. */
export interface LookupdPeerInfo {
  tcp_port: number;
  http_port: number;
  version: string;
  broadcast_address: string;
}

export interface ProducerEmulatorOptions {
  /** nsqlookupd's TCP port (on `lookupdHost`). */
  lookupdPort: number;
  lookupdHost?: string;
  /** What the emulated nsqd announces (`--broadcast-address`, ports, version, hostname). */
  broadcastAddress?: string;
  hostname?: string;
  tcpPort: number;
  httpPort: number;
  version?: string;
  topologyZone?: string;
  topologyRegion?: string;
  /** nsqd pings every 15 s; tests use much less. */
  pingIntervalMs?: number;
  /** First reconnect delay, doubled per failed attempt up to `reconnectMaxMs`. */
  reconnectInitialMs?: number;
  /** Longest reconnect delay; defaults to the ping interval. */
  reconnectMaxMs?: number;
}

interface Pending {
  resolve(frame: string): void;
  reject(error: Error): void;
}

export class ConnectionLost extends Error {
  constructor() {
    super("connection to nsqlookupd lost");
    this.name = "ConnectionLost";
  }
}

/** A framed error reply (`E_...`) from nsqlookupd to one of our commands. */
export class LookupdError extends Error {
  constructor(readonly command: string, readonly reply: string) {
    super(`nsqlookupd answered ${JSON.stringify(command)} with ${JSON.stringify(reply)}`);
    this.name = "LookupdError";
  }
}

/** The IDENTIFY body nsqd sends: a Go map, so its keys come out sorted. */
export function nsqdIdentifyBody(o: ProducerEmulatorOptions): string {
  return JSON.stringify({
    broadcast_address: o.broadcastAddress ?? "127.0.0.1",
    hostname: o.hostname ?? "emulated-nsqd",
    http_port: o.httpPort,
    tcp_port: o.tcpPort,
    topology_region: o.topologyRegion ?? "",
    topology_zone: o.topologyZone ?? "",
    version: o.version ?? "1.3.0",
  });
}

export class ProducerEmulator {
  readonly options: Readonly<ProducerEmulatorOptions>;
  readonly #pingIntervalMs: number;
  readonly #reconnectInitialMs: number;
  readonly #reconnectMaxMs: number;
  /** topic → channels; a topic with no channels is registered bare. */
  readonly #topics = new Map<string, Set<string>>();
  readonly #abort = new AbortController();
  #stopped = false;
  #loop: Promise<void> | undefined;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #conn: Deno.TcpConn | undefined;
  #pending: Pending[] = [];
  /** Serializes writes so concurrent commands never interleave their bytes. */
  #writes: Promise<void> = Promise.resolve();
  #synced = false;
  #generation = 0;
  #wakeSleeper: (() => void) | undefined;
  #syncWaiters: { generation: number; resolve(): void; reject(error: Error): void }[] = [];
  #lookupd: LookupdPeerInfo | undefined;
  #localAddress: string | undefined;
  /** Connection attempts so far (successful or not). */
  connectAttempts = 0;
  /** PINGs answered `OK`. */
  pings = 0;
  /** Error replies received, in order. */
  readonly errors: string[] = [];

  constructor(options: ProducerEmulatorOptions) {
    this.options = { ...options };
    this.#pingIntervalMs = options.pingIntervalMs ?? 15_000;
    this.#reconnectInitialMs = options.reconnectInitialMs ?? 100;
    this.#reconnectMaxMs = options.reconnectMaxMs ?? this.#pingIntervalMs;
  }

  /** How many times IDENTIFY and the replay have completed (1 after the first connection). */
  get generation(): number {
    return this.#generation;
  }

  /** Identified and replayed on the current connection. */
  get synced(): boolean {
    return this.#synced;
  }

  /** The IDENTIFY reply of the latest connection. */
  get lookupd(): LookupdPeerInfo | undefined {
    return this.#lookupd;
  }

  /** `ip:port` of our end of the latest connection: the `remote_address` lookupd reports. */
  get localAddress(): string | undefined {
    return this.#localAddress;
  }

  /** The registrations replayed on every (re)connection, in order. */
  registrationCommands(): string[] {
    const lines: string[] = [];
    for (const [topic, channels] of this.#topics) {
      if (channels.size === 0) lines.push(`REGISTER ${topic}`);
      for (const channel of channels) lines.push(`REGISTER ${topic} ${channel}`);
    }
    return lines;
  }

  /** Starts connecting in the background; see waitForSync. */
  start(): void {
    if (this.#loop !== undefined) throw new Error("already started");
    this.#loop = this.#run();
    this.#ticker = setInterval(() => this.#tick(), this.#pingIntervalMs);
  }

  /** Resolves once `generation` (default: the next one) has been reached. */
  waitForSync(generation = this.#generation + 1, ms = 5_000): Promise<void> {
    if (this.#generation >= generation) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#syncWaiters = this.#syncWaiters.filter((w) => w !== waiter);
        reject(
          new Error(`producer emulator: generation ${generation} not reached within ${ms} ms`),
        );
      }, ms);
      const waiter = {
        generation,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error: Error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.#syncWaiters.push(waiter);
    });
  }

  /** nsqd created a topic: `REGISTER topic`. */
  async createTopic(topic: string): Promise<void> {
    if (!this.#topics.has(topic)) this.#topics.set(topic, new Set());
    await this.#notify(`REGISTER ${topic}`);
  }

  /** nsqd created a channel (and its topic if new): `REGISTER topic channel`. */
  async createChannel(topic: string, channel: string): Promise<void> {
    const channels = this.#topics.get(topic) ?? new Set();
    channels.add(channel);
    this.#topics.set(topic, channels);
    await this.#notify(`REGISTER ${topic} ${channel}`);
  }

  /** nsqd deleted a channel: `UNREGISTER topic channel`. */
  async deleteChannel(topic: string, channel: string): Promise<void> {
    this.#topics.get(topic)?.delete(channel);
    await this.#notify(`UNREGISTER ${topic} ${channel}`);
  }

  /**
   * nsqd deleted a topic: `UNREGISTER topic` first, then one `UNREGISTER topic
   * channel` per channel as each channel is deleted (nsqd's Topic.exit order).
   */
  async deleteTopic(topic: string): Promise<void> {
    const channels = [...(this.#topics.get(topic) ?? [])];
    this.#topics.delete(topic);
    await this.#notify(`UNREGISTER ${topic}`);
    for (const channel of channels) await this.#notify(`UNREGISTER ${topic} ${channel}`);
  }

  /** Drops the current connection as a network failure would; the emulator reconnects. */
  dropConnection(): void {
    closeQuietly(this.#conn);
  }

  /** Stops for good: no timer, socket or pending operation is left behind. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#ticker);
    this.#abort.abort();
    this.#wakeSleeper?.();
    closeQuietly(this.#conn);
    await this.#loop;
    for (const waiter of this.#syncWaiters) waiter.reject(new Error("producer emulator stopped"));
    this.#syncWaiters = [];
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Sends a change now when connected; otherwise the next replay carries it. */
  async #notify(line: string): Promise<void> {
    if (!this.#synced) return;
    try {
      await this.#command(line);
    } catch (error) {
      if (!(error instanceof ConnectionLost)) throw error;
    }
  }

  #tick(): void {
    if (this.#synced) {
      this.#command("PING").then(() => this.pings++, () => {});
    } else {
      // nsqd reconnects on its next PING: cut a pending backoff short.
      this.#wakeSleeper?.();
    }
  }

  async #run(): Promise<void> {
    let delay = this.#reconnectInitialMs;
    while (!this.#stopped) {
      let conn: Deno.TcpConn;
      this.connectAttempts++;
      try {
        conn = await Deno.connect({
          hostname: this.options.lookupdHost ?? "127.0.0.1",
          port: this.options.lookupdPort,
          signal: this.#abort.signal,
        });
      } catch {
        if (this.#stopped) break;
        await this.#sleep(delay);
        delay = Math.min(delay * 2, this.#reconnectMaxMs);
        continue;
      }
      if (this.#stopped) {
        closeQuietly(conn);
        break;
      }
      const replayed = await this.#session(conn);
      // Back off only when the daemon accepted but the replay did not finish.
      delay = replayed ? this.#reconnectInitialMs : Math.min(delay * 2, this.#reconnectMaxMs);
      if (!replayed && !this.#stopped) await this.#sleep(delay);
    }
  }

  /** One connection: IDENTIFY, replay, then serve commands until it ends. */
  async #session(conn: Deno.TcpConn): Promise<boolean> {
    this.#conn = conn;
    this.#writes = Promise.resolve();
    this.#localAddress = `${conn.localAddr.hostname}:${conn.localAddr.port}`;
    const reading = this.#readLoop(conn);
    let replayed = false;
    try {
      await this.#write(encoder.encode(PROTOCOL_MAGIC_V1));
      const identify = identifyCommand(nsqdIdentifyBody(this.options));
      const reply = await this.#request("IDENTIFY", identify);
      if (reply.startsWith("E_")) {
        this.errors.push(reply);
        throw new LookupdError("IDENTIFY", reply);
      }
      this.#lookupd = JSON.parse(reply) as LookupdPeerInfo;
      for (const line of this.registrationCommands()) await this.#command(line);
      replayed = true;
      this.#synced = true;
      this.#generation++;
      const ready = this.#syncWaiters.filter((w) => w.generation <= this.#generation);
      this.#syncWaiters = this.#syncWaiters.filter((w) => w.generation > this.#generation);
      for (const waiter of ready) waiter.resolve();
    } catch (error) {
      if (!(error instanceof ConnectionLost) && !(error instanceof LookupdError)) {
        this.errors.push(`session: ${String(error)}`);
      }
      closeQuietly(conn);
    }
    await reading;
    this.#synced = false;
    this.#conn = undefined;
    closeQuietly(conn);
    await this.#writes.catch(() => {});
    return replayed;
  }

  /** Reads frames and hands each to the oldest waiting command; fails them all at the end. */
  async #readLoop(conn: Deno.TcpConn): Promise<void> {
    let buffer = new Uint8Array(0);
    const chunk = new Uint8Array(16 * 1024);
    try {
      while (true) {
        const n = await conn.read(chunk);
        if (n === null) break;
        buffer = concat(buffer, chunk.subarray(0, n));
        while (buffer.length >= 4) {
          const size = new DataView(buffer.buffer, buffer.byteOffset, 4).getUint32(0);
          if (buffer.length < 4 + size) break;
          const frame = decoder.decode(buffer.subarray(4, 4 + size));
          buffer = buffer.slice(4 + size);
          const waiter = this.#pending.shift();
          if (waiter === undefined) this.errors.push(`unsolicited frame: ${frame}`);
          else waiter.resolve(frame);
        }
      }
    } catch {
      // reset, or closed by us: either way the connection is over
    } finally {
      const pending = this.#pending;
      this.#pending = [];
      for (const waiter of pending) waiter.reject(new ConnectionLost());
    }
  }

  /** Sends a command line; resolves with the reply, throws LookupdError on `E_...`. */
  async #command(line: string): Promise<string> {
    const reply = await this.#request(line, encoder.encode(line + "\n"));
    if (reply.startsWith("E_")) {
      this.errors.push(reply);
      throw new LookupdError(line, reply);
    }
    return reply;
  }

  #request(what: string, bytes: Uint8Array): Promise<string> {
    if (this.#conn === undefined) return Promise.reject(new ConnectionLost());
    const reply = new Promise<string>((resolve, reject) => {
      this.#pending.push({ resolve, reject });
    });
    this.#write(bytes).catch(() => {
      // The read loop fails the pending reply when the connection ends.
      closeQuietly(this.#conn);
    });
    return reply.catch((error) => {
      if (error instanceof ConnectionLost) throw error;
      throw new Error(`${what}: ${String(error)}`);
    });
  }

  #write(bytes: Uint8Array): Promise<void> {
    const conn = this.#conn;
    const next = this.#writes.then(async () => {
      if (conn === undefined) throw new ConnectionLost();
      let rest = bytes;
      while (rest.length > 0) rest = rest.subarray(await conn.write(rest));
    });
    this.#writes = next.catch(() => {});
    return next;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(wake, ms);
      function wake(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wakeSleeper = () => {
        this.#wakeSleeper = undefined;
        wake();
      };
    });
  }
}

function closeQuietly(conn: Deno.Conn | undefined): void {
  try {
    conn?.close();
  } catch {
    // already closed
  }
}
