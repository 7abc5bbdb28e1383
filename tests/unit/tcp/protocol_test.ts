// Protocol V1 as a pure state machine: LookupSession fed bytes by hand, and the
// IDENTIFY body decoder. No sockets; time comes from a ManualClock.

import assert from "node:assert/strict";
import { decodeIdentifyBody, type IdentifyFields } from "../../../src/tcp/identify.ts";
import { createLogger } from "../../../src/ops/logger.ts";
import { Registry } from "../../../src/registry.ts";
import { frame, LookupSession, MAX_LINE_LENGTH } from "../../../src/tcp/protocol.ts";
import {
  bin,
  concat,
  framed,
  identifyCommand,
  ManualClock,
  show,
  VALID_IDENTIFY,
} from "../../support/helpers.ts";
import { assertConsistent, membershipsOf } from "../../../src/registry_testing.ts";

const REMOTE = "10.0.0.7:51234";
const IDENTIFY_RESPONSE =
  '{"broadcast_address":"127.0.0.1","hostname":"testhost","http_port":4161,"tcp_port":4160,"version":"1.3.0"}';
const OK = framed("OK");
const encoder = new TextEncoder();

/** A frame around raw bytes (for payloads that are not UTF-8). */
function framedBytes(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, 4);
  return out;
}

interface Harness {
  session: LookupSession;
  registry: Registry;
  clock: ManualClock;
  logs: string[];
  /** Feeds one chunk; returns the response bytes and whether the session must close. */
  feed(data: string | Uint8Array): { out: Uint8Array; close: boolean };
  finish(): Uint8Array;
}

function harness(options: { maxIdentifySize?: number } = {}): Harness {
  const clock = new ManualClock();
  const logs: string[] = [];
  const registry = new Registry({
    now: clock.now,
    inactiveProducerTimeoutMs: 300_000,
    tombstoneLifetimeMs: 45_000,
  });
  const logger = createLogger({
    level: "debug",
    prefix: "",
    sink: (line) => logs.push(line.replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\.\d{6} /, "")),
  });
  const session = new LookupSession({
    registry,
    logger,
    remoteAddress: REMOTE,
    maxIdentifySize: options.maxIdentifySize ?? 65536,
    identifyResponse: IDENTIFY_RESPONSE,
  });
  return {
    session,
    registry,
    clock,
    logs,
    feed(data): { out: Uint8Array; close: boolean } {
      const out: Uint8Array[] = [];
      const close = session.feed(typeof data === "string" ? bin(data) : data, out);
      return { out: concat(...out), close };
    },
    finish(): Uint8Array {
      const out: Uint8Array[] = [];
      session.finish(out);
      return concat(...out);
    },
  };
}

/** Magic plus a valid IDENTIFY, asserting the reply. */
function identified(options: { maxIdentifySize?: number; body?: string } = {}): Harness {
  const h = harness(options);
  const { out, close } = h.feed(concat("  V1", identifyCommand(options.body ?? VALID_IDENTIFY)));
  assert.equal(show(out), show(framed(IDENTIFY_RESPONSE)));
  assert.equal(close, false);
  return h;
}

function assertResponse(
  result: { out: Uint8Array; close: boolean },
  expected: Uint8Array,
  close: boolean,
): void {
  assert.equal(show(result.out), show(expected));
  assert.equal(result.close, close, close ? "session should close" : "session should stay open");
}

// ---- framing and chunking ----

Deno.test("frame() is a 4-byte big-endian length then the payload", () => {
  assert.equal(show(frame("OK")), "\\x00\\x00\\x00\\x02OK");
  assert.equal(show(frame("")), "\\x00\\x00\\x00\\x00");
  assert.deepEqual([...frame(new Uint8Array(300)).subarray(0, 4)], [0, 0, 1, 44]);
  assert.equal(frame(new Uint8Array(300)).length, 304);
  // Length counts UTF-8 bytes, not UTF-16 code units.
  assert.equal(show(frame("é")), "\\x00\\x00\\x00\\x02\\xc3\\xa9");
});

Deno.test("magic '  V1' is accepted silently and starts the session", () => {
  const h = harness();
  assert.equal(h.session.started, false);
  assertResponse(h.feed("  V"), new Uint8Array(0), false);
  assert.equal(h.session.started, false);
  assertResponse(h.feed("1"), new Uint8Array(0), false);
  assert.equal(h.session.started, true);
  assert.deepEqual(h.logs, [`INFO: CLIENT(${REMOTE}): desired protocol magic '  V1'`]);
});

Deno.test("wrong magic is E_BAD_PROTOCOL and closes without starting the loop", () => {
  for (const magic of ["  V2", "XXXX", "PING", "  v1", " V1 "]) {
    const h = harness();
    assertResponse(h.feed(magic + "PING\n"), framed("E_BAD_PROTOCOL"), true);
    assert.equal(h.session.started, false);
    assert.equal(h.session.closed, true);
    h.session.close();
    assert.ok(!h.logs.some((l) => l.includes("exiting ioloop")), h.logs.join("\n"));
  }
});

/** A whole conversation: every command kind, then a fatal error. */
const CONVERSATION = concat(
  "  V1",
  identifyCommand(VALID_IDENTIFY),
  "REGISTER t c\n",
  "PING\r\n",
  "UNREGISTER t c\n",
  "REGISTER t2\n",
  "UNREGISTER t2\n",
  "PING x\n",
  "FOO\n",
);
const CONVERSATION_REPLY = concat(
  framed(IDENTIFY_RESPONSE),
  OK,
  OK,
  OK,
  OK,
  OK,
  OK,
  framed("E_INVALID invalid command FOO"),
);

Deno.test("a conversation fed whole or split at any byte gives the same responses", () => {
  const whole = harness().feed(CONVERSATION);
  assertResponse(whole, CONVERSATION_REPLY, true);
  for (let cut = 0; cut <= CONVERSATION.length; cut++) {
    const h = harness();
    const first = h.feed(CONVERSATION.slice(0, cut));
    const second = h.feed(CONVERSATION.slice(cut));
    assert.equal(
      show(concat(first.out, second.out)),
      show(CONVERSATION_REPLY),
      `split at byte ${cut}`,
    );
    assert.equal(first.close, cut === CONVERSATION.length, `split at byte ${cut}`);
    assert.equal(second.close, true);
  }
});

Deno.test("a conversation fed one byte at a time gives the same responses", () => {
  const h = harness();
  const out: Uint8Array[] = [];
  let close = false;
  for (let i = 0; i < CONVERSATION.length; i++) {
    assert.equal(close, false, `closed early at byte ${i}`);
    const result = h.feed(CONVERSATION.slice(i, i + 1));
    out.push(result.out);
    close = result.close;
  }
  assert.equal(close, true);
  assert.equal(show(concat(...out)), show(CONVERSATION_REPLY));
});

Deno.test("unconsumed bytes are copied, so the caller may reuse its read buffer", () => {
  const h = harness();
  const buffer = new Uint8Array(64);
  buffer.set(bin("  V1PI"));
  assertResponse(h.feed(buffer.subarray(0, 6)), new Uint8Array(0), false);
  buffer.fill(0x58); // "XXXX..." would be an invalid command if the session kept a view
  buffer.set(bin("NG\n"));
  assertResponse(h.feed(buffer.subarray(0, 3)), OK, false);
});

Deno.test("after a fatal error the session ignores further bytes", () => {
  const h = harness();
  assertResponse(h.feed("  V1FOO\nPING\n"), framed("E_INVALID invalid command FOO"), true);
  assert.equal(h.session.closed, true);
  assertResponse(h.feed("PING\n"), new Uint8Array(0), true);
});

// ---- command lines ----

Deno.test("PING before IDENTIFY is OK and logs nothing", () => {
  const h = harness();
  assertResponse(h.feed("  V1PING\n"), OK, false);
  assert.equal(h.logs.length, 1, h.logs.join("\n"));
});

Deno.test("PING after IDENTIFY sets lastUpdate and logs the time since the last one as Go", () => {
  const h = identified();
  const peer = h.session.peer!;
  const identifiedAt = h.clock.ms;
  assert.equal(peer.lastUpdate, identifiedAt);
  h.clock.advance(1500);
  assertResponse(h.feed("PING\n"), OK, false);
  assert.equal(peer.lastUpdate, identifiedAt + 1500);
  h.clock.advance(15_000.25);
  assertResponse(h.feed("PING\n"), OK, false);
  assert.equal(peer.lastUpdate, identifiedAt + 16_500.25);
  assertResponse(h.feed("PING\n"), OK, false);
  assert.deepEqual(h.logs.filter((l) => l.includes("pinged")), [
    `INFO: CLIENT(${REMOTE}): pinged (last ping 1.5s)`,
    `INFO: CLIENT(${REMOTE}): pinged (last ping 15.00025s)`,
    `INFO: CLIENT(${REMOTE}): pinged (last ping 0s)`,
  ]);
});

Deno.test("REGISTER does not refresh lastUpdate", () => {
  const h = identified();
  const before = h.session.peer!.lastUpdate;
  h.clock.advance(10_000);
  assertResponse(h.feed("REGISTER t c\n"), OK, false);
  assert.equal(h.session.peer!.lastUpdate, before);
});

Deno.test("lines are trimmed with Go's unicode.IsSpace (\\v, \\f, U+0085, U+00A0, U+3000)", () => {
  const h = harness();
  h.feed("  V1");
  const spaces = ["\t", "\v", "\f", "\r", " ", "\u0085", "\u00a0", "\u2000", "\u3000", "\u205f"];
  for (const space of spaces) {
    assertResponse(h.feed(concat(space, "PING", space, space, "\n")), OK, false);
  }
});

Deno.test("a byte order mark is not space: U+FEFF PING is an invalid command", () => {
  const h = harness();
  assertResponse(
    h.feed(concat("  V1", "\ufeffPING\n")),
    concat(framed("E_INVALID invalid command \ufeffPING")),
    true,
  );
});

Deno.test("an invalid command echoes the client's bytes verbatim, even invalid UTF-8", () => {
  const h = harness();
  // Go formats the raw bytes into the error text; no U+FFFD replacement.
  assertResponse(
    h.feed("  V1\xff\xfeX\n"),
    framedBytes(bin("E_INVALID invalid command \xff\xfeX")),
    true,
  );
  const topic = identified();
  assertResponse(
    topic.feed("REGISTER t\xe9\n"),
    framedBytes(bin("E_BAD_TOPIC REGISTER topic name 't\xe9' is not valid")),
    true,
  );
  // Valid UTF-8 is echoed as it came.
  const utf8 = identified();
  assertResponse(
    utf8.feed(concat("REGISTER t ch\u00e9\n")),
    framed("E_BAD_CHANNEL REGISTER channel name 'ch\u00e9' is not valid"),
    true,
  );
});

Deno.test("trimming a multi-byte space never splits other characters", () => {
  const h = harness();
  // \xc2 alone is not a space; only the complete \xc2\xa0 (U+00A0) is trimmed, as Go does.
  assertResponse(
    h.feed("  V1\xc2\xc2\xa0\n"),
    framedBytes(bin("E_INVALID invalid command \xc2")),
    true,
  );
  const lone = harness();
  assertResponse(
    lone.feed("  V1\xa0PING\n"),
    framedBytes(bin("E_INVALID invalid command \xa0PING")),
    true,
  );
});

Deno.test("a line of exactly MAX_LINE_LENGTH bytes is accepted, one more is E_INVALID", () => {
  assert.equal(MAX_LINE_LENGTH, 4096);
  const longest = "PING " + "x".repeat(MAX_LINE_LENGTH - 5);
  assert.equal(longest.length, 4096);
  const h = harness();
  assertResponse(h.feed("  V1" + longest + "\n"), OK, false);
  // Without its newline yet, 4096 bytes are still waited on.
  assertResponse(h.feed(longest), new Uint8Array(0), false);
  assertResponse(h.feed("\n"), OK, false);

  const tooLong = harness();
  assertResponse(
    tooLong.feed("  V1" + longest + "x\n"),
    framed("E_INVALID command line exceeds 4096 bytes"),
    true,
  );
  const noNewline = harness();
  assertResponse(noNewline.feed("  V1" + longest), new Uint8Array(0), false);
  assertResponse(noNewline.feed("x"), framed("E_INVALID command line exceeds 4096 bytes"), true);
});

Deno.test("the line bound applies to each line, not to bytes already consumed", () => {
  const h = harness();
  const line = "PING " + "x".repeat(MAX_LINE_LENGTH - 6) + "\n";
  // Several maximal lines in one chunk: each one is within the bound.
  assertResponse(h.feed("  V1" + line + line + line), concat(OK, OK, OK), false);
  // A partial line after complete ones is measured from its own start.
  assertResponse(h.feed(line + "PING " + "y".repeat(4000)), OK, false);
  assertResponse(h.feed("\n"), OK, false);
});

Deno.test("empty line is E_INVALID invalid command with a trailing space", () => {
  const h = harness();
  assertResponse(h.feed("  V1\n"), bin("\x00\x00\x00\x1aE_INVALID invalid command "), true);
  const blank = harness();
  assertResponse(blank.feed("  V1 \t \r\n"), framed("E_INVALID invalid command "), true);
});

Deno.test("commands are case-sensitive: lowercase ping is invalid", () => {
  const h = harness();
  assertResponse(h.feed("  V1ping\n"), framed("E_INVALID invalid command ping"), true);
});

Deno.test("REGISTER before IDENTIFY is E_INVALID client must IDENTIFY, even with bad args", () => {
  for (const line of ["REGISTER t1", "REGISTER bad!topic", "REGISTER", "UNREGISTER t1 c"]) {
    const h = harness();
    assertResponse(h.feed(`  V1${line}\n`), framed("E_INVALID client must IDENTIFY"), true);
  }
});

Deno.test("REGISTER topic channel adds the producer to the channel and the topic", () => {
  const h = identified();
  assertResponse(h.feed("REGISTER t c\n"), OK, false);
  assert.deepEqual(membershipsOf(h.registry, REMOTE).map((r) => r.name), [
    "channel:t:c",
    "client::",
    "topic:t:",
  ]);
  assert.deepEqual(h.logs.filter((l) => l.includes(" REGISTER ")), [
    `INFO: DB: client(${REMOTE}) REGISTER category:client key: subkey:`,
    `INFO: DB: client(${REMOTE}) REGISTER category:channel key:t subkey:c`,
    `INFO: DB: client(${REMOTE}) REGISTER category:topic key:t subkey:`,
  ]);
});

Deno.test("an empty channel argument means no channel, as in the reference", () => {
  // "REGISTER t  c" splits into ["REGISTER", "t", "", "c"]: the channel is "".
  const h = identified();
  assertResponse(h.feed("REGISTER t  c\n"), OK, false);
  assert.deepEqual(membershipsOf(h.registry, REMOTE).map((r) => r.name), ["client::", "topic:t:"]);
  assert.deepEqual(h.registry.channels("t"), []);

  // ...and "UNREGISTER t  c" is therefore a topic unregistration.
  const u = identified();
  assertResponse(u.feed("REGISTER t c\nUNREGISTER t  c\n"), concat(OK, OK), false);
  assert.deepEqual(membershipsOf(u.registry, REMOTE).map((r) => r.name), ["client::"]);
  assert.ok(
    u.logs.includes(
      `WARNING: client(${REMOTE}) unexpected UNREGISTER category:channel key:t subkey:c`,
    ),
    u.logs.join("\n"),
  );
});

Deno.test("an empty topic argument is E_BAD_TOPIC", () => {
  const h = identified();
  assertResponse(
    h.feed("REGISTER  t\n"),
    framed("E_BAD_TOPIC REGISTER topic name '' is not valid"),
    true,
  );
});

Deno.test("arguments after the channel are ignored", () => {
  const h = identified();
  assertResponse(h.feed("REGISTER t c extra args\n"), OK, false);
  assert.deepEqual(h.registry.channels("t"), ["c"]);
});

Deno.test("topic and channel names: 64 characters and #ephemeral accepted, 65 refused", () => {
  const name64 = "a".repeat(64);
  const h = identified();
  assertResponse(h.feed(`REGISTER ${name64} ${name64}\n`), OK, false);
  assertResponse(h.feed("REGISTER t#ephemeral c.-_#ephemeral\n"), OK, false);
  const long = identified();
  assertResponse(
    long.feed(`REGISTER ${name64}a\n`),
    framed(`E_BAD_TOPIC REGISTER topic name '${name64}a' is not valid`),
    true,
  );
  const longChannel = identified();
  assertResponse(
    longChannel.feed(`UNREGISTER t ${name64}a\n`),
    framed(`E_BAD_CHANNEL UNREGISTER channel name '${name64}a' is not valid`),
    true,
  );
  const suffixOnly = identified();
  assertResponse(
    suffixOnly.feed("REGISTER #ephemeral\n"),
    framed("E_BAD_TOPIC REGISTER topic name '#ephemeral' is not valid"),
    true,
  );
});

Deno.test("UNREGISTER of something never registered is OK", () => {
  const h = identified();
  assertResponse(h.feed("UNREGISTER nosuch\nUNREGISTER nosuch c\n"), concat(OK, OK), false);
  assert.ok(!h.logs.some((l) => l.includes("UNREGISTER")), h.logs.join("\n"));
});

// ---- IDENTIFY framing ----

Deno.test("IDENTIFY stores the peer with the connection's address as id", () => {
  const h = identified({
    body: '{"broadcast_address":"b","hostname":"h","tcp_port":1,"http_port":2,"version":"v",' +
      '"remote_address":"6.6.6.6:66","topology_zone":"z","topology_region":"r"}',
  });
  const peer = h.session.peer!;
  assert.deepEqual({ ...peer }, {
    id: REMOTE,
    remoteAddress: REMOTE,
    hostname: "h",
    broadcastAddress: "b",
    tcpPort: 1,
    httpPort: 2,
    version: "v",
    topologyZone: "z",
    topologyRegion: "r",
    lastUpdate: h.clock.ms,
  });
  assert.deepEqual(h.logs.slice(1), [
    `INFO: CLIENT(${REMOTE}): IDENTIFY Address:b TCP:1 HTTP:2 Version:v`,
    `INFO: DB: client(${REMOTE}) REGISTER category:client key: subkey:`,
  ]);
});

Deno.test("second IDENTIFY is E_INVALID before its body is read", () => {
  const h = identified();
  // Only the command line: the reference refuses before reading a size.
  assertResponse(h.feed("IDENTIFY\n"), framed("E_INVALID cannot IDENTIFY again"), true);
});

Deno.test("IDENTIFY body size at the limit is read, above it or negative is refused", () => {
  const max = 200;
  const body = VALID_IDENTIFY.padEnd(max, " ");
  const atLimit = harness({ maxIdentifySize: max });
  assertResponse(
    atLimit.feed(concat("  V1", identifyCommand(body))),
    framed(IDENTIFY_RESPONSE),
    false,
  );
  const cases: [string, number][] = [
    ["\x00\x00\x00\xc9", 201],
    ["\xff\xff\xff\xff", -1],
    ["\xff\xff\xff\xef", -17],
    ["\x80\x00\x00\x00", -2147483648],
    ["\x7f\xff\xff\xff", 2147483647],
  ];
  for (const [size, value] of cases) {
    const h = harness({ maxIdentifySize: max });
    // No body follows: the refusal must not wait for (or allocate) one.
    assertResponse(
      h.feed("  V1IDENTIFY\n" + size),
      framed(`E_BAD_BODY IDENTIFY invalid body size ${value}`),
      true,
    );
    assert.equal(h.session.peer, undefined);
  }
});

Deno.test("IDENTIFY with a zero-length body is a JSON decode error", () => {
  const h = harness();
  assertResponse(
    h.feed("  V1IDENTIFY\n\x00\x00\x00\x00"),
    framed("E_BAD_BODY IDENTIFY failed to decode JSON body"),
    true,
  );
});

Deno.test("the body may contain newlines and bytes that look like commands", () => {
  const body = '{"broadcast_address":"x",\n"tcp_port":1,\n"http_port":2,"version":"PING\\n"}\n';
  const h = harness();
  assertResponse(
    h.feed(concat("  V1", identifyCommand(body), "PING\n")),
    concat(framed(IDENTIFY_RESPONSE), OK),
    false,
  );
  assert.equal(h.session.peer?.version, "PING\n");
});

Deno.test("IDENTIFY JSON errors map to decode / missing fields responses", () => {
  const decode = harness();
  assertResponse(
    decode.feed(concat("  V1", identifyCommand("{not json"))),
    bin("\x00\x00\x00.E_BAD_BODY IDENTIFY failed to decode JSON body"),
    true,
  );
  const missing = harness();
  assertResponse(
    missing.feed(concat("  V1", identifyCommand('{"broadcast_address":"127.0.0.1"}'))),
    bin('\x00\x00\x00"E_BAD_BODY IDENTIFY missing fields'),
    true,
  );
  assert.equal(missing.registry.stats().clientProducers, 0);
});

// ---- end of input ----

Deno.test("EOF before the body size is E_BAD_BODY IDENTIFY failed to read body size", () => {
  for (const partial of ["", "\x00", "\x00\x00\x00"]) {
    const h = harness();
    assertResponse(h.feed("  V1IDENTIFY\n" + partial), new Uint8Array(0), false);
    assert.equal(show(h.finish()), show(framed("E_BAD_BODY IDENTIFY failed to read body size")));
    assert.equal(h.session.closed, true);
  }
});

Deno.test("EOF inside the body is E_BAD_BODY IDENTIFY failed to read body", () => {
  for (const partial of ["", "{", '{"broadcast_address":"127.0.0.1","tcp_port":1,"http_port":2']) {
    const h = harness();
    assertResponse(
      h.feed(concat("  V1IDENTIFY\n", bin("\x00\x00\x00\x4e"), partial)),
      new Uint8Array(0),
      false,
    );
    assert.equal(show(h.finish()), show(framed("E_BAD_BODY IDENTIFY failed to read body")));
  }
});

Deno.test("EOF inside a command line or the magic sends nothing", () => {
  const line = harness();
  line.feed("  V1PIN");
  assert.equal(line.finish().length, 0);
  assert.equal(line.session.closed, true);
  const magic = harness();
  magic.feed("  V");
  assert.equal(magic.finish().length, 0);
  assert.equal(magic.session.closed, true);
  assert.ok(magic.logs.includes("ERROR: failed to read protocol version - EOF"), magic.logs.join());
});

// ---- end of connection ----

Deno.test("closeInSteps() removes the peer a few registrations a step, logging each as close() does", () => {
  const stepped = identified();
  const whole = identified();
  const commands =
    "REGISTER t c\nREGISTER t2\nREGISTER e#ephemeral c#ephemeral\nREGISTER t c2#ephemeral\n";
  stepped.feed(commands);
  whole.feed(commands);
  stepped.logs.length = 0;
  whole.logs.length = 0;
  // 7 registrations in steps of 2: three runs sorted, then three full steps of leaving (the
  // last, short one ends the generator without a step of its own).
  const steps = [...stepped.session.closeInSteps("disconnect", 2)].length;
  whole.session.close();
  assert.equal(steps, 6);
  assert.equal(stepped.session.peer, undefined);
  assert.deepEqual(membershipsOf(stepped.registry, REMOTE), []);
  assert.deepEqual(stepped.logs, whole.logs);
  assertConsistent(stepped.registry);
});

Deno.test("close() removes the peer from every registration and logs each removal", () => {
  const h = identified();
  h.feed("REGISTER t c\nREGISTER t2\nREGISTER e#ephemeral c#ephemeral\nREGISTER t c2#ephemeral\n");
  h.logs.length = 0;
  h.session.close();
  assert.equal(h.session.peer, undefined);
  assert.deepEqual(membershipsOf(h.registry, REMOTE), []);
  // The loop exits first; the removals follow in no particular order (the reference's is random).
  assert.equal(h.logs[0], `INFO: PROTOCOL(V1): [${REMOTE}] exiting ioloop`);
  assert.deepEqual(
    h.logs.slice(1).sort(),
    [
      `INFO: DB: client(${REMOTE}) UNREGISTER category:channel key:e#ephemeral subkey:c#ephemeral`,
      `INFO: DB: client(${REMOTE}) UNREGISTER category:channel key:t subkey:c`,
      `INFO: DB: client(${REMOTE}) UNREGISTER category:channel key:t subkey:c2#ephemeral`,
      `INFO: DB: client(${REMOTE}) UNREGISTER category:client key: subkey:`,
      `INFO: DB: client(${REMOTE}) UNREGISTER category:topic key:e#ephemeral subkey:`,
      `INFO: DB: client(${REMOTE}) UNREGISTER category:topic key:t subkey:`,
      `INFO: DB: client(${REMOTE}) UNREGISTER category:topic key:t2 subkey:`,
    ].sort(),
  );
  // Registrations remain, except ephemeral ones left without producers.
  assert.deepEqual(h.registry.topics(), ["t", "t2"]);
  assert.deepEqual(h.registry.channels("t"), ["c"]);
  assert.deepEqual(h.registry.channels("e#ephemeral"), []);
  assertConsistent(h.registry);
});

Deno.test("close() of a session that never identified only logs exiting ioloop", () => {
  const h = harness();
  h.feed("  V1PING\n");
  h.logs.length = 0;
  h.session.close();
  assert.deepEqual(h.logs, [`INFO: PROTOCOL(V1): [${REMOTE}] exiting ioloop`]);
  const silent = harness();
  silent.session.close();
  assert.deepEqual(silent.logs, []);
});

// ---- the IDENTIFY body decoder (Go's encoding/json into PeerInfo) ----

const FULL: IdentifyFields = {
  remoteAddress: "",
  hostname: "",
  broadcastAddress: "127.0.0.1",
  tcpPort: 1,
  httpPort: 2,
  version: "1.3.0",
  topologyZone: "",
  topologyRegion: "",
};

function decode(text: string | Uint8Array): ReturnType<typeof decodeIdentifyBody> {
  return decodeIdentifyBody(typeof text === "string" ? encoder.encode(text) : text);
}

function decodesTo(text: string | Uint8Array, fields: Partial<IdentifyFields>): void {
  assert.deepEqual(decode(text), { ok: true, value: { ...FULL, ...fields } }, String(text));
}

function fails(text: string | Uint8Array, error: "decode" | "missing"): void {
  assert.deepEqual(decode(text), { ok: false, error }, String(text));
}

Deno.test("IDENTIFY JSON: the four required fields decode; optional ones default to empty", () => {
  decodesTo(VALID_IDENTIFY, {});
  decodesTo(
    '{"broadcast_address":"127.0.0.1","hostname":"h1","tcp_port":1,"http_port":2,' +
      '"version":"1.3.0","topology_zone":"z1","topology_region":"r1"}',
    { hostname: "h1", topologyZone: "z1", topologyRegion: "r1" },
  );
  decodesTo(` \n\t${VALID_IDENTIFY}\r\n `, {});
});

Deno.test("IDENTIFY JSON: missing, empty or zero required fields are missing fields", () => {
  fails("{}", "missing");
  fails('{"broadcast_address":"127.0.0.1"}', "missing");
  fails('{"broadcast_address":"","tcp_port":1,"http_port":2,"version":"1"}', "missing");
  fails('{"broadcast_address":"a","tcp_port":0,"http_port":2,"version":"1"}', "missing");
  fails('{"broadcast_address":"a","tcp_port":1,"http_port":0,"version":"1"}', "missing");
  fails('{"broadcast_address":"a","tcp_port":1,"http_port":2,"version":""}', "missing");
  fails('{"broadcast_address":"a","tcp_port":-0,"http_port":2,"version":"1"}', "missing");
  fails('{"broadcast_address":"a","tcp_port":null,"http_port":2,"version":"1"}', "missing");
});

Deno.test("IDENTIFY JSON: a null body decodes to nothing, so fields are missing", () => {
  fails("null", "missing");
  fails(" null ", "missing");
});

Deno.test("IDENTIFY JSON: a top-level array, number, string or bool is a decode error", () => {
  for (const body of ["[]", `[${VALID_IDENTIFY}]`, "1", '"x"', "true", "false"]) {
    fails(body, "decode");
  }
});

Deno.test("IDENTIFY JSON: wrong field types are decode errors", () => {
  const base = { broadcast_address: "127.0.0.1", tcp_port: 1, http_port: 2, version: "1.3.0" };
  const bad: Record<string, unknown>[] = [
    { tcp_port: "1" },
    { tcp_port: 1.5 },
    { tcp_port: [1] },
    { tcp_port: true },
    { tcp_port: {} },
    { http_port: "2" },
    { version: 1 },
    { version: ["1.3.0"] },
    { broadcast_address: {} },
    { hostname: 1 },
    { hostname: false },
    { remote_address: 1 },
    { topology_zone: [] },
    { topology_region: 1 },
  ];
  for (const override of bad) fails(JSON.stringify({ ...base, ...override }), "decode");
});

Deno.test("IDENTIFY JSON: ports must be integer literals within int64, as Go's int", () => {
  const body = (port: string): string =>
    `{"broadcast_address":"a","tcp_port":${port},"http_port":2,"version":"1"}`;
  for (const port of ["1.0", "1e3", "1E0", "9223372036854775808", "-9223372036854775809", "0.5"]) {
    fails(body(port), "decode");
  }
  for (const [port, value] of [["-1", -1], ["65536", 65536], ["4150", 4150]] as const) {
    assert.deepEqual(decode(body(port)), {
      ok: true,
      value: { ...FULL, broadcastAddress: "a", version: "1", tcpPort: value },
    });
  }
});

Deno.test("IDENTIFY JSON: keys match case-insensitively like Go, ſ included", () => {
  decodesTo(
    '{"BROADCAST_ADDRESS":"127.0.0.1","Tcp_Port":1,"HTTP_port":2,"Version":"1.3.0",' +
      '"HOSTNAME":"h","Topology_Zone":"z","TOPOLOGY_REGION":"r"}',
    { hostname: "h", topologyZone: "z", topologyRegion: "r" },
  );
  // Go folds with Unicode simple folding, in which U+017F (ſ) is an s.
  decodesTo(
    '{"broadcaſt_addreſſ":"127.0.0.1","tcp_port":1,"http_port":2,"version":"1.3.0","hoſtname":"h"}',
    { hostname: "h" },
  );
  fails('{"tcpport":1,"broadcast_address":"a","http_port":2,"version":"1"}', "missing");
  fails('{"tcp-port":1,"broadcast_address":"a","http_port":2,"version":"1"}', "missing");
});

Deno.test("IDENTIFY JSON: unknown keys are ignored whatever their value", () => {
  decodesTo(
    '{"extra":{"tcp_port":"x","n":[1.5,true,null]},"broadcast_address":"127.0.0.1",' +
      '"tcp_port":1,"http_port":2,"version":"1.3.0","x":1.5,"y":"s","id":7,"lastUpdate":1}',
    {},
  );
  // Brackets, quotes and backslashes inside strings of skipped values do not confuse the decoder.
  decodesTo(
    String.raw`{"a" : "}]\"\\" , "b":[["]",{"c":"\\\"}"}],-1e5],"hostname":"h\\",` +
      String.raw`"n":-1.5e-3,"t":true,` + VALID_IDENTIFY.slice(1),
    { hostname: "h\\" },
  );
});

Deno.test("IDENTIFY JSON: remote_address is read but later replaced by the connection's", () => {
  decodesTo(
    '{"remote_address":"6.6.6.6:66","broadcast_address":"127.0.0.1","tcp_port":1,' +
      '"http_port":2,"version":"1.3.0"}',
    { remoteAddress: "6.6.6.6:66" },
  );
});

Deno.test("IDENTIFY JSON: duplicate keys apply in order, null keeps the earlier value", () => {
  decodesTo(
    '{"tcp_port":7,"TCP_PORT":8,"tcp_port":1,"broadcast_address":"127.0.0.1","http_port":2,' +
      '"version":"1.3.0"}',
    {},
  );
  decodesTo(`${VALID_IDENTIFY.slice(0, -1)},"version":null}`, {});
  decodesTo(`${VALID_IDENTIFY.slice(0, -1)},"Version":null,"VERSION":"2"}`, { version: "2" });
  // A wrong type fails the decode even when a later duplicate has the right type.
  fails(`{"tcp_port":"1",${VALID_IDENTIFY.slice(1)}`, "decode");
});

Deno.test("IDENTIFY JSON: syntax errors are decode errors", () => {
  const bodies = [
    "",
    " ",
    "{",
    "{not json",
    `${VALID_IDENTIFY} x`,
    `${VALID_IDENTIFY}{}`,
    '{"tcp_port":1,}',
    "{'tcp_port':1}",
    '{"tcp_port":NaN}',
    '{"tcp_port":01}',
    '{"tcp_port":+1}',
    '{"hostname":"a\u0001b"}',
  ];
  for (const body of bodies) fails(body, "decode");
});

Deno.test("IDENTIFY JSON: a UTF-8 byte order mark is a decode error, as in Go", () => {
  fails(concat(bin("\xef\xbb\xbf"), VALID_IDENTIFY), "decode");
});

Deno.test("IDENTIFY JSON: invalid UTF-8 inside strings becomes U+FFFD", () => {
  const body = concat(`${VALID_IDENTIFY.slice(0, -1)},"hostname":"h`, bin("\xff"), '"}');
  decodesTo(body, { hostname: "h\ufffd" });
  fails(concat(VALID_IDENTIFY, bin("\xff")), "decode");
});

Deno.test("IDENTIFY JSON: escapes in strings and keys are decoded", () => {
  decodesTo(
    '{"broadcast_\\u0061ddress":"127.0.0.1","tcp_port":1,"http_port":2,"version":"1.3.0",' +
      '"hostname":"a\\"b\\\\c\\u00e9\\/"}',
    { hostname: 'a"b\\c\u00e9/' },
  );
});

// ---- [beyond] a budget of commands per feed ----

Deno.test("a feed with a budget executes at most that many commands; resume() executes the rest, in order", () => {
  const h = harness();
  h.session.feed(bin("  V1"), []);
  h.session.feed(identifyCommand(VALID_IDENTIFY), []);
  const lines = Array.from({ length: 300 }, (_, i) => `REGISTER t${i}\n`).join("");
  const out: Uint8Array[] = [];
  assert.equal(h.session.feed(bin(lines), out, 128), false);
  assert.equal(out.length, 128);
  assert.equal(h.registry.topics().length, 128);
  assert.equal(h.session.hasPendingWork, true);
  assert.equal(h.session.resume(out, 128), false);
  assert.equal(out.length, 256);
  assert.equal(h.session.hasPendingWork, true);
  h.session.resume(out, 128);
  assert.equal(out.length, 300);
  assert.equal(h.session.hasPendingWork, false);
  assert.equal(h.session.bufferedBytes, 0);
  // In order: t0..t299, each registered once.
  assert.deepEqual(h.registry.topics(), Array.from({ length: 300 }, (_, i) => `t${i}`).sort());
});

Deno.test("a budgeted feed keeps a partial command after the budget for the next read", () => {
  const h = harness();
  const out: Uint8Array[] = [];
  h.session.feed(bin("  V1PING\nPING\nPING\nPI"), out, 2);
  assert.equal(out.length, 2);
  assert.equal(h.session.hasPendingWork, true);
  h.session.resume(out, 2);
  assert.equal(out.length, 3);
  assert.equal(h.session.hasPendingWork, false);
  h.session.feed(bin("NG\n"), out, 2);
  assert.equal(out.length, 4);
});
