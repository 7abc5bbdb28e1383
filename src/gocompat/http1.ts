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
  /** The Accept header (the only one a route reads), without surrounding whitespace. */
  readonly accept: string | undefined;
  readonly keepAlive: boolean;
}

export type ParseEvent =
  /** A whole request; `bodyTooLarge` when its body exceeded the limit (the parser stops there). */
  | { readonly kind: "request"; readonly head: HttpRequestHead; readonly bodyTooLarge: boolean }
  /** The client waits for `100 Continue` before sending the body. */
  | { readonly kind: "continue" }
  /** The stream cannot be followed: answer `response` (Go's raw bytes) and close. */
  | { readonly kind: "error"; readonly response: string; readonly reason: string }
  /** A request refused with a regular response (`417 Expectation Failed`), then close. */
  | { readonly kind: "reject"; readonly answer: HttpAnswer; readonly reason: string };

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
  /** The current head's bytes so far, when it spans reads (else parsed in place). */
  #headBuffer: Uint8Array | undefined;
  #headLength = 0;
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
        this.#headLength = 0;
        this.#lineLength = 0;
        this.#lineFirst = -1;
        this.#sawRequestLine = false;
      }
      i = this.#phase === "head"
        ? this.#feedHead(bytes, i, events)
        : this.#feedBody(bytes, i, events);
    }
    return events;
  }

  #fail(events: ParseEvent[], response: string, reason: string): void {
    this.#phase = "closed";
    events.push({ kind: "error", response, reason });
  }

  #feedHead(bytes: Uint8Array, start: number, events: ParseEvent[]): number {
    let pos = start;
    // Where this read's part of the head starts (leading empty lines are skipped).
    let headStart = start;
    while (pos < bytes.length) {
      const lf = bytes.indexOf(LF, pos);
      const end = lf === -1 ? bytes.length : lf + 1;
      if (this.#headLength + (end - headStart) > this.#maxHead) {
        this.#fail(events, HEADERS_TOO_LARGE, "request head too large");
        return bytes.length;
      }
      if (this.#lineLength === 0 && end > pos) this.#lineFirst = bytes[pos];
      this.#lineLength += (lf === -1 ? end : lf) - pos;
      if (lf === -1) {
        this.#keep(bytes.subarray(headStart, end));
        return end;
      }
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
        this.#headLength = 0;
        headStart = pos;
        continue;
      }
      let head = bytes.subarray(headStart, end);
      if (this.#headLength > 0) {
        this.#keep(head);
        head = this.#headBuffer!.subarray(0, this.#headLength);
      }
      this.#headLength = 0;
      this.#endHead(head, events);
      return pos;
    }
    this.#keep(bytes.subarray(headStart, pos));
    return pos;
  }

  /** Keeps part of a head that continues in the next read. */
  #keep(part: Uint8Array): void {
    if (part.length === 0) return;
    const needed = this.#headLength + part.length;
    if (this.#headBuffer === undefined || this.#headBuffer.length < needed) {
      const grown = new Uint8Array(Math.min(this.#maxHead, Math.max(2 * needed, 1024)));
      if (this.#headBuffer !== undefined) {
        grown.set(this.#headBuffer.subarray(0, this.#headLength));
      }
      this.#headBuffer = grown;
    }
    this.#headBuffer.set(part, this.#headLength);
    this.#headLength = needed;
  }

  #endHead(bytes: Uint8Array, events: ParseEvent[]): void {
    const parsed = parseHead(bytes);
    if (typeof parsed === "string") {
      this.#fail(events, parsed, "malformed request head");
      return;
    }
    const { head, framing } = parsed;
    if (framing.expect === "unsupported") {
      this.#phase = "closed";
      events.push({ kind: "reject", answer: EXPECTATION_FAILED, reason: "unsupported Expect" });
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
      if (!/^[0-9a-fA-F]{1,16}$/.test(hex)) {
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
const INVALID_HEADER_NAME = goError("400 Bad Request: invalid header name");
const INVALID_HEADER_VALUE = goError("400 Bad Request: invalid header value");
const MALFORMED_HOST = goError("400 Bad Request: malformed Host header");
/** Go's sendExpectationFailed: a handler-style response, so with Date and Content-Length. */
const EXPECTATION_FAILED: HttpAnswer = {
  status: 417,
  headers: [["Connection", "close"]],
  body: null,
};

const MAX_INT63 = 2n ** 63n - 1n;

/** Bytes Go accepts in a Host header (httpguts.ValidHostHeader). */
const HOST_BYTE = new Uint8Array(256);
for (
  const c of "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!$%&()*+,-.:;=[']_~"
) {
  HOST_BYTE[c.charCodeAt(0)] = 1;
}

function isValidHost(bytes: Uint8Array, start: number, end: number): boolean {
  while (start < end && (bytes[start] === SP || bytes[start] === HTAB)) start++;
  while (end > start && (bytes[end - 1] === SP || bytes[end - 1] === HTAB)) end--;
  for (let i = start; i < end; i++) if (HOST_BYTE[bytes[i]] === 0) return false;
  return true;
}

/** Bytes allowed in a token (method, header name): RFC 9110 tchar. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TCHAR[c.charCodeAt(0)] = 1;
}
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;

/** Whether bytes[start, end) spell `name` (lower case) in any case. */
function isName(bytes: Uint8Array, start: number, end: number, name: string): boolean {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) {
    if ((bytes[start + i] | 0x20) !== name.charCodeAt(i)) return false;
  }
  return true;
}

/** A header value: bytes[start, end) without surrounding spaces and tabs, as a binary string. */
function headerText(bytes: Uint8Array, start: number, end: number): string {
  while (start < end && (bytes[start] === SP || bytes[start] === HTAB)) start++;
  while (end > start && (bytes[end - 1] === SP || bytes[end - 1] === HTAB)) end--;
  return binary(bytes, start, end);
}

/**
 * A whole head (request line, header lines, the empty line; LF or CRLF line
 * ends) → the request and its framing, or the error response. Works on the
 * bytes: only the method, target and the headers that matter become strings.
 */
function parseHead(bytes: Uint8Array): { head: HttpRequestHead; framing: Framing } | string {
  let lineEnd = bytes.indexOf(LF);
  let contentEnd = lineEnd > 0 && bytes[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
  // Request line: METHOD SP TARGET SP VERSION, split at the first two spaces as Go does.
  const sp1 = bytes.indexOf(SP);
  const sp2 = sp1 === -1 ? -1 : bytes.indexOf(SP, sp1 + 1);
  if (sp1 <= 0 || sp2 === -1 || sp2 >= contentEnd || sp2 === sp1 + 1) return BAD_REQUEST;
  for (let i = 0; i < sp1; i++) if (TCHAR[bytes[i]] === 0) return BAD_REQUEST;
  let nonAscii = false;
  for (let i = sp1 + 1; i < sp2; i++) {
    const b = bytes[i];
    if (b < 0x21 || b === 0x7f) return BAD_REQUEST;
    if (b >= 0x80) nonAscii = true;
  }
  const first = bytes[sp1 + 1];
  if (first !== 0x2f && !(sp2 === sp1 + 2 && first === 0x2a)) {
    // Neither `/…` nor `*`: an absolute URL at most.
    if (!/^https?:\/\//i.test(binary(bytes, sp1 + 1, Math.min(sp2, sp1 + 9)))) return BAD_REQUEST;
  }
  const version = binary(bytes, sp2 + 1, contentEnd);
  let http11: boolean;
  if (version === "HTTP/1.1") {
    http11 = true;
  } else if (version === "HTTP/1.0") {
    http11 = false;
  } else {
    // Go 1.19 reads one digit each side of the dot.
    const v = /^HTTP\/(\d)\.(\d)$/.exec(version);
    if (v === null) return BAD_REQUEST;
    if (v[1] !== "1") return UNSUPPORTED_VERSION;
    http11 = Number(v[2]) >= 1;
  }
  const method = sp1 === 3 && bytes[0] === 0x47 && bytes[1] === 0x45 && bytes[2] === 0x54
    ? "GET"
    : binary(bytes, 0, sp1);
  const target = nonAscii ? utf8.decode(bytes.subarray(sp1 + 1, sp2)) : binary(bytes, sp1 + 1, sp2);

  let hosts = 0;
  let hostValid = true;
  let accept: string | undefined;
  const contentLengths: string[] = [];
  let transferEncoding: string | undefined;
  let connection = "";
  let expect: string | undefined;
  while (true) {
    const start = lineEnd + 1;
    lineEnd = bytes.indexOf(LF, start);
    if (lineEnd === -1) break; // (cannot happen: the head ends with an empty line)
    contentEnd = lineEnd > start && bytes[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
    if (contentEnd === start) break; // the empty line
    // name ":" value. A line folded onto the previous one (obsolete) is refused.
    if (bytes[start] === SP || bytes[start] === HTAB) return BAD_REQUEST;
    const colon = bytes.indexOf(COLON, start);
    if (colon === -1 || colon >= contentEnd) return BAD_REQUEST; // Go: malformed MIME header line
    if (colon === start) continue; // Go skips a header with an empty name
    for (let i = start; i < colon; i++) if (TCHAR[bytes[i]] === 0) return INVALID_HEADER_NAME;
    for (let i = colon + 1; i < contentEnd; i++) {
      const b = bytes[i];
      if ((b < 0x20 && b !== HTAB) || b === 0x7f) return INVALID_HEADER_VALUE;
    }
    switch (colon - start) {
      case 4:
        if (isName(bytes, start, colon, "host")) {
          hosts++;
          if (!isValidHost(bytes, colon + 1, contentEnd)) hostValid = false;
        }
        break;
      case 6:
        if (isName(bytes, start, colon, "accept")) {
          accept ??= headerText(bytes, colon + 1, contentEnd);
        } else if (isName(bytes, start, colon, "expect")) {
          expect = headerText(bytes, colon + 1, contentEnd);
        }
        break;
      case 10:
        if (isName(bytes, start, colon, "connection")) {
          connection += `,${headerText(bytes, colon + 1, contentEnd).toLowerCase()}`;
        }
        break;
      case 14:
        if (isName(bytes, start, colon, "content-length")) {
          contentLengths.push(headerText(bytes, colon + 1, contentEnd));
        }
        break;
      case 17:
        if (isName(bytes, start, colon, "transfer-encoding")) {
          const value = headerText(bytes, colon + 1, contentEnd);
          transferEncoding = transferEncoding === undefined
            ? value
            : `${transferEncoding},${value}`;
        }
    }
  }
  if (http11 && hosts === 0) return MISSING_HOST;
  if (hosts > 1) return TOO_MANY_HOSTS;
  if (!hostValid) return MALFORMED_HOST;

  let chunked = false;
  // HTTP/1.0 has no transfer codings; Go ignores the header there.
  if (transferEncoding !== undefined && http11) {
    if (transferEncoding.trim().toLowerCase() !== "chunked") return UNSUPPORTED_TRANSFER_ENCODING;
    chunked = true;
  }
  let length = 0;
  if (contentLengths.length > 0 && !chunked) {
    // Repeated headers must agree; the value is one unsigned 63-bit decimal (an empty one: none).
    const value = contentLengths[0];
    if (contentLengths.some((v) => v !== value)) return BAD_REQUEST;
    if (value !== "") {
      if (!/^\d{1,19}$/.test(value) || BigInt(value) > MAX_INT63) return BAD_REQUEST;
      length = Number(value);
    }
  }
  // Go's shouldClose: `close` always closes; HTTP/1.0 stays open only when asked.
  let keepAlive = http11;
  if (connection !== "") {
    const tokens = connection.split(",").map((t) => t.trim());
    keepAlive = !tokens.includes("close") && (http11 || tokens.includes("keep-alive"));
  }
  // Go: `100-continue` is honoured on HTTP/1.1 and ignored on 1.0; any other expectation is 417.
  let expectation: Framing["expect"] = "none";
  if (expect !== undefined && expect !== "") {
    if (expect.toLowerCase() !== "100-continue") expectation = "unsupported";
    else if (http11) expectation = "continue";
  }
  return {
    head: { method, target, version: http11 ? "HTTP/1.1" : "HTTP/1.0", accept, keepAlive },
    framing: { length, chunked, expect: expectation },
  };
}

/**
 * A body produced in slices, for answers too large to build in one go: each
 * `next()` does a bounded amount of work (well under a millisecond) and gives
 * the next piece. The server pulls a slice only when the previous ones have
 * been handed to the kernel, and yields to other connections in between; it
 * calls `return()` when it abandons the body (client gone, shutdown).
 */
export interface StreamedBody {
  readonly slices: Iterator<string | Uint8Array<ArrayBuffer>, void, undefined>;
}

/** What a handler answers; serialized the way Go's net/http does. */
export interface HttpAnswer {
  readonly status: number;
  /** Headers the handler sets: written in Go's canonical form, sorted, before Date. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /**
   * UTF-8 text, or bytes already encoded (sent by reference when large), or
   * a body streamed in slices; null for no body.
   */
  readonly body: string | Uint8Array<ArrayBuffer> | StreamedBody | null;
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
  /** Answer an HTTP/1.0 request: `HTTP/1.0` status line, as Go does. */
  http10?: boolean;
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
    // Like Go, a name that is not a token is left as it is.
    let token = name !== "";
    for (let i = 0; i < name.length && token; i++) token = TCHAR[name.charCodeAt(i)] === 1;
    canonical = token
      ? name.toLowerCase().replace(/(^|-)([a-z])/g, (_, dash, c) => dash + c.toUpperCase())
      : name;
    if (canonicalNames.size < 256) canonicalNames.set(name, canonical);
  }
  return canonical;
}

/** The response's bytes: status line, headers (Latin-1), body (UTF-8). */
export function serializeResponse(answer: HttpAnswer, options: SerializeOptions): Uint8Array {
  const out = new ResponseBuffer(1024);
  out.append(answer, options);
  return out.bytes.slice();
}

/** Room left before a body for its head; longer heads take the slow path. */
const HEAD_RESERVE = 1024;
/** Encoded bodies above this are written from where they are, not copied. */
const INLINE_BODY_BYTES = 16 * 1024;

interface HeaderBlock {
  /** `Name: value\r\n` lines, canonical names, sorted. */
  readonly text: string;
  readonly ascii: boolean;
}

// The API answers with a few constant header lists: render each once.
const headerBlocks = new WeakMap<ReadonlyArray<readonly [string, string]>, HeaderBlock>();

function headerBlock(headers: ReadonlyArray<readonly [string, string]>): HeaderBlock {
  let block = headerBlocks.get(headers);
  if (block === undefined) {
    const sorted = headers.map(([name, value]) => [canonicalHeaderName(name), value]);
    sorted.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const text = sorted.map(([name, value]) => `${name}: ${value}\r\n`).join("");
    block = { text, ascii: isAscii(text) };
    headerBlocks.set(headers, block);
  }
  return block;
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

/**
 * Responses serialized one after another into one buffer, reused from write
 * to write: `encodeInto` a buffer that is already there costs a fraction of
 * allocating the bytes of every response.
 */
export class ResponseBuffer {
  #buffer: Uint8Array;
  #length = 0;
  /** Finished parts before the current segment: buffer views and large encoded bodies. */
  #parts: Uint8Array[] = [];
  #segmentStart = 0;
  #partsLength = 0;

  constructor(capacity = 16 * 1024) {
    this.#buffer = new Uint8Array(capacity);
  }

  get capacity(): number {
    return this.#buffer.length;
  }

  /** What to write, in order (views, valid until the next change). */
  parts(): Uint8Array[] {
    const tail = this.#buffer.subarray(this.#segmentStart, this.#length);
    return tail.length === 0 ? [...this.#parts] : [...this.#parts, tail];
  }

  /** Everything appended since the last reset, as one array. */
  get bytes(): Uint8Array {
    if (this.#parts.length === 0) return this.#buffer.subarray(0, this.#length);
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const part of this.parts()) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }

  get length(): number {
    return this.#partsLength + this.#length - this.#segmentStart;
  }

  reset(): void {
    this.#length = 0;
    this.#parts = [];
    this.#segmentStart = 0;
    this.#partsLength = 0;
  }

  /** Appends bytes as they are (an interim or error response). */
  appendBytes(bytes: Uint8Array): void {
    this.#ensure(bytes.length);
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  append(answer: HttpAnswer, options: SerializeOptions): void {
    if (answer.body instanceof Uint8Array) {
      this.#appendEncoded(answer, answer.body, options);
      return;
    }
    if (answer.body !== null && typeof answer.body !== "string") {
      // TEMPORARY until the server streams: the slices, gathered.
      let text = "";
      for (let r = answer.body.slices.next(); !r.done; r = answer.body.slices.next()) {
        text += typeof r.value === "string" ? r.value : new TextDecoder().decode(r.value);
      }
      this.append({ ...answer, body: text }, options);
      return;
    }
    const body = answer.body ?? "";
    // The body goes in first, after room for the head: its UTF-8 length is the Content-Length.
    let bodyBytes = 0;
    this.#ensure(HEAD_RESERVE + body.length);
    if (body !== "") {
      let done = encoder.encodeInto(body, this.#buffer.subarray(this.#length + HEAD_RESERVE));
      if (done.read < body.length) {
        this.#ensure(HEAD_RESERVE + body.length * 3);
        done = encoder.encodeInto(body, this.#buffer.subarray(this.#length + HEAD_RESERVE));
      }
      bodyBytes = done.written;
    }
    const bodyAt = this.#length + HEAD_RESERVE;
    const keptBody = options.omitBody ? 0 : bodyBytes;
    const block = headerBlock(answer.headers);
    const head = responseHead(answer, block, bodyBytes, options);
    if (block.ascii && head.length <= HEAD_RESERVE) {
      const headBytes = encoder.encodeInto(head, this.#buffer.subarray(this.#length)).written;
      this.#buffer.copyWithin(this.#length + headBytes, bodyAt, bodyAt + keptBody);
      this.#length += headBytes + keptBody;
      return;
    }
    // A long head, or header values that are bytes (a redirect's Location).
    const bodyCopy = this.#buffer.slice(bodyAt, bodyAt + keptBody);
    const headBytes = latin1Bytes(head);
    this.#ensure(headBytes.length + keptBody);
    this.#buffer.set(headBytes, this.#length);
    this.#buffer.set(bodyCopy, this.#length + headBytes.length);
    this.#length += headBytes.length + keptBody;
  }

  #appendEncoded(answer: HttpAnswer, body: Uint8Array, options: SerializeOptions): void {
    const block = headerBlock(answer.headers);
    const head = responseHead(answer, block, body.length, options);
    if (block.ascii) {
      this.#ensure(head.length);
      this.#length += encoder.encodeInto(head, this.#buffer.subarray(this.#length)).written;
    } else {
      this.appendBytes(latin1Bytes(head));
    }
    if (options.omitBody || body.length === 0) return;
    if (body.length <= INLINE_BODY_BYTES) {
      this.appendBytes(body);
      return;
    }
    const segment = this.#buffer.subarray(this.#segmentStart, this.#length);
    if (segment.length > 0) this.#parts.push(segment);
    this.#parts.push(body);
    this.#partsLength += segment.length + body.length;
    this.#segmentStart = this.#length;
  }

  /** Makes room for `extra` more bytes after what is there. */
  #ensure(extra: number): void {
    const needed = this.#length + extra;
    if (needed <= this.#buffer.length) return;
    const grown = new Uint8Array(Math.max(needed, 2 * this.#buffer.length));
    grown.set(this.#buffer.subarray(0, this.#length));
    this.#buffer = grown;
  }
}

/** Status line and headers, Go's order: handler headers, Date, Content-Length, the rest. */
function responseHead(
  answer: HttpAnswer,
  block: HeaderBlock,
  bodyBytes: number,
  options: SerializeOptions,
): string {
  let head = `HTTP/1.${options.http10 ? 0 : 1} ${answer.status} ${
    STATUS_TEXT[answer.status] ?? `status code ${answer.status}`
  }\r\n${block.text}Date: ${options.date}\r\nContent-Length: ${bodyBytes}\r\n`;
  if (answer.defaultContentType !== undefined) {
    head += `Content-Type: ${answer.defaultContentType}\r\n`;
  }
  // HTTP/1.0 closes unless kept alive: Go says `close` to 1.1 clients only.
  if (options.close) {
    if (!options.http10) head += "Connection: close\r\n";
  } else if (options.keepAlive) {
    head += "Connection: keep-alive\r\n";
  }
  return head + "\r\n";
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
