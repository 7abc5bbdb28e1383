// Plain HTTP/1.1 clients over raw sockets, for scripts that must see what the
// wire does (fetch pools and retries connections, hiding both): one request
// on a new connection, and a keep-alive connection that can pipeline.

import { closeQuietly } from "../../src/gocompat/accept_loop.ts";
import { concat, writeAll } from "./harness.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface HttpAnswer {
  status: number;
  /** The body as text ("" when discarded). */
  body: string;
  /** The body's length in bytes. */
  bytes: number;
}

/**
 * One GET on a new connection (`Connection: close`), read to EOF; the
 * connection is closed after `ms` whatever happens. Throws when no HTTP
 * answer came.
 */
export async function httpGet(port: number, path: string, ms = 5_000): Promise<HttpAnswer> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => closeQuietly(conn), ms);
  try {
    await writeAll(
      conn,
      encoder.encode(`GET ${path} HTTP/1.1\r\nHost: stress\r\nConnection: close\r\n\r\n`),
    );
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
    const text = decoder.decode(concat(...chunks));
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? NaN);
    if (Number.isNaN(status)) throw new Error(`no HTTP answer to ${path}`);
    const body = text.slice(text.indexOf("\r\n\r\n") + 4);
    return { status, body, bytes: encoder.encode(body).length };
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

/** A request for HttpConn: method and origin-form target. */
export interface HttpRequest {
  method: "GET" | "POST";
  path: string;
}

/**
 * A keep-alive HTTP/1.1 connection to 127.0.0.1. `pipeline` writes many
 * requests at once and reads their answers in order (Content-Length or
 * chunked bodies, as the daemon frames them).
 */
export class HttpConn {
  readonly #conn: Deno.TcpConn;
  /** Received bytes not yet parsed: #buffer[#start, #end). */
  #buffer = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async open(port: number): Promise<HttpConn> {
    return new HttpConn(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** One request and its answer (`discard`: the body is counted, not kept). */
  async request(
    method: HttpRequest["method"],
    path: string,
    { discard = false } = {},
  ): Promise<HttpAnswer> {
    return (await this.pipeline([{ method, path }], { discard }))[0];
  }

  /**
   * Writes every request at once, then reads their answers; throws if the
   * connection ends. `discard`: bodies are counted, not kept (a /debug
   * answer can be hundreds of MiB).
   */
  async pipeline(
    requests: readonly HttpRequest[],
    { discard = false } = {},
  ): Promise<HttpAnswer[]> {
    const text = requests.map(({ method, path }) =>
      `${method} ${path} HTTP/1.1\r\nHost: stress\r\n\r\n`
    ).join("");
    try {
      await writeAll(this.#conn, encoder.encode(text));
      const answers: HttpAnswer[] = [];
      for (let i = 0; i < requests.length; i++) answers.push(await this.#answer(discard));
      return answers;
    } catch (error) {
      this.close();
      throw error;
    }
  }

  close(): void {
    this.#closed = true;
    closeQuietly(this.#conn);
  }

  async #answer(discard: boolean): Promise<HttpAnswer> {
    let headEnd: number;
    while ((headEnd = this.#find(CRLFCRLF, this.#start)) === -1) await this.#fill();
    const head = decoder.decode(this.#buffer.subarray(this.#start, headEnd));
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? NaN);
    if (Number.isNaN(status)) throw new Error(`not an HTTP answer: ${head.slice(0, 100)}`);
    this.#start = headEnd + 4;
    const answer = { status, body: "", bytes: 0 };
    const take = async (n: number): Promise<void> => {
      if (discard) await this.#skip(n);
      else answer.body += await this.#take(n);
      answer.bytes += n;
    };
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (length !== null) await take(Number(length[1]));
    else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      for (;;) {
        let lineEnd: number;
        while ((lineEnd = this.#find(CRLF, this.#start)) === -1) await this.#fill();
        const size = parseInt(decoder.decode(this.#buffer.subarray(this.#start, lineEnd)), 16);
        this.#start = lineEnd + 2;
        if (size > 0) await take(size);
        await this.#skip(2); // the CRLF after the data, or the empty trailer's
        if (size === 0) break;
      }
    }
    return answer;
  }

  /** The next `n` bytes as text. */
  async #take(n: number): Promise<string> {
    while (this.#end - this.#start < n) await this.#fill();
    const text = decoder.decode(this.#buffer.subarray(this.#start, this.#start + n));
    this.#start += n;
    return text;
  }

  /** Consumes the next `n` bytes without keeping them. */
  async #skip(n: number): Promise<void> {
    for (;;) {
      const here = Math.min(n, this.#end - this.#start);
      this.#start += here;
      n -= here;
      if (n === 0) return;
      await this.#fill();
    }
  }

  #find(needle: Uint8Array, from: number): number {
    const last = this.#end - needle.length;
    outer: for (let i = from; i <= last; i++) {
      for (let j = 0; j < needle.length; j++) {
        if (this.#buffer[i + j] !== needle[j]) continue outer;
      }
      return i;
    }
    return -1;
  }

  /** Reads more: compacts first, grows when full. */
  async #fill(): Promise<void> {
    if (this.#start > 0) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    if (this.#end === this.#buffer.length) {
      const grown = new Uint8Array(this.#buffer.length * 2);
      grown.set(this.#buffer);
      this.#buffer = grown;
    }
    const n = await this.#conn.read(this.#buffer.subarray(this.#end));
    if (n === null) throw new Error("the connection ended");
    this.#end += n;
  }
}

const CRLF = encoder.encode("\r\n");
const CRLFCRLF = encoder.encode("\r\n\r\n");
