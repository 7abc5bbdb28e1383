// HTTP/1.1 as pure functions over bytes: a request parser that follows the
// framing of pipelined requests (heads, Content-Length and chunked bodies) one
// request at a time, refusing what Go 1.19's net/http refuses as early as Go
// does (a bad request line as soon as it cannot become valid), and a response
// serializer that frames bodies as Go's net/http does (Content-Length up to
// 2048 bytes, chunked or close-delimited above), so clients see the
// reference's bytes. Sockets live in src/http/server.ts.

import { isValidRequestUri } from "./request_uri.ts";

/** Longest request head (request line and headers); longer ones get 431. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Longest chunk-size or trailer line of a chunked body. */
export const MAX_CHUNK_LINE_BYTES = 4 * 1024;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;

/** A request whose head and body have been received (the body is not kept: no route reads it). */
export interface HttpRequestHead {
  readonly method: string;
  /** The request target as sent, decoded as UTF-8 (as Deno.serve hands it over). */
  readonly target: string;
  readonly version: string;
  /** The Accept header, without surrounding whitespace (the first one when repeated). */
  readonly accept: string | undefined;
  /** The Authorization header as Go reads it: the first one, without surrounding whitespace. */
  readonly authorization: string | undefined;
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
  | { readonly kind: "reject"; readonly answer: FixedAnswer; readonly reason: string };

/** One step of the parser: the event it reached, if any, and the bytes it used to get there. */
export interface ParseStep {
  readonly event: ParseEvent | undefined;
  readonly used: number;
}

/** Where the client→server byte stream is, request by request. */
export type RequestPhase = "between" | "head" | "body" | "closed";

type BodyState = "length" | "chunk-size" | "chunk-data" | "chunk-end" | "trailers";

export interface ParserOptions {
  maxHeadBytes?: number;
  /** Bodies above this end the request with `bodyTooLarge` (and end the stream). */
  maxBodyBytes: number;
}

/** The headers a route or the framing reads; every other one is only checked. */
const enum Header {
  Other,
  /** A header with an empty name: Go skips it, continuation lines included. */
  Skipped,
  Host,
  Accept,
  Authorization,
  Expect,
  Connection,
  ContentLength,
  TransferEncoding,
}

/** Where the request line scan is: in the method, the target, or the version. */
const enum LinePart {
  Method,
  Target,
  Version,
}

const VERSION_PREFIX = "HTTP/";
/** `HTTP/d.d`: Go 1.19's ParseHTTPVersion reads one digit each side of the dot. */
const VERSION_LENGTH = 8;

const utf8 = new TextDecoder();

/**
 * Follows HTTP/1.1 request framing over the bytes a client sends, however
 * they are split into reads, one request at a time: `next()` stops after each
 * event, so a server answers a request before it looks at the next one. The
 * head is checked line by line as it arrives; only a line split across reads
 * is kept.
 */
export class RequestParser {
  readonly #maxHead: number;
  readonly #maxBody: number;
  #phase: RequestPhase = "between";
  #requests = 0;
  /** Set by a step that reached an event. */
  #event: ParseEvent | undefined;
  /** After a POST, Go discards up to 4 CR or LF bytes before the next request. */
  #skipCrLf = 0;

  // The current head.
  #headBytes = 0;
  /** Complete lines of the head so far (0: the request line is still coming). */
  #lines = 0;
  /** The current line's bytes so far, when it spans reads. */
  #partial: Uint8Array | undefined;
  #partialLength = 0;
  #linePart = LinePart.Method;
  #partLength = 0;
  #method = "";
  #target = "";
  #http11 = true;
  #majorVersion = 1;
  #hosts = 0;
  #hostValid = true;
  #accept: string | undefined;
  #authorization: string | undefined;
  #expect: string | undefined;
  #connection = "";
  #contentLengths: string[] = [];
  #transferEncoding: string | undefined;
  /** Go refuses a bad header name or value only once the head is complete. */
  #deferredError: string | undefined;
  /** The last header line, kept until the next line shows it is not continued. */
  #header = Header.Other;
  #headerValue = "";

  // The current body.
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

  /**
   * Reads `bytes` up to and including the next event. `used` is every byte
   * when no event was reached (the parser keeps what it needs), and every
   * byte once the stream is closed (later bytes are ignored).
   */
  next(bytes: Uint8Array): ParseStep {
    let i = 0;
    while (i < bytes.length && this.#phase !== "closed" && this.#event === undefined) {
      if (this.#phase === "between") {
        const b = bytes[i];
        if (this.#skipCrLf > 0 && (b === CR || b === LF)) {
          this.#skipCrLf--;
          i++;
          continue;
        }
        this.#startHead();
      }
      i = this.#phase === "head" ? this.#feedHead(bytes, i) : this.#feedBody(bytes, i);
    }
    const event = this.#event;
    this.#event = undefined;
    return { event, used: this.#phase === "closed" ? bytes.length : i };
  }

  /** Feeds the next bytes; returns every event they complete. Bytes after "closed" are ignored. */
  feed(bytes: Uint8Array): ParseEvent[] {
    const events: ParseEvent[] = [];
    let offset = 0;
    while (offset < bytes.length) {
      const { event, used } = this.next(offset === 0 ? bytes : bytes.subarray(offset));
      offset += used;
      if (event === undefined) break;
      events.push(event);
    }
    return events;
  }

  #startHead(): void {
    this.#phase = "head";
    this.#requests++;
    this.#skipCrLf = 0;
    this.#headBytes = 0;
    this.#lines = 0;
    this.#partialLength = 0;
    this.#linePart = LinePart.Method;
    this.#partLength = 0;
    this.#hosts = 0;
    this.#hostValid = true;
    this.#accept = undefined;
    this.#authorization = undefined;
    this.#expect = undefined;
    this.#connection = "";
    this.#contentLengths = [];
    this.#transferEncoding = undefined;
    this.#deferredError = undefined;
    this.#header = Header.Other;
    this.#headerValue = "";
  }

  #fail(response: string, reason: string): void {
    this.#phase = "closed";
    this.#event = { kind: "error", response, reason };
  }

  #feedHead(bytes: Uint8Array, start: number): number {
    let pos = start;
    while (pos < bytes.length && this.#phase === "head") {
      const lf = bytes.indexOf(LF, pos);
      const end = lf === -1 ? bytes.length : lf + 1;
      this.#headBytes += end - pos;
      if (this.#headBytes > this.#maxHead) {
        this.#fail(HEADERS_TOO_LARGE, "request head too large");
        return bytes.length;
      }
      // The request line is scanned as it comes: bytes that can never start a
      // valid one (a TLS hello, binary noise) are refused without waiting for a
      // line end Go would wait for (it answers the same 400 once one comes).
      if (this.#lines === 0 && !this.#scanRequestLine(bytes, pos, lf === -1 ? end : lf)) {
        this.#fail(BAD_REQUEST, "malformed request line");
        return bytes.length;
      }
      if (lf === -1) {
        this.#keepPartial(bytes.subarray(pos, end));
        return end;
      }
      // The line is bytes[from, to), without its line end; lines are handled
      // in place (no copy), unless one spans reads.
      let line = bytes;
      let from = pos;
      let to = lf;
      if (this.#partialLength > 0) {
        this.#keepPartial(bytes.subarray(pos, lf));
        line = this.#partial!;
        from = 0;
        to = this.#partialLength;
        this.#partialLength = 0;
      }
      if (to > from && line[to - 1] === CR) to--;
      pos = end;
      this.#endLine(line, from, to);
    }
    return pos;
  }

  #keepPartial(part: Uint8Array): void {
    if (part.length === 0) return;
    const needed = this.#partialLength + part.length;
    if (this.#partial === undefined || this.#partial.length < needed) {
      const grown = new Uint8Array(Math.min(this.#maxHead, Math.max(2 * needed, 256)));
      if (this.#partial !== undefined) grown.set(this.#partial.subarray(0, this.#partialLength));
      this.#partial = grown;
    }
    this.#partial.set(part, this.#partialLength);
    this.#partialLength = needed;
  }

  /**
   * Advances the request-line scan over bytes[from, to) (no LF); false when
   * they cannot be part of a request line Go accepts: METHOD SP TARGET SP
   * HTTP/d.d, a token method, a target without control bytes, a CR only at
   * the very end.
   */
  #scanRequestLine(bytes: Uint8Array, from: number, to: number): boolean {
    for (let i = from; i < to; i++) {
      const b = bytes[i];
      switch (this.#linePart) {
        case LinePart.Method:
          if (b === SP && this.#partLength > 0) {
            this.#linePart = LinePart.Target;
            this.#partLength = 0;
          } else if (TCHAR[b] === 0) {
            return false;
          } else {
            this.#partLength++;
          }
          break;
        case LinePart.Target:
          if (b === SP && this.#partLength > 0) {
            this.#linePart = LinePart.Version;
            this.#partLength = 0;
          } else if (b <= SP || b === 0x7f) {
            return false;
          } else {
            this.#partLength++;
          }
          break;
        default: {
          const at = this.#partLength++;
          const ok = at < VERSION_PREFIX.length
            ? b === VERSION_PREFIX.charCodeAt(at)
            : at === 5 || at === 7
            ? b >= 0x30 && b <= 0x39
            : at === 6
            ? b === 0x2e
            : at === VERSION_LENGTH && b === CR;
          if (!ok) return false;
        }
      }
    }
    return true;
  }

  /** A complete line of the head: bytes[from, to), without its line end. */
  #endLine(bytes: Uint8Array, from: number, to: number): void {
    const first = this.#lines++ === 0;
    if (first) {
      this.#endRequestLine(bytes, from, to);
      return;
    }
    if (to === from) {
      this.#commitHeader();
      this.#endHead();
      return;
    }
    if (bytes[from] === SP || bytes[from] === HTAB) {
      if (this.#lines === 2) {
        // Go: "malformed MIME header initial line".
        this.#fail(BAD_REQUEST, "malformed header line");
        return;
      }
      // An obs-fold: Go 1.19 joins it to the previous header's value with a space.
      this.#checkValue(bytes, from, to);
      if (this.#header !== Header.Other && this.#header !== Header.Skipped) {
        this.#headerValue += " " + headerText(bytes, from, to);
      }
      return;
    }
    this.#commitHeader();
    const colon = bytes.indexOf(COLON, from);
    if (colon === -1 || colon >= to) {
      // Go: "malformed MIME header line", as soon as the line is read.
      this.#fail(BAD_REQUEST, "malformed header line");
      return;
    }
    if (colon === from) {
      this.#header = Header.Skipped; // Go skips a header with an empty name
      return;
    }
    if (this.#deferredError === undefined) {
      for (let i = from; i < colon; i++) {
        if (TCHAR[bytes[i]] === 0) {
          this.#deferredError = INVALID_HEADER_NAME;
          break;
        }
      }
    }
    this.#checkValue(bytes, colon + 1, to);
    this.#header = headerOf(bytes, from, colon);
    if (this.#header !== Header.Other) this.#headerValue = headerText(bytes, colon + 1, to);
  }

  #checkValue(line: Uint8Array, start: number, end: number): void {
    if (this.#deferredError !== undefined) return;
    for (let i = start; i < end; i++) {
      const b = line[i];
      if ((b < SP && b !== HTAB) || b === 0x7f) {
        this.#deferredError = INVALID_HEADER_VALUE;
        return;
      }
    }
  }

  /** Records the last header line, now that no continuation line follows it. */
  #commitHeader(): void {
    const value = this.#headerValue;
    switch (this.#header) {
      case Header.Host:
        this.#hosts++;
        if (!isValidHost(value)) this.#hostValid = false;
        break;
      case Header.Accept:
        this.#accept ??= value;
        break;
      case Header.Authorization:
        this.#authorization ??= value;
        break;
      case Header.Expect:
        this.#expect = value;
        break;
      case Header.Connection:
        this.#connection += `,${value.toLowerCase()}`;
        break;
      case Header.ContentLength:
        this.#contentLengths.push(value);
        break;
      case Header.TransferEncoding:
        this.#transferEncoding = this.#transferEncoding === undefined
          ? value
          : `${this.#transferEncoding},${value}`;
    }
    this.#header = Header.Other;
    this.#headerValue = "";
  }

  #endRequestLine(line: Uint8Array, from: number, to: number): void {
    if (this.#linePart !== LinePart.Version || this.#partLength < VERSION_LENGTH) {
      this.#fail(BAD_REQUEST, "malformed request line");
      return;
    }
    const sp1 = line.indexOf(SP, from);
    const sp2 = line.indexOf(SP, sp1 + 1);
    if (sp2 === -1 || sp2 >= to) {
      this.#fail(BAD_REQUEST, "malformed request line");
      return;
    }
    const target = binary(line, sp1 + 1, sp2);
    if (!isValidRequestUri(target)) {
      this.#fail(BAD_REQUEST, "malformed request target");
      return;
    }
    this.#method = sp1 === from + 3 && line[from] === 0x47 && line[from + 1] === 0x45 &&
        line[from + 2] === 0x54
      ? "GET"
      : binary(line, from, sp1);
    let ascii = true;
    for (let i = 0; i < target.length && ascii; i++) ascii = target.charCodeAt(i) < 0x80;
    this.#target = ascii ? target : utf8.decode(line.subarray(sp1 + 1, sp2));
    this.#majorVersion = line[sp2 + 6] - 0x30;
    this.#http11 = this.#majorVersion === 1 && line[sp2 + 8] >= 0x31;
    // Go treats any other 1.x as 1.1 (and refuses 2.x and up once the head is in).
    if (this.#majorVersion !== 1) this.#http11 = true;
  }

  /** The empty line: the checks Go makes on a whole head, then the framing of the body. */
  #endHead(): void {
    if (this.#majorVersion !== 1) {
      this.#fail(UNSUPPORTED_VERSION, "malformed request head");
      return;
    }
    if (this.#deferredError !== undefined) {
      this.#fail(this.#deferredError, "malformed request head");
      return;
    }
    const http11 = this.#http11;
    if (http11 && this.#hosts === 0) return this.#fail(MISSING_HOST, "malformed request head");
    if (this.#hosts > 1) return this.#fail(TOO_MANY_HOSTS, "malformed request head");
    if (!this.#hostValid) return this.#fail(MALFORMED_HOST, "malformed request head");

    const framing = this.#bodyFraming(http11);
    if (framing === undefined) return;
    const { chunked, length } = framing;
    // Go's shouldClose: `close` always closes; HTTP/1.0 stays open only when asked.
    let keepAlive = http11;
    if (this.#connection !== "") {
      const tokens = this.#connection.split(",").map((t) => t.trim());
      keepAlive = !tokens.includes("close") && (http11 || tokens.includes("keep-alive"));
    }
    const head: HttpRequestHead = {
      method: this.#method,
      target: this.#target,
      version: http11 ? "HTTP/1.1" : "HTTP/1.0",
      accept: this.#accept,
      authorization: this.#authorization,
      keepAlive,
    };
    // Go: `100-continue` is honoured on HTTP/1.1 and ignored on 1.0; any other expectation is 417.
    const expect = this.#expect;
    let expectContinue = false;
    if (expect !== undefined && expect !== "") {
      if (expect.toLowerCase() !== "100-continue") {
        this.#phase = "closed";
        this.#event = { kind: "reject", answer: EXPECTATION_FAILED, reason: "unsupported Expect" };
        return;
      }
      expectContinue = http11;
    }
    if (chunked) {
      this.#pending = head;
      this.#phase = "body";
      this.#body = "chunk-size";
      this.#chunkLine = "";
      this.#bodyBytes = 0;
      if (expectContinue) this.#event = { kind: "continue" };
      return;
    }
    if (length > this.#maxBody) {
      this.#phase = "closed";
      this.#event = { kind: "request", head, bodyTooLarge: true };
      return;
    }
    if (length > 0) {
      this.#pending = head;
      this.#phase = "body";
      this.#body = "length";
      this.#remaining = length;
      if (expectContinue) this.#event = { kind: "continue" };
      return;
    }
    this.#complete(head);
  }

  /** Chunked or a Content-Length (0 without one); undefined when the head failed for it. */
  #bodyFraming(http11: boolean): { chunked: boolean; length: number } | undefined {
    // HTTP/1.0 has no transfer codings; Go ignores the header there.
    if (this.#transferEncoding !== undefined && http11) {
      if (this.#transferEncoding.trim().toLowerCase() !== "chunked") {
        this.#fail(UNSUPPORTED_TRANSFER_ENCODING, "malformed request head");
        return undefined;
      }
      return { chunked: true, length: 0 };
    }
    const lengths = this.#contentLengths;
    if (lengths.length === 0 || lengths[0] === "" && lengths.every((v) => v === "")) {
      return { chunked: false, length: 0 };
    }
    // Repeated headers must agree; the value is one unsigned 63-bit decimal.
    const value = lengths[0];
    if (
      lengths.some((v) => v !== value) || !/^\d{1,19}$/.test(value) || BigInt(value) > MAX_INT63
    ) {
      this.#fail(BAD_REQUEST, "malformed request head");
      return undefined;
    }
    return { chunked: false, length: Number(value) };
  }

  #complete(head: HttpRequestHead): void {
    this.#pending = undefined;
    // After a request that closes the connection, nothing more is read.
    this.#phase = head.keepAlive ? "between" : "closed";
    if (head.method === "POST") this.#skipCrLf = 4;
    this.#event = { kind: "request", head, bodyTooLarge: false };
  }

  #feedBody(bytes: Uint8Array, start: number): number {
    if (this.#body === "length" || this.#body === "chunk-data") {
      const take = Math.min(this.#remaining, bytes.length - start);
      this.#remaining -= take;
      if (this.#remaining === 0) {
        if (this.#body === "length") {
          this.#complete(this.#pending!);
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
      this.#fail(BAD_REQUEST, "chunk line too long");
      return bytes.length;
    }
    this.#chunkLine += binary(bytes, start, i);
    if (i === bytes.length) return i;
    const line = this.#chunkLine.endsWith("\r") ? this.#chunkLine.slice(0, -1) : this.#chunkLine;
    this.#chunkLine = "";
    if (this.#body === "chunk-end") {
      if (line !== "") {
        this.#fail(BAD_REQUEST, "malformed chunked encoding");
        return bytes.length;
      }
      this.#body = "chunk-size";
    } else if (this.#body === "chunk-size") {
      const semicolon = line.indexOf(";");
      const hex = (semicolon === -1 ? line : line.slice(0, semicolon)).trim();
      if (!/^[0-9a-fA-F]{1,16}$/.test(hex)) {
        this.#fail(BAD_REQUEST, "malformed chunked encoding");
        return bytes.length;
      }
      const size = parseInt(hex, 16);
      this.#bodyBytes += size;
      if (this.#bodyBytes > this.#maxBody) {
        this.#phase = "closed";
        this.#event = { kind: "request", head: this.#pending!, bodyTooLarge: true };
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
      this.#complete(this.#pending!); // the empty line after the trailers
    }
    return i + 1;
  }
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
const EXPECTATION_FAILED: FixedAnswer = {
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

/** A Host value (a binary string, trimmed) as httpguts.ValidHostHeader sees it. */
function isValidHost(value: string): boolean {
  for (let i = 0; i < value.length; i++) if (HOST_BYTE[value.charCodeAt(i)] === 0) return false;
  return true;
}

/** Bytes allowed in a token (method, header name): RFC 9110 tchar. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TCHAR[c.charCodeAt(0)] = 1;
}

/** Whether bytes[start, start + name.length) spell `name` (lower case) in any case. */
function isName(bytes: Uint8Array, start: number, name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    if ((bytes[start + i] | 0x20) !== name.charCodeAt(i)) return false;
  }
  return true;
}

/** Which header a name (bytes[start, colon)) is, among those read. */
function headerOf(bytes: Uint8Array, start: number, colon: number): Header {
  switch (colon - start) {
    case 4:
      return isName(bytes, start, "host") ? Header.Host : Header.Other;
    case 6:
      return isName(bytes, start, "accept")
        ? Header.Accept
        : isName(bytes, start, "expect")
        ? Header.Expect
        : Header.Other;
    case 10:
      return isName(bytes, start, "connection") ? Header.Connection : Header.Other;
    case 13:
      return isName(bytes, start, "authorization") ? Header.Authorization : Header.Other;
    case 14:
      return isName(bytes, start, "content-length") ? Header.ContentLength : Header.Other;
    case 17:
      return isName(bytes, start, "transfer-encoding") ? Header.TransferEncoding : Header.Other;
    default:
      return Header.Other;
  }
}

/** A header value: bytes[start, end) without surrounding spaces and tabs, as a binary string. */
function headerText(bytes: Uint8Array, start: number, end: number): string {
  while (start < end && (bytes[start] === SP || bytes[start] === HTAB)) start++;
  while (end > start && (bytes[end - 1] === SP || bytes[end - 1] === HTAB)) end--;
  return binary(bytes, start, end);
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

/** A body that is all there already. */
export type FixedBody = string | Uint8Array<ArrayBuffer> | null;

/** What a handler answers; serialized the way Go's net/http does. */
export interface HttpAnswer {
  readonly status: number;
  /** Headers the handler sets: written in Go's canonical form, sorted, before Date. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /**
   * UTF-8 text, or bytes already encoded (sent by reference when large), or
   * a body streamed in slices; null for no body.
   */
  readonly body: FixedBody | StreamedBody;
  /** A Content-Type Go's server adds itself (sniffed): written after Content-Length. */
  readonly defaultContentType?: string;
}

/** An answer whose body is all there (or none). */
export type FixedAnswer = HttpAnswer & { readonly body: FixedBody };

export function isStreamed(body: HttpAnswer["body"]): body is StreamedBody {
  return body !== null && typeof body !== "string" && !(body instanceof Uint8Array);
}

/**
 * Go's bufferBeforeChunkingSize: a handler's body that fits in the response
 * buffer when the handler returns gets a Content-Length; a larger one is sent
 * before its end is known, so chunked (HTTP/1.1) or delimited by closing (1.0).
 */
export const MAX_LENGTH_BODY_BYTES = 2048;

export interface SerializeOptions {
  /** The Date header value (see httpDate). */
  date: string;
  /** A HEAD request: headers as for GET, no body. */
  omitBody?: boolean;
  /** The connection ends after this response (`Connection: close` to HTTP/1.1 clients). */
  close?: boolean;
  /**
   * The client asked to keep an HTTP/1.0 connection: kept, with `Connection:
   * keep-alive`, when the response's end is known without closing.
   */
  keepAlive?: boolean;
  /** Answer an HTTP/1.0 request: `HTTP/1.0` status line, as Go does. */
  http10?: boolean;
}

/** How a body is delimited on the wire. */
export type BodyMode = "length" | "chunked" | "close" | "none";

/** What a serialized response means for the connection. */
export interface Framing {
  readonly mode: BodyMode;
  /** The connection must end after this response. */
  readonly close: boolean;
}

interface FramingHeaders extends Framing {
  readonly contentLength: number | undefined;
  readonly connection: "close" | "keep-alive" | undefined;
}

/**
 * Go's chunkWriter.writeHeader for a handler that sets no Content-Length or
 * Transfer-Encoding: `bodyBytes` is the body's size, or undefined when it is
 * larger than MAX_LENGTH_BODY_BYTES (its end not known yet).
 */
function frame(status: number, bodyBytes: number | undefined, o: SerializeOptions): FramingHeaders {
  const head = o.omitBody === true;
  const bodyAllowed = status >= 200 && status !== 204 && status !== 304;
  let mode: BodyMode;
  let contentLength: number | undefined;
  if (!bodyAllowed) {
    mode = "none";
  } else if (bodyBytes !== undefined) {
    mode = head ? "none" : "length";
    // Go cannot tell a HEAD handler's empty body from one it chose not to write.
    if (!head || bodyBytes > 0) contentLength = bodyBytes;
  } else if (head) {
    mode = "none";
  } else {
    mode = o.http10 ? "close" : "chunked";
  }
  let close = o.close === true || mode === "close";
  let connection: FramingHeaders["connection"];
  if (o.keepAlive && !close && (head || contentLength !== undefined || !bodyAllowed)) {
    connection = "keep-alive";
  } else if (o.http10) {
    close = true; // HTTP/1.0 closes unless kept alive; Go says `close` to 1.1 clients only
  } else if (close) {
    connection = "close";
  }
  return { mode, close, contentLength, connection };
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  100: "Continue",
  200: "OK",
  204: "No Content",
  301: "Moved Permanently",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Request Entity Too Large",
  414: "Request URI Too Long",
  417: "Expectation Failed",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
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
export function serializeResponse(answer: FixedAnswer, options: SerializeOptions): Uint8Array {
  const out = new ResponseBuffer(1024);
  out.append(answer, options);
  return out.bytes.slice();
}

/** Room left before a body for its head; longer heads take the slow path. */
const HEAD_RESERVE = 1024;
/** Encoded bodies above this are written from where they are, not copied. */
const INLINE_BODY_BYTES = 16 * 1024;
const CRLF = encoder.encode("\r\n");
const LAST_CHUNK = encoder.encode("0\r\n\r\n");
const CHUNK_END_AND_LAST = encoder.encode("\r\n0\r\n\r\n");

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
    if (this.#parts.length === 0) return tail.length === 0 ? [] : [tail];
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

  /** Appends bytes as they are (an interim or error response, a slice of a body). */
  appendBytes(bytes: Uint8Array): void {
    this.#ensure(bytes.length);
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  /** Appends text as UTF-8. */
  appendText(text: string): void {
    this.#ensure(text.length);
    let done = encoder.encodeInto(text, this.#buffer.subarray(this.#length));
    if (done.read < text.length) {
      this.#ensure(text.length * 3);
      done = encoder.encodeInto(text, this.#buffer.subarray(this.#length));
    }
    this.#length += done.written;
  }

  /** Appends a whole response; returns how it is framed (whether the connection must end). */
  append(answer: FixedAnswer, options: SerializeOptions): Framing {
    if (answer.body instanceof Uint8Array) {
      return this.#appendEncoded(answer, answer.body, options);
    }
    const body = answer.body ?? "";
    // The body goes in first, after room for the head: its UTF-8 length decides the framing.
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
    const block = headerBlock(answer.headers);
    const framing = frame(
      answer.status,
      bodyBytes <= MAX_LENGTH_BODY_BYTES ? bodyBytes : undefined,
      options,
    );
    const keptBody = framing.mode === "none" ? 0 : bodyBytes;
    const head = responseHead(
      answer,
      block,
      framing,
      options,
      framing.mode === "chunked" ? bodyBytes : 0,
    );
    if (block.ascii && head.length <= HEAD_RESERVE) {
      const headBytes = encoder.encodeInto(head, this.#buffer.subarray(this.#length)).written;
      this.#buffer.copyWithin(this.#length + headBytes, bodyAt, bodyAt + keptBody);
      this.#length += headBytes + keptBody;
    } else {
      // A long head, or header values that are bytes (a redirect's Location).
      const bodyCopy = this.#buffer.slice(bodyAt, bodyAt + keptBody);
      const headBytes = latin1Bytes(head);
      this.#ensure(headBytes.length + keptBody);
      this.#buffer.set(headBytes, this.#length);
      this.#buffer.set(bodyCopy, this.#length + headBytes.length);
      this.#length += headBytes.length + keptBody;
    }
    if (framing.mode === "chunked") this.appendBytes(CHUNK_END_AND_LAST);
    return { mode: framing.mode, close: framing.close };
  }

  #appendEncoded(answer: HttpAnswer, body: Uint8Array, options: SerializeOptions): Framing {
    const block = headerBlock(answer.headers);
    const framing = frame(
      answer.status,
      body.length <= MAX_LENGTH_BODY_BYTES ? body.length : undefined,
      options,
    );
    this.#appendHead(
      responseHead(answer, block, framing, options, framing.mode === "chunked" ? body.length : 0),
      block,
    );
    if (framing.mode === "none" || body.length === 0) {
      return { mode: framing.mode, close: framing.close };
    }
    if (body.length <= INLINE_BODY_BYTES) {
      this.appendBytes(body);
    } else {
      const segment = this.#buffer.subarray(this.#segmentStart, this.#length);
      if (segment.length > 0) this.#parts.push(segment);
      this.#parts.push(body);
      this.#partsLength += segment.length + body.length;
      this.#segmentStart = this.#length;
    }
    if (framing.mode === "chunked") this.appendBytes(CHUNK_END_AND_LAST);
    return { mode: framing.mode, close: framing.close };
  }

  /**
   * The head of an answer whose body is known to be larger than
   * MAX_LENGTH_BODY_BYTES, before the rest of it exists: the body follows as
   * appendChunk()s and one appendEnd().
   */
  appendHead(answer: HttpAnswer, options: SerializeOptions): Framing {
    const block = headerBlock(answer.headers);
    const framing = frame(answer.status, undefined, options);
    this.#appendHead(responseHead(answer, block, framing, options, 0), block);
    return { mode: framing.mode, close: framing.close };
  }

  /** A piece of a body framed by appendHead(): a chunk, or the bytes as they are. */
  appendChunk(data: Uint8Array, mode: BodyMode): void {
    if (data.length === 0 || mode === "none") return;
    if (mode === "chunked") {
      this.appendText(`${data.length.toString(16)}\r\n`);
      this.appendBytes(data);
      this.appendBytes(CRLF);
    } else {
      this.appendBytes(data);
    }
  }

  /** The end of a body framed by appendHead(). */
  appendEnd(mode: BodyMode): void {
    if (mode === "chunked") this.appendBytes(LAST_CHUNK);
  }

  #appendHead(head: string, block: HeaderBlock): void {
    if (block.ascii) {
      this.#ensure(head.length);
      this.#length += encoder.encodeInto(head, this.#buffer.subarray(this.#length)).written;
    } else {
      this.appendBytes(latin1Bytes(head));
    }
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

/**
 * Status line and headers, Go's order: handler headers, Date, then Content-Length,
 * Content-Type, Connection, Transfer-Encoding; with the size line of the one
 * chunk a body of `chunkBytes` is sent in when chunked and complete.
 */
function responseHead(
  answer: HttpAnswer,
  block: HeaderBlock,
  framing: FramingHeaders,
  options: SerializeOptions,
  chunkBytes: number,
): string {
  let head = `HTTP/1.${options.http10 ? 0 : 1} ${answer.status} ${
    STATUS_TEXT[answer.status] ?? `status code ${answer.status}`
  }\r\n${block.text}Date: ${options.date}\r\n`;
  if (framing.contentLength !== undefined) head += `Content-Length: ${framing.contentLength}\r\n`;
  if (answer.defaultContentType !== undefined) {
    head += `Content-Type: ${answer.defaultContentType}\r\n`;
  }
  if (framing.connection !== undefined) head += `Connection: ${framing.connection}\r\n`;
  if (framing.mode === "chunked") {
    head += "Transfer-Encoding: chunked\r\n\r\n";
    return chunkBytes > 0 ? `${head}${chunkBytes.toString(16)}\r\n` : head;
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
