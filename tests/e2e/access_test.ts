// Access control over real sockets (issue 15): --producer-networks on the TCP
// port, --admin-networks and --auth-http-address on the HTTP API, HTTPS.
// Clients take other loopback source addresses (127.0.0.2, ::1) to come
// from outside the allowed networks: node:net's localAddress for TCP,
// Deno.createHttpClient's for HTTP.

import assert from "node:assert/strict";
import net from "node:net";
import type { Options } from "../../src/options.ts";
import { startAuthServer, subscriber, type TestAuthServer } from "../support/auth_server.ts";
import {
  eventually,
  identifyCommand,
  makeTempConfig,
  networkList,
  removeTempConfig,
  runCli,
  startDaemon,
  type TestDaemon,
  VALID_IDENTIFY,
  withTimeout,
} from "../support/helpers.ts";

const FIXTURES = new URL("../fixtures/tls/", import.meta.url).pathname;
const CA = Deno.readTextFileSync(`${FIXTURES}ca.pem`);
const CERT = Deno.readTextFileSync(`${FIXTURES}server.pem`);
const KEY = Deno.readTextFileSync(`${FIXTURES}server.key`);
const V1 = "application/vnd.nsq; version=1.0";

/** A daemon on 127.0.0.1 with these access settings. */
function secured(overrides: Partial<Options>): TestDaemon {
  return startDaemon({ logLevel: "info", ...overrides });
}

/** GET or POST from a given local address; the body as text. */
async function request(
  url: string,
  options: { from?: string; method?: string; secret?: string; ca?: string } = {},
): Promise<{ status: number; body: string }> {
  const client = Deno.createHttpClient({
    localAddress: options.from,
    caCerts: options.ca === undefined ? undefined : [options.ca],
  });
  try {
    const headers: Record<string, string> = { Accept: V1 };
    if (options.secret !== undefined) headers.Authorization = `Bearer ${options.secret}`;
    const res = await fetch(url, { method: options.method ?? "GET", headers, client });
    return { status: res.status, body: await res.text() };
  } finally {
    client.close();
  }
}

/**
 * Connects to the TCP port from `localAddress`, sends `data`, returns what it
 * reads until EOF, or until `frames` whole frames have come (then it closes).
 */
function tcpExchange(
  port: number,
  localAddress: string,
  data: Uint8Array,
  frames = Infinity,
): Promise<Uint8Array> {
  return new Promise((resolve) => {
    const chunks: Uint8Array[] = [];
    const socket = net.connect({ host: "127.0.0.1", port, localAddress }, () => {
      socket.write(data);
    });
    // Bounded: a server that keeps the connection gets it closed, and the test sees what came.
    const timer = setTimeout(() => socket.destroy(), 5_000);
    socket.on("data", (chunk: Uint8Array) => {
      chunks.push(new Uint8Array(chunk));
      if (frameText(concat(chunks)).length >= frames) socket.destroy();
    });
    // A reset after the frame still delivered it; what counts is what was read.
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(concat(chunks));
    });
  });
}

const REGISTER = new Uint8Array([
  ...new TextEncoder().encode("  V1"),
  ...identifyCommand(VALID_IDENTIFY),
  ...new TextEncoder().encode("REGISTER rogue_topic\n"),
]);
const REFUSAL = "E_UNAUTHORIZED client address not in --producer-networks";

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** The payloads of the whole frames in `bytes`. */
function frameText(bytes: Uint8Array): string[] {
  const out: string[] = [];
  let at = 0;
  while (at + 4 <= bytes.length) {
    const size = new DataView(bytes.buffer, bytes.byteOffset + at).getUint32(0);
    out.push(new TextDecoder().decode(bytes.subarray(at + 4, at + 4 + size)));
    at += 4 + size;
  }
  return out;
}

async function metric(daemon: TestDaemon, series: string): Promise<number | undefined> {
  const text = await (await daemon.get("/metrics")).text();
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

// ---- TCP: --producer-networks ------------------------------------------------

Deno.test("e2e access: a TCP peer outside --producer-networks gets one error frame and EOF, registers nothing", async () => {
  await using daemon = secured({ producerNetworks: networkList("127.0.0.1") });
  const reply = await tcpExchange(daemon.tcpAddr.port, "127.0.0.2", REGISTER);
  assert.deepEqual(frameText(reply), [REFUSAL]);
  assert.deepEqual(daemon.registry.topics(), []);
  assert.equal(
    await metric(daemon, 'nsqlookupd_refused_total{protocol="tcp",reason="network"}'),
    1,
  );
  assert.equal(
    daemon.logs.filter((l) => l.includes("TCP: refused client(127.0.0.2:")).length,
    1,
  );
});

Deno.test("e2e access: the refusal frame reaches a peer that writes first and reads later (as nsqd does)", async () => {
  await using daemon = secured({
    tcpAddress: "[::]:0",
    httpAddress: "127.0.0.1:0",
    producerNetworks: networkList("127.0.0.1"),
  });
  for (let round = 0; round < 5; round++) {
    const conn = await Deno.connect({ hostname: "::1", port: daemon.tcpAddr.port });
    try {
      // nsqd writes its magic, then its IDENTIFY, and only then reads. An
      // abrupt close with the magic unread resets the connection: the
      // IDENTIFY write fails and nsqd never reads the frame.
      await conn.write(REGISTER.subarray(0, 4));
      await new Promise((resolve) => setTimeout(resolve, 100));
      await conn.write(REGISTER.subarray(4));
      const chunks: Uint8Array[] = [];
      const buffer = new Uint8Array(1024);
      await withTimeout(
        (async () => {
          try {
            for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
              chunks.push(buffer.slice(0, n));
            }
          } catch {
            // closed by the finally below after a timeout
          }
        })(),
        5_000,
        "the refused connection to end",
      );
      assert.deepEqual(frameText(concat(chunks)), [REFUSAL]);
    } finally {
      conn.close();
    }
  }
});

Deno.test("e2e access: a TCP peer inside --producer-networks registers as before", async () => {
  await using daemon = secured({ producerNetworks: networkList("127.0.0.1") });
  const client = await daemon.connect();
  await client.identify();
  assert.equal(await client.command("REGISTER allowed_topic"), "OK");
  assert.deepEqual(daemon.registry.topics(), ["allowed_topic"]);
});

Deno.test("e2e access: a refused peer reconnecting in a loop costs a refused accept each, and few log lines", async () => {
  await using daemon = secured({ producerNetworks: networkList("127.0.0.1") });
  const rounds = 300;
  for (let i = 0; i < rounds; i++) {
    const reply = await tcpExchange(daemon.tcpAddr.port, "127.0.0.2", REGISTER);
    assert.deepEqual(frameText(reply), [REFUSAL]);
  }
  assert.equal(daemon.tcpServer.connectionCount, 0);
  assert.equal(
    await metric(daemon, 'nsqlookupd_refused_total{protocol="tcp",reason="network"}'),
    rounds,
  );
  assert.ok(daemon.logs.filter((l) => l.includes("TCP: refused")).length <= 2);
  assert.ok(!daemon.logs.some((l) => l.includes("TCP: new client(127.0.0.2")));
});

// ---- HTTP: --admin-networks ----------------------------------------------------

Deno.test("e2e access: mutating routes and /debug answer --admin-networks only", async () => {
  await using daemon = secured({ adminNetworks: networkList("127.0.0.1") });
  const url = daemon.httpUrl;
  for (const path of ["/topic/create?topic=t", "/channel/create?topic=t&channel=c"]) {
    assert.deepEqual(await request(url + path, { from: "127.0.0.2", method: "POST" }), {
      status: 403,
      body: '{"message":"FORBIDDEN"}',
    });
  }
  assert.equal((await request(url + "/debug", { from: "127.0.0.2" })).status, 403);
  assert.deepEqual(daemon.registry.topics(), []);
  assert.equal((await request(url + "/topic/create?topic=t", { method: "POST" })).status, 200);
  assert.equal((await request(url + "/debug")).status, 200);
  // Reads stay open without auth.
  assert.equal((await request(url + "/topics", { from: "127.0.0.2" })).status, 200);
  assert.equal(
    await metric(daemon, 'nsqlookupd_refused_total{protocol="http",reason="network"}'),
    3,
  );
});

// ---- HTTP: the auth server ------------------------------------------------------

async function authCluster(
  auth: TestAuthServer,
  extra: Partial<Options> = {},
): Promise<TestDaemon> {
  const daemon = secured({
    producerNetworks: networkList("127.0.0.1"),
    authHttpAddresses: [auth.address],
    ...extra,
  });
  for (const topic of ["orders", "secret_plans"]) {
    daemon.registry.createTopic(topic);
    daemon.registry.createChannel(topic, "billing");
    daemon.registry.createChannel(topic, "archive");
  }
  return await Promise.resolve(daemon);
}

Deno.test("e2e access: with auth on, reads need a secret the auth server accepts for the topic", async () => {
  await using auth = startAuthServer({ GOOD: subscriber("^orders$", ["^billing$"]) });
  await using daemon = await authCluster(auth);
  const url = daemon.httpUrl;
  const from = "127.0.0.2";
  assert.deepEqual(await request(url + "/lookup?topic=orders", { from }), {
    status: 401,
    body: '{"message":"AUTH_REQUIRED"}',
  });
  assert.deepEqual(await request(url + "/lookup?topic=orders", { from, secret: "BAD" }), {
    status: 403,
    body: '{"message":"AUTH_FAILED"}',
  });
  assert.deepEqual(await request(url + "/lookup?topic=orders", { from, secret: "GOOD" }), {
    status: 200,
    body: '{"channels":["billing"],"producers":[]}',
  });
  for (
    const path of [
      "/lookup?topic=secret_plans",
      "/lookup?topic=nope",
      "/channels?topic=secret_plans",
    ]
  ) {
    assert.deepEqual(await request(url + path, { from, secret: "GOOD" }), {
      status: 403,
      body: '{"message":"UNAUTHORIZED"}',
    }, path);
  }
  assert.deepEqual(await request(url + "/topics", { from, secret: "GOOD" }), {
    status: 200,
    body: '{"topics":["orders"]}',
  });
  assert.deepEqual(await request(url + "/channels?topic=orders", { from, secret: "GOOD" }), {
    status: 200,
    body: '{"channels":["billing"]}',
  });
  // nsqd's query: what the auth server was asked, once per secret (cached).
  const asked = auth.queries.map((q) => `${q.secret} ${q.remoteIp} ${q.tls}`);
  assert.deepEqual([...new Set(asked)], ["BAD 127.0.0.2 false", "GOOD 127.0.0.2 false"]);
  assert.equal(asked.filter((a) => a.startsWith("GOOD")).length, 1);
});

Deno.test("e2e access: with auth on, --producer-networks hosts read without a secret (nsqd, nsqadmin)", async () => {
  await using auth = startAuthServer({});
  await using daemon = await authCluster(auth);
  const all = await request(daemon.httpUrl + "/topics");
  assert.deepEqual(all, { status: 200, body: '{"topics":["orders","secret_plans"]}' });
  assert.equal((await request(daemon.httpUrl + "/channels?topic=orders")).status, 200);
  assert.equal(auth.queries.length, 0);
});

for (const mode of ["down", "stall", "garbage", "error"] as const) {
  Deno.test(`e2e access: auth server ${mode}: 503 to others, allowed networks served, one log line`, async () => {
    const auth = startAuthServer({ GOOD: subscriber(".*") });
    try {
      await using daemon = await authCluster(auth, { httpClientRequestTimeoutMs: 200 });
      if (mode === "down") await auth.close();
      else auth.mode = mode;
      for (let i = 0; i < 20; i++) {
        const got = await request(daemon.httpUrl + "/lookup?topic=orders", {
          from: "127.0.0.2",
          secret: `GOOD${i}`,
        });
        assert.deepEqual(got, { status: 503, body: '{"message":"AUTH_UNAVAILABLE"}' });
      }
      assert.equal((await request(daemon.httpUrl + "/lookup?topic=orders")).status, 200);
      assert.equal(daemon.logs.filter((l) => l.includes("AUTH: failed to auth against")).length, 1);
      assert.equal(
        await metric(daemon, 'nsqlookupd_refused_total{protocol="http",reason="auth_unavailable"}'),
        20,
      );
    } finally {
      auth.mode = "normal";
      await auth.close();
    }
  });
}

Deno.test("e2e access: with auth on and no --admin-networks, nobody administers", async () => {
  await using auth = startAuthServer({ GOOD: subscriber(".*") });
  await using daemon = await authCluster(auth);
  const got = await request(daemon.httpUrl + "/topic/delete?topic=orders", { method: "POST" });
  assert.deepEqual(got, { status: 403, body: '{"message":"FORBIDDEN"}' });
  assert.ok(daemon.registry.topics().includes("orders"));
});

// ---- HTTPS -----------------------------------------------------------------------

const TLS: Partial<Options> = {
  httpsAddress: "127.0.0.1:0",
  tlsCert: `${FIXTURES}server.pem`,
  tlsKey: `${FIXTURES}server.key`,
  tls: { cert: CERT, key: KEY },
};

Deno.test("e2e access: HTTPS serves the same API, HTTP stays as it was", async () => {
  await using daemon = secured(TLS);
  assert.ok(daemon.httpsAddr !== undefined);
  const https = `https://localhost:${daemon.httpsAddr!.port}`;
  assert.deepEqual(await request(`${https}/info`, { ca: CA }), {
    status: 200,
    body: '{"version":"1.3.0"}',
  });
  assert.equal(
    (await request(`${https}/topic/create?topic=t`, { ca: CA, method: "POST" })).status,
    200,
  );
  assert.deepEqual(await request(`${daemon.httpUrl}/topics`), {
    status: 200,
    body: '{"topics":["t"]}',
  });
  assert.ok(daemon.logs.some((l) => /^INFO: HTTPS: listening on 127\.0\.0\.1:\d+$/.test(l)));
});

Deno.test("e2e access: a client that does not trust the certificate gets no answer", async () => {
  await using daemon = secured(TLS);
  await assert.rejects(request(`https://localhost:${daemon.httpsAddr!.port}/info`));
});

Deno.test("e2e access: over HTTPS the auth server is told tls=true", async () => {
  await using auth = startAuthServer({ GOOD: subscriber(".*") });
  await using daemon = await authCluster(auth, TLS);
  const got = await request(`https://localhost:${daemon.httpsAddr!.port}/topics`, {
    ca: CA,
    secret: "GOOD",
    // From 127.0.0.2: not privileged, so the auth server is asked.
    from: "127.0.0.2",
  });
  assert.equal(got.status, 200);
  assert.equal(auth.queries[0]?.tls, "true");
});

Deno.test("e2e access: a missing or invalid certificate stops start-up with one FATAL line, exit 1", async () => {
  const missing = await runCli([
    "--tcp-address=127.0.0.1:0",
    "--http-address=127.0.0.1:0",
    "--https-address=127.0.0.1:0",
    `--tls-cert=${FIXTURES}nope.pem`,
    `--tls-key=${FIXTURES}server.key`,
  ]);
  assert.equal(missing.code, 1);
  assert.match(
    missing.stderr,
    /^\[nsqlookupd\] \S+ \S+ FATAL: failed to read --tls-cert \S+nope\.pem - open \S+nope\.pem: no such file or directory\n$/,
  );
  const invalid = await runCli([
    "--tcp-address=127.0.0.1:0",
    "--http-address=127.0.0.1:0",
    "--https-address=127.0.0.1:0",
    `--tls-cert=${FIXTURES}server.key`,
    `--tls-key=${FIXTURES}server.key`,
  ]);
  assert.equal(invalid.code, 1);
  const lines = invalid.stderr.trimEnd().split("\n");
  assert.match(
    lines.at(-1)!,
    /FATAL: listen \(127\.0\.0\.1:0\) failed - --tls-cert \S+ \/ --tls-key \S+: /,
  );
  assert.equal(lines.filter((l) => l.includes("FATAL")).length, 1);
});

// ---- Configuration and "nothing changes" -----------------------------------------

Deno.test("e2e access: the config file keys turn the rules on", async () => {
  const path = await makeTempConfig(
    'producer_networks = ["127.0.0.1/32"]\nadmin_networks = "127.0.0.1"\n' +
      'tcp_address = "127.0.0.1:0"\nhttp_address = "127.0.0.1:0"\n',
  );
  try {
    const run = await runCli(["--config", path, "--version"]);
    assert.equal(run.code, 0);
  } finally {
    await removeTempConfig(path);
  }
});

Deno.test("e2e access: without the new flags there is no access metric, no ACCESS line, no HTTPS", async () => {
  await using daemon = startDaemon();
  const text = await (await daemon.get("/metrics")).text();
  assert.ok(!text.includes("nsqlookupd_refused_total"));
  assert.ok(!text.includes("nsqlookupd_auth_"));
  assert.ok(!daemon.logs.some((l) => l.includes("ACCESS:") || l.includes("HTTPS")));
  assert.equal(daemon.httpsAddr, undefined);
  assert.equal(daemon.access, undefined);
  // And TCP peers from anywhere register, as before.
  const reply = await tcpExchange(daemon.tcpAddr.port, "127.0.0.2", REGISTER, 2);
  assert.deepEqual(frameText(reply).slice(1), ["OK"]);
  await eventually(() => daemon.tcpServer.connectionCount === 0);
});
