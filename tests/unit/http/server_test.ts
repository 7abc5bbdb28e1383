// Our HTTP/1.1 server over real sockets: the reference's bytes, keep-alive and
// pipelining, HTTP/1.0, Connection: close, bad requests, 100-continue,
// refused bodies, request logs, shutdown, and the Deno.serve switch.

import assert from "node:assert/strict";
import { HttpServer } from "../../../src/http/server.ts";
import { createLogger } from "../../../src/ops/logger.ts";
import {
  eventually,
  RawHttpConn,
  rawRequest,
  readAll,
  readUntil,
  startDaemon,
} from "../../support/helpers.ts";

const encoder = new TextEncoder();

// Captured from nsqlookupd v1.3.0 (shared/reference/http-responses.txt); the Date value aside.
const CAPTURED = {
  info: "HTTP/1.1 200 OK\r\n" +
    "Content-Type: application/json; charset=utf-8\r\n" +
    "X-Nsq-Content-Type: nsq; version=1.0\r\n" +
    "Date: DATE\r\n" +
    "Content-Length: 19\r\n\r\n" +
    '{"version":"1.3.0"}',
  ping: "HTTP/1.1 200 OK\r\n" +
    "Date: DATE\r\n" +
    "Content-Length: 2\r\n" +
    "Content-Type: text/plain; charset=utf-8\r\n\r\n" +
    "OK",
  lookupMissing: "HTTP/1.1 404 Not Found\r\n" +
    "Content-Type: application/json; charset=utf-8\r\n" +
    "X-Nsq-Content-Type: nsq; version=1.0\r\n" +
    "Date: DATE\r\n" +
    "Content-Length: 29\r\n\r\n" +
    '{"message":"TOPIC_NOT_FOUND"}',
  lookupNoTopic: "HTTP/1.1 400 Bad Request\r\n" +
    "Content-Type: application/json; charset=utf-8\r\n" +
    "X-Nsq-Content-Type: nsq; version=1.0\r\n" +
    "Date: DATE\r\n" +
    "Content-Length: 31\r\n\r\n" +
    '{"message":"MISSING_ARG_TOPIC"}',
  getTopicCreate: "HTTP/1.1 405 Method Not Allowed\r\n" +
    "Allow: OPTIONS, POST\r\n" +
    "Content-Type: application/json; charset=utf-8\r\n" +
    "X-Nsq-Content-Type: nsq; version=1.0\r\n" +
    "Date: DATE\r\n" +
    "Content-Length: 32\r\n\r\n" +
    '{"message":"METHOD_NOT_ALLOWED"}',
  channelCreate: "HTTP/1.1 200 OK\r\n" +
    "X-Nsq-Content-Type: nsq; version=1.0\r\n" +
    "Date: DATE\r\n" +
    "Content-Length: 0\r\n\r\n",
  nonexistent: "HTTP/1.1 404 Not Found\r\n" +
    "Content-Type: application/json; charset=utf-8\r\n" +
    "X-Nsq-Content-Type: nsq; version=1.0\r\n" +
    "Date: DATE\r\n" +
    "Content-Length: 23\r\n\r\n" +
    '{"message":"NOT_FOUND"}',
  headPing: "HTTP/1.1 405 Method Not Allowed\r\n" +
    "Allow: GET, OPTIONS\r\n" +
    "Content-Type: application/json; charset=utf-8\r\n" +
    "X-Nsq-Content-Type: nsq; version=1.0\r\n" +
    "Date: DATE\r\n" +
    "Content-Length: 32\r\n\r\n",
};

/** What curl sends for `curl -si [-X M] URL`. */
function curl(method: string, target: string, port: number): string {
  return `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
    "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
}

Deno.test("responses are the reference's bytes, header order and case included (Date aside)", async () => {
  await using daemon = startDaemon();
  const port = daemon.httpAddr.port;
  using conn = await RawHttpConn.open(port);
  const exchanges: [string, string, string, boolean?][] = [
    ["GET", "/info", CAPTURED.info],
    ["GET", "/ping", CAPTURED.ping],
    ["GET", "/lookup?topic=missing", CAPTURED.lookupMissing],
    ["GET", "/lookup", CAPTURED.lookupNoTopic],
    ["GET", "/topic/create?topic=x2", CAPTURED.getTopicCreate],
    ["POST", "/channel/create?topic=x1&channel=c1", CAPTURED.channelCreate],
    ["GET", "/nonexistent", CAPTURED.nonexistent],
    ["HEAD", "/ping", CAPTURED.headPing, true],
  ];
  for (const [method, target, expected, noBody] of exchanges) {
    await conn.send(curl(method, target, port));
    const response = await conn.response({ noBody });
    assert.equal(response.normalized, expected, `${method} ${target}`);
    assert.match(response.head, /\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\r\n/);
  }
});

Deno.test("pipelined requests are answered in order on one keep-alive connection", async () => {
  await using daemon = startDaemon();
  const port = daemon.httpAddr.port;
  using conn = await RawHttpConn.open(port);
  await conn.send(
    curl("GET", "/info", port) + curl("GET", "/nonexistent", port) + curl("GET", "/ping", port),
  );
  assert.equal((await conn.response()).normalized, CAPTURED.info);
  assert.equal((await conn.response()).normalized, CAPTURED.nonexistent);
  assert.equal((await conn.response()).normalized, CAPTURED.ping);
  // Still open: one more on the same connection.
  await conn.send(curl("GET", "/ping", port));
  assert.equal((await conn.response()).body, "OK");
});

Deno.test("a request sent one byte per write is answered like one sent whole", async () => {
  await using daemon = startDaemon();
  const port = daemon.httpAddr.port;
  using conn = await RawHttpConn.open(port);
  for (const byte of encoder.encode(curl("GET", "/info", port))) {
    await conn.send(new Uint8Array([byte]));
  }
  assert.equal((await conn.response()).normalized, CAPTURED.info);
});

Deno.test("HTTP/1.0 is answered in HTTP/1.0 and closed, unless it asks for keep-alive, which is echoed", async () => {
  await using daemon = startDaemon();
  const port = daemon.httpAddr.port;
  const closing = await rawRequest(port, "GET /ping HTTP/1.0\r\n\r\n");
  assert.equal(
    closing.replace(/Date: [^\r]*/, "Date: DATE"),
    "HTTP/1.0 200 OK\r\nDate: DATE\r\nContent-Length: 2\r\n" +
      "Content-Type: text/plain; charset=utf-8\r\n\r\nOK",
  );
  using conn = await RawHttpConn.open(port);
  await conn.send("GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const kept = await conn.response();
  assert.match(kept.head, /^HTTP\/1.0 200 OK\r\n[\s\S]*\r\nConnection: keep-alive\r\n\r\n$/);
  await conn.send("GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  assert.equal((await conn.response()).body, "OK");
});

Deno.test("Connection: close is answered with Connection: close, and requests after it are not", async () => {
  await using daemon = startDaemon();
  const port = daemon.httpAddr.port;
  const answer = await rawRequest(
    port,
    "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + curl("GET", "/info", port),
  );
  assert.equal(
    answer.replace(/Date: [^\r]*/, "Date: DATE"),
    "HTTP/1.1 200 OK\r\nDate: DATE\r\nContent-Length: 2\r\n" +
      "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nOK",
  );
});

Deno.test("a malformed request gets Go's 400 and is closed; other clients are not disturbed", async () => {
  await using daemon = startDaemon();
  const port = daemon.httpAddr.port;
  using other = await RawHttpConn.open(port);
  await other.send(curl("GET", "/ping", port));
  await other.response();
  const cases: [string, string][] = [
    ["GET /ping\r\n\r\n", "400 Bad Request"],
    ["GET /ping HTTP/1.1\r\n\r\n", "400 Bad Request: missing required Host header"],
    ["GET /ping HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400 Bad Request: too many Host headers"],
    [
      "GET /ping HTTP/2.0\r\nHost: x\r\n\r\n",
      "505 HTTP Version Not Supported: unsupported protocol version",
    ],
    [
      "GET /ping HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
      "400 Bad Request: invalid header name",
    ],
    ["GET /ping HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n", "400 Bad Request"],
  ];
  for (const [request, status] of cases) {
    assert.equal(
      await rawRequest(port, request),
      `HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n${status}`,
      JSON.stringify(request),
    );
  }
  assert.equal(
    await rawRequest(port, "POST /ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
    "HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\n" +
      "Connection: close\r\n\r\nUnsupported transfer encoding",
  );
  await other.send(curl("GET", "/info", port));
  assert.equal((await other.response()).normalized, CAPTURED.info);
});

Deno.test("Expect: 100-continue gets 100 Continue before the body is sent, then the answer", async () => {
  await using daemon = startDaemon();
  const port = daemon.httpAddr.port;
  using conn = await RawHttpConn.open(port);
  await conn.send(
    "POST /topic/create?topic=expecting HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n" +
      "Expect: 100-continue\r\n\r\n",
  );
  assert.equal((await conn.response()).head, "HTTP/1.1 100 Continue\r\n\r\n");
  assert.deepEqual(daemon.registry.topics(), []);
  await conn.send("hello");
  assert.match((await conn.response()).head, /^HTTP\/1.1 200 OK\r\n/);
  assert.deepEqual(daemon.registry.topics(), ["expecting"]);
});

Deno.test("a refused body's 413 reaches a client still sending it; its late writes are drained, not reset", async () => {
  await using daemon = startDaemon({ logLevel: "warn" });
  const port = daemon.httpAddr.port;
  using conn = await RawHttpConn.open(port);
  const size = 8 * 1024 * 1024;
  // The head and the start of the body in one write: the server refuses the
  // body with bytes of it still unread, and the client reads only later.
  const head = encoder.encode(
    `POST /topic/create?topic=big HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`,
  );
  const first = new Uint8Array(head.length + 256 * 1024);
  first.set(head);
  await conn.send(first);
  await new Promise((resolve) => setTimeout(resolve, 200));
  // Closing with unread input would reset the connection and lose the answer.
  const refused = await conn.response();
  assert.match(refused.head, /^HTTP\/1.1 413 Request Entity Too Large\r\n/);
  assert.match(refused.head, /\r\nConnection: close\r\n/);
  assert.equal(refused.body, '{"message":"PAYLOAD_TOO_LARGE"}');
  assert.deepEqual(daemon.registry.topics(), []);
  // The server half-closed (EOF here) but drains what is still coming, as Go's
  // closeWriteAndWait does: the client's remaining writes are not reset.
  assert.equal(await conn.rest(), "");
  const more = new Uint8Array(64 * 1024);
  for (let i = 0; i < 16; i++) await conn.send(more);
});

Deno.test("a large cached answer (/topics over 16 KiB) is written whole, every time, as one chunk like Go's", async () => {
  await using daemon = startDaemon({ logLevel: "warn" });
  const names = Array.from({ length: 3000 }, (_, i) => `topic-${String(i).padStart(5, "0")}`);
  for (const name of names) daemon.registry.createTopic(name);
  const body = JSON.stringify({ topics: names });
  assert.ok(body.length > 16 * 1024);
  const port = daemon.httpAddr.port;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(encoder.encode(curl("GET", "/topics", port) + curl("GET", "/topics", port)));
    const one = "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n" +
      "X-Nsq-Content-Type: nsq; version=1.0\r\nDate: DATE\r\nTransfer-Encoding: chunked\r\n\r\n" +
      `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const both = await readUntil(conn, /0\r\n\r\n[\s\S]*0\r\n\r\n$/);
    assert.equal(both.replace(/Date: [^\r]*/g, "Date: DATE"), one + one);
  } finally {
    conn.close();
  }
});

Deno.test("an absolute-form request target is routed by its path", async () => {
  await using daemon = startDaemon();
  const port = daemon.httpAddr.port;
  using conn = await RawHttpConn.open(port);
  await conn.send(`GET http://127.0.0.1:${port}/info HTTP/1.1\r\nHost: x\r\n\r\n`);
  assert.equal((await conn.response()).normalized, CAPTURED.info);
});

Deno.test("each request is logged as STATUS METHOD URI (CLIENT ADDRESS) ELAPSED", async () => {
  await using daemon = startDaemon();
  using conn = await RawHttpConn.open(daemon.httpAddr.port);
  await conn.send(curl("GET", "/lookup?topic=missing", daemon.httpAddr.port));
  await conn.response();
  const local = conn.conn.localAddr.port;
  assert.ok(
    daemon.logs.some((l) =>
      new RegExp(`^INFO: 404 GET /lookup\\?topic=missing \\(127\\.0\\.0\\.1:${local}\\) \\d`)
        .test(l)
    ),
    daemon.logs.join("\n"),
  );
});

Deno.test("shutdown closes idle keep-alive connections at once and lets a response being written finish", async () => {
  const size = 4 * 1024 * 1024;
  const answer = { status: 200, headers: [], body: "x".repeat(size) };
  let writing = 0;
  const server = new HttpServer({
    listener: Deno.listen({ hostname: "127.0.0.1", port: 0 }),
    api: { answer: () => answer },
    logger: createLogger({ level: "fatal", prefix: "", sink: () => {} }),
    maxBodyBytes: 1024,
    sweepIntervalMs: 0,
    observer: { writeStarted: () => writing++, writeEnded: () => writing-- },
  });
  server.start();
  const port = server.addr.port;
  const end = /\r\n0\r\n\r\n$/;
  const whole = new RegExp(
    `^HTTP/1.1 200 OK\r\n[^]*?\r\n\r\n${size.toString(16)}\r\nx{${size}}\r\n0\r\n\r\n$`,
  );
  const idle = await Deno.connect({ hostname: "127.0.0.1", port });
  const slow = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await idle.write(encoder.encode("GET /small HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert.match(await readUntil(idle, end), whole);
    // A second client asks for the big body but does not read it yet: the write blocks.
    await slow.write(encoder.encode("GET /big HTTP/1.1\r\nHost: x\r\n\r\n"));
    await eventually(() => writing === 1, 5_000);
    const closing = server.close(5_000);
    assert.equal(await readAll(idle), "");
    assert.match(await readUntil(slow, end, 10_000), whole);
    assert.equal(await readAll(slow), "");
    await closing;
    assert.equal(server.connectionCount, 0);
  } finally {
    idle.close();
    slow.close();
  }
});

Deno.test("by default our HTTP server answers on the public port", async () => {
  await using daemon = startDaemon();
  assert.notEqual(daemon.httpServer, undefined);
  const res = await daemon.get("/ping");
  assert.equal(await res.text(), "OK");
  assert.equal(daemon.httpServer!.connectionCount >= 1, true);
});
