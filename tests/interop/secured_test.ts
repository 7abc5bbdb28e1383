// A secured cluster of real NSQ v1.3.0 programs around our daemon (issue 15):
// nsqd, nsqadmin and nsq_tail against --producer-networks, --admin-networks,
// --auth-http-address and HTTPS, with the tiny auth server of
// tests/support/auth_server.ts. And the Go regexp engine checked against the
// one nsqd really uses, by asking nsqd itself.
//
// Run by `deno task interop`, which finds the programs (NSQ_BIN_DIR or PATH).

import assert from "node:assert/strict";
import { compileGoRegexp } from "../../src/access/goregexp.ts";
import { type AuthAnswer, startAuthServer } from "../support/auth_server.ts";
import { readExactly } from "../support/harness.ts";
import { spawnDaemon } from "../support/helpers.ts";
import { type RunningProgram, startProgram } from "../support/processes.ts";
import { nsqPrograms } from "./programs.ts";

const REPO = decodeURIComponent(new URL("../../", import.meta.url).pathname);

/** A real nsqd on loopback port 0 with extra flags (auth server, lookupds). */
async function startNsqd(name: string, args: string[]): Promise<Nsqd> {
  const dataPath = await Deno.makeTempDir({ prefix: "interop-secured-" });
  const program = startProgram(nsqPrograms().nsqd, {
    name,
    args: [
      "--tcp-address=127.0.0.1:0",
      "--http-address=127.0.0.1:0",
      "--broadcast-address=127.0.0.1",
      `--data-path=${dataPath}`,
      ...args,
    ],
  });
  const stop = async (): Promise<void> => {
    try {
      await program.stop("SIGTERM");
    } finally {
      await Deno.remove(dataPath, { recursive: true }).catch(() => undefined);
    }
  };
  try {
    const tcp = await program.waitForLine(/TCP: listening on [^ ]*:(\d+)$/);
    const http = await program.waitForLine(/HTTP: listening on [^ ]*:(\d+)$/);
    return {
      program,
      tcpPort: Number(tcp[1]),
      httpPort: Number(http[1]),
      [Symbol.asyncDispose]: stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

interface Nsqd extends AsyncDisposable {
  readonly program: RunningProgram;
  readonly tcpPort: number;
  readonly httpPort: number;
}

// ---- nsqd's client protocol (V2), just enough for AUTH and SUB ---------------

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One V2 frame: `[type, text]`, or null at EOF. */
async function readV2Frame(conn: Deno.Conn): Promise<[number, string] | null> {
  const head = await readExactly(conn, 8);
  if (head === null) return null;
  const view = new DataView(head.buffer);
  const body = await readExactly(conn, view.getUint32(0) - 4);
  return body === null ? null : [view.getUint32(4), decoder.decode(body)];
}

/** What nsqd says to AUTH with `secret` then SUB `topic` `channel`: the SUB answer or the AUTH error. */
async function nsqdVerdict(
  port: number,
  secret: string,
  topic: string,
  channel: string,
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const secretBytes = encoder.encode(secret);
    const auth = new Uint8Array(5 + 4 + secretBytes.length);
    auth.set(encoder.encode("AUTH\n"));
    new DataView(auth.buffer).setUint32(5, secretBytes.length);
    auth.set(secretBytes, 9);
    await conn.write(encoder.encode("  V2"));
    await conn.write(auth);
    const authAnswer = await readV2Frame(conn);
    if (authAnswer === null) return "EOF after AUTH";
    if (authAnswer[0] === 1) return authAnswer[1];
    await conn.write(encoder.encode(`SUB ${topic} ${channel}\n`));
    for (;;) {
      const frame = await readV2Frame(conn);
      if (frame === null) return "EOF after SUB";
      if (frame[1] !== "_heartbeat_") return frame[1];
    }
  } finally {
    conn.close();
  }
}

// ---- The regexp engine against Go's, through nsqd ----------------------------

/** Patterns where Go's syntax or semantics differ from JavaScript's, and some that Go refuses. */
const PATTERNS = [
  "^clicks$",
  "clicks",
  "",
  ".*",
  "^$",
  "(?i)^CLICKS$",
  "^x{,3}$",
  "^a{2,3}$",
  "^a{01}$",
  "\\bclicks\\b",
  "\\Bicks",
  "^\\Qa.b\\E$",
  "^[[:alpha:]]+_[[:digit:]]$",
  "^[[:^alpha:]]+$",
  "^\\pL+$",
  "^\\p{Latin}+$",
  "^\\PN+$",
  "^[\\w.-]+#ephemeral$",
  "^\\d{3}$",
  "\\z",
  "\\Aa",
  "(?U)^a+?$",
  "^(?P<name>a|b)+$",
  "^(|a)+$",
  "^(a*)*$",
  "(?i)k",
  "(?i)[k-l]",
  "(?m)^b$",
  "(?s)^a.b$",
  "^[^a-c]+$",
  "^a$|^b$",
  "a(?i)b",
  "\\x61",
  "\\141",
  "^.{64}$",
  // Refused by Go (nsqd answers E_AUTH_FAILED).
  "(?<name>a)",
  "(a)\\1",
  "(?=a)",
  "a**",
  "a{1001}",
  "(a{2}){501}",
  "(?i-)a",
  "[z-a]",
  "\\C",
  "\\pX",
  "a{2}{3}",
  "\\8",
  "\\Z",
  "(",
];

const INPUTS = [
  "clicks",
  "Clicks",
  "mobile_clicks_v2",
  "a",
  "aa",
  "aaaa",
  "a.b",
  "x",
  "abc_1",
  "123",
  "12",
  "t#ephemeral",
  "K",
  "k",
  "ab",
  "aB",
  "x".repeat(64),
  "-",
  "b",
];

Deno.test("auth patterns: compiled and matched as nsqd's Go regexp does (asked of nsqd itself)", async (t) => {
  const answers: Record<string, AuthAnswer> = {};
  PATTERNS.forEach((pattern, i) => {
    answers[`t${i}`] = {
      ttl: 3600,
      authorizations: [{ topic: pattern, channels: [".*"], permissions: ["subscribe"] }],
    };
    answers[`c${i}`] = {
      ttl: 3600,
      authorizations: [{ topic: ".*", channels: [pattern], permissions: ["subscribe"] }],
    };
  });
  await using auth = startAuthServer(answers);
  await using nsqd = await startNsqd("nsqd (auth)", [`--auth-http-address=${auth.address}`]);
  const verdicts: string[] = [];
  for (let i = 0; i < PATTERNS.length; i++) {
    const pattern = PATTERNS[i];
    await t.step(`pattern ${JSON.stringify(pattern)}`, async () => {
      const ours = compileGoRegexp(pattern);
      for (const input of ours.ok ? INPUTS : [INPUTS[0]]) {
        for (
          const [secret, topic, channel] of [[`t${i}`, input, "ch"], [`c${i}`, "topic", input]]
        ) {
          const verdict = await nsqdVerdict(nsqd.tcpPort, secret, topic, channel);
          verdicts.push(verdict);
          const goCompiles = !verdict.startsWith("E_AUTH_FAILED");
          assert.equal(ours.ok, goCompiles, `Go: ${verdict}; we: ${JSON.stringify(ours)}`);
          if (!ours.ok) continue;
          const weMatch = ours.value.matchString(secret.startsWith("t") ? topic : channel);
          assert.equal(weMatch, verdict === "OK", `on ${JSON.stringify(input)}: Go ${verdict}`);
        }
      }
    });
  }
  // Every kind of verdict came up: the comparison compared something.
  for (const kind of ["OK", "E_UNAUTHORIZED", "E_AUTH_FAILED"]) {
    assert.ok(verdicts.some((v) => v.startsWith(kind)), `no ${kind} among nsqd's answers`);
  }
});

// ---- The secured cluster ----------------------------------------------------

const FIXTURES = `${REPO}tests/fixtures/tls/`;
const TOPIC = "secured_topic";

async function http(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; text: string }> {
  const res = await fetch(url, {
    ...init,
    headers: { Accept: "application/vnd.nsq; version=1.0", ...(init.headers ?? {}) },
  });
  return { status: res.status, text: await res.text() };
}

async function publish(nsqd: Nsqd, body: string): Promise<void> {
  const res = await http(`http://127.0.0.1:${nsqd.httpPort}/pub?topic=${TOPIC}`, {
    method: "POST",
    body,
  });
  assert.equal(res.status, 200, res.text);
}

/** nsq_tail for one message with `secret`, from where `lookupd` makes it connect. */
async function tailOne(
  lookupd: string,
  secret: string,
  env: Record<string, string> = {},
): Promise<string> {
  await using tail = startProgram(nsqPrograms().nsq_tail, {
    name: `nsq_tail (${secret})`,
    args: [
      `--lookupd-http-address=${lookupd}`,
      `--topic=${TOPIC}`,
      "--channel=tail",
      "--n=1",
      `--consumer-opt=auth_secret,${secret}`,
    ],
    env,
  });
  const line = await tail.waitForLine(/^\w+ message$/, { stream: "stdout", ms: 20_000 });
  return line[0];
}

Deno.test("secured cluster: real nsqd, nsqadmin and nsq_tail keep working; a bad secret and a rogue nsqd do not", async (t) => {
  await using auth = startAuthServer({
    GOOD: {
      ttl: 3600,
      identity: "tail",
      authorizations: [
        { topic: `^${TOPIC}$`, channels: [".*"], permissions: ["subscribe", "publish"] },
      ],
    },
  });
  await using daemon = await spawnDaemon([
    "--tcp-address=[::]:0",
    "--http-address=[::]:0",
    "--https-address=[::]:0",
    `--tls-cert=${FIXTURES}server.pem`,
    `--tls-key=${FIXTURES}server.key`,
    "--broadcast-address=127.0.0.1",
    "--producer-networks=127.0.0.1/32",
    "--admin-networks=127.0.0.1/32",
    `--auth-http-address=${auth.address}`,
  ]);
  const httpsPort = Number(
    (await daemon.waitForLine(/INFO: HTTPS: listening on .*:(\d+)$/)).match(/(\d+)$/)![1],
  );
  const lookupd = `127.0.0.1:${daemon.httpPort}`;
  // nsqd registers from 127.0.0.1 and asks its own clients' secrets of the same auth server.
  await using nsqd = await startNsqd("nsqd", [
    `--lookupd-tcp-address=127.0.0.1:${daemon.tcpPort}`,
    `--auth-http-address=${auth.address}`,
  ]);

  await t.step("nsqd registers from an allowed address, reading without a secret", async () => {
    await publish(nsqd, "first message");
    const deadline = performance.now() + 15_000;
    while ((await http(`http://${lookupd}/lookup?topic=${TOPIC}`)).status !== 200) {
      assert.ok(performance.now() < deadline, "nsqd's topic never showed at lookupd");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(
      !daemon.lines.some((l) => / 40[13] .*\(127\.0\.0\.1:/.test(l)),
      daemon.lines.join("\n"),
    );
  });

  await t.step(
    "nsq_tail with a good secret consumes, from ::1 (outside both networks)",
    async () => {
      assert.equal(await tailOne(`[::1]:${daemon.httpPort}`, "GOOD"), "first message");
      assert.ok(auth.queries.some((q) => q.secret === "GOOD" && q.remoteIp === "::1"));
    },
  );

  await t.step(
    "nsq_tail with a good secret consumes over HTTPS (test CA in SSL_CERT_FILE)",
    async () => {
      await publish(nsqd, "second message");
      const got = await tailOne(`https://localhost:${httpsPort}`, "GOOD", {
        SSL_CERT_FILE: `${FIXTURES}ca.pem`,
      });
      assert.equal(got, "second message");
    },
  );

  await t.step("nsq_tail with a bad secret learns nothing: lookupd answers 403", async () => {
    await using bad = startProgram(nsqPrograms().nsq_tail, {
      name: "nsq_tail (BAD)",
      args: [
        `--lookupd-http-address=[::1]:${daemon.httpPort}`,
        `--topic=${TOPIC}`,
        "--channel=bad",
        "--consumer-opt=auth_secret,BAD",
      ],
    });
    await bad.waitForLine(/got response 403 .*AUTH_FAILED/, { ms: 20_000 });
    await bad.stop("SIGTERM");
    assert.deepEqual(bad.stdout, []);
    assert.ok(auth.queries.some((q) => q.secret === "BAD" && q.remoteIp === "::1"));
  });

  await t.step("a rogue nsqd from ::1 gets the refusal frame and registers nothing", async () => {
    await using rogue = await startNsqd("nsqd (rogue)", [
      `--lookupd-tcp-address=[::1]:${daemon.tcpPort}`,
    ]);
    await daemon.waitForLine(
      /WARNING: TCP: refused client\(\[::1\]:\d+\) - not in --producer-networks/,
    );
    // nsqd reads our frame as a reply to its IDENTIFY that is no JSON.
    await rogue.program.waitForLine(
      /ERROR: LOOKUPD\(\[::1\]:\d+\): parsing response - E_UNAUTHORIZED client address not in --producer-networks/,
    );
    const nodes = JSON.parse((await http(`http://${lookupd}/nodes`)).text);
    assert.deepEqual(nodes.producers.map((p: { tcp_port: number }) => p.tcp_port), [nsqd.tcpPort]);
  });

  await t.step(
    "nsqadmin on an allowed host deletes a channel and tombstones the producer",
    async () => {
      await using admin = startProgram(nsqPrograms().nsqadmin, {
        name: "nsqadmin",
        args: ["--http-address=127.0.0.1:0", `--lookupd-http-address=${lookupd}`],
      });
      const adminPort = Number((await admin.waitForLine(/HTTP: listening on [^ ]*:(\d+)$/))[1]);
      const api = `http://127.0.0.1:${adminPort}/api`;
      const deleted = await http(`${api}/topics/${TOPIC}/tail`, { method: "DELETE" });
      assert.equal(deleted.status, 200, deleted.text);
      const channels = JSON.parse((await http(`http://${lookupd}/channels?topic=${TOPIC}`)).text);
      assert.ok(!channels.channels.includes("tail"), JSON.stringify(channels));
      const tombstoned = await http(`${api}/nodes/127.0.0.1:${nsqd.httpPort}`, {
        method: "DELETE",
        body: JSON.stringify({ topic: TOPIC }),
      });
      assert.equal(tombstoned.status, 200, tombstoned.text);
      // nsqadmin tombstones at lookupd, then deletes the topic on nsqd (which unregisters it).
      await daemon.waitForLine(
        new RegExp(
          `INFO: DB: setting tombstone for producer@127\\.0\\.0\\.1:${nsqd.httpPort} of topic\\(${TOPIC}\\)`,
        ),
      );
      await daemon.waitForLine(/INFO: 200 POST \/topic\/tombstone\?\S+ \(127\.0\.0\.1:\d+\)/);
      assert.ok(!daemon.lines.some((l) => / 40[13] .*\(127\.0\.0\.1:/.test(l)));
    },
  );
});

Deno.test("nsqadmin v1.3.0 cannot take an https:// lookupd address (it builds http:// URLs itself)", async () => {
  await using admin = startProgram(nsqPrograms().nsqadmin, {
    name: "nsqadmin",
    args: ["--http-address=127.0.0.1:0", "--lookupd-http-address=https://localhost:4162"],
  });
  await admin.waitForLine(
    /FATAL: .*--lookupd-http-address \(https:\/\/localhost:4162\).*too many colons/,
  );
});
