// A secured cluster of real NSQ v1.3.0 programs around our daemon (issue 15):
// nsqd, nsqadmin and nsq_tail against --producer-networks, --admin-networks,
// --auth-http-address and HTTPS, with the tiny auth server of
// tests/support/auth_server.ts. And the Go regexp engine checked against the
// one nsqd really uses, by asking nsqd itself.
//
// The programs come from NSQ_BIN_DIR, else .tools/nsq (see
// /work/shared/nsq/README.md); without them these tests are ignored.

import assert from "node:assert/strict";
import { compileGoRegexp } from "../../src/access/goregexp.ts";
import { type AuthAnswer, startAuthServer } from "../support/auth_server.ts";
import { spawnDaemon, withTimeout } from "../support/helpers.ts";

const REPO = new URL("../../", import.meta.url).pathname;

function findBinDir(): string | undefined {
  const dirs = [Deno.env.get("NSQ_BIN_DIR"), `${REPO}.tools/nsq`];
  for (const dir of dirs) {
    if (dir === undefined || dir === "") continue;
    try {
      if (Deno.statSync(`${dir}/nsqd`).isFile) return dir.replace(/\/+$/, "");
    } catch {
      // not there
    }
  }
  return undefined;
}

const BIN = findBinDir();
/** Without the programs the tests show as ignored, not passed. */
const ignore = BIN === undefined;

// ---- A real program as a child process --------------------------------------

interface Program extends AsyncDisposable {
  readonly lines: string[];
  waitFor(pattern: RegExp, ms?: number): Promise<RegExpExecArray>;
  stop(): Promise<void>;
}

function start(name: string, args: string[], env: Record<string, string> = {}): Program {
  const child = new Deno.Command(`${BIN}/${name}`, {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  let wake: (() => void)[] = [];
  const collect = async (stream: ReadableStream<Uint8Array>): Promise<void> => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      lines.push(...parts);
      for (const w of wake.splice(0)) w();
    }
    if (rest !== "") lines.push(rest);
    for (const w of wake.splice(0)) w();
  };
  const reading = Promise.all([collect(child.stdout), collect(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    for (const w of wake.splice(0)) w();
    return s;
  });
  const waitFor = (pattern: RegExp, ms = 10_000): Promise<RegExpExecArray> =>
    withTimeout(
      (async () => {
        for (let i = 0;; i++) {
          while (i >= lines.length) {
            if (exited) throw new Error(`${name} exited; output:\n${lines.join("\n")}`);
            await new Promise<void>((resolve) => wake.push(resolve));
          }
          const match = pattern.exec(lines[i]);
          if (match !== null) return match;
        }
      })(),
      ms,
      `${name}: a line matching ${pattern}; output so far:\n${lines.join("\n")}`,
    );
  const stop = async (): Promise<void> => {
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch {
        // exited meanwhile
      }
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited
      }
    }, 5_000);
    await status;
    clearTimeout(timer);
    await reading;
    wake = [];
  };
  return { lines, waitFor, stop, [Symbol.asyncDispose]: stop };
}

interface Nsqd extends Program {
  readonly tcpPort: number;
  readonly httpPort: number;
  readonly dataPath: string;
}

async function startNsqd(args: string[]): Promise<Nsqd> {
  const dataPath = await Deno.makeTempDir({ prefix: "nsqd-secured-" });
  const program = start("nsqd", [
    "--tcp-address=127.0.0.1:0",
    "--http-address=127.0.0.1:0",
    "--broadcast-address=127.0.0.1",
    `--data-path=${dataPath}`,
    ...args,
  ]);
  try {
    const tcp = await program.waitFor(/TCP: listening on [^ ]*:(\d+)/);
    const http = await program.waitFor(/HTTP: listening on [^ ]*:(\d+)/);
    const stop = async (): Promise<void> => {
      await program.stop();
      await Deno.remove(dataPath, { recursive: true }).catch(() => undefined);
    };
    return {
      ...program,
      tcpPort: Number(tcp[1]),
      httpPort: Number(http[1]),
      dataPath,
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (error) {
    await program.stop();
    await Deno.remove(dataPath, { recursive: true }).catch(() => undefined);
    throw error;
  }
}

// ---- nsqd's client protocol (V2), just enough for AUTH and SUB ---------------

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function readFull(conn: Deno.Conn, n: number): Promise<Uint8Array | null> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const read = await conn.read(out.subarray(got));
    if (read === null) return null;
    got += read;
  }
  return out;
}

/** One V2 frame: `[type, text]`, or null at EOF. */
async function readV2Frame(conn: Deno.Conn): Promise<[number, string] | null> {
  const head = await readFull(conn, 8);
  if (head === null) return null;
  const view = new DataView(head.buffer);
  const body = await readFull(conn, view.getUint32(0) - 4);
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

Deno.test({
  name: "interop: auth patterns are compiled and matched as nsqd's Go regexp does (asked of nsqd)",
  ignore,
  fn: async () => {
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
    await using nsqd = await startNsqd([`--auth-http-address=${auth.address}`]);
    const disagreements: string[] = [];
    const verdicts: string[] = [];
    for (let i = 0; i < PATTERNS.length; i++) {
      const pattern = PATTERNS[i];
      const ours = compileGoRegexp(pattern);
      for (const input of ours.ok ? INPUTS : [INPUTS[0]]) {
        for (
          const [secret, topic, channel] of [[`t${i}`, input, "ch"], [`c${i}`, "topic", input]]
        ) {
          const verdict = await nsqdVerdict(nsqd.tcpPort, secret, topic, channel);
          const goCompiles = !verdict.startsWith("E_AUTH_FAILED");
          const goMatches = verdict === "OK";
          verdicts.push(verdict);
          if (goCompiles !== ours.ok) {
            disagreements.push(
              `${JSON.stringify(pattern)}: Go ${
                goCompiles ? "compiles" : "refuses"
              } it (${verdict}), we ${ours.ok ? "compile" : "refuse"} it`,
            );
            break;
          }
          if (!ours.ok) continue;
          const weMatch = ours.value.matchString(secret.startsWith("t") ? topic : channel);
          if (goMatches !== weMatch) {
            disagreements.push(
              `${JSON.stringify(pattern)} on ${JSON.stringify(input)}: Go ${verdict}, we ${
                weMatch ? "match" : "do not match"
              }`,
            );
          }
        }
      }
    }
    assert.deepEqual(disagreements, []);
    // Every kind of verdict came up: the comparison compared something.
    for (const kind of ["OK", "E_UNAUTHORIZED", "E_AUTH_FAILED"]) {
      assert.ok(verdicts.some((v) => v.startsWith(kind)), `no ${kind} among nsqd's answers`);
    }
  },
});

// ---- The secured cluster ----------------------------------------------------

const FIXTURES = `${REPO}tests/fixtures/tls/`;
const TOPIC = "secured_topic";

async function httpJson(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; text: string }> {
  const res = await fetch(url, {
    ...init,
    headers: { Accept: "application/vnd.nsq; version=1.0", ...(init.headers ?? {}) },
  });
  return { status: res.status, text: await res.text() };
}

async function until(check: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`not reached in ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

Deno.test({
  name:
    "interop: secured cluster: real nsqd, nsqadmin and nsq_tail keep working; a bad secret and a rogue nsqd do not",
  ignore,
  fn: async () => {
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
    const https = Number(
      (await daemon.waitForLine(/INFO: HTTPS: listening on .*:(\d+)$/)).match(/(\d+)$/)![1],
    );
    const lookupd = `127.0.0.1:${daemon.httpPort}`;
    // nsqd registers from 127.0.0.1, an allowed network, and asks its own
    // clients' secrets of the same auth server.
    await using nsqd = await startNsqd([
      `--lookupd-tcp-address=127.0.0.1:${daemon.tcpPort}`,
      `--auth-http-address=${auth.address}`,
    ]);
    const pub = await httpJson(`http://127.0.0.1:${nsqd.httpPort}/pub?topic=${TOPIC}`, {
      method: "POST",
      body: "first message",
    });
    assert.equal(pub.status, 200, pub.text);
    await until(
      async () => (await httpJson(`http://${lookupd}/lookup?topic=${TOPIC}`)).status === 200,
      "nsqd's topic at lookupd",
    );

    // A consumer with a good secret, from ::1 (outside both networks).
    const tail = start("nsq_tail", [
      `--lookupd-http-address=[::1]:${daemon.httpPort}`,
      `--topic=${TOPIC}`,
      "--channel=tail",
      "--n=1",
      "--consumer-opt=auth_secret,GOOD",
    ]);
    await tail.waitFor(/^first message$/, 20_000);
    await tail.stop();

    // The same over HTTPS (Go reads the test CA from SSL_CERT_FILE).
    await httpJson(`http://127.0.0.1:${nsqd.httpPort}/pub?topic=${TOPIC}`, {
      method: "POST",
      body: "second message",
    });
    const tailTls = start("nsq_tail", [
      `--lookupd-http-address=https://localhost:${https}`,
      `--topic=${TOPIC}`,
      "--channel=tail",
      "--n=1",
      "--consumer-opt=auth_secret,GOOD",
    ], { SSL_CERT_FILE: `${FIXTURES}ca.pem` });
    await tailTls.waitFor(/^second message$/, 20_000);
    await tailTls.stop();

    // A consumer with a bad secret learns nothing: lookupd answers 403.
    const bad = start("nsq_tail", [
      `--lookupd-http-address=[::1]:${daemon.httpPort}`,
      `--topic=${TOPIC}`,
      "--channel=bad",
      "--consumer-opt=auth_secret,BAD",
      "--consumer-opt=lookupd_poll_interval,1s",
    ]);
    await bad.waitFor(/403/, 20_000);
    await bad.stop();
    assert.ok(!bad.lines.some((l) => /^\w+ message$/.test(l)), bad.lines.join("\n"));
    assert.ok(auth.queries.some((q) => q.secret === "BAD" && q.remoteIp === "::1"));

    // A rogue nsqd registering from ::1 is refused before it registers anything.
    await using rogue = await startNsqd([`--lookupd-tcp-address=[::1]:${daemon.tcpPort}`]);
    await daemon.waitForLine(
      /WARNING: TCP: refused client\(\[::1\]:\d+\) - not in --producer-networks/,
    );
    // The refusal reaches it (nsqd reads our frame as a non-JSON IDENTIFY reply).
    await rogue.waitFor(
      /ERROR: LOOKUPD\(\[::1\]:\d+\): parsing response - E_UNAUTHORIZED client address not in --producer-networks/,
    );
    const nodes = JSON.parse((await httpJson(`http://${lookupd}/nodes`)).text);
    assert.deepEqual(nodes.producers.map((p: { tcp_port: number }) => p.tcp_port), [nsqd.tcpPort]);

    // nsqadmin on an allowed host deletes a channel and tombstones the producer.
    await using admin = start("nsqadmin", [
      "--http-address=127.0.0.1:0",
      `--lookupd-http-address=${lookupd}`,
    ]);
    const adminPort = Number((await admin.waitFor(/HTTP: listening on [^ ]*:(\d+)/))[1]);
    const adminApi = `http://127.0.0.1:${adminPort}/api`;
    const deleted = await httpJson(`${adminApi}/topics/${TOPIC}/tail`, { method: "DELETE" });
    assert.equal(deleted.status, 200, deleted.text);
    const channels = JSON.parse((await httpJson(`http://${lookupd}/channels?topic=${TOPIC}`)).text);
    assert.ok(!channels.channels.includes("tail"), JSON.stringify(channels));
    const tombstoned = await httpJson(`${adminApi}/nodes/127.0.0.1:${nsqd.httpPort}`, {
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
    // nsqadmin's reads came from an allowed host: never a secret, never a 401.
    assert.ok(!daemon.lines.some((l) => /INFO: 401 .*\(127\.0\.0\.1:/.test(l)));
  },
});

Deno.test({
  name:
    "interop: nsqadmin v1.3.0 cannot take an https:// lookupd address (it builds http:// URLs itself)",
  ignore,
  fn: async () => {
    await using admin = start("nsqadmin", [
      "--http-address=127.0.0.1:0",
      "--lookupd-http-address=https://localhost:4162",
    ]);
    await admin.waitFor(
      /FATAL: .*--lookupd-http-address \(https:\/\/localhost:4162\).*too many colons/,
    );
  },
});
