// End-to-end tests of the command line, config file, logging and lifecycle
// (spec sections 4-6): each spawns `deno run main.ts` as a real process. The
// parsing rules themselves are covered in-process by config_test.ts and
// flags_test.ts; these check that main.ts wires them to stdout, stderr, exit
// codes, sockets and signals.

import assert from "node:assert/strict";
import { usageText } from "../../src/config.ts";
import {
  escapeRegExp,
  freePort,
  LOG_TIMESTAMP,
  makeTempConfig,
  removeTempConfig,
  runCli,
  spawnDaemon,
  type SpawnedDaemon,
  TcpClient,
  VALID_IDENTIFY,
  withTimeout,
} from "../support/helpers.ts";

/** The child reports the same OS hostname as the default broadcast address in its usage. */
const USAGE = usageText(Deno.hostname());
const LOOPBACK = ["--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0"];
const DEFAULT_PREFIX = "[nsqlookupd] ";
const VERSION_TEXT = String.raw`nsqlookupd v1\.3\.0 \([^()\n]+\)`;
const decoder = new TextDecoder();

/** A whole log line: `PREFIX YYYY/MM/DD HH:MM:SS.micros LEVEL: message`. */
function logLine(level: string, message: string, prefix = DEFAULT_PREFIX): RegExp {
  return new RegExp(`^${escapeRegExp(prefix)}${LOG_TIMESTAMP} ${level}: ${message}$`);
}

function stderrLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line !== "");
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await withTimeout(
    fetch(`http://127.0.0.1:${port}${path}`),
    5_000,
    `GET ${path}`,
  );
  return { status: res.status, body: await res.text() };
}

async function pingOverTcp(port: number): Promise<void> {
  const client = await TcpClient.connect(port);
  try {
    await client.magic();
    assert.equal(await withTimeout(client.command("PING"), 5_000, "PING reply"), "OK");
  } finally {
    client.close();
  }
}

// ---- --version and help ----

for (const flag of ["--version", "-version"]) {
  Deno.test(`cli: ${flag} prints the version line to stdout and exits 0`, async () => {
    const run = await runCli([flag]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`^${VERSION_TEXT}\n$`));
    assert.equal(run.stderr, "");
  });
}

Deno.test("cli: -h, -help and --help print the usage to stderr and exit 0", async () => {
  for (const flag of ["-h", "-help", "--help"]) {
    const run = await runCli([flag]);
    assert.equal(run.code, 0, `${flag}: ${run.stderr}`);
    assert.equal(run.stdout, "", flag);
    assert.ok(run.stderr.startsWith("Usage of nsqlookupd:\n"), `${flag}: ${run.stderr}`);
    assert.equal(run.stderr, USAGE, flag);
    // Every flag of the spec's table, reference and [beyond] alike.
    for (
      const name of [
        "broadcast-address string",
        "config string",
        "http-address string",
        "inactive-producer-timeout duration",
        "legacy-http-api",
        "log-format value",
        "log-level value",
        "log-prefix string",
        "max-identify-size int",
        "tcp-address string",
        "tombstone-lifetime duration",
        "verbose",
        "version",
      ]
    ) {
      assert.ok(run.stderr.includes(`\n  -${name}\n`), `${flag}: -${name} missing`);
    }
  }
});

// ---- flag errors: Go's wording, then the usage, exit 2 ----

async function assertFlagError(args: string[], message: string): Promise<void> {
  const run = await runCli(args);
  assert.equal(run.code, 2, run.stderr);
  assert.equal(run.stdout, "");
  assert.equal(run.stderr.split("\n", 1)[0], message);
  assert.equal(run.stderr, `${message}\n${USAGE}`);
}

Deno.test("cli: an undefined flag is reported with the usage, exit 2", async () => {
  await assertFlagError(
    ["--tcp-address=127.0.0.1:0", "--bogus"],
    "flag provided but not defined: -bogus",
  );
});

Deno.test("cli: a malformed duration is reported with the usage, exit 2", async () => {
  await assertFlagError(
    ["--tombstone-lifetime=abc"],
    'invalid value "abc" for flag -tombstone-lifetime: parse error',
  );
});

Deno.test("cli: an invalid log level is reported with the usage, exit 2", async () => {
  await assertFlagError(
    ["--log-level=bogus"],
    `invalid value "bogus" for flag -log-level: invalid log level 'bogus' ` +
      "(debug, info, warn, error, fatal)",
  );
});

Deno.test("cli: a flag missing its argument is reported with the usage, exit 2", async () => {
  await assertFlagError(["-tcp-address"], "flag needs an argument: -tcp-address");
});

// ---- startup and logging ----

/** Local time of a log line's timestamp. */
function logTime(line: string): number {
  const m = line.match(/(\d{4})\/(\d\d)\/(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})/);
  assert.ok(m, line);
  const [year, month, day, hour, minute, second, micros] = m.slice(1).map(Number);
  return new Date(year, month - 1, day, hour, minute, second, micros / 1000).getTime();
}

Deno.test(
  "lifecycle: startup logs the version line, then TCP and HTTP listening addresses; both serve",
  async () => {
    await using daemon = await spawnDaemon(LOOPBACK);
    const [version, tcp, http] = daemon.lines;
    assert.match(version, logLine("INFO", VERSION_TEXT));
    assert.match(tcp, logLine("INFO", `TCP: listening on 127\\.0\\.0\\.1:${daemon.tcpPort}`));
    assert.match(http, logLine("INFO", `HTTP: listening on 127\\.0\\.0\\.1:${daemon.httpPort}`));
    assert.notEqual(daemon.tcpPort, 0);
    assert.notEqual(daemon.httpPort, 0);
    // Local wall-clock time, as Go's log package prints it.
    assert.ok(Math.abs(logTime(version) - Date.now()) < 60_000, version);

    assert.deepEqual(await get(daemon.httpPort, "/ping"), { status: 200, body: "OK" });
    await pingOverTcp(daemon.tcpPort);

    const stopped = await daemon.stop("SIGTERM");
    assert.equal(stopped.code, 0, stopped.lines.join("\n"));
    assert.equal(stopped.stdout, "");
  },
);

Deno.test("logging: --log-prefix replaces the prefix of every line", async () => {
  for (const prefix of ["[test] ", ""]) {
    await using daemon = await spawnDaemon([...LOOPBACK, `--log-prefix=${prefix}`]);
    assert.deepEqual(await get(daemon.httpPort, "/ping"), { status: 200, body: "OK" });
    await pingOverTcp(daemon.tcpPort);
    const stopped = await daemon.stop("SIGTERM");
    assert.equal(stopped.code, 0);
    assert.ok(stopped.lines.length >= 5, stopped.lines.join("\n"));
    for (const line of stopped.lines) {
      assert.match(
        line,
        logLine("(INFO|WARNING)", ".*", prefix),
        `prefix ${JSON.stringify(prefix)}`,
      );
    }
    assert.ok(stopped.lines.some((line) => / INFO: 200 GET \/ping /.test(line)));
  }
});

/**
 * Starts a daemon on ports picked beforehand (its logs may be silent). Another
 * process can take a picked port before the child binds it: then try again.
 */
async function spawnOnPickedPorts(args: string[]): Promise<SpawnedDaemon> {
  for (let attempt = 1;; attempt++) {
    const ports = { tcp: freePort(), http: freePort() };
    try {
      return await spawnDaemon([
        ...args,
        `--tcp-address=127.0.0.1:${ports.tcp}`,
        `--http-address=127.0.0.1:${ports.http}`,
      ], { ports });
    } catch (error) {
      const lost = error instanceof Error && error.message.includes("FATAL: listen (");
      if (!lost || attempt === 3) throw error;
    }
  }
}

Deno.test("logging: --log-level=warn suppresses INFO lines and keeps errors", async () => {
  await using daemon = await spawnOnPickedPorts(["--log-level=warn"]);
  assert.deepEqual(await get(daemon.httpPort, "/ping"), { status: 200, body: "OK" });
  await pingOverTcp(daemon.tcpPort);
  // A bad protocol magic is logged at ERROR level, so it must still show.
  const client = await TcpClient.connect(daemon.tcpPort);
  try {
    await client.send("  V2");
    assert.equal(await withTimeout(client.readFrame(), 5_000, "error frame"), "E_BAD_PROTOCOL");
    await withTimeout(client.expectClosed(), 5_000, "close after E_BAD_PROTOCOL");
  } finally {
    client.close();
  }
  await daemon.waitForLine(/ ERROR: client\(127\.0\.0\.1:\d+\) bad protocol magic ' {2}V2'$/);

  const stopped = await daemon.stop("SIGTERM");
  assert.equal(stopped.code, 0, stopped.lines.join("\n"));
  assert.ok(stopped.lines.length > 0);
  for (const line of stopped.lines) assert.match(line, logLine("(WARNING|ERROR)", ".*"));
});

// ---- config file ----

/** Writes `toml` to a temporary file, runs `body` with its path, removes the file. */
async function withConfigFile(
  toml: string,
  body: (path: string) => Promise<void>,
): Promise<void> {
  const path = await makeTempConfig(toml);
  try {
    await body(path);
  } finally {
    await removeTempConfig(path);
  }
}

Deno.test(
  "config file: values are read from it, and a command-line flag overrides a file key",
  async () => {
    const toml = [
      'log_prefix = "[cfg] "',
      'tcp_address = "127.0.0.1:0"',
      // Unusable: only the command line's --http-address lets the daemon start.
      'http_address = "not-an-address"',
      "tombstone_lifetime = 1000 # milliseconds",
      "",
    ].join("\n");
    await withConfigFile(toml, async (path) => {
      await using daemon = await spawnDaemon([`--config=${path}`, "--http-address=127.0.0.1:0"]);
      assert.match(
        daemon.lines[1],
        logLine("INFO", `TCP: listening on 127\\.0\\.0\\.1:${daemon.tcpPort}`, "[cfg] "),
      );

      // tombstone_lifetime = 1000 ms: a tombstone lifts after about a second
      // (the default would hold it for 45 s, and 1000 read as seconds for ever).
      const client = await TcpClient.connect(daemon.tcpPort);
      try {
        await withTimeout(client.identify(VALID_IDENTIFY), 5_000, "IDENTIFY reply");
        assert.equal(await withTimeout(client.command("REGISTER t1"), 5_000, "REGISTER"), "OK");
        const tombstones = async (): Promise<boolean[]> => {
          const { status, body } = await get(daemon.httpPort, "/nodes");
          assert.equal(status, 200, body);
          const nodes = JSON.parse(body) as { producers: { tombstones: boolean[] }[] };
          assert.equal(nodes.producers.length, 1, body);
          return nodes.producers[0].tombstones;
        };
        assert.deepEqual(await tombstones(), [false]);
        const started = performance.now();
        const res = await withTimeout(
          fetch(`http://127.0.0.1:${daemon.httpPort}/topic/tombstone?topic=t1&node=127.0.0.1:2`, {
            method: "POST",
          }),
          5_000,
          "POST /topic/tombstone",
        );
        assert.equal(res.status, 200, await res.text());
        assert.deepEqual(await tombstones(), [true]);
        while ((await tombstones())[0]) {
          assert.ok(performance.now() - started < 10_000, "tombstone did not lift within 10 s");
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        // Allow for the two processes' clocks ticking slightly apart.
        assert.ok(performance.now() - started >= 900, "tombstone lifted before 1000 ms");
      } finally {
        client.close();
      }

      const stopped = await daemon.stop("SIGTERM");
      assert.equal(stopped.code, 0, stopped.lines.join("\n"));
      for (const line of stopped.lines) assert.match(line, logLine("[A-Z]+", ".*", "[cfg] "));
    });
  },
);

Deno.test("config file: an unknown key is logged in one WARNING line naming it", async () => {
  await withConfigFile('bogus_key = true\ntcp_address = "127.0.0.1:0"\n', async (path) => {
    await using daemon = await spawnDaemon([`--config=${path}`, "--http-address=127.0.0.1:0"]);
    const stopped = await daemon.stop("SIGTERM");
    assert.equal(stopped.code, 0, stopped.lines.join("\n"));
    const warnings = stopped.lines.filter((line) => line.includes(" WARNING: "));
    assert.equal(warnings.length, 1, stopped.lines.join("\n"));
    assert.match(
      warnings[0],
      logLine("WARNING", `.*${escapeRegExp(path)}.*\\bbogus_key\\b.*`),
    );
    assert.ok(!warnings[0].includes("tcp_address"), warnings[0]);
  });
});

async function assertFatal(args: string[], message: string): Promise<void> {
  const run = await runCli(args);
  assert.equal(run.code, 1, run.stderr);
  assert.equal(run.stdout, "");
  const lines = stderrLines(run.stderr);
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0], logLine("FATAL", message));
}

Deno.test("config file: a file that cannot be read is fatal, exit 1", async () => {
  const missing = `/nonexistent-${crypto.randomUUID()}/nsqlookupd.toml`;
  const path = escapeRegExp(missing);
  await assertFatal(
    [...LOOPBACK, `--config=${missing}`],
    `failed to load config file ${path} - open ${path}: no such file or directory`,
  );
  const dir = escapeRegExp(decodeURIComponent(new URL("..", import.meta.url).pathname));
  await assertFatal(
    [...LOOPBACK, `--config=${decodeURIComponent(new URL("..", import.meta.url).pathname)}`],
    `failed to load config file ${dir} - read ${dir}: is a directory`,
  );
});

Deno.test("config file: invalid TOML is fatal, exit 1", async () => {
  await withConfigFile('tcp_address = "127.0.0.1:0\nlog_level = \n', async (path) => {
    await assertFatal(
      [...LOOPBACK, `--config=${path}`],
      `failed to load config file ${escapeRegExp(path)} - toml: line \\d+, column \\d+: .+`,
    );
  });
});

Deno.test("config file: an invalid log_level is fatal, exit 1", async () => {
  await withConfigFile('log_level = "bogus"\n', async (path) => {
    await assertFatal([...LOOPBACK, `--config=${path}`], "failed parsing log_level bogus");
  });
});

// ---- addresses in use ----

for (const kind of ["tcp", "http"] as const) {
  Deno.test(`lifecycle: ${kind === "tcp" ? "a TCP" : "an HTTP"} address in use is fatal, exit 1`, async () => {
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const address = `127.0.0.1:${taken.addr.port}`;
      const run = await runCli([
        `--tcp-address=${kind === "tcp" ? address : "127.0.0.1:0"}`,
        `--http-address=${kind === "http" ? address : "127.0.0.1:0"}`,
      ]);
      assert.equal(run.code, 1, run.stderr);
      assert.equal(run.stdout, "");
      const fatal = stderrLines(run.stderr).filter((line) => line.includes(" FATAL: "));
      assert.equal(fatal.length, 1, run.stderr);
      assert.match(fatal[0], logLine("FATAL", `listen \\(${escapeRegExp(address)}\\) failed - .+`));
      // Nothing claims to listen on the address it could not bind.
      assert.ok(!run.stderr.includes(`listening on ${address}`), run.stderr);
    } finally {
      taken.close();
    }
  });
}

// ---- shutdown signals ----

/** Reads an HTTP/1.1 response to `GET /ping` on a raw connection left open (keep-alive). */
async function keepAlivePing(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode("GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    let text = "";
    const buffer = new Uint8Array(4096);
    await withTimeout(
      (async () => {
        while (!text.includes("\r\n\r\n") || !text.endsWith("OK")) {
          const n = await conn.read(buffer);
          if (n === null) throw new Error(`HTTP connection closed early: ${text}`);
          text += decoder.decode(buffer.subarray(0, n));
        }
      })(),
      5_000,
      "HTTP response",
    );
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.doesNotMatch(text, /^connection: close\r$/im, "the server must keep the connection");
    return conn;
  } catch (error) {
    conn.close();
    throw error;
  }
}

/** Resolves once the peer has closed `conn` (EOF or reset); fails on data. */
async function expectEof(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(1024);
  try {
    const n = await conn.read(buffer);
    assert.equal(n, null, `expected EOF, got ${decoder.decode(buffer.subarray(0, n ?? 0))}`);
  } catch (error) {
    if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
  }
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(
    `lifecycle: ${signal} closes clients, logs TCP and HTTP closing lines, and exits 0 promptly`,
    async () => {
      await using daemon = await spawnDaemon(LOOPBACK);
      const client = await TcpClient.connect(daemon.tcpPort);
      let http: Deno.TcpConn | undefined;
      try {
        await withTimeout(client.identify(VALID_IDENTIFY), 5_000, "IDENTIFY reply");
        assert.equal(await withTimeout(client.command("REGISTER t1 c1"), 5_000, "REGISTER"), "OK");
        http = await keepAlivePing(daemon.httpPort);

        const stopped = await daemon.stop(signal);
        assert.equal(stopped.code, 0, stopped.lines.join("\n"));
        assert.equal(stopped.signal, null);
        assert.ok(stopped.elapsedMs < 3_000, `took ${Math.round(stopped.elapsedMs)} ms to exit`);
        await withTimeout(client.expectClosed(), 5_000, "TCP client EOF");
        await withTimeout(expectEof(http), 5_000, "HTTP connection EOF");

        const log = stopped.lines.join("\n");
        const tcpClosing = stopped.lines.findIndex((line) =>
          logLine("INFO", `TCP: closing 127\\.0\\.0\\.1:${daemon.tcpPort}`).test(line)
        );
        const httpClosing = stopped.lines.findIndex((line) =>
          logLine("INFO", `HTTP: closing 127\\.0\\.0\\.1:${daemon.httpPort}`).test(line)
        );
        assert.ok(tcpClosing !== -1, log);
        assert.ok(httpClosing > tcpClosing, log);
        assert.ok(!/ (ERROR|FATAL): /.test(log), log);
        assert.equal(stopped.stdout, "");
      } finally {
        client.close();
        http?.close();
      }
    },
  );
}

Deno.test(
  "lifecycle: a SIGTERM sent as soon as the listening lines appear still shuts down gracefully",
  async () => {
    // A supervisor may signal the moment the daemon reports ready; the handler
    // must already be in place then (exit 143 means the signal killed it).
    for (let round = 1; round <= 10; round++) {
      await using daemon = await spawnDaemon(LOOPBACK);
      const stopped = await daemon.stop("SIGTERM");
      assert.equal(stopped.code, 0, `round ${round}:\n${stopped.lines.join("\n")}`);
      assert.ok(
        stopped.lines.some((line) => / INFO: HTTP: closing /.test(line)),
        stopped.lines.join("\n"),
      );
    }
  },
);
