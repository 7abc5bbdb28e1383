// nsqjs (the npm NSQ client, run unmodified from the registry) against our
// daemon: its lookupd query function, and a real `Reader` that discovers a
// producer through our HTTP API and opens a TCP connection to the producer's
// `broadcast_address:tcp_port`. The producer is the nsqd emulator (it
// registers over our TCP port); the nsqd it announces is a stand-in socket
// that speaks just enough of nsqd's protocol V2 for the Reader to subscribe,
// so each connection the Reader makes is observed and closed cleanly.

import assert from "node:assert/strict";
import process from "node:process";
import { concat, eventually, startDaemon, type TestDaemon } from "../support/helpers.ts";
import { ProducerEmulator } from "../support/producer_emulator.ts";
import { writeAll } from "../support/harness.ts";

// node-fetch (nsqjs's HTTP client) loads Node's deprecated `punycode` module;
// keep that one-time warning out of the test output.
(process as { noDeprecation?: boolean }).noDeprecation = true;
const { default: nsqjs } = await import("nsqjs");
const { default: nsqjsLookupd } = await import("nsqjs/lib/lookupd.js");

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A producer as nsqjs's lookup returns it: the /lookup peer object, passed through. */
interface NsqjsNode {
  remote_address?: string;
  hostname?: string;
  broadcast_address?: string;
  tcp_port?: number;
  http_port?: number;
  version?: string;
  topology_zone?: string;
  topology_region?: string;
}

/** `lib/lookupd.js`: queries each lookupd's /lookup and dedupes on host:port. */
type LookupFn = (endpoints: string | string[], topic: string) => Promise<NsqjsNode[]>;
const lookup: LookupFn = nsqjsLookupd;

interface ReaderOptions {
  lookupdHTTPAddresses: string[];
  lookupdPollInterval: number;
}

interface Reader {
  connect(): void;
  close(): void;
  /** One poll of the next lookupd; the Reader's interval timer calls it through the instance. */
  queryLookupd(): Promise<void>;
  on(event: "nsqd_connected", listener: (host: string, port: number) => void): void;
  on(event: "error", listener: (error: Error) => void): void;
}

const Reader: new (topic: string, channel: string, options: ReaderOptions) => Reader = nsqjs.Reader;

/** A real nsqjs Reader polling our daemon, with its polls and connections counted. */
class ObservedReader {
  readonly reader: Reader;
  readonly connected: string[] = [];
  readonly errors: Error[] = [];
  #polls = 0;
  #inFlight = 0;

  constructor(daemon: TestDaemon, topic: string) {
    this.reader = new Reader(topic, "reader-test", {
      lookupdHTTPAddresses: [`127.0.0.1:${daemon.httpAddr.port}`],
      lookupdPollInterval: POLL_S,
    });
    this.reader.on("nsqd_connected", (host, port) => this.connected.push(`${host}:${port}`));
    this.reader.on("error", (error) => this.errors.push(error));
    // Count polls (nsqjs has no event for them) so the test can close between two.
    const poll = this.reader.queryLookupd.bind(this.reader);
    this.reader.queryLookupd = async () => {
      this.#inFlight++;
      try {
        await poll();
      } finally {
        this.#inFlight--;
        this.#polls++;
      }
    };
  }

  /** Completed polls (each one a GET /lookup answered and read). */
  get polls(): number {
    return this.#polls;
  }

  connect(): void {
    this.reader.connect();
  }

  /** Closes right after a poll completes, so no lookupd request is left in flight. */
  async close(): Promise<void> {
    const polls = this.#polls;
    await eventually(() => this.#polls > polls && this.#inFlight === 0, 3 * POLL_S * 1000);
    this.reader.close();
  }

  /** For `finally`: close whatever state the test left the Reader in. */
  closeNow(): void {
    this.reader.close();
  }
}

/** nsqjs's own version, which it sends as `user_agent` in its IDENTIFY. */
const NSQJS_USER_AGENT = "nsqjs/0.13.0";
/** nsqjs requires a poll interval of at least 1 s. */
const POLL_S = 1;
const SUB = "SUB orders reader-test";

/** One TCP connection the stand-in nsqd accepted. */
interface StandInConnection {
  readonly remote: string;
  magic: string;
  identify: Record<string, unknown> | undefined;
  /** Command lines received, IDENTIFY's body excluded. */
  readonly commands: string[];
  ended: boolean;
}

/**
 * A stand-in nsqd TCP port: records each connection's magic and commands and
 * answers like nsqd (IDENTIFY → feature JSON, SUB → OK, CLS → CLOSE_WAIT), so
 * a Reader reaches its ready state and later closes the connection itself.
 */
class StandInNsqd {
  readonly #listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  readonly #conns = new Set<Deno.TcpConn>();
  readonly #handlers = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;
  readonly connections: StandInConnection[] = [];

  constructor() {
    this.#accepting = this.#accept();
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  /** Connections that opened with nsqd's `  V2` magic. */
  get v2(): StandInConnection[] {
    return this.connections.filter((c) => c.magic === "  V2");
  }

  /** Closes every accepted connection, as an nsqd going away would. */
  dropAll(): void {
    for (const conn of this.#conns) closeQuietly(conn);
  }

  async close(): Promise<void> {
    closeQuietly(this.#listener);
    this.dropAll();
    await this.#accepting;
    await Promise.all(this.#handlers);
  }

  async #accept(): Promise<void> {
    while (true) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return;
      }
      const handler = this.#serve(conn).finally(() => {
        this.#conns.delete(conn);
        this.#handlers.delete(handler);
      });
      this.#conns.add(conn);
      this.#handlers.add(handler);
    }
  }

  async #serve(conn: Deno.TcpConn): Promise<void> {
    const record: StandInConnection = {
      remote: `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`,
      magic: "",
      identify: undefined,
      commands: [],
      ended: false,
    };
    this.connections.push(record);
    let buffer = new Uint8Array(0);
    const chunk = new Uint8Array(4096);
    const take = (n: number): Uint8Array | undefined => {
      if (buffer.length < n) return undefined;
      const head = buffer.slice(0, n);
      buffer = buffer.slice(n);
      return head;
    };
    try {
      while (true) {
        const n = await conn.read(chunk);
        if (n === null) break;
        buffer = concat(buffer, chunk.subarray(0, n));
        if (record.magic === "") {
          const magic = take(4);
          if (magic === undefined) continue;
          record.magic = decoder.decode(magic);
          if (record.magic !== "  V2") break;
        }
        while (true) {
          const newline = buffer.indexOf(0x0a);
          if (newline === -1) break;
          const line = decoder.decode(buffer.subarray(0, newline));
          if (line === "IDENTIFY") {
            if (buffer.length < newline + 5) break;
            const size = new DataView(buffer.buffer, buffer.byteOffset + newline + 1, 4)
              .getInt32(0);
            if (buffer.length < newline + 5 + size) break;
            take(newline + 5);
            record.identify = JSON.parse(decoder.decode(take(size)));
            record.commands.push(line);
            await writeAll(conn, responseFrame(NSQD_IDENTIFY_RESPONSE));
            continue;
          }
          take(newline + 1);
          record.commands.push(line);
          if (line.startsWith("SUB ")) await writeAll(conn, responseFrame("OK"));
          else if (line === "CLS") await writeAll(conn, responseFrame("CLOSE_WAIT"));
        }
      }
    } catch {
      // reset or closed by dropAll()
    } finally {
      record.ended = true;
      closeQuietly(conn);
    }
  }
}

/** What nsqd v1.3.0 answers to a feature-negotiating IDENTIFY. */
const NSQD_IDENTIFY_RESPONSE = JSON.stringify({
  max_rdy_count: 2500,
  version: "1.3.0",
  max_msg_timeout: 900000,
  msg_timeout: 60000,
  tls_v1: false,
  deflate: false,
  deflate_level: 6,
  max_deflate_level: 6,
  snappy: false,
  sample_rate: 0,
  auth_required: false,
  output_buffer_size: 16384,
  output_buffer_timeout: 250,
});

/** nsqd's protocol V2 frame: size, frame type 0 (response), data. */
function responseFrame(text: string): Uint8Array {
  const data = encoder.encode(text);
  const out = new Uint8Array(8 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 4 + data.length);
  view.setUint32(4, 0);
  out.set(data, 8);
  return out;
}

function closeQuietly(closer: { close(): void }): void {
  try {
    closer.close();
  } catch {
    // already closed
  }
}

function producer(daemon: TestDaemon, tcpPort: number): ProducerEmulator {
  return new ProducerEmulator({
    lookupdPort: daemon.tcpAddr.port,
    hostname: "nsqd-1",
    broadcastAddress: "127.0.0.1",
    tcpPort,
    httpPort: 4151,
    topologyZone: "zone-a",
    topologyRegion: "region-1",
    pingIntervalMs: 1_000,
    reconnectInitialMs: 10,
  });
}

/** The exact node nsqjs must hand to its Reader for `nsqd`. */
function expectedNode(nsqd: ProducerEmulator): NsqjsNode {
  return {
    remote_address: nsqd.localAddress,
    hostname: "nsqd-1",
    broadcast_address: "127.0.0.1",
    tcp_port: nsqd.options.tcpPort,
    http_port: 4151,
    version: "1.3.0",
    topology_zone: "zone-a",
    topology_region: "region-1",
  };
}

/** Log lines of the daemon answering `/lookup?topic=T` with `status`. */
function lookupRequests(daemon: TestDaemon, topic: string, status = 200): number {
  const prefix = `INFO: ${status} GET /lookup?topic=${topic} `;
  return daemon.logs.filter((line) => line.startsWith(prefix)).length;
}

Deno.test("nsqjs: lookup() returns the producer that registered over our TCP port", async () => {
  await using daemon = startDaemon();
  await using nsqd = producer(daemon, 4150);
  nsqd.start();
  await nsqd.waitForSync(1);
  await nsqd.createChannel("orders", "billing");

  const http = `127.0.0.1:${daemon.httpAddr.port}`;
  for (const endpoint of [http, `http://${http}`, `http://${http}/lookup`, [http, http]]) {
    assert.deepEqual(await lookup(endpoint, "orders"), [expectedNode(nsqd)], String(endpoint));
  }
});

Deno.test("nsqjs: lookup() finds nothing for an unknown topic", async () => {
  await using daemon = startDaemon();
  await using nsqd = producer(daemon, 4150);
  nsqd.start();
  await nsqd.waitForSync(1);
  await nsqd.createTopic("orders");

  assert.deepEqual(await lookup(`127.0.0.1:${daemon.httpAddr.port}`, "unknown"), []);
  assert.equal(lookupRequests(daemon, "unknown", 404), 1);
});

Deno.test("nsqjs: lookup() reads the wrapped body that --legacy-http-api gives it", async () => {
  // nsqjs sends no `Accept: application/vnd.nsq; version=1.0`, so a legacy
  // daemon answers it in NSQ 0.x's envelope; nsqjs reads `data.producers`.
  await using daemon = startDaemon({ legacyHttpApi: true });
  await using nsqd = producer(daemon, 4150);
  nsqd.start();
  await nsqd.waitForSync(1);
  await nsqd.createChannel("orders", "billing");
  const http = `127.0.0.1:${daemon.httpAddr.port}`;
  const raw = await fetch(`http://${http}/lookup?topic=orders`);
  assert.match(await raw.text(), /^\{"status_code":200,"status_txt":"OK","data":\{"channels"/);
  assert.deepEqual(await lookup(http, "orders"), [expectedNode(nsqd)]);
  assert.deepEqual(await lookup(http, "unknown"), []);
});

Deno.test("nsqjs: lookup() finds the producer again after it re-registers", async () => {
  await using daemon = startDaemon();
  await using nsqd = producer(daemon, 4150);
  nsqd.start();
  await nsqd.waitForSync(1);
  const http = `127.0.0.1:${daemon.httpAddr.port}`;
  await nsqd.createChannel("orders", "billing");
  assert.deepEqual(await lookup(http, "orders"), [expectedNode(nsqd)]);

  await nsqd.deleteTopic("orders");
  assert.deepEqual(await lookup(http, "orders"), []);
  await nsqd.createChannel("orders", "billing");
  assert.deepEqual(await lookup(http, "orders"), [expectedNode(nsqd)]);

  // Re-registration by replay after a lost connection: a new remote_address.
  const first = nsqd.localAddress;
  nsqd.dropConnection();
  await nsqd.waitForSync(2);
  assert.notEqual(nsqd.localAddress, first);
  assert.deepEqual(await lookup(http, "orders"), [expectedNode(nsqd)]);
});

Deno.test("nsqjs: a Reader discovers the producer via our HTTP API and connects to broadcast_address:tcp_port", async () => {
  await using daemon = startDaemon();
  const standIn = new StandInNsqd();
  const nsqd = producer(daemon, standIn.port);
  const reader = new ObservedReader(daemon, "orders");
  try {
    nsqd.start();
    await nsqd.waitForSync(1);
    await nsqd.createChannel("orders", "billing");
    reader.connect();
    await eventually(() => standIn.v2.some((c) => c.commands.includes(SUB)), 5_000);

    assert.deepEqual(reader.connected, [`127.0.0.1:${standIn.port}`]);
    assert.equal(standIn.connections.length, 1);
    const [conn] = standIn.v2;
    assert.deepEqual(conn.commands.slice(0, 2), ["IDENTIFY", SUB]);
    assert.equal(conn.identify?.user_agent, NSQJS_USER_AGENT);
    assert.equal(lookupRequests(daemon, "orders"), reader.polls);
    await reader.close();
    await eventually(() => standIn.connections.every((c) => c.ended));
    assert.ok(conn.commands.includes("CLS"), conn.commands.join(", "));
    assert.deepEqual(reader.errors, []);
  } finally {
    reader.closeNow();
    await nsqd.stop();
    await standIn.close();
  }
});

Deno.test("nsqjs: a Reader for an unknown topic connects to nothing", async () => {
  await using daemon = startDaemon();
  const standIn = new StandInNsqd();
  const nsqd = producer(daemon, standIn.port);
  const reader = new ObservedReader(daemon, "unknown");
  try {
    nsqd.start();
    await nsqd.waitForSync(1);
    await nsqd.createChannel("orders", "billing");
    reader.connect();
    // Two polls, both answered 404 TOPIC_NOT_FOUND.
    await eventually(() => reader.polls >= 1, 3_000);
    await reader.close();
    assert.equal(reader.polls, 2);
    assert.equal(lookupRequests(daemon, "unknown", 404), 2);
    assert.deepEqual(standIn.connections, []);
    assert.deepEqual(reader.connected, []);
  } finally {
    reader.closeNow();
    await nsqd.stop();
    await standIn.close();
  }
});

Deno.test("nsqjs: a Reader finds the producer again after it re-registers", async () => {
  await using daemon = startDaemon();
  const standIn = new StandInNsqd();
  const nsqd = producer(daemon, standIn.port);
  const reader = new ObservedReader(daemon, "orders");
  const subscribed = (): number => standIn.v2.filter((c) => c.commands.includes(SUB)).length;
  try {
    nsqd.start();
    await nsqd.waitForSync(1);
    await nsqd.createChannel("orders", "billing");
    reader.connect();
    await eventually(() => subscribed() === 1, 5_000);

    // The producer goes away (UNREGISTER) and its nsqd drops the consumer.
    await nsqd.deleteTopic("orders");
    standIn.dropAll();
    await eventually(() => standIn.connections.every((c) => c.ended));
    // Two polls that find no producer: no new connection.
    const polls = reader.polls;
    await eventually(() => reader.polls >= polls + 2, 4 * POLL_S * 1000);
    assert.equal(standIn.connections.length, 1);

    // It registers again: the next poll finds it and the Reader reconnects.
    await nsqd.createChannel("orders", "billing");
    await eventually(() => subscribed() === 2, 3 * POLL_S * 1000);
    assert.deepEqual(reader.connected, [`127.0.0.1:${standIn.port}`, `127.0.0.1:${standIn.port}`]);
    await reader.close();
    await eventually(() => standIn.connections.every((c) => c.ended));
  } finally {
    reader.closeNow();
    await nsqd.stop();
    await standIn.close();
  }
});
