// One HTTP/1.1 exchange over a raw socket, keeping what fetch() hides: the
// status line as sent, every header line in order and case, and the framing
// (Content-Length or chunked), so two servers' answers can be compared exactly.

import { withTimeout } from "../support/helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface RawRequest {
  method: string;
  /** Path and query, sent as is. */
  target: string;
  /** Extra header lines, in order (Host is always sent first). */
  headers?: readonly (readonly [string, string])[];
}

export interface RawAnswer {
  /** `HTTP/1.1 200 OK` */
  statusLine: string;
  /** `[name, value]` as sent, in order. */
  headers: [string, string][];
  framing: "content-length" | "chunked" | "none";
  /** A response that has no body whatever its headers say (to HEAD; 1xx, 204, 304). */
  bodyless: boolean;
  body: Uint8Array;
}

/** A response's head, once complete in `bytes`: its length and lines. */
function parseHead(bytes: Uint8Array): { end: number; lines: string[] } | undefined {
  for (let i = 3; i < bytes.length; i++) {
    if (bytes[i - 3] === 13 && bytes[i - 2] === 10 && bytes[i - 1] === 13 && bytes[i] === 10) {
      return { end: i + 1, lines: decoder.decode(bytes.subarray(0, i - 3)).split("\r\n") };
    }
  }
  return undefined;
}

class Reader {
  #buffer = new Uint8Array(0);
  constructor(private readonly conn: Deno.Conn) {}

  get buffered(): Uint8Array {
    return this.#buffer;
  }

  /** Reads once more; false at EOF. */
  async more(): Promise<boolean> {
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.conn.read(chunk);
    if (n === null) return false;
    const joined = new Uint8Array(this.#buffer.length + n);
    joined.set(this.#buffer);
    joined.set(chunk.subarray(0, n), this.#buffer.length);
    this.#buffer = joined;
    return true;
  }

  async take(n: number): Promise<Uint8Array> {
    while (this.#buffer.length < n) {
      if (!(await this.more())) throw new Error("EOF inside a response");
    }
    const out = this.#buffer.slice(0, n);
    this.#buffer = this.#buffer.slice(n);
    return out;
  }

  async line(): Promise<string> {
    while (true) {
      const i = this.#buffer.findIndex((b, j) => b === 10 && this.#buffer[j - 1] === 13);
      if (i !== -1) return decoder.decode(await this.take(i + 1)).slice(0, -2);
      if (!(await this.more())) throw new Error("EOF inside a chunked body");
    }
  }
}

async function exchange(port: number, request: RawRequest): Promise<RawAnswer> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const lines = [
      `${request.method} ${request.target} HTTP/1.1`,
      "Host: 127.0.0.1",
      ...(request.headers ?? []).map(([name, value]) => `${name}: ${value}`),
    ];
    let bytes = encoder.encode(lines.join("\r\n") + "\r\n\r\n");
    while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));

    const reader = new Reader(conn);
    let head = parseHead(reader.buffered);
    while (head === undefined) {
      if (!(await reader.more())) throw new Error("EOF before a complete response head");
      head = parseHead(reader.buffered);
    }
    await reader.take(head.end);
    const [statusLine, ...headerLines] = head.lines;
    const headers = headerLines.map((line): [string, string] => {
      const colon = line.indexOf(":");
      return [line.slice(0, colon), line.slice(colon + 1).trim()];
    });
    const header = (name: string): string | undefined =>
      headers.find(([n]) => n.toLowerCase() === name)?.[1];
    const status = Number(statusLine.split(" ")[1]);
    if (request.method === "HEAD" || status === 204 || status === 304 || status < 200) {
      return { statusLine, headers, framing: "none", bodyless: true, body: new Uint8Array(0) };
    }
    if (header("transfer-encoding")?.toLowerCase() === "chunked") {
      const chunks: Uint8Array[] = [];
      while (true) {
        const size = parseInt(await reader.line(), 16);
        if (size === 0) break;
        chunks.push(await reader.take(size));
        await reader.take(2);
      }
      while ((await reader.line()) !== "") {
        // trailers: none expected, skipped
      }
      const body = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let offset = 0;
      for (const chunk of chunks) {
        body.set(chunk, offset);
        offset += chunk.length;
      }
      return { statusLine, headers, framing: "chunked", bodyless: false, body };
    }
    const length = header("content-length");
    if (length !== undefined) {
      return {
        statusLine,
        headers,
        framing: "content-length",
        bodyless: false,
        body: await reader.take(Number(length)),
      };
    }
    while (await reader.more()) {
      // no framing: the body ends at EOF
    }
    return { statusLine, headers, framing: "none", bodyless: false, body: reader.buffered };
  } finally {
    conn.close();
  }
}

/** Sends `request` on a new connection to 127.0.0.1:`port`; the whole response. */
export function rawExchange(port: number, request: RawRequest, ms = 5_000): Promise<RawAnswer> {
  return withTimeout(exchange(port, request), ms, `${request.method} ${request.target}`);
}
