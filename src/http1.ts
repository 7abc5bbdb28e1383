// HTTP/1.1 as pure functions over bytes: a request parser that follows the
// framing of pipelined requests (heads, Content-Length and chunked bodies) and
// a response serializer that writes what Go's net/http writes (status line,
// handler headers in sorted canonical form, then Date and Content-Length), so
// clients see the reference's bytes. Sockets live in http_server.ts.

/** Longest request head (request line and headers); longer ones get 431. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Longest chunk-size or trailer line of a chunked body. */
export const MAX_CHUNK_LINE_BYTES = 4 * 1024;

const CR = 0x0d;
const LF = 0x0a;

/** A request whose head and body have been received (the body is not kept: no route reads it). */
export interface HttpRequestHead {
  readonly method: string;
  /** The request target as sent, decoded as UTF-8 (as Deno.serve hands it over). */
  readonly target: string;
  readonly version: string;
  /** Header names in lower case, values without surrounding whitespace, in order. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly keepAlive: boolean;
}

export type ParseEvent =
  /** A whole request; `bodyTooLarge` when its body exceeded the limit (the parser stops there). */
  | { readonly kind: "request"; readonly head: HttpRequestHead; readonly bodyTooLarge: boolean }
  /** The client waits for `100 Continue` before sending the body. */
  | { readonly kind: "continue" }
  /** The stream cannot be followed: answer `response` and close. */
  | { readonly kind: "error"; readonly response: string; readonly reason: string };

/** Where the client→server byte stream is, request by request. */
export type RequestPhase = "between" | "head" | "body" | "closed";

type BodyState = "length" | "chunk-size" | "chunk-data" | "chunk-end" | "trailers";

export interface ParserOptions {
  maxHeadBytes?: number;
  /** Bodies above this end the request with `bodyTooLarge` (and end the stream). */
  maxBodyBytes: number;
}

const utf8 = new TextDecoder();

/**
 * Follows HTTP/1.1 request framing over the bytes a client sends, however
 * they are split into reads, keeping at most one request head.
 */
export class RequestParser {
  readonly #maxHead: number;
  readonly #maxBody: number;
  #phase: RequestPhase = "between";
  #requests = 0;
  /** The current head so far as a binary string (one char per byte). */
  #headText = "";
  /** Length of the current head line so far, and its first byte. */
  #lineLength = 0;
  #lineFirst = -1;
  #sawRequestLine = false;
  #pending: HttpRequestHead | undefined;
  #body: BodyState = "length";
  #remaining = 0;
  #bodyBytes = 0;
  #chunkLine = "";

  constructor(options: ParserOptions) {
    this.#maxHead = options.maxHeadBytes ?? MAX_HEAD_BYTES;
    this.#maxBody = options.maxBodyBytes;
  }

  get phase(): RequestPhase {
    return this.#phase;
  }

  /** Requests whose first byte has been seen. */
  get requestsStarted(): number {
    return this.#requests;
  }

  /** Feeds the next bytes; returns what they completed. Bytes after "closed" are ignored. */
  feed(bytes: Uint8Array): ParseEvent[] {
    const events: ParseEvent[] = [];
    let i = 0;
    while (i < bytes.length && this.#phase !== "closed") {
      if (this.#phase === "between") {
        this.#phase = "head";
        this.#requests++;
        this.#headText = "";
        this.#lineLength = 0;
        this.#lineFirst = -1;
        this.#sawRequestLine = false;
      }
      i = this.#phase === "head" ? this.#feedHead(bytes, i, events) : this.#feedBody(bytes, i, events);
    }
    return events;
  }

  #fail(events: ParseEvent[], response: string, reason: string): void {
    this.#phase = "closed";
    events.push({ kind: "error", response, reason });
  }

  #feedHead(bytes: Uint8Array, start: number, events: ParseEvent[]): number {
    let pos = start;
    while (pos < bytes.length) {
      const lf = bytes.indexOf(LF, pos);
      const end = lf === -1 ? bytes.length : lf + 1;
      if (this.#headText.length + (end - pos) > this.#maxHead) {
        this.#fail(events, HEADERS_TOO_LARGE, "request head too large");
        return bytes.length;
      }
      if (this.#lineLength === 0 && end > pos) this.#lineFirst = bytes[pos];
      this.#lineLength += (lf === -1 ? end : lf) - pos;
      this.#headText += binary(bytes, pos, end);
      if (lf === -1) return end;
      pos = end;
      const empty = this.#lineLength === 0 || (this.#lineLength === 1 && this.#lineFirst === CR);
      this.#lineLength = 0;
      this.#lineFirst = -1;
      if (!empty) {
        this.#sawRequestLine = true;
        continue;
      }
      if (!this.#sawRequestLine) {
        // Empty lines before a request line are skipped (RFC 9112 §2.2).
        this.#headText = "";
        continue;
      }
      this.#endHead(events);
      return pos;
    }
    return pos;
  }

  #endHead(events: ParseEvent[]): void {
    const parsed = parseHead(this.#headText);
    this.#headText = "";
    if (typeof parsed === "string") {
      this.#fail(events, parsed, "malformed request head");
      return;
    }
    const { head, framing } = parsed;
    if (framing.expect === "unsupported") {
      this.#fail(events, EXPECTATION_FAILED, "unsupported Expect");
      return;
    }
    if (framing.chunked) {
      this.#pending = head;
      this.#phase = "body";
      this.#body = "chunk-size";
      this.#chunkLine = "";
      this.#bodyBytes = 0;
      if (framing.expect === "continue") events.push({ kind: "continue" });
      return;
    }
    if (framing.length > this.#maxBody) {
      this.#phase = "closed";
      events.push({ kind: "request", head, bodyTooLarge: true });
      return;
    }
    if (framing.length > 0) {
      this.#pending = head;
      this.#phase = "body";
      this.#body = "length";
      this.#remaining = framing.length;
      if (framing.expect === "continue") events.push({ kind: "continue" });
      return;
    }
    this.#complete(head, events);
  }

  #complete(head: HttpRequestHead, events: ParseEvent[]): void {
    this.#pending = undefined;
    // After a request that closes the connection, nothing more is read.
    this.#phase = head.keepAlive ? "between" : "closed";
    events.push({ kind: "request", head, bodyTooLarge: false });
  }

  #feedBody(bytes: Uint8Array, start: number, events: ParseEvent[]): number {
    if (this.#body === "length" || this.#body === "chunk-data") {
      const take = Math.min(this.#remaining, bytes.length - start);
      this.#remaining -= take;
      if (this.#remaining === 0) {
        if (this.#body === "length") {
          this.#complete(this.#pending!, events);
        } else {
          this.#body = "chunk-end";
          this.#chunkLine = "";
        }
      }
      return start + take;
    }
    // A line: a chunk size, the CRLF after a chunk's data, or a trailer.
    let i = bytes.indexOf(LF, start);
    if (i === -1) i = bytes.length;
    if (this.#chunkLine.length + (i - start) > MAX_CHUNK_LINE_BYTES) {
      this.#fail(events, BAD_REQUEST, "chunk line too long");
      return bytes.length;
    }
    this.#chunkLine += binary(bytes, start, i);
    if (i === bytes.length) return i;
    const line = this.#chunkLine.endsWith("\r") ? this.#chunkLine.slice(0, -1) : this.#chunkLine;
    this.#chunkLine = "";
    if (this.#body === "chunk-end") {
      if (line !== "") {
        this.#fail(events, BAD_REQUEST, "malformed chunked encoding");
        return bytes.length;
      }
      this.#body = "chunk-size";
    } else if (this.#body === "chunk-size") {
      const semicolon = line.indexOf(";");
      const hex = (semicolon === -1 ? line : line.slice(0, semicolon)).trim();
      if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) {
        this.#fail(events, BAD_REQUEST, "malformed chunked encoding");
        return bytes.length;
      }
      const size = parseInt(hex, 16);
      this.#bodyBytes += size;
      if (this.#bodyBytes > this.#maxBody) {
        this.#phase = "closed";
        events.push({ kind: "request", head: this.#pending!, bodyTooLarge: true });
        this.#pending = undefined;
        return bytes.length;
      }
      if (size === 0) {
        this.#body = "trailers";
      } else {
        this.#body = "chunk-data";
        this.#remaining = size;
      }
    } else if (line === "") {
      this.#complete(this.#pending!, events); // the empty line after the trailers
    }
    return i + 1;
  }
}

interface Framing {
  /** Content-Length (0 when absent); ignored when chunked. */
  length: number;
  chunked: boolean;
  expect: "none" | "continue" | "unsupported";
}

// Go's net/http answers requests it cannot parse with these bytes and closes.
const ERROR_HEADERS = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n";
const goError = (status: string): string => `HTTP/1.1 ${status}${ERROR_HEADERS}${status}`;
export const BAD_REQUEST = goError("400 Bad Request");
export const HEADERS_TOO_LARGE = goError("431 Request Header Fields Too Large");
const MISSING_HOST = goError("400 Bad Request: missing required Host header");
const TOO_MANY_HOSTS = goError("400 Bad Request: too many Host headers");
const UNSUPPORTED_VERSION = goError("505 HTTP Version Not Supported: unsupported protocol version");
const UNSUPPORTED_TRANSFER_ENCODING =
  `HTTP/1.1 501 Not Implemented${ERROR_HEADERS}Unsupported transfer encoding`;
const EXPECTATION_FAILED =
  "HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const VERSION = /^HTTP\/(\d{1,3})\.(\d{1,3})$/;
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/** The head (binary string, lines ending in LF or CRLF) → request, or the error response. */
function parseHead(text: string): { head: HttpRequestHead; framing: Framing } | string {
  const lines = text.split("\n");
  lines.pop(); // after the final LF
  lines.pop(); // the empty line
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.endsWith("\r")) lines[i] = line.slice(0, -1);
  }
  // Request line: METHOD SP TARGET SP VERSION, split at the first two spaces as Go does.
  const requestLine = lines[0];
  const sp1 = requestLine.indexOf(" ");
  const sp2 = sp1 === -1 ? -1 : requestLine.indexOf(" ", sp1 + 1);
  if (sp2 === -1) return BAD_REQUEST;
  const method = requestLine.slice(0, sp1);
  const rawTarget = requestLine.slice(sp1 + 1, sp2);
  const version = requestLine.slice(sp2 + 1);
  const v = VERSION.exec(version);
  if (!TOKEN.test(method) || v === null) return BAD_REQUEST;
  if (v[1] !== "1") return UNSUPPORTED_VERSION;
  if (rawTarget === "" || CONTROL.test(rawTarget)) return BAD_REQUEST;
  if (rawTarget[0] !== "/" && rawTarget !== "*" && !/^https?:\/\//i.test(rawTarget)) {
    return BAD_REQUEST;
  }
  const http11 = Number(v[2]) >= 1;

  const headers: [string, string][] = [];
  let hosts = 0;
  let contentLength: string | undefined;
  let transferEncoding: string | undefined;
  let connection = "";
  let expect: string | undefined;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(":");
    // No obsolete line folding, no whitespace before the colon.
    if (colon <= 0) return BAD_REQUEST;
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return BAD_REQUEST;
    const lower = name.toLowerCase();
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    headers.push([lower, value]);
    switch (lower) {
      case "host":
        hosts++;
        break;
      case "content-length":
        contentLength = contentLength === undefined ? value : `${contentLength},${value}`;
        break;
      case "transfer-encoding":
        transferEncoding = transferEncoding === undefined ? value : `${transferEncoding},${value}`;
        break;
      case "connection":
        connection += `,${value.toLowerCase()}`;
        break;
      case "expect":
        expect = value;
    }
  }
  if (http11 && hosts === 0) return MISSING_HOST;
  if (hosts > 1) return TOO_MANY_HOSTS;

  let chunked = false;
  // HTTP/1.0 has no transfer codings; Go ignores the header there.
  if (transferEncoding !== undefined && http11) {
    if (transferEncoding.trim().toLowerCase() !== "chunked") return UNSUPPORTED_TRANSFER_ENCODING;
    chunked = true;
  }
  let length = 0;
  if (contentLength !== undefined && !chunked) {
    let agreed: string | undefined;
    for (const item of contentLength.split(",")) {
      const value = item.trim();
      if (!/^\d{1,15}$/.test(value) || (agreed !== undefined && agreed !== value)) {
        return BAD_REQUEST;
      }
      agreed = value;
    }
    length = Number(agreed);
  }
  const tokens = connection.split(",").map((t) => t.trim());
  const keepAlive = http11 ? !tokens.includes("close") : tokens.includes("keep-alive");
  let expectation: Framing["expect"] = "none";
  if (expect !== undefined && expect !== "") {
    expectation = http11 && expect.toLowerCase() === "100-continue" ? "continue" : "unsupported";
  }
  const target = /[\x80-\xff]/.test(rawTarget) ? utf8.decode(latin1Bytes(rawTarget)) : rawTarget;
  return {
    head: { method, target, version, headers, keepAlive },
    framing: { length, chunked, expect: expectation },
  };
}

/** The value of a header (the first one), or undefined. */
export function headerValue(head: HttpRequestHead, name: string): string | undefined {
  for (const [key, value] of head.headers) if (key === name) return value;
  return undefined;
}

/** What a handler answers; serialized the way Go's net/http does. */
export interface HttpAnswer {
  readonly status: number;
  /** Headers the handler sets: written in Go's canonical form, sorted, before Date. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** UTF-8 text; null for no body. */
  readonly body: string | null;
  /** A Content-Type Go's server adds itself (sniffed): written after Content-Length. */
  readonly defaultContentType?: string;
}

export interface SerializeOptions {
  /** The Date header value (see httpDate). */
  date: string;
  /** A HEAD request: headers as for GET, no body. */
  omitBody?: boolean;
  /** Add `Connection: close` (the connection ends after this response). */
  close?: boolean;
  /** Add `Connection: keep-alive` (an HTTP/1.0 client asked to keep it). */
  keepAlive?: boolean;
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  100: "Continue",
  200: "OK",
  301: "Moved Permanently",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Request Entity Too Large",
  414: "Request URI Too Long",
  417: "Expectation Failed",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

const encoder = new TextEncoder();
const canonicalNames = new Map<string, string>();

/** Go's CanonicalMIMEHeaderKey: `x-nsq-content-type` → `X-Nsq-Content-Type`. */
export function canonicalHeaderName(name: string): string {
  let canonical = canonicalNames.get(name);
  if (canonical === undefined) {
    canonical = name.toLowerCase().replace(/(^|-)([a-z])/g, (_, dash, c) => dash + c.toUpperCase());
    if (canonicalNames.size < 256) canonicalNames.set(name, canonical);
  }
  return canonical;
}

/** The response's bytes: status line, headers (Latin-1), body (UTF-8). */
export function serializeResponse(answer: HttpAnswer, options: SerializeOptions): Uint8Array {
  const body = answer.body === null ? undefined : encoder.encode(answer.body);
  const sorted = answer.headers.map(([name, value]) => [canonicalHeaderName(name), value]);
  if (sorted.length > 1) sorted.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let head = `HTTP/1.1 ${answer.status} ${STATUS_TEXT[answer.status] ?? "status code"}\r\n`;
  for (const [name, value] of sorted) head += `${name}: ${value}\r\n`;
  head += `Date: ${options.date}\r\nContent-Length: ${body?.length ?? 0}\r\n`;
  if (answer.defaultContentType !== undefined) {
    head += `Content-Type: ${answer.defaultContentType}\r\n`;
  }
  if (options.close) head += "Connection: close\r\n";
  else if (options.keepAlive) head += "Connection: keep-alive\r\n";
  head += "\r\n";
  const headBytes = /[^\x00-\x7f]/.test(head) ? latin1Bytes(head) : encoder.encode(head);
  if (body === undefined || body.length === 0 || options.omitBody) return headBytes;
  const out = new Uint8Array(headBytes.length + body.length);
  out.set(headBytes);
  out.set(body, headBytes.length);
  return out;
}

let dateSecond = -1;
let dateText = "";

/** The current time as an HTTP Date (`Sun, 22 Nov 2026 07:06:14 GMT`), computed once a second. */
export function httpDate(nowMs: number = Date.now()): string {
  const second = Math.floor(nowMs / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}

/** A binary string's chars as bytes (chars above 0xff cannot occur in one). */
export function latin1Bytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/** Bytes as a binary string (one char per byte). */
function binary(bytes: Uint8Array, start: number, end: number): string {
  let text = "";
  // fromCharCode.apply takes its arguments on the stack: go in slices.
  for (let i = start; i < end; i += 8192) {
    text += String.fromCharCode.apply(
      null,
      bytes.subarray(i, Math.min(end, i + 8192)) as unknown as number[],
    );
  }
  return text;
}
