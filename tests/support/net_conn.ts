// A TCP connection from a chosen loopback source address (127.x.y.z), for
// scripts and tests that play many hosts: the daemon's caps are per remote
// host, and Deno.connect cannot choose its source address while node:net can.
// Reads are framed as the daemon's TCP replies are (4-byte size, payload).

import net from "node:net";

const decoder = new TextDecoder();

/** A TCP connection from a chosen loopback source address, with framed reads. */
export class NetConn {
  readonly #socket: net.Socket;
  #buffer = new Uint8Array(0);
  #waiter: (() => void) | undefined;
  #closed = false;
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on("data", (chunk: Uint8Array) => {
      // Only the unread rest is copied: reads take views (subarray), not copies.
      const merged = new Uint8Array(this.#buffer.length + chunk.length);
      merged.set(this.#buffer);
      merged.set(chunk, this.#buffer.length);
      this.#buffer = merged;
      this.#waiter?.();
    });
    socket.on("error", () => {});
    this.closed = new Promise((resolve) =>
      socket.on("close", () => {
        this.#closed = true;
        this.#waiter?.();
        resolve();
      })
    );
  }

  /** Connects within `ms` (a full listen backlog drops SYNs: connect would retry for minutes). */
  static open(localAddress: string, port: number, ms = 3_000): Promise<NetConn> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ host: "127.0.0.1", port, localAddress });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error("connect timed out"));
      }, ms);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve(new NetConn(socket));
      });
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  write(bytes: Uint8Array | string): Promise<void> {
    return new Promise((resolve) => this.#socket.write(bytes, () => resolve()));
  }

  /** How many bytes are received and unread: at least `n` once it resolves, unless closed. */
  async waitForBytes(n = 1): Promise<number> {
    while (this.#buffer.length < n && !this.#closed) {
      await new Promise<void>((resolve) => this.#waiter = resolve);
      this.#waiter = undefined;
    }
    return this.#buffer.length;
  }

  /** The unread bytes as text, left unread (e.g. an HTTP answer to look at). */
  peekText(): string {
    return decoder.decode(this.#buffer);
  }

  /** The next frame's payload, or null once the connection closed. */
  async readFrame(): Promise<string | null> {
    for (;;) {
      if (this.#buffer.length >= 4) {
        const size = new DataView(this.#buffer.buffer, this.#buffer.byteOffset).getUint32(0);
        if (this.#buffer.length >= 4 + size) {
          const payload = decoder.decode(this.#buffer.subarray(4, 4 + size));
          this.#buffer = this.#buffer.subarray(4 + size);
          return payload;
        }
      }
      if (this.#closed) return null;
      await new Promise<void>((resolve) => this.#waiter = resolve);
      this.#waiter = undefined;
    }
  }

  close(): void {
    this.#socket.destroy();
  }
}
