// Unit tests of src/http1.ts, the pure HTTP/1.1 layer: the request parser
// (framing of pipelined requests over arbitrarily split reads, Go 1.19's error
// answers, keep-alive, Expect, body limits) and the response serializer (the
// bytes Go's net/http writes for nsqlookupd v1.3.0, captured from the real daemon).

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BAD_REQUEST,
  canonicalHeaderName,
  type FixedAnswer,
  HEADERS_TOO_LARGE,
  httpDate,
  type HttpRequestHead,
  latin1Bytes,
  MAX_CHUNK_LINE_BYTES,
  MAX_HEAD_BYTES,
  type ParseEvent,
  RequestParser,
  type RequestPhase,
  ResponseBuffer,
  type SerializeOptions,
  serializeResponse,
} from "../../../src/gocompat/http1.ts";
import { bin, concat } from "../../support/helpers.ts";

const concatAll = (parts: readonly Uint8Array[]): Uint8Array => concat(...parts);

const encoder = new TextEncoder();
const DATE = "Sun, 22 Nov 2026 07:06:14 GMT";
const MAX_BODY = 1024;

/** UTF-8 bytes of a text. */
function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Bytes as a binary string (one char per byte), to compare responses as text. */
function binText(data: Uint8Array): string {
  let text = "";
  for (let i = 0; i < data.length; i += 8192) {
    text += String.fromCharCode(...data.subarray(i, Math.min(data.length, i + 8192)));
  }
  return text;
}

/** Index of the first byte where a and b differ (or the shorter length), -1 when equal. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** A response read as a client reads it: its framing headers and body, and what is left after it. */
function decodeResponse(
  data: Uint8Array,
  head = false,
): { contentLength: number | undefined; chunked: boolean; body: Uint8Array; rest: number } {
  const text = binText(data);
  const headEnd = text.indexOf("\r\n\r\n") + 4;
  const length = /\r\nContent-Length: (\d+)\r\n/.exec(text.slice(0, headEnd));
  const chunked = text.slice(0, headEnd).includes("\r\nTransfer-Encoding: chunked\r\n");
  const contentLength = length === null ? undefined : Number(length[1]);
  if (head) return { contentLength, chunked, body: new Uint8Array(0), rest: data.length - headEnd };
  if (contentLength !== undefined) {
    const body = data.subarray(headEnd, headEnd + contentLength);
    return { contentLength, chunked, body, rest: data.length - headEnd - contentLength };
  }
  if (!chunked) return { contentLength, chunked, body: data.subarray(headEnd), rest: 0 };
  const parts: Uint8Array[] = [];
  let at = headEnd;
  while (true) {
    const lineEnd = text.indexOf("\r\n", at);
    const size = parseInt(text.slice(at, lineEnd), 16);
    at = lineEnd + 2;
    if (size === 0) {
      assert.equal(text.slice(at, at + 2), "\r\n");
      return { contentLength, chunked, body: concatAll(parts), rest: data.length - at - 2 };
    }
    parts.push(data.subarray(at, at + size));
    assert.equal(text.slice(at + size, at + size + 2), "\r\n");
    at += size + 2;
  }
}

function feedAll(parser: RequestParser, chunks: readonly Uint8Array[]): ParseEvent[] {
  return chunks.flatMap((chunk) => parser.feed(chunk));
}

function parser(maxBodyBytes = MAX_BODY): RequestParser {
  return new RequestParser({ maxBodyBytes });
}

/** Feeds the text (UTF-8) in one read to a new parser. */
function parseOnce(
  text: string,
  maxBodyBytes = MAX_BODY,
): { events: ParseEvent[]; parser: RequestParser } {
  const p = parser(maxBodyBytes);
  return { events: p.feed(bytes(text)), parser: p };
}

interface Outcome {
  events: ParseEvent[];
  phase: RequestPhase;
  requestsStarted: number;
}

function outcome(chunks: readonly Uint8Array[], maxBodyBytes = MAX_BODY): Outcome {
  const p = parser(maxBodyBytes);
  const events = feedAll(p, chunks);
  return { events, phase: p.phase, requestsStarted: p.requestsStarted };
}

/** The data cut at the given (sorted) offsets. */
function cutAt(data: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...cuts, data.length]) {
    chunks.push(data.subarray(from, cut));
    from = cut;
  }
  return chunks;
}

function request(
  head: Partial<HttpRequestHead> = {},
  bodyTooLarge = false,
): ParseEvent {
  return {
    kind: "request",
    head: {
      method: "GET",
      target: "/",
      version: "HTTP/1.1",
      accept: undefined,
      authorization: undefined,
      keepAlive: true,
      ...head,
    },
    bodyTooLarge,
  };
}

const CONTINUE_EVENT: ParseEvent = { kind: "continue" };

function goError(status: string): string {
  return `HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n${status}`;
}

function errorEvent(response: string, reason = "malformed request head"): ParseEvent {
  return { kind: "error", response, reason };
}

const BAD = goError("400 Bad Request");
const MISSING_HOST = goError("400 Bad Request: missing required Host header");
const TOO_MANY_HOSTS = goError("400 Bad Request: too many Host headers");
const UNSUPPORTED_VERSION = goError(
  "505 HTTP Version Not Supported: unsupported protocol version",
);
const UNSUPPORTED_TE =
  "HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\n" +
  "Connection: close\r\n\r\nUnsupported transfer encoding";
const TOO_LARGE = goError("431 Request Header Fields Too Large");
const INVALID_HEADER_NAME = goError("400 Bad Request: invalid header name");
const INVALID_HEADER_VALUE = goError("400 Bad Request: invalid header value");
const MALFORMED_HOST = goError("400 Bad Request: malformed Host header");

/** Asserts that the text (one read) ends the stream with exactly this error, and that later bytes are ignored. */
function assertRejected(text: string, response: string, reason = "malformed request head"): void {
  const { events, parser: p } = parseOnce(text);
  assert.deepEqual(events, [errorEvent(response, reason)], JSON.stringify(text));
  assert.equal(p.phase, "closed", JSON.stringify(text));
  assert.deepEqual(p.feed(bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n")), []);
  assert.equal(p.phase, "closed");
}

/** A head of exactly `length` bytes (padded with one long header). */
function headOfLength(length: number): string {
  const prefix = "GET /pad HTTP/1.1\r\nHost: x\r\nX-Pad: ";
  const suffix = "\r\n\r\n";
  return prefix + "a".repeat(length - prefix.length - suffix.length) + suffix;
}

// ---- the request parser: a request ----

Deno.test("a GET head gives one request event with method, target, version, Accept, Authorization and keep-alive, and the parser is between requests again", () => {
  const p = parser();
  assert.equal(p.phase, "between");
  assert.equal(p.requestsStarted, 0);
  const events = p.feed(
    bytes(
      "GET /lookup?topic=t HTTP/1.1\r\nHost: x\r\nAccept: application/vnd.nsq; version=1.0\r\n" +
        "Authorization:  Bearer s3cret \r\n\r\n",
    ),
  );
  assert.deepEqual(events, [{
    kind: "request",
    head: {
      method: "GET",
      target: "/lookup?topic=t",
      version: "HTTP/1.1",
      accept: "application/vnd.nsq; version=1.0",
      authorization: "Bearer s3cret",
      keepAlive: true,
    },
    bodyTooLarge: false,
  }]);
  assert.equal(p.phase, "between");
  assert.equal(p.requestsStarted, 1);
});

Deno.test("header names are matched in any case and values are trimmed of spaces and tabs", () => {
  const { events, parser: p } = parseOnce(
    "GET /a HTTP/1.1\r\nhOsT: x\r\nACCEPT: \t text/plain \t\r\nconnection:\tCLOSE \r\n\r\n",
  );
  assert.deepEqual(events, [request({ target: "/a", accept: "text/plain", keepAlive: false })]);
  assert.equal(p.phase, "closed");
});

Deno.test("a head with bare LF line endings is parsed like one with CRLF", () => {
  const { events, parser: p } = parseOnce(
    "GET /nodes HTTP/1.1\nHost: x\nAccept: application/json\n\nGET /ping HTTP/1.1\r\nHost: x\n\r\n",
  );
  assert.deepEqual(events, [
    request({ target: "/nodes", accept: "application/json" }),
    request({ target: "/ping" }),
  ]);
  assert.equal(p.phase, "between");
});

Deno.test("a request without Accept has accept undefined; with two Accept headers the first counts", () => {
  assert.deepEqual(parseOnce("GET / HTTP/1.1\r\nHost: x\r\n\r\n").events, [request()]);
  assert.deepEqual(
    parseOnce("GET / HTTP/1.1\r\nHost: x\r\nAccept: first\r\nAccept: second\r\n\r\n").events,
    [request({ accept: "first" })],
  );
  assert.deepEqual(
    parseOnce("GET / HTTP/1.1\r\nHost: x\r\nAccept:\r\n\r\n").events,
    [request({ accept: "" })],
  );
});

Deno.test("methods other than GET keep their spelling", () => {
  assert.deepEqual(
    parseOnce(
      "HEAD /info HTTP/1.1\r\nHost: x\r\n\r\nDELETE /topic/delete?topic=t HTTP/1.1\r\n" +
        "Host: x\r\n\r\nget / HTTP/1.1\r\nHost: x\r\n\r\n",
    ).events,
    [
      request({ method: "HEAD", target: "/info" }),
      request({ method: "DELETE", target: "/topic/delete?topic=t" }),
      request({ method: "get" }),
    ],
  );
});

Deno.test("a target with raw UTF-8 bytes is decoded as UTF-8", () => {
  assert.deepEqual(
    parseOnce("GET /lookup?topic=€ HTTP/1.1\r\nHost: x\r\n\r\n").events,
    [request({ target: "/lookup?topic=€" })],
  );
});

Deno.test("the targets `*` and absolute http:// and https:// URLs are accepted as sent", () => {
  assert.deepEqual(
    parseOnce(
      "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n" +
        "GET http://example.com/ping HTTP/1.1\r\nHost: x\r\n\r\n" +
        "GET HTTPS://example.com:4161/info?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    ).events,
    [
      request({ method: "OPTIONS", target: "*" }),
      request({ target: "http://example.com/ping" }),
      request({ target: "HTTPS://example.com:4161/info?x=1" }),
    ],
  );
});

Deno.test("the phase is head inside a head, body inside a body, and between after a request", () => {
  const p = parser();
  p.feed(bytes("POST /topic/create?topic=t HTTP/1.1\r\nHost: x\r\n"));
  assert.equal(p.phase, "head");
  assert.equal(p.requestsStarted, 1);
  assert.deepEqual(p.feed(bytes("Content-Length: 4\r\n\r\nab")), []);
  assert.equal(p.phase, "body");
  assert.deepEqual(p.feed(bytes("cd")), [
    request({ method: "POST", target: "/topic/create?topic=t" }),
  ]);
  assert.equal(p.phase, "between");
  assert.equal(p.requestsStarted, 1);
  p.feed(bytes("G"));
  assert.equal(p.phase, "head");
  assert.equal(p.requestsStarted, 2);
});

Deno.test("a Content-Length body is consumed and the next pipelined request follows it", () => {
  assert.deepEqual(
    parseOnce(
      "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\nGET /x HTTP/" +
        "GET /b HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" +
        "GET /c HTTP/1.1\r\nHost: x\r\n\r\n",
    ).events,
    [
      request({ method: "POST", target: "/a" }),
      request({ target: "/b" }),
      request({ target: "/c" }),
    ],
  );
});

Deno.test("a chunked body with chunk extensions and trailers is consumed, then the next request follows", () => {
  const { events, parser: p } = parseOnce(
    "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
      '5;name=value\r\nGET /\r\na ; x="y"\r\n0123456789\r\n0;last\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n' +
      "GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
  );
  assert.deepEqual(events, [request({ method: "POST", target: "/a" }), request({ target: "/b" })]);
  assert.equal(p.phase, "between");
});

Deno.test("a chunked body with upper-case hex sizes, LF line ends and no trailers is consumed", () => {
  assert.deepEqual(
    parseOnce(
      "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n" +
        "B\n0123456789a\n0\n\n" +
        "GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
    ).events,
    [request({ method: "POST", target: "/a" }), request({ target: "/b" })],
  );
});

// ---- the request parser: any split of the stream ----

const PIPELINE =
  "GET /lookup?topic=t HTTP/1.1\r\nHost: x\r\nAccept: application/vnd.nsq; version=1.0\r\n\r\n" +
  "POST /topic/create?topic=t HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
  "POST /channel/create?topic=t&channel=c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
  "5;name=value\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n" +
  "\r\nGET /nodes HTTP/1.1\nHost: x\nAccept: text/plain\n\n" +
  "POST /ping HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc" +
  "HEAD /info?topic=€ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" +
  "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" +
  "GET /ignored HTTP/1.1\r\nHost: x\r\n\r\n";

const PIPELINE_OUTCOME: Outcome = {
  events: [
    request({ target: "/lookup?topic=t", accept: "application/vnd.nsq; version=1.0" }),
    request({ method: "POST", target: "/topic/create?topic=t" }),
    request({ method: "POST", target: "/channel/create?topic=t&channel=c" }),
    request({ target: "/nodes", accept: "text/plain" }),
    CONTINUE_EVENT,
    request({ method: "POST", target: "/ping" }),
    request({ method: "HEAD", target: "/info?topic=€", version: "HTTP/1.0", keepAlive: true }),
    request({ target: "/last", keepAlive: false }),
  ],
  phase: "closed",
  requestsStarted: 7,
};

/** Streams that end in an error or an oversized body, with what they give in one read. */
const FAILING_STREAMS: ReadonlyArray<{ stream: string; expected: Outcome }> = [
  {
    stream: "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" +
      "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcdXY\r\n" +
      "GET /c HTTP/1.1\r\nHost: x\r\n\r\n",
    expected: {
      events: [
        request({ target: "/a" }),
        errorEvent(BAD, "malformed chunked encoding"),
      ],
      phase: "closed",
      requestsStarted: 2,
    },
  },
  {
    stream: "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nNo-Colon\r\n\r\n",
    expected: {
      events: [request({ target: "/a" }), errorEvent(BAD, "malformed header line")],
      phase: "closed",
      requestsStarted: 2,
    },
  },
  {
    stream: "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "5\r\nhello\r\n4\r\nabcd\r\n0\r\n\r\nGET /d HTTP/1.1\r\nHost: x\r\n\r\n",
    expected: {
      events: [request({ method: "POST", target: "/c" }, true)],
      phase: "closed",
      requestsStarted: 1,
    },
  },
];

Deno.test("a pipelined stream fed in one read gives the expected events", () => {
  assert.deepEqual(outcome([bytes(PIPELINE)]), PIPELINE_OUTCOME);
  for (const { stream, expected } of FAILING_STREAMS) {
    assert.deepEqual(outcome([bytes(stream)], 8), expected, stream);
  }
});

Deno.test("splitting a pipelined stream into two reads at any point gives the same events", () => {
  const data = bytes(PIPELINE);
  for (let cut = 0; cut <= data.length; cut++) {
    assert.deepEqual(outcome(cutAt(data, [cut])), PIPELINE_OUTCOME, `cut at ${cut}`);
  }
});

Deno.test("splitting a stream that ends in an error or an oversized body at any point gives the same events", () => {
  for (const { stream, expected } of FAILING_STREAMS) {
    const data = bytes(stream);
    for (let cut = 0; cut <= data.length; cut++) {
      assert.deepEqual(outcome(cutAt(data, [cut]), 8), expected, `${stream} cut at ${cut}`);
    }
  }
});

Deno.test("feeding a pipelined stream one byte at a time gives the same events", () => {
  const data = bytes(PIPELINE);
  const chunks = Array.from({ length: data.length }, (_, i) => data.subarray(i, i + 1));
  assert.deepEqual(outcome(chunks), PIPELINE_OUTCOME);
  for (const { stream, expected } of FAILING_STREAMS) {
    const failing = bytes(stream);
    assert.deepEqual(
      outcome(Array.from({ length: failing.length }, (_, i) => failing.subarray(i, i + 1)), 8),
      expected,
    );
  }
});

Deno.test("property: any number of reads of a pipelined stream gives the same events", () => {
  const data = bytes(PIPELINE);
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.integer({ min: 0, max: data.length }), { maxLength: 40 }),
      (cuts) => {
        assert.deepEqual(outcome(cutAt(data, [...cuts].sort((a, b) => a - b))), PIPELINE_OUTCOME);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("a request counts as started with its first byte, and the count follows pipelined requests", () => {
  const p = parser();
  p.feed(bytes("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGE"));
  assert.equal(p.requestsStarted, 3);
  assert.equal(p.phase, "head");
});

// ---- the request parser: keep-alive ----

Deno.test("HTTP/1.1 keeps the connection alive unless a Connection token is close, in any case", () => {
  const keepAlive = (connection: string | undefined): boolean => {
    const header = connection === undefined ? "" : `Connection: ${connection}\r\n`;
    const [event] = parseOnce(`GET / HTTP/1.1\r\nHost: x\r\n${header}\r\n`).events;
    assert.equal(event.kind, "request");
    return event.kind === "request" && event.head.keepAlive;
  };
  assert.equal(keepAlive(undefined), true);
  assert.equal(keepAlive("keep-alive"), true);
  assert.equal(keepAlive("Upgrade"), true);
  assert.equal(keepAlive("closed"), true);
  assert.equal(keepAlive("close"), false);
  assert.equal(keepAlive("Close"), false);
  assert.equal(keepAlive("CLOSE"), false);
  assert.equal(keepAlive("keep-alive, close"), false);
  assert.equal(keepAlive("Upgrade ,close , foo"), false);
  // Two Connection headers: the tokens of both count.
  assert.deepEqual(
    parseOnce("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n")
      .events,
    [request({ keepAlive: false })],
  );
});

Deno.test("HTTP/1.0 closes the connection unless Connection: keep-alive, and needs no Host", () => {
  assert.deepEqual(parseOnce("GET /a HTTP/1.0\r\n\r\n").events, [
    request({ target: "/a", version: "HTTP/1.0", keepAlive: false }),
  ]);
  assert.deepEqual(parseOnce("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").events, [
    request({ target: "/a", version: "HTTP/1.0", keepAlive: true }),
  ]);
  assert.deepEqual(
    parseOnce("GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: x\r\n\r\n").events,
    [
      request({ target: "/a", version: "HTTP/1.0", keepAlive: true }),
    ],
  );
  assert.deepEqual(parseOnce("GET /a HTTP/1.0\r\nConnection: foo\r\n\r\n").events, [
    request({ target: "/a", version: "HTTP/1.0", keepAlive: false }),
  ]);
});

Deno.test("HTTP/1.0 with both keep-alive and close in Connection closes the connection (Go's shouldClose)", () => {
  // Go: `hasClose || !HeaderValuesContainsToken(conv, "keep-alive")` for HTTP/1.0.
  const { events, parser: p } = parseOnce(
    "GET /a HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
  );
  assert.deepEqual(events, [request({ target: "/a", version: "HTTP/1.0", keepAlive: false })]);
  assert.equal(p.phase, "closed");
});

Deno.test("a minor version above 1 (HTTP/1.2) is treated as HTTP/1.1", () => {
  assert.deepEqual(parseOnce("GET / HTTP/1.2\r\nHost: x\r\n\r\n").events, [request()]);
  assert.deepEqual(parseOnce("GET / HTTP/1.2\r\n\r\n").events, [errorEvent(MISSING_HOST)]);
});

Deno.test("after a request that closes the connection the parser is closed and ignores further bytes", () => {
  const p = parser();
  assert.deepEqual(
    p.feed(
      bytes(
        "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
      ),
    ),
    [request({ target: "/a", keepAlive: false })],
  );
  assert.equal(p.phase, "closed");
  assert.equal(p.requestsStarted, 1);
  assert.deepEqual(p.feed(bytes("GET /c HTTP/1.1\r\nHost: x\r\n\r\n")), []);
  assert.deepEqual(p.feed(bytes("garbage")), []);
  assert.equal(p.phase, "closed");
  assert.equal(p.requestsStarted, 1);
});

Deno.test("a closing request with a Content-Length body is reported once its body arrived", () => {
  const p = parser();
  assert.deepEqual(
    p.feed(bytes("POST /a HTTP/1.0\r\nContent-Length: 3\r\n\r\nab")),
    [],
  );
  assert.equal(p.phase, "body");
  assert.deepEqual(p.feed(bytes("cGET / HTTP/1.0\r\n\r\n")), [
    request({ method: "POST", target: "/a", version: "HTTP/1.0", keepAlive: false }),
  ]);
  assert.equal(p.phase, "closed");
});

// ---- the request parser: errors ----

Deno.test("a malformed request line is Go's 400 Bad Request, and the parser stops", () => {
  for (
    const line of [
      "GET /\r\n",
      "GET\r\n",
      "GET  HTTP/1.1\r\n",
      " GET / HTTP/1.1\r\n",
      "G(T / HTTP/1.1\r\n",
      "GE T / HTTP/1.1\r\n",
      "G\u00e9T / HTTP/1.1\r\n",
      "GET / HTTP/1.x\r\n",
      "GET / FOO\r\n",
      "GET / http/1.1\r\n",
      "GET / HTTP/1\r\n",
      "GET / HTTP/1.1 extra\r\n",
      "GET / \r\n",
      "GET /a b HTTP/1.1\r\n",
    ]
  ) {
    assertRejected(`${line}Host: x\r\n\r\n`, BAD, "malformed request line");
  }
});

Deno.test("a request line is refused as soon as its bytes cannot become a valid one, before its line end (Go answers the same 400 at the line end)", () => {
  for (
    const start of [
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", // a TLS ClientHello
      "\x00\x01\x02",
      "GET /a b",
      "GET / HTTP/1.1 ",
      "GET / HTTP/1.1\r\r",
      "GET / HTTP/11",
      "GET /\x01",
      " GET",
      "\r",
    ]
  ) {
    const p = parser();
    assert.deepEqual(
      p.feed(latin1Bytes(start)),
      [errorEvent(BAD, "malformed request line")],
      start,
    );
    assert.equal(p.phase, "closed");
  }
  // A prefix that can still become a request line waits for more.
  for (const start of ["G", "GET", "GET /", "GET / HTTP/1.", "GET / HTTP/1.1\r", "POST /x?y HT"]) {
    const p = parser();
    assert.deepEqual(p.feed(latin1Bytes(start)), [], start);
    assert.equal(p.phase, "head");
  }
});

Deno.test("an empty line where a request line is expected is Go's 400, as soon as it is read", () => {
  assertRejected("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", BAD, "malformed request line");
  assertRejected("\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", BAD, "malformed request line");
  assert.deepEqual(
    parseOnce("GET /a HTTP/1.1\r\nHost: x\r\n\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n").events,
    [request({ target: "/a" }), errorEvent(BAD, "malformed request line")],
  );
});

Deno.test("after a POST up to four CR or LF bytes before the next request are skipped, as Go's server does, also split across reads", () => {
  const post = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab";
  assert.deepEqual(
    parseOnce(`${post}\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n`).events,
    [request({ method: "POST", target: "/a" }), request({ target: "/b" })],
  );
  assert.deepEqual(
    parseOnce(`${post}\r\n\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n`).events,
    [request({ method: "POST", target: "/a" }), errorEvent(BAD, "malformed request line")],
  );
  const p = parser();
  assert.deepEqual(feedAll(p, [bytes(post), bytes("\r"), bytes("\n")]), [
    request({ method: "POST", target: "/a" }),
  ]);
  assert.equal(p.phase, "between");
  assert.equal(p.requestsStarted, 1);
  assert.deepEqual(p.feed(bytes("GET /c HTTP/1.1\r\nHost: x\r\n\r\n")), [
    request({ target: "/c" }),
  ]);
});

Deno.test("a target Go's url.ParseRequestURI refuses is 400 Bad Request at the end of the request line", () => {
  for (
    const target of [
      "lookup",
      "lookup/x",
      "**",
      "*x",
      "?topic=t",
      "./lookup",
      "1http://x/ping",
      "http//x",
      ":80/ping",
      "/p%zzing",
      "/p%4",
      "http://[::1/ping",
      "http://x:8a/ping",
      "http://x{y/ping",
      "http://u%zz@x/ping",
      "http://u{@x/ping",
    ]
  ) {
    const p = parser();
    assert.deepEqual(
      p.feed(bytes(`GET ${target} HTTP/1.1\r\n`)),
      [errorEvent(BAD, "malformed request target")],
      target,
    );
  }
});

Deno.test("targets Go accepts pass: `*`, any scheme, a bad escape in the query, a checked authority", () => {
  for (
    const target of [
      "*",
      "/ping?a=%zz",
      "foo:bar",
      "ftp://x/ping",
      "HTTP://x/ping",
      "http://[::1]:4161/ping",
      "http://[fe80::1%25en0]/ping",
      "http://user:pa%20ss@x:4161/ping",
      "http://x",
      "//x/ping",
      "/caf%C3%A9",
    ]
  ) {
    assert.deepEqual(
      parseOnce(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`).events,
      [request({ target })],
      target,
    );
  }
});

Deno.test("a target containing a control byte or DEL is 400 Bad Request", () => {
  for (const byte of [0x00, 0x01, 0x09, 0x0d, 0x1f, 0x7f]) {
    const p = parser();
    const events = p.feed(
      concatAll([bytes("GET /a"), new Uint8Array([byte]), bytes("b HTTP/1.1\r\nHost: x\r\n\r\n")]),
    );
    assert.deepEqual(events, [errorEvent(BAD, "malformed request line")], `byte ${byte}`);
    assert.equal(p.phase, "closed");
  }
});

Deno.test("a header line without a colon, or a first header line starting with a space or tab, is 400 as soon as it is read", () => {
  for (
    const lines of [
      "Host: x\r\nNoColon\r\n",
      " Host: x\r\n",
      "\tHost: x\r\n",
    ]
  ) {
    const p = parser();
    assert.deepEqual(
      p.feed(bytes(`GET / HTTP/1.1\r\n${lines}`)),
      [errorEvent(BAD, "malformed header line")],
      lines,
    );
    assert.equal(p.phase, "closed");
  }
});

Deno.test("a folded header line (obs-fold) continues the value with one space, as in Go 1.19", () => {
  const { events } = parseOnce(
    "GET / HTTP/1.1\r\nHost: x\r\nAccept: text/plain;\r\n  q=1\r\n\tcharset=x \r\n" +
      "X-Other: a\r\n b\r\nAuthorization: Bearer\r\n s3cret\r\n\r\n",
  );
  assert.deepEqual(events, [
    request({ accept: "text/plain; q=1 charset=x", authorization: "Bearer s3cret" }),
  ]);
  // A fold of the Connection header counts.
  assert.deepEqual(
    parseOnce("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive,\r\n close\r\n\r\n").events,
    [request({ keepAlive: false })],
  );
  assertRejected(
    "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n b\u0001\r\n\r\n",
    goError("400 Bad Request: invalid header value"),
  );
});

Deno.test("a header name that is not a token is Go's 400 'invalid header name'", () => {
  for (
    const lines of [
      "Host : x\r\n",
      "Host: x\r\nX-Foo : bar\r\n",
      "Host: x\r\nX-Foo\t: bar\r\n",
      "Host: x\r\nX(y): z\r\n",
    ]
  ) {
    assertRejected(`GET / HTTP/1.1\r\n${lines}\r\n`, INVALID_HEADER_NAME);
  }
});

Deno.test("a header value with a control byte is Go's 400 'invalid header value'; a tab is fine", () => {
  assertRejected("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", INVALID_HEADER_VALUE);
  assertRejected("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n", INVALID_HEADER_VALUE);
  assert.deepEqual(parseOnce("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\tb\r\n\r\n").events, [
    request({ target: "/" }),
  ]);
});

Deno.test("a header with an empty name is skipped, as Go does", () => {
  assert.deepEqual(parseOnce("GET / HTTP/1.1\r\nHost: x\r\n: nameless\r\n\r\n").events, [
    request({ target: "/" }),
  ]);
});

Deno.test("a Host with bytes Go does not allow is Go's 400 'malformed Host header'", () => {
  assertRejected("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", MALFORMED_HOST);
  assertRejected('GET / HTTP/1.1\r\nHost: a"b\r\n\r\n', MALFORMED_HOST);
  assert.deepEqual(parseOnce("GET / HTTP/1.1\r\nHost: [::1]:4161\r\n\r\n").events, [
    request({ target: "/" }),
  ]);
});

Deno.test("an HTTP/1.1 request without Host is Go's 400 'missing required Host header', and the parser stops", () => {
  assertRejected("GET / HTTP/1.1\r\n\r\n", MISSING_HOST);
  assertRejected("GET / HTTP/1.1\r\nX-Host: x\r\nHosts: y\r\n\r\n", MISSING_HOST);
  assert.equal(
    MISSING_HOST,
    "HTTP/1.1 400 Bad Request: missing required Host header\r\nContent-Type: text/plain; " +
      "charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request: missing required Host header",
  );
});

Deno.test("two Host headers are Go's 400 'too many Host headers'", () => {
  assertRejected("GET / HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n", TOO_MANY_HOSTS);
  assertRejected("GET / HTTP/1.0\r\nHost: x\r\nHost: x\r\n\r\n", TOO_MANY_HOSTS);
});

Deno.test("HTTP/2.0 and HTTP/3.1 are Go's 505 'unsupported protocol version'", () => {
  assertRejected("GET / HTTP/2.0\r\nHost: x\r\n\r\n", UNSUPPORTED_VERSION);
  assertRejected("GET / HTTP/3.1\r\nHost: x\r\n\r\n", UNSUPPORTED_VERSION);
  assertRejected("GET / HTTP/0.9\r\nHost: x\r\n\r\n", UNSUPPORTED_VERSION);
  assert.equal(
    UNSUPPORTED_VERSION,
    "HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version\r\nContent-Type: " +
      "text/plain; charset=utf-8\r\nConnection: close\r\n\r\n505 HTTP Version Not Supported: " +
      "unsupported protocol version",
  );
});

Deno.test("an HTTP/1.1 Transfer-Encoding other than exactly chunked is Go's 501 'Unsupported transfer encoding'", () => {
  for (
    const te of [
      "Transfer-Encoding: gzip\r\n",
      "Transfer-Encoding: gzip, chunked\r\n",
      "Transfer-Encoding: chunked, gzip\r\n",
      "Transfer-Encoding: identity\r\n",
      "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    ]
  ) {
    assertRejected(`POST / HTTP/1.1\r\nHost: x\r\n${te}\r\n`, UNSUPPORTED_TE);
  }
});

Deno.test("in HTTP/1.0 Transfer-Encoding is ignored and Content-Length frames the body", () => {
  assert.deepEqual(
    parseOnce(
      "POST /a HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n" +
        "Content-Length: 5\r\n\r\n0\r\n\r\n" +
        "POST /b HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: gzip\r\n\r\n" +
        "GET /c HTTP/1.0\r\n\r\n",
    ).events,
    [
      request({ method: "POST", target: "/a", version: "HTTP/1.0" }),
      request({ method: "POST", target: "/b", version: "HTTP/1.0" }),
      request({ target: "/c", version: "HTTP/1.0", keepAlive: false }),
    ],
  );
});

Deno.test("a Content-Length that is not digits is 400 Bad Request", () => {
  for (const value of ["abc", "-1", "+5", "1e3", "0x10", "5 5", "5;", "٣"]) {
    assertRejected(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${value}\r\n\r\n`, BAD);
  }
});

Deno.test("a single Content-Length header holding a list ('5, 5') is 400 Bad Request, as in Go", () => {
  // Go 1.19 parses the one value with strconv.ParseUint("5, 5") and fails.
  assertRejected("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello", BAD);
  assertRejected("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5,5\r\n\r\nhello", BAD);
});

Deno.test("a Content-Length of up to 19 digits is a number as in Go: leading zeros are fine, a huge one is bodyTooLarge", () => {
  // Go 1.19 parses Content-Length with strconv.ParseUint(value, 10, 63).
  const { events, parser: p } = parseOnce(
    "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0000000000000005\r\n\r\nhello" +
      "GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
  );
  assert.deepEqual(events, [request({ method: "POST", target: "/a" }), request({ target: "/b" })]);
  assert.equal(p.phase, "between");
  assert.deepEqual(
    parseOnce("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000000000\r\n\r\n").events,
    [request({ method: "POST", target: "/a" }, true)],
  );
  assertRejected(
    "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
    BAD,
  );
});

Deno.test("two different Content-Length values are 400 Bad Request; the same value repeated is fine", () => {
  assertRejected(
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    BAD,
  );
  assertRejected(
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\nhello",
    BAD,
  );
  const { events, parser: p } = parseOnce(
    "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\ncontent-length:  5 \r\n\r\nhello" +
      "GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
  );
  assert.deepEqual(events, [request({ method: "POST", target: "/a" }), request({ target: "/b" })]);
  assert.equal(p.phase, "between");
});

Deno.test("with chunked, Content-Length is ignored, even when it is not a number", () => {
  assert.deepEqual(
    parseOnce(
      "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\nTransfer-Encoding: chunked\r\n" +
        "Content-Length: 99\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
    ).events,
    [request({ method: "POST", target: "/a" }), request({ target: "/b" })],
  );
});

Deno.test("a malformed chunk size line is 400 Bad Request after the head", () => {
  for (
    const line of [
      "zz\r\n",
      "\r\n",
      "-1\r\n",
      "0x5\r\n",
      ";ext\r\n",
      "5 5\r\n",
      "10000000000000000\r\n",
    ]
  ) {
    const p = parser();
    const events = p.feed(
      bytes(`POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${line}`),
    );
    assert.deepEqual(events, [errorEvent(BAD, "malformed chunked encoding")], line);
    assert.equal(p.phase, "closed");
    assert.deepEqual(p.feed(bytes("0\r\n\r\n")), []);
  }
});

Deno.test("a chunk size of up to 16 hex digits is a number as in Go: leading zeros are fine, a huge one is bodyTooLarge", () => {
  // Go 1.19's chunked reader (parseHexUint) takes up to 16 hex digits.
  const head = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  assert.deepEqual(
    parseOnce(`${head}0000000000005\r\nhello\r\n0000000000000000\r\n\r\n`).events,
    [request({ method: "POST", target: "/a" })],
  );
  assert.deepEqual(parseOnce(`${head}ffffffffffffffff\r\n`).events, [
    request({ method: "POST", target: "/a" }, true),
  ]);
});

Deno.test("chunk data not followed by CRLF is 400 Bad Request", () => {
  const head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const body of ["3\r\nabcd\r\n0\r\n\r\n", "3\r\nabc \r\n0\r\n\r\n", "3\r\nabcX\n"]) {
    const p = parser();
    assert.deepEqual(
      p.feed(bytes(head + body)),
      [errorEvent(BAD, "malformed chunked encoding")],
      body,
    );
    assert.equal(p.phase, "closed");
  }
});

Deno.test("a chunk size line longer than MAX_CHUNK_LINE_BYTES is 400 Bad Request, however it is split", () => {
  assert.equal(MAX_CHUNK_LINE_BYTES, 4096);
  const head = bytes("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  const line = bytes(`1;${"x".repeat(MAX_CHUNK_LINE_BYTES)}`);
  const whole = parser();
  assert.deepEqual(whole.feed(concatAll([head, line])), [errorEvent(BAD, "chunk line too long")]);
  const split = parser();
  assert.deepEqual(split.feed(head), []);
  const events: ParseEvent[] = [];
  for (let i = 0; i < line.length; i += 100) events.push(...split.feed(line.subarray(i, i + 100)));
  assert.deepEqual(events, [errorEvent(BAD, "chunk line too long")]);
  assert.equal(split.phase, "closed");
  // A long line within the limit is fine.
  const within = parser();
  assert.deepEqual(
    within.feed(concatAll([head, bytes(`1;${"x".repeat(4000)}\r\na\r\n0\r\n\r\n`)])),
    [request({ method: "POST" })],
  );
});

Deno.test("a head longer than MAX_HEAD_BYTES is Go's 431, in one read", () => {
  assert.equal(MAX_HEAD_BYTES, 64 * 1024);
  assert.equal(HEADERS_TOO_LARGE, TOO_LARGE);
  assert.equal(
    TOO_LARGE,
    "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n" +
      "Connection: close\r\n\r\n431 Request Header Fields Too Large",
  );
  assertRejected(headOfLength(MAX_HEAD_BYTES + 1), TOO_LARGE, "request head too large");
});

Deno.test("a head longer than MAX_HEAD_BYTES is 431 however the bytes are split across reads", () => {
  const data = bytes(headOfLength(MAX_HEAD_BYTES + 1));
  for (const size of [1, 7, 1000, 4096, 65535, 65536]) {
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < data.length; i += size) chunks.push(data.subarray(i, i + size));
    assert.deepEqual(
      outcome(chunks),
      {
        events: [errorEvent(TOO_LARGE, "request head too large")],
        phase: "closed",
        requestsStarted: 1,
      },
      `reads of ${size}`,
    );
  }
  // Many short header lines, split mid-line.
  const lines = "GET / HTTP/1.1\r\nHost: x\r\n" + "X-Header: value\r\n".repeat(4000) + "\r\n";
  const many = bytes(lines);
  assert.ok(many.length > MAX_HEAD_BYTES);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < many.length; i += 333) chunks.push(many.subarray(i, i + 333));
  assert.deepEqual(outcome(chunks).events, [errorEvent(TOO_LARGE, "request head too large")]);
});

Deno.test("an unterminated head is 431 as soon as it passes MAX_HEAD_BYTES, before it ends", () => {
  const p = parser();
  assert.deepEqual(p.feed(bytes(`GET /${"a".repeat(MAX_HEAD_BYTES - 15)}`)), []);
  assert.equal(p.phase, "head");
  assert.deepEqual(p.feed(bytes("a".repeat(10))), []);
  assert.deepEqual(p.feed(bytes("a")), [errorEvent(TOO_LARGE, "request head too large")]);
  assert.equal(p.phase, "closed");
});

Deno.test("a head of exactly MAX_HEAD_BYTES is parsed, in one read or byte-split", () => {
  const text = headOfLength(MAX_HEAD_BYTES);
  const data = bytes(text);
  assert.equal(data.length, MAX_HEAD_BYTES);
  const expected = [request({ target: "/pad" })];
  assert.deepEqual(parseOnce(text).events, expected);
  assert.deepEqual(outcome(cutAt(data, [1, 100, 30000, MAX_HEAD_BYTES - 1])).events, expected);
  assert.deepEqual(parseOnce(headOfLength(MAX_HEAD_BYTES - 1)).events, expected);
  // The limit is per request: several large heads pipelined are each fine.
  assert.deepEqual(parseOnce(text + text + text).events, [...expected, ...expected, ...expected]);
});

Deno.test("maxHeadBytes sets the head limit", () => {
  const p = new RequestParser({ maxBodyBytes: MAX_BODY, maxHeadBytes: 100 });
  assert.deepEqual(p.feed(bytes(headOfLength(100))), [request({ target: "/pad" })]);
  assert.deepEqual(p.feed(bytes(headOfLength(101))), [
    errorEvent(TOO_LARGE, "request head too large"),
  ]);
});

Deno.test("an Expect other than 100-continue is Go's 417 Expectation Failed, and the parser stops", () => {
  for (
    const text of [
      "GET / HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 3\r\n\r\nabc",
      "GET / HTTP/1.0\r\nExpect: something-else\r\n\r\n",
    ]
  ) {
    const { events, parser: p } = parseOnce(text);
    assert.deepEqual(events, [{
      kind: "reject",
      answer: { status: 417, headers: [["Connection", "close"]], body: null },
      reason: "unsupported Expect",
    }]);
    assert.equal(p.phase, "closed");
  }
  // Serialized like Go's sendExpectationFailed: Connection set by the handler, then Date.
  const { events } = parseOnce("GET / HTTP/1.1\r\nHost: x\r\nExpect: x\r\n\r\n");
  assert.equal(events[0].kind, "reject");
  if (events[0].kind === "reject") {
    assert.equal(
      binText(serializeResponse(events[0].answer, { date: DATE })),
      `HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nDate: ${DATE}\r\n` +
        "Content-Length: 0\r\n\r\n",
    );
  }
});

Deno.test("HTTP/1.0 with Expect: 100-continue is served without 100 Continue and without 417, as in Go", () => {
  // Go: expectsContinue() is true, so no 417; the interim response needs HTTP/1.1.
  const { events, parser: p } = parseOnce(
    "POST /a HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
  );
  assert.deepEqual(events, [
    request({ method: "POST", target: "/a", version: "HTTP/1.0", keepAlive: false }),
  ]);
  assert.equal(p.phase, "closed");
  assert.deepEqual(parseOnce("GET /b HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").events, [
    request({ target: "/b", version: "HTTP/1.0", keepAlive: false }),
  ]);
});

// ---- the request parser: Expect: 100-continue ----

Deno.test("Expect: 100-continue with a Content-Length body gives continue after the head, then the request after the body", () => {
  const p = parser();
  assert.deepEqual(
    p.feed(
      bytes("POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n"),
    ),
    [CONTINUE_EVENT],
  );
  assert.equal(p.phase, "body");
  assert.deepEqual(p.feed(bytes("hel")), []);
  assert.deepEqual(p.feed(bytes("lo")), [request({ method: "POST", target: "/a" })]);
  assert.equal(p.phase, "between");
  // Head and body in one read: continue, then the request.
  assert.deepEqual(
    parseOnce("POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx")
      .events,
    [CONTINUE_EVENT, request({ method: "POST", target: "/a" })],
  );
});

Deno.test("Expect: 100-continue with a chunked body gives continue after the head", () => {
  const p = parser();
  assert.deepEqual(
    p.feed(
      bytes(
        "POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
      ),
    ),
    [CONTINUE_EVENT],
  );
  assert.deepEqual(p.feed(bytes("2\r\nab\r\n")), []);
  assert.deepEqual(p.feed(bytes("0\r\n\r\n")), [request({ method: "POST", target: "/a" })]);
});

Deno.test("Expect: 100-continue without a body gives no continue event", () => {
  assert.deepEqual(
    parseOnce(
      "GET /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n" +
        "POST /b HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
    ).events,
    [request({ target: "/a" }), request({ method: "POST", target: "/b" })],
  );
});

// ---- the request parser: the body limit ----

Deno.test("a Content-Length above maxBodyBytes is a bodyTooLarge request at the end of the head, then the parser is closed", () => {
  const p = parser(10);
  assert.deepEqual(
    p.feed(
      bytes("POST /a HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\nContent-Length: 11\r\n\r\n"),
    ),
    [request({ method: "POST", target: "/a", accept: "text/plain" }, true)],
  );
  assert.equal(p.phase, "closed");
  assert.deepEqual(p.feed(bytes("01234567890GET / HTTP/1.1\r\nHost: x\r\n\r\n")), []);
});

Deno.test("a Content-Length of exactly maxBodyBytes is accepted", () => {
  const { events, parser: p } = parseOnce(
    "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789",
    10,
  );
  assert.deepEqual(events, [request({ method: "POST", target: "/a" })]);
  assert.equal(p.phase, "between");
});

Deno.test("an oversized body with Expect: 100-continue gets no continue, only the bodyTooLarge request", () => {
  assert.deepEqual(
    parseOnce(
      "POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n",
      10,
    ).events,
    [request({ method: "POST", target: "/a" }, true)],
  );
});

Deno.test("a chunked body above maxBodyBytes is a bodyTooLarge request as soon as the size line that crosses it is read", () => {
  const p = parser(10);
  assert.deepEqual(
    p.feed(
      bytes("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n5"),
    ),
    [],
  );
  assert.equal(p.phase, "body");
  assert.deepEqual(p.feed(bytes("\r\n")), [request({ method: "POST", target: "/a" }, true)]);
  assert.equal(p.phase, "closed");
  assert.deepEqual(p.feed(bytes("abcde\r\n0\r\n\r\n")), []);
  // One chunk that alone is too large.
  assert.deepEqual(
    parseOnce("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n", 10)
      .events,
    [request({ method: "POST", target: "/a" }, true)],
  );
});

Deno.test("a chunked body of exactly maxBodyBytes is accepted", () => {
  const { events, parser: p } = parseOnce(
    "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
    10,
  );
  assert.deepEqual(events, [
    request({ method: "POST", target: "/a" }, false),
    request({ target: "/b" }),
  ]);
  assert.equal(p.phase, "between");
});

// ---- the response serializer ----

const JSON_HEADERS: ReadonlyArray<readonly [string, string]> = [
  ["Content-Type", "application/json; charset=utf-8"],
  ["X-NSQ-Content-Type", "nsq; version=1.0"],
];

const INFO: FixedAnswer = { status: 200, headers: JSON_HEADERS, body: '{"version":"1.3.0"}' };
const INFO_BYTES = "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n" +
  "X-Nsq-Content-Type: nsq; version=1.0\r\nDate: Sun, 22 Nov 2026 07:06:14 GMT\r\n" +
  'Content-Length: 19\r\n\r\n{"version":"1.3.0"}';

const PING: FixedAnswer = {
  status: 200,
  headers: [],
  body: "OK",
  defaultContentType: "text/plain; charset=utf-8",
};
const PING_BYTES =
  "HTTP/1.1 200 OK\r\nDate: Sun, 22 Nov 2026 07:06:14 GMT\r\nContent-Length: 2\r\n" +
  "Content-Type: text/plain; charset=utf-8\r\n\r\nOK";

const METHOD_NOT_ALLOWED: FixedAnswer = {
  status: 405,
  headers: [["Allow", "OPTIONS, POST"], ...JSON_HEADERS],
  body: '{"message":"METHOD_NOT_ALLOWED"}',
};
const METHOD_NOT_ALLOWED_BYTES = "HTTP/1.1 405 Method Not Allowed\r\nAllow: OPTIONS, POST\r\n" +
  "Content-Type: application/json; charset=utf-8\r\nX-Nsq-Content-Type: nsq; version=1.0\r\n" +
  "Date: Sun, 22 Nov 2026 07:06:14 GMT\r\nContent-Length: 32\r\n\r\n" +
  '{"message":"METHOD_NOT_ALLOWED"}';

const EMPTY: FixedAnswer = {
  status: 200,
  headers: [["X-NSQ-Content-Type", "nsq; version=1.0"]],
  body: null,
};
const EMPTY_BYTES = "HTTP/1.1 200 OK\r\nX-Nsq-Content-Type: nsq; version=1.0\r\n" +
  "Date: Sun, 22 Nov 2026 07:06:14 GMT\r\nContent-Length: 0\r\n\r\n";

Deno.test("a JSON answer is serialized as Go wrote it: canonical sorted headers, then Date and Content-Length", () => {
  assert.equal(binText(serializeResponse(INFO, { date: DATE })), INFO_BYTES);
});

Deno.test("the /ping answer gets Go's sniffed Content-Type after Content-Length", () => {
  assert.equal(binText(serializeResponse(PING, { date: DATE })), PING_BYTES);
});

Deno.test("a 405 answer with Allow is serialized as Go wrote it", () => {
  assert.equal(
    binText(serializeResponse(METHOD_NOT_ALLOWED, { date: DATE })),
    METHOD_NOT_ALLOWED_BYTES,
  );
});

Deno.test("headers are written sorted by canonical name whatever the order and case they are given in", () => {
  const shuffled: FixedAnswer = {
    ...METHOD_NOT_ALLOWED,
    headers: [
      ["x-nsq-content-type", "nsq; version=1.0"],
      ["allow", "OPTIONS, POST"],
      ["CONTENT-TYPE", "application/json; charset=utf-8"],
    ],
  };
  assert.equal(binText(serializeResponse(shuffled, { date: DATE })), METHOD_NOT_ALLOWED_BYTES);
  const reversed: FixedAnswer = {
    ...METHOD_NOT_ALLOWED,
    headers: [...METHOD_NOT_ALLOWED.headers].reverse(),
  };
  assert.equal(binText(serializeResponse(reversed, { date: DATE })), METHOD_NOT_ALLOWED_BYTES);
});

Deno.test("an answer without a body is written with Content-Length: 0 and nothing after the head", () => {
  assert.equal(binText(serializeResponse(EMPTY, { date: DATE })), EMPTY_BYTES);
  assert.equal(
    binText(serializeResponse({ status: 200, headers: [], body: "" }, { date: DATE })),
    "HTTP/1.1 200 OK\r\nDate: Sun, 22 Nov 2026 07:06:14 GMT\r\nContent-Length: 0\r\n\r\n",
  );
});

Deno.test("the status line uses Go's status texts", () => {
  const line = (status: number): string =>
    binText(serializeResponse({ status, headers: [], body: null }, { date: DATE })).split(
      "\r\n",
    )[0];
  assert.equal(line(200), "HTTP/1.1 200 OK");
  assert.equal(line(301), "HTTP/1.1 301 Moved Permanently");
  assert.equal(line(308), "HTTP/1.1 308 Permanent Redirect");
  assert.equal(line(400), "HTTP/1.1 400 Bad Request");
  assert.equal(line(404), "HTTP/1.1 404 Not Found");
  assert.equal(line(413), "HTTP/1.1 413 Request Entity Too Large");
  assert.equal(line(414), "HTTP/1.1 414 Request URI Too Long");
  assert.equal(line(500), "HTTP/1.1 500 Internal Server Error");
});

Deno.test("omitBody (HEAD) writes the same head, with the real Content-Length, and no body", () => {
  assert.equal(
    binText(serializeResponse(INFO, { date: DATE, omitBody: true })),
    INFO_BYTES.slice(0, INFO_BYTES.indexOf("\r\n\r\n") + 4),
  );
  assert.equal(
    binText(serializeResponse(PING, { date: DATE, omitBody: true })),
    "HTTP/1.1 200 OK\r\nDate: Sun, 22 Nov 2026 07:06:14 GMT\r\nContent-Length: 2\r\n" +
      "Content-Type: text/plain; charset=utf-8\r\n\r\n",
  );
  const unicode: FixedAnswer = { status: 200, headers: [], body: "héllo€" };
  assert.equal(
    binText(serializeResponse(unicode, { date: DATE, omitBody: true })),
    "HTTP/1.1 200 OK\r\nDate: Sun, 22 Nov 2026 07:06:14 GMT\r\nContent-Length: 9\r\n\r\n",
  );
});

Deno.test("close adds Connection: close as the last header; keepAlive adds Connection: keep-alive", () => {
  assert.equal(
    binText(serializeResponse(PING, { date: DATE, close: true })),
    "HTTP/1.1 200 OK\r\nDate: Sun, 22 Nov 2026 07:06:14 GMT\r\nContent-Length: 2\r\n" +
      "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nOK",
  );
  assert.equal(
    binText(serializeResponse(INFO, { date: DATE, keepAlive: true })),
    INFO_BYTES.replace(
      "Content-Length: 19\r\n",
      "Content-Length: 19\r\nConnection: keep-alive\r\n",
    ),
  );
  // HEAD of an empty body: Go sends no Content-Length (it cannot tell it from a skipped body).
  assert.equal(
    binText(serializeResponse(EMPTY, { date: DATE, close: true, omitBody: true })),
    EMPTY_BYTES.replace("Content-Length: 0\r\n", "Connection: close\r\n"),
  );
  // close wins when both are asked for.
  assert.equal(
    binText(serializeResponse(EMPTY, { date: DATE, close: true, keepAlive: true })),
    EMPTY_BYTES.replace("Content-Length: 0\r\n", "Content-Length: 0\r\nConnection: close\r\n"),
  );
});

Deno.test("Content-Length counts the UTF-8 bytes of a non-ASCII body, which is written as UTF-8", () => {
  const out = serializeResponse({ status: 200, headers: [], body: "héllo€" }, { date: DATE });
  assert.deepEqual(
    out,
    concatAll([
      bytes("HTTP/1.1 200 OK\r\nDate: Sun, 22 Nov 2026 07:06:14 GMT\r\nContent-Length: 9\r\n\r\n"),
      new Uint8Array([0x68, 0xc3, 0xa9, 0x6c, 0x6c, 0x6f, 0xe2, 0x82, 0xac]),
    ]),
  );
  const astral = serializeResponse({ status: 200, headers: [], body: "a😀b" }, { date: DATE });
  assert.equal(binText(astral).split("\r\n")[2], "Content-Length: 6");
  assert.deepEqual(astral.subarray(astral.length - 6), bytes("a😀b"));
});

Deno.test("a header value given as a binary string is written as those raw bytes, not re-encoded", () => {
  const location = binText(bytes("/lookup?topic=€"));
  assert.equal(location, "/lookup?topic=\xe2\x82\xac");
  const redirect = serializeResponse(
    { status: 308, headers: [["Location", location]], body: null },
    { date: DATE },
  );
  assert.deepEqual(
    redirect,
    concatAll([
      bytes("HTTP/1.1 308 Permanent Redirect\r\nLocation: /lookup?topic="),
      new Uint8Array([0xe2, 0x82, 0xac]),
      bytes("\r\nDate: Sun, 22 Nov 2026 07:06:14 GMT\r\nContent-Length: 0\r\n\r\n"),
    ]),
  );
  const body = '<a href="/lookup?topic=€">Moved Permanently</a>.\n\n';
  const moved = serializeResponse(
    {
      status: 301,
      headers: [["Location", location], ["Content-Type", "text/html; charset=utf-8"]],
      body,
    },
    { date: DATE, close: true },
  );
  assert.deepEqual(
    moved,
    concatAll([
      bin(
        "HTTP/1.1 301 Moved Permanently\r\nContent-Type: text/html; charset=utf-8\r\n" +
          `Location: ${location}\r\nDate: ${DATE}\r\nContent-Length: ${bytes(body).length}\r\n` +
          "Connection: close\r\n\r\n",
      ),
      bytes(body),
    ]),
  );
});

Deno.test("a very long header (a 5,000-char Location) is written whole, with its body", () => {
  const location = `/lookup?topic=${"t".repeat(5000 - 14)}`;
  assert.equal(location.length, 5000);
  const head = `HTTP/1.1 301 Moved Permanently\r\nLocation: ${location}\r\nDate: ${DATE}\r\n` +
    "Content-Length: 7\r\n\r\n";
  assert.equal(
    binText(
      serializeResponse({ status: 301, headers: [["Location", location]], body: "moved\n\n" }, {
        date: DATE,
      }),
    ),
    `${head}moved\n\n`,
  );
  assert.equal(
    binText(
      serializeResponse({ status: 301, headers: [["Location", location]], body: "moved\n\n" }, {
        date: DATE,
        omitBody: true,
      }),
    ),
    head,
  );
  const binary = `/${"\xe2\x82\xac".repeat(2000)}`;
  assert.equal(
    binText(serializeResponse({ status: 308, headers: [["Location", binary]], body: "é" }, {
      date: DATE,
    })),
    `HTTP/1.1 308 Permanent Redirect\r\nLocation: ${binary}\r\nDate: ${DATE}\r\n` +
      "Content-Length: 2\r\n\r\n\xc3\xa9",
  );
});

Deno.test("several responses appended to one ResponseBuffer come out back to back, each as serialized alone", () => {
  const long = `/${"x".repeat(3000)}`;
  const answers: Array<[FixedAnswer, SerializeOptions]> = [
    [INFO, { date: DATE }],
    [PING, { date: DATE, keepAlive: true }],
    [{ status: 200, headers: [], body: "héllo€".repeat(50) }, { date: DATE }],
    [{ status: 308, headers: [["Location", "/\xe2\x82\xac"]], body: null }, { date: DATE }],
    [METHOD_NOT_ALLOWED, { date: DATE, omitBody: true }],
    [{ status: 301, headers: [["Location", long]], body: "ü".repeat(700) }, { date: DATE }],
    [EMPTY, { date: DATE, close: true }],
  ];
  const buffer = new ResponseBuffer(64);
  for (const [answer, options] of answers) buffer.append(answer, options);
  const expected = concatAll(
    answers.map(([answer, options]) => serializeResponse(answer, options)),
  );
  assert.equal(buffer.length, expected.length);
  assert.equal(firstDifference(buffer.bytes, expected), -1);
  assert.ok(buffer.capacity >= buffer.length);
  assert.ok(binText(buffer.bytes).startsWith(INFO_BYTES + "HTTP/1.1 200 OK\r\nDate: "));
  assert.ok(binText(buffer.bytes).endsWith("Connection: close\r\n\r\n"));
});

Deno.test("a 3 MB ASCII body grows the buffer and is written exactly, as one chunk", () => {
  const body = "0123456789abcdef".repeat(3 * 1024 * 1024 / 16);
  const buffer = new ResponseBuffer();
  assert.equal(buffer.capacity, 16 * 1024);
  buffer.append(PING, { date: DATE });
  buffer.append({ status: 200, headers: JSON_HEADERS, body }, { date: DATE });
  buffer.append(PING, { date: DATE });
  const expected = concatAll([
    bytes(PING_BYTES),
    bytes(
      "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n" +
        `X-Nsq-Content-Type: nsq; version=1.0\r\nDate: ${DATE}\r\n` +
        "Transfer-Encoding: chunked\r\n\r\n300000\r\n",
    ),
    bytes(body),
    bytes("\r\n0\r\n\r\n"),
    bytes(PING_BYTES),
  ]);
  assert.equal(buffer.length, expected.length);
  assert.equal(firstDifference(buffer.bytes, expected), -1);
  assert.ok(buffer.capacity >= expected.length);
});

Deno.test("a 3 MB non-ASCII body grows the buffer and is written exactly as UTF-8, as one chunk", () => {
  const body = `${"€".repeat(1_000_000)}héllo 😀 ${"ü".repeat(1000)}`;
  const encoded = bytes(body);
  assert.ok(encoded.length > 3_000_000);
  const buffer = new ResponseBuffer(1024);
  buffer.append(EMPTY, { date: DATE });
  buffer.append({ status: 200, headers: [], body }, { date: DATE, close: true });
  const expected = concatAll([
    bytes(EMPTY_BYTES),
    bytes(
      `HTTP/1.1 200 OK\r\nDate: ${DATE}\r\nConnection: close\r\n` +
        `Transfer-Encoding: chunked\r\n\r\n${encoded.length.toString(16)}\r\n`,
    ),
    encoded,
    bytes("\r\n0\r\n\r\n"),
  ]);
  assert.equal(buffer.length, expected.length);
  assert.equal(firstDifference(buffer.bytes, expected), -1);
  assert.equal(
    firstDifference(
      serializeResponse({ status: 200, headers: [], body }, {
        date: DATE,
        close: true,
      }),
      expected.subarray(EMPTY_BYTES.length),
    ),
    -1,
  );
});

Deno.test("reset empties a ResponseBuffer, keeps its capacity, and the next response starts at its start", () => {
  const buffer = new ResponseBuffer(256);
  buffer.append(INFO, { date: DATE });
  buffer.append({ status: 200, headers: [], body: "x".repeat(5000) }, { date: DATE });
  const capacity = buffer.capacity;
  assert.ok(capacity > 256);
  buffer.reset();
  assert.equal(buffer.length, 0);
  assert.equal(buffer.bytes.length, 0);
  assert.equal(buffer.capacity, capacity);
  buffer.append(PING, { date: DATE });
  assert.equal(binText(buffer.bytes), PING_BYTES);
});

Deno.test("appendBytes adds raw bytes between serialized responses", () => {
  const buffer = new ResponseBuffer(16);
  buffer.appendBytes(bytes("HTTP/1.1 100 Continue\r\n\r\n"));
  buffer.append(PING, { date: DATE });
  buffer.appendBytes(bytes(BAD_REQUEST));
  buffer.appendBytes(new Uint8Array(0));
  assert.equal(binText(buffer.bytes), `HTTP/1.1 100 Continue\r\n\r\n${PING_BYTES}${BAD}`);
  assert.equal(buffer.length, 25 + PING_BYTES.length + BAD.length);
  assert.equal(BAD_REQUEST, BAD);
});

Deno.test("serializeResponse returns bytes of its own, unchanged by later serializations", () => {
  const first = serializeResponse(INFO, { date: DATE });
  serializeResponse(PING, { date: DATE });
  serializeResponse({ status: 200, headers: [], body: "z".repeat(10_000) }, { date: DATE });
  assert.equal(binText(first), INFO_BYTES);
  assert.equal(first.byteOffset, 0);
  assert.equal(first.buffer.byteLength, first.length);
});

Deno.test("property: a ResponseBuffer holding random responses equals each serialized alone, back to back", () => {
  const headerName = fc.constantFrom(
    "Content-Type",
    "x-nsq-content-type",
    "Allow",
    "location",
    "X-A",
  );
  const answer = fc.record({
    status: fc.constantFrom(200, 301, 308, 400, 404, 405, 500),
    headers: fc.uniqueArray(
      fc.tuple(headerName, fc.string({ unit: "binary-ascii", maxLength: 40 })),
      { selector: ([name]) => canonicalHeaderName(name), maxLength: 4 },
    ).map((list) => list.map(([n, v]) => [n, v.replace(/[\r\n]/g, "")] as const)),
    body: fc.option(fc.string({ unit: "binary", maxLength: 5000 }), { nil: null }),
  });
  const options = fc.record({
    omitBody: fc.boolean(),
    close: fc.boolean(),
    keepAlive: fc.boolean(),
  });
  fc.assert(
    fc.property(
      fc.array(fc.tuple(answer, options), { minLength: 1, maxLength: 8 }),
      fc.integer({ min: 1, max: 4096 }),
      (list, capacity) => {
        const buffer = new ResponseBuffer(capacity);
        const singles: Uint8Array[] = [];
        for (const [a, o] of list) {
          buffer.append(a, { date: DATE, ...o });
          const single = serializeResponse(a, { date: DATE, ...o });
          singles.push(single);
          // Each response, read as a client reads it, gives the body back.
          const body = bytes(a.body ?? "");
          const decoded = decodeResponse(single, o.omitBody);
          assert.equal(decoded.rest, 0);
          assert.equal(firstDifference(decoded.body, o.omitBody ? new Uint8Array(0) : body), -1);
          if (body.length > 2048) {
            assert.equal(decoded.contentLength, undefined);
            assert.equal(decoded.chunked, !o.omitBody);
          } else {
            assert.equal(
              decoded.contentLength,
              o.omitBody && body.length === 0 ? undefined : body.length,
            );
          }
        }
        assert.equal(firstDifference(buffer.bytes, concatAll(singles)), -1);
      },
    ),
    { numRuns: 200 },
  );
});

// ---- helpers: httpDate, canonicalHeaderName, latin1Bytes ----

Deno.test("httpDate formats a time as an HTTP date, to the second", () => {
  assert.equal(httpDate(Date.UTC(2026, 10, 22, 7, 6, 14, 500)), "Sun, 22 Nov 2026 07:06:14 GMT");
  assert.equal(httpDate(Date.UTC(2026, 10, 22, 7, 6, 14, 999)), "Sun, 22 Nov 2026 07:06:14 GMT");
  assert.equal(httpDate(Date.UTC(2026, 10, 22, 7, 6, 15, 0)), "Sun, 22 Nov 2026 07:06:15 GMT");
  assert.equal(httpDate(Date.UTC(2024, 1, 29, 23, 59, 59)), "Thu, 29 Feb 2024 23:59:59 GMT");
  assert.equal(httpDate(Date.UTC(2026, 10, 22, 7, 6, 14, 0)), "Sun, 22 Nov 2026 07:06:14 GMT");
  assert.equal(httpDate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
});

Deno.test("httpDate without an argument is the current time", () => {
  const before = new Date(Date.now()).toUTCString();
  const now = httpDate();
  const after = new Date(Date.now()).toUTCString();
  assert.ok(now === before || now === after, `${now} not in [${before}, ${after}]`);
  assert.match(now, /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
});

Deno.test("canonicalHeaderName gives Go's canonical form of a header name", () => {
  assert.equal(canonicalHeaderName("x-nsq-content-type"), "X-Nsq-Content-Type");
  assert.equal(canonicalHeaderName("X-NSQ-Content-Type"), "X-Nsq-Content-Type");
  assert.equal(canonicalHeaderName("CONTENT-TYPE"), "Content-Type");
  assert.equal(canonicalHeaderName("content-length"), "Content-Length");
  assert.equal(canonicalHeaderName("Allow"), "Allow");
  assert.equal(canonicalHeaderName("location"), "Location");
  assert.equal(canonicalHeaderName("www-AUTHENTICATE"), "Www-Authenticate");
  assert.equal(canonicalHeaderName("x-1a"), "X-1a");
  // Cached names answer the same.
  assert.equal(canonicalHeaderName("x-nsq-content-type"), "X-Nsq-Content-Type");
});

Deno.test("latin1Bytes turns each char of a binary string into one byte", () => {
  assert.deepEqual(latin1Bytes(""), new Uint8Array(0));
  assert.deepEqual(
    latin1Bytes("/lookup?topic=\xe2\x82\xac"),
    concatAll([bytes("/lookup?topic="), new Uint8Array([0xe2, 0x82, 0xac])]),
  );
  assert.deepEqual(latin1Bytes("\x00\x7f\x80\xff"), new Uint8Array([0x00, 0x7f, 0x80, 0xff]));
});

Deno.test("an encoded body over 16 KiB is written from where it is, between its chunk lines; a small one is copied", () => {
  const big = new TextEncoder().encode("é".repeat(20_000));
  const out = new ResponseBuffer();
  out.append({ status: 200, headers: [], body: big }, { date: DATE });
  out.append({ status: 200, headers: [], body: new TextEncoder().encode("OK") }, { date: DATE });
  const parts = out.parts();
  assert.equal(parts.length, 3);
  assert.equal(parts[1], big, "the body itself, not a copy");
  const head = (length: number): string =>
    `HTTP/1.1 200 OK\r\nDate: ${DATE}\r\nContent-Length: ${length}\r\n\r\n`;
  const chunkedHead = `HTTP/1.1 200 OK\r\nDate: ${DATE}\r\nTransfer-Encoding: chunked\r\n\r\n`;
  assert.equal(binText(parts[0]), `${chunkedHead}9c40\r\n`);
  assert.equal(binText(parts[2]), "\r\n0\r\n\r\n" + head(2) + "OK");
  assert.equal(out.length, parts[0].length + 40_000 + parts[2].length);
  assert.equal(
    new TextDecoder().decode(out.bytes),
    `${chunkedHead}9c40\r\n` + "é".repeat(20_000) + "\r\n0\r\n\r\n" + head(2) + "OK",
  );
  // The same answer as text serializes to the same bytes.
  assert.deepEqual(
    serializeResponse({ status: 200, headers: [], body: "é".repeat(20_000) }, { date: DATE }),
    serializeResponse({ status: 200, headers: [], body: big }, { date: DATE }),
  );
  out.reset();
  assert.equal(out.length, 0);
  assert.deepEqual(out.parts(), []);
  // HEAD of a large body: neither its length nor chunking, none of its bytes (as Go).
  out.append({ status: 200, headers: [], body: big }, { date: DATE, omitBody: true });
  assert.equal(binText(out.bytes), `HTTP/1.1 200 OK\r\nDate: ${DATE}\r\n\r\n`);
  assert.equal(out.parts().length, 1);
});

// ---- the response serializer: Go's body framing ----

const BODY_2049 = "x".repeat(2049);

Deno.test("a body of up to 2048 bytes gets Content-Length; one byte more is one chunk, lower-case hex size, as Go's chunkWriter", () => {
  const small = serializeResponse({ status: 200, headers: [], body: "x".repeat(2048) }, {
    date: DATE,
  });
  assert.equal(
    binText(small),
    `HTTP/1.1 200 OK\r\nDate: ${DATE}\r\nContent-Length: 2048\r\n\r\n${"x".repeat(2048)}`,
  );
  assert.equal(
    binText(serializeResponse({ status: 200, headers: [], body: BODY_2049 }, { date: DATE })),
    `HTTP/1.1 200 OK\r\nDate: ${DATE}\r\nTransfer-Encoding: chunked\r\n\r\n801\r\n${BODY_2049}\r\n0\r\n\r\n`,
  );
  // The UTF-8 length decides: 1025 two-byte chars are 2050 bytes.
  const accented = binText(
    serializeResponse({ status: 200, headers: [], body: "é".repeat(1025) }, { date: DATE }),
  );
  assert.match(accented, /\r\nTransfer-Encoding: chunked\r\n\r\n802\r\n/);
});

Deno.test("a large body to HTTP/1.0 has no length and ends the connection, even when keep-alive was asked (no keep-alive echoed)", () => {
  const out = new ResponseBuffer();
  const framing = out.append({ status: 200, headers: [], body: BODY_2049 }, {
    date: DATE,
    http10: true,
    keepAlive: true,
  });
  assert.deepEqual(framing, { mode: "close", close: true });
  assert.equal(binText(out.bytes), `HTTP/1.0 200 OK\r\nDate: ${DATE}\r\n\r\n${BODY_2049}`);
  // A small one keeps the connection, with Connection: keep-alive.
  out.reset();
  assert.deepEqual(out.append(PING, { date: DATE, http10: true, keepAlive: true }), {
    mode: "length",
    close: false,
  });
  assert.match(binText(out.bytes), /\r\nConnection: keep-alive\r\n\r\nOK$/);
});

Deno.test("HEAD: a small body's Content-Length, none for an empty or a large one, never a body; keep-alive echoed to HTTP/1.0", () => {
  const head = (body: string, options: Partial<SerializeOptions> = {}): string =>
    binText(serializeResponse({ status: 200, headers: [], body }, {
      date: DATE,
      omitBody: true,
      ...options,
    }));
  assert.equal(head("OK"), `HTTP/1.1 200 OK\r\nDate: ${DATE}\r\nContent-Length: 2\r\n\r\n`);
  assert.equal(head(""), `HTTP/1.1 200 OK\r\nDate: ${DATE}\r\n\r\n`);
  assert.equal(head(BODY_2049), `HTTP/1.1 200 OK\r\nDate: ${DATE}\r\n\r\n`);
  assert.equal(
    head(BODY_2049, { http10: true, keepAlive: true }),
    `HTTP/1.0 200 OK\r\nDate: ${DATE}\r\nConnection: keep-alive\r\n\r\n`,
  );
});

Deno.test("204 and 304 get neither Content-Length nor a body", () => {
  for (const status of [204, 304]) {
    const text = binText(
      serializeResponse({ status, headers: [], body: "ignored" }, { date: DATE }),
    );
    assert.equal(
      text,
      `HTTP/1.1 ${status} ${
        status === 204 ? "No Content" : "Not Modified"
      }\r\nDate: ${DATE}\r\n\r\n`,
    );
  }
});

Deno.test("appendHead, appendChunk and appendEnd frame a body of unknown size: chunks on HTTP/1.1, the bytes then closing on HTTP/1.0, nothing for HEAD", () => {
  const answer: FixedAnswer = { status: 200, headers: JSON_HEADERS, body: null };
  const out = new ResponseBuffer(64);
  const framing = out.appendHead(answer, { date: DATE });
  assert.deepEqual(framing, { mode: "chunked", close: false });
  out.appendChunk(bytes("abc"), framing.mode);
  out.appendChunk(new Uint8Array(0), framing.mode); // an empty piece is no chunk (it would end the body)
  out.appendChunk(bytes("é".repeat(10)), framing.mode);
  out.appendEnd(framing.mode);
  assert.equal(
    new TextDecoder().decode(out.bytes),
    "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n" +
      `X-Nsq-Content-Type: nsq; version=1.0\r\nDate: ${DATE}\r\nTransfer-Encoding: chunked\r\n\r\n` +
      `3\r\nabc\r\n14\r\n${"é".repeat(10)}\r\n0\r\n\r\n`,
  );
  const old = new ResponseBuffer(64);
  const old10 = old.appendHead(answer, { date: DATE, http10: true });
  assert.deepEqual(old10, { mode: "close", close: true });
  old.appendChunk(bytes("abc"), old10.mode);
  old.appendEnd(old10.mode);
  assert.match(binText(old.bytes), /^HTTP\/1.0 200 OK\r\n[^]*\r\n\r\nabc$/);
  const head = new ResponseBuffer(64);
  assert.deepEqual(head.appendHead(answer, { date: DATE, omitBody: true }), {
    mode: "none",
    close: false,
  });
  assert.doesNotMatch(binText(head.bytes), /Transfer-Encoding|Content-Length/);
});
