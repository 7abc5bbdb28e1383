// src/ops/logger.ts: what a client sends cannot forge, split or hide a log
// line in either format, and ordinary text keeps the reference's bytes.

import assert from "node:assert/strict";
import {
  createLogger,
  escapeLogText,
  formatJsonLine,
  type LogFormat,
} from "../../../src/ops/logger.ts";

/** Every line each call writes, in one format, at a fixed instant. */
function capture(
  format: LogFormat,
): { lines: string[]; log: (msg: string, client?: string) => void } {
  const lines: string[] = [];
  const logger = createLogger({
    level: "debug",
    prefix: "[nsqlookupd] ",
    format,
    sink: (line) => lines.push(line),
    now: () => Date.UTC(2026, 10, 22, 7, 2, 3, 123.456),
  });
  return {
    lines,
    log: (msg, client) => logger.info(msg, client === undefined ? undefined : { client }),
  };
}

const UNSAFE_SAMPLES: [string, string][] = [
  ["\n", "\\n"],
  ["\r", "\\r"],
  ["\t", "\\t"],
  ["\x00", "\\x00"],
  ["\x1b", "\\x1b"],
  ["\x7f", "\\x7f"],
  ["\x85", "\\x85"],
  ["\x9b", "\\x9b"],
  ["\u2028", "\\u2028"],
  ["\u2029", "\\u2029"],
  ["\u202e", "\\u202e"],
  ["\u2066", "\\u2066"],
  ["\u200f", "\\u200f"],
  ["\u061c", "\\u061c"],
];

Deno.test("log escaping: each unsafe character becomes a visible escape", () => {
  for (const [char, escaped] of UNSAFE_SAMPLES) {
    assert.equal(escapeLogText(`a${char}b`), `a${escaped}b`, JSON.stringify(char));
  }
  assert.equal(escapeLogText("\n\n"), "\\n\\n");
});

Deno.test("log escaping: ordinary text, non-ASCII letters and backslashes included, is unchanged", () => {
  for (
    const text of [
      "TCP: new client(127.0.0.1:5000)",
      "200 GET /lookup?topic=t%0a (127.0.0.1:1) 1.2ms",
      "CLIENT(1.2.3.4:5): IDENTIFY Address:héllo 日本 TCP:4150 HTTP:4151 Version:1.3.0",
      "C:\\path\\n (a backslash and an n)",
      "emoji 🎉 and ZWJ \u200d stay",
    ]
  ) {
    assert.equal(escapeLogText(text), text);
  }
});

Deno.test("text format: a client's newline cannot start a forged line", () => {
  const { lines, log } = capture("text");
  log("200 GET /ping\n[nsqlookupd] 2026/01/01 00:00:00.000000 INFO: forged (127.0.0.1:1)");
  assert.equal(lines.length, 1);
  assert.doesNotMatch(lines[0], /[\n\r]/);
  assert.match(
    lines[0],
    /^\[nsqlookupd\] \d{4}\/\d\d\/\d\d [\d:.]+ INFO: 200 GET \/ping\\n\[nsqlookupd\]/,
  );
});

Deno.test("text format: every unsafe character is escaped in the written line", () => {
  const { lines, log } = capture("text");
  for (const [char, escaped] of UNSAFE_SAMPLES) {
    log(`topic '${char}'`);
    assert.ok(lines.at(-1)!.endsWith(`INFO: topic '${escaped}'`), lines.at(-1));
  }
});

Deno.test("text format: ordinary lines are byte-for-byte the reference's", () => {
  const { lines, log } = capture("text");
  log("CLIENT(127.0.0.1:5000): desired protocol magic '  V1'");
  assert.match(
    lines[0],
    /^\[nsqlookupd\] \d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\.\d{6} INFO: CLIENT\(127\.0\.0\.1:5000\): desired protocol magic ' {2}V1'$/,
  );
});

Deno.test("JSON format: msg and string fields carry the same escapes as the text format", () => {
  const { lines, log } = capture("json");
  for (const [char, escaped] of UNSAFE_SAMPLES) {
    log(`GET /x${char}y`, `c${char}`);
    const line = lines.at(-1)!;
    assert.doesNotMatch(line, /[\n\r\u2028\u2029\x85]/);
    const record = JSON.parse(line) as Record<string, unknown>;
    assert.equal(record.msg, `GET /x${escaped}y`);
    assert.equal(record.client, `c${escaped}`);
  }
});

Deno.test("JSON format: ordinary messages and fields are unchanged; numbers stay numbers", () => {
  const line = formatJsonLine(0, "info", "TCP: new client(127.0.0.1:1)", {
    client: "127.0.0.1:1",
    tcp_port: 4150,
    ok: true,
  });
  assert.equal(
    line,
    '{"time":"1970-01-01T00:00:00.000000Z","level":"info","msg":"TCP: new client(127.0.0.1:1)",' +
      '"client":"127.0.0.1:1","tcp_port":4150,"ok":true}',
  );
});
