import assert from "node:assert/strict";
import {
  createFlags,
  loadTomlParser,
  parseLogFormat,
  resolveCommandLine,
  usageText,
} from "../../src/config.ts";
import type { CliEnv, CliResult } from "../../src/config.ts";
import { defaultOptions } from "../../src/options.ts";
import type { Options } from "../../src/options.ts";
import { NSQ_VERSION, PRODUCT_VERSION, versionLine } from "../../src/version.ts";

// resolveCommandLine reads config files with the parser main.ts loads first.
await loadTomlParser();

const HOST = "testhost";

const USAGE = "Usage of nsqlookupd:\n" +
  "  -admin-networks value\n" +
  "    \tCIDR[,CIDR...] allowed to use the mutating routes and /debug (nsqadmin), and to read " +
  "without a secret under --auth-http-address (IPv4 or IPv6; may be given multiple times)\n" +
  "  -auth-http-address value\n" +
  "    \t<addr>:<port> or a full url to query auth server (may be given multiple times)\n" +
  "  -broadcast-address string\n" +
  '    \taddress of this lookupd node, (default to the OS hostname) (default "testhost")\n' +
  "  -config string\n" +
  "    \tpath to config file\n" +
  "  -http-address string\n" +
  '    \t<addr>:<port> to listen on for HTTP clients (default "0.0.0.0:4161")\n' +
  "  -http-client-request-timeout duration\n" +
  "    \ttimeout for a query to an auth server (default 5s)\n" +
  "  -https-address string\n" +
  "    \t<addr>:<port> to listen on for HTTPS clients (with --tls-cert and --tls-key) " +
  '(default "0.0.0.0:4162")\n' +
  "  -inactive-producer-timeout duration\n" +
  "    \tduration of time a producer will remain in the active list since its last ping " +
  "(default 5m0s)\n" +
  "  -legacy-http-api\n" +
  "    \tserve the NSQ 0.x HTTP API (wrapped responses, GET on mutating routes, old route names) " +
  "to clients that do not ask for v1\n" +
  "  -log-format value\n" +
  "    \tlog line format: text or json (default text)\n" +
  "  -log-level value\n" +
  "    \tset log verbosity: debug, info, warn, error, or fatal (default INFO)\n" +
  "  -log-prefix string\n" +
  '    \tlog message prefix (default "[nsqlookupd] ")\n' +
  "  -max-identify-size int\n" +
  "    \tlargest IDENTIFY body in bytes accepted from a TCP client (default 65536)\n" +
  "  -max-share-per-host int\n" +
  "    \tpercent of each connection cap (TCP, HTTP) one remote host may hold (default 25)\n" +
  "  -producer-networks value\n" +
  "    \tCIDR[,CIDR...] allowed to connect over TCP to register (nsqd), and to read without a " +
  "secret under --auth-http-address (IPv4 or IPv6; may be given multiple times)\n" +
  "  -tcp-address string\n" +
  '    \t<addr>:<port> to listen on for TCP clients (default "0.0.0.0:4160")\n' +
  "  -tls-cert string\n" +
  "    \tpath to certificate file\n" +
  "  -tls-key string\n" +
  "    \tpath to key file\n" +
  "  -tls-min-version value\n" +
  "    \tminimum SSL/TLS version acceptable ('ssl3.0', 'tls1.0', 'tls1.1', 'tls1.2' or 'tls1.3'; " +
  "TLS older than 1.2 is never accepted) (default tls1.2)\n" +
  "  -tombstone-lifetime duration\n" +
  "    \tduration of time a producer will remain tombstoned if registration remains " +
  "(default 45s)\n" +
  "  -verbose\n" +
  "    \t[deprecated] has no effect, use --log-level\n" +
  "  -version\n" +
  "    \tprint version string\n";

const TLS_FILES = { "/cert.pem": "CERT PEM", "/key.pem": "KEY PEM" };

/** An environment whose file system is `files`; records which paths were read. */
function env(files: Record<string, string> = {}): CliEnv & { reads: string[] } {
  const reads: string[] = [];
  return {
    hostname: HOST,
    reads,
    readTextFile(path: string): string {
      reads.push(path);
      if (!Object.hasOwn(files, path)) {
        throw new Error(`No such file or directory (os error 2): readfile '${path}'\nsecond line`);
      }
      return files[path];
    },
  };
}

function run(args: string[], files: Record<string, string> = {}): CliResult {
  return resolveCommandLine(args, env(files));
}

/** The options of a "run" result; fails the test otherwise. */
function options(args: string[], files: Record<string, string> = {}): Options {
  const result = run(args, files);
  assert.equal(result.kind, "run", JSON.stringify(result));
  return result.kind === "run" ? result.options : defaultOptions(HOST);
}

/** Options from a config file at /c.toml, plus the given flags. */
function fromFile(toml: string, args: string[] = []): CliResult {
  return run(["--config", "/c.toml", ...args], { "/c.toml": toml });
}

function fileOptions(toml: string, args: string[] = []): Options {
  const result = fromFile(toml, args);
  assert.equal(result.kind, "run", JSON.stringify(result));
  return result.kind === "run" ? result.options : defaultOptions(HOST);
}

function flagError(message: string): CliResult {
  return { kind: "exit", code: 2, stderr: `${message}\n${USAGE}` };
}

function fatal(message: string): CliResult {
  return { kind: "exit", code: 1, fatal: message, log: { format: "text" } };
}

Deno.test("config: no arguments gives the defaults and no warnings", () => {
  assert.deepEqual(run([]), { kind: "run", options: defaultOptions(HOST), warnings: [] });
});

Deno.test("config: usage text is exactly the reference's layout plus our flags", () => {
  assert.equal(usageText(HOST), USAGE);
});

Deno.test("config: usage omits the broadcast default when the hostname is empty", () => {
  assert.ok(usageText("").includes("(default to the OS hostname)\n  -config string\n"));
});

Deno.test("config: -h, -help and --help print usage to stderr and exit 0", () => {
  for (const arg of ["-h", "-help", "--help", "--h"]) {
    assert.deepEqual(run(["--tcp-address=x", arg]), { kind: "exit", code: 0, stderr: USAGE });
  }
});

Deno.test("config: --version prints the version line to stdout and exits 0", () => {
  const want = `nsqlookupd v1.3.0 (nsqlookupd-deno v${PRODUCT_VERSION}, deno ${Deno.version.deno})`;
  assert.equal(versionLine(), want);
  assert.equal(NSQ_VERSION, "1.3.0");
  for (const args of [["--version"], ["-version"], ["-version=true"], ["--version", "extra"]]) {
    assert.deepEqual(run(args), { kind: "exit", code: 0, stdout: want + "\n" });
  }
  assert.equal(run(["--version=false"]).kind, "run");
});

Deno.test("config: --version wins over a broken config file, which is never read", () => {
  const e = env();
  assert.equal(resolveCommandLine(["--config=/missing.toml", "--version"], e).kind, "exit");
  assert.deepEqual(e.reads, []);
});

Deno.test("config: flag errors exit 2 with Go's wording and the usage", () => {
  const cases: ReadonlyArray<readonly [string[], string]> = [
    [["--nope"], "flag provided but not defined: -nope"],
    [["-tcp-address"], "flag needs an argument: -tcp-address"],
    [["--tombstone-lifetime=abc"], 'invalid value "abc" for flag -tombstone-lifetime: parse error'],
    [
      ["--inactive-producer-timeout", "300"],
      'invalid value "300" for flag -inactive-producer-timeout: parse error',
    ],
    [
      ["--log-level=bogus"],
      "invalid value \"bogus\" for flag -log-level: invalid log level 'bogus' " +
      "(debug, info, warn, error, fatal)",
    ],
    [["--verbose=maybe"], 'invalid boolean value "maybe" for -verbose: parse error'],
    [["---x"], "bad flag syntax: ---x"],
    [["-=x"], "bad flag syntax: -=x"],
    [["--=x"], "bad flag syntax: --=x"],
    [
      ["--log-format=x"],
      "invalid value \"x\" for flag -log-format: invalid log format 'x' (text, json)",
    ],
    [
      ["--max-identify-size=0"],
      'invalid value "0" for flag -max-identify-size: must be a positive number of bytes',
    ],
    [
      ["--max-identify-size=-5"],
      'invalid value "-5" for flag -max-identify-size: must be a positive number of bytes',
    ],
    [["--max-identify-size=1k"], 'invalid value "1k" for flag -max-identify-size: parse error'],
    [
      ["--max-identify-size=9223372036854775808"],
      'invalid value "9223372036854775808" for flag -max-identify-size: value out of range',
    ],
    [
      ["--max-identify-size=9007199254740993"],
      'invalid value "9007199254740993" for flag -max-identify-size: value out of range',
    ],
    [["--legacy-http-api=yes"], 'invalid boolean value "yes" for -legacy-http-api: parse error'],
  ];
  for (const [args, message] of cases) {
    assert.deepEqual(run(args), flagError(message), args.join(" "));
  }
});

Deno.test("config: every flag sets its option", () => {
  const got = options([
    "--tcp-address=127.0.0.1:0",
    "-http-address",
    "[::]:0",
    "--broadcast-address=node1",
    "--inactive-producer-timeout=1m30s",
    "--tombstone-lifetime",
    "250ms",
    "--log-level=debug",
    "--log-prefix=",
    "--log-format=json",
    "--max-identify-size=0x100",
    "--max-share-per-host=100",
    "--legacy-http-api",
    "--verbose",
    "--producer-networks=10.0.0.0/8",
    "--admin-networks=::1",
    "--auth-http-address=auth:4181",
    "--http-client-request-timeout=2s",
    "--https-address=127.0.0.1:0",
    "--tls-cert=/cert.pem",
    "--tls-key=/key.pem",
    "--tls-min-version=TLS1.1",
  ], TLS_FILES);
  assert.deepEqual(got, {
    tcpAddress: "127.0.0.1:0",
    httpAddress: "[::]:0",
    broadcastAddress: "node1",
    inactiveProducerTimeoutMs: 90_000,
    tombstoneLifetimeMs: 250,
    logLevel: "debug",
    logPrefix: "",
    logFormat: "json",
    maxIdentifySize: 256,
    maxSharePerHost: 100,
    legacyHttpApi: true,
    producerNetworks: [{ bytes: new Uint8Array([10, 0, 0, 0]), prefix: 8 }],
    adminNetworks: [{ bytes: new Uint8Array([...new Array(15).fill(0), 1]), prefix: 128 }],
    authHttpAddresses: ["auth:4181"],
    httpClientRequestTimeoutMs: 2_000,
    httpsAddress: "127.0.0.1:0",
    tlsCert: "/cert.pem",
    tlsKey: "/key.pem",
    tlsMinVersion: "tls1.1",
    tls: { cert: "CERT PEM", key: "KEY PEM" },
  });
});

Deno.test("config: log level and format flags accept any case", () => {
  assert.equal(options(["--log-level=WARN"]).logLevel, "warn");
  assert.equal(options(["--log-level", "Error"]).logLevel, "error");
  assert.equal(options(["-log-level=fAtAl"]).logLevel, "fatal");
  assert.equal(options(["--log-format=JSON"]).logFormat, "json");
  assert.equal(parseLogFormat("Text"), "text");
  assert.equal(parseLogFormat("yaml"), undefined);
});

Deno.test("config: durations keep sub-millisecond precision", () => {
  assert.equal(options(["--tombstone-lifetime=1\u00b5s"]).tombstoneLifetimeMs, 0.001);
  assert.equal(options(["--tombstone-lifetime=1.5s"]).tombstoneLifetimeMs, 1500);
  assert.equal(options(["--inactive-producer-timeout=1h"]).inactiveProducerTimeoutMs, 3_600_000);
  assert.equal(options(["--inactive-producer-timeout=0"]).inactiveProducerTimeoutMs, 0);
});

Deno.test("config: repeated flags, last one wins", () => {
  const got = options([
    "--tcp-address=a:1",
    "-tcp-address",
    "b:2",
    "--legacy-http-api",
    "-legacy-http-api=f",
  ]);
  assert.equal(got.tcpAddress, "b:2");
  assert.equal(got.legacyHttpApi, false);
});

Deno.test("config: bool flags in every Go spelling", () => {
  for (const v of ["1", "t", "T", "true", "TRUE", "True"]) {
    assert.equal(options([`--legacy-http-api=${v}`]).legacyHttpApi, true, v);
  }
  for (const v of ["0", "f", "F", "false", "FALSE", "False"]) {
    assert.equal(options([`--legacy-http-api=${v}`]).legacyHttpApi, false, v);
  }
});

Deno.test("config: a bool flag does not consume the next argument", () => {
  // "false" ends the flags, so the later flag is ignored.
  const got = options(["--legacy-http-api", "false", "--tcp-address=x:1"]);
  assert.equal(got.legacyHttpApi, true);
  assert.equal(got.tcpAddress, "0.0.0.0:4160");
});

Deno.test("config: parsing stops at the first non-flag argument; leftovers are ignored", () => {
  const got = options(["--tcp-address=a:1", "extra", "--http-address=b:2", "--nope"]);
  assert.equal(got.tcpAddress, "a:1");
  assert.equal(got.httpAddress, "0.0.0.0:4161");
});

Deno.test("config: -- ends the flags", () => {
  const got = options(["--tcp-address=a:1", "--", "--http-address=b:2"]);
  assert.equal(got.tcpAddress, "a:1");
  assert.equal(got.httpAddress, "0.0.0.0:4161");
});

Deno.test("config: --verbose is accepted and has no effect", () => {
  assert.deepEqual(options(["--verbose"]), defaultOptions(HOST));
  assert.deepEqual(options(["--verbose=false"]), defaultOptions(HOST));
});

Deno.test("config: an empty --config reads no file", () => {
  const e = env();
  assert.equal(resolveCommandLine(["--config="], e).kind, "run");
  assert.deepEqual(e.reads, []);
});

Deno.test("config: every key of the file sets its option", () => {
  const toml = [
    'tcp_address = "127.0.0.1:14160"',
    'http_address = "127.0.0.1:14161"',
    'broadcast_address = "10.0.0.1"',
    'inactive_producer_timeout = "300s"',
    'tombstone_lifetime = "1h30m"',
    'log_level = "warn"',
    'log_prefix = "[lookup] "',
    'log_format = "json"',
    "max_identify_size = 1024",
    "max_share_per_host = 10",
    "legacy_http_api = true",
    'producer_networks = ["10.0.0.0/8", "192.168.0.0/16,::1"]',
    'admin_networks = "127.0.0.1"',
    'auth_http_address = ["auth1:4181", "https://auth2/nsq/auth"]',
    'http_client_request_timeout = "750ms"',
    'https_address = "127.0.0.1:14162"',
    'tls_cert = "/cert.pem"',
    'tls_key = "/key.pem"',
    'tls_min_version = "tls1.2"',
  ].join("\n");
  assert.deepEqual(run(["--config", "/c.toml"], { "/c.toml": toml, ...TLS_FILES }), {
    kind: "run",
    warnings: [],
    options: {
      tcpAddress: "127.0.0.1:14160",
      httpAddress: "127.0.0.1:14161",
      broadcastAddress: "10.0.0.1",
      inactiveProducerTimeoutMs: 300_000,
      tombstoneLifetimeMs: 5_400_000,
      logLevel: "warn",
      logPrefix: "[lookup] ",
      logFormat: "json",
      maxIdentifySize: 1024,
      maxSharePerHost: 10,
      legacyHttpApi: true,
      producerNetworks: [
        { bytes: new Uint8Array([10, 0, 0, 0]), prefix: 8 },
        { bytes: new Uint8Array([192, 168, 0, 0]), prefix: 16 },
        { bytes: new Uint8Array([...new Array(15).fill(0), 1]), prefix: 128 },
      ],
      adminNetworks: [{ bytes: new Uint8Array([127, 0, 0, 1]), prefix: 32 }],
      authHttpAddresses: ["auth1:4181", "https://auth2/nsq/auth"],
      httpClientRequestTimeoutMs: 750,
      httpsAddress: "127.0.0.1:14162",
      tlsCert: "/cert.pem",
      tlsKey: "/key.pem",
      tlsMinVersion: "tls1.2",
      tls: { cert: "CERT PEM", key: "KEY PEM" },
    },
  });
});

Deno.test("config: precedence is flag, then file, then default", () => {
  const toml = 'tcp_address = "file:1"\nhttp_address = "file:2"\ntombstone_lifetime = "10s"';
  const got = fileOptions(toml, ["--tcp-address=flag:1"]);
  assert.equal(got.tcpAddress, "flag:1");
  assert.equal(got.httpAddress, "file:2");
  assert.equal(got.tombstoneLifetimeMs, 10_000);
  assert.equal(got.inactiveProducerTimeoutMs, 300_000);
  assert.equal(got.broadcastAddress, HOST);
});

Deno.test("config: a flag given with its default value still beats the file", () => {
  const toml = 'tcp_address = "file:1"\nlog_level = "debug"\ntombstone_lifetime = "10s"';
  const got = fileOptions(toml, [
    "--tcp-address=0.0.0.0:4160",
    "--log-level=info",
    "--tombstone-lifetime=45s",
  ]);
  assert.equal(got.tcpAddress, "0.0.0.0:4160");
  assert.equal(got.logLevel, "info");
  assert.equal(got.tombstoneLifetimeMs, 45_000);
});

Deno.test("config: --config may come after other flags, and its file is read once", () => {
  const e = env({ "/c.toml": 'http_address = "file:2"' });
  const result = resolveCommandLine(["--tcp-address=a:1", "-config", "/c.toml"], e);
  assert.equal(result.kind === "run" && result.options.httpAddress, "file:2");
  assert.deepEqual(e.reads, ["/c.toml"]);
});

Deno.test("config: a TOML integer duration means milliseconds", () => {
  const got = fileOptions("inactive_producer_timeout = 1500\ntombstone_lifetime = 0");
  assert.equal(got.inactiveProducerTimeoutMs, 1500);
  assert.equal(got.tombstoneLifetimeMs, 0);
  assert.equal(fileOptions("tombstone_lifetime = -1_000").tombstoneLifetimeMs, -1000);
});

Deno.test("config: duration strings in the file use Go's syntax", () => {
  assert.equal(fileOptions('tombstone_lifetime = "1.5h"').tombstoneLifetimeMs, 5_400_000);
  assert.equal(fileOptions('tombstone_lifetime = "2.5ms"').tombstoneLifetimeMs, 2.5);
  assert.equal(fileOptions('tombstone_lifetime = "0"').tombstoneLifetimeMs, 0);
});

Deno.test("config: a duration string without a unit is fatal", () => {
  assert.deepEqual(
    fromFile('inactive_producer_timeout = "300"'),
    fatal(
      "failed to load config file /c.toml - invalid value for inactive_producer_timeout: " +
        '"300" is not a duration (a number with a unit such as "300s" or "5m", ' +
        "or an integer of milliseconds)",
    ),
  );
});

Deno.test("config: a duration of the wrong TOML type is fatal", () => {
  const prefix = "failed to load config file /c.toml - invalid value for tombstone_lifetime: ";
  const want = "expected a duration string or an integer of milliseconds, got ";
  assert.deepEqual(fromFile("tombstone_lifetime = 1.5"), fatal(prefix + want + "float"));
  assert.deepEqual(fromFile("tombstone_lifetime = true"), fatal(prefix + want + "boolean"));
  assert.deepEqual(fromFile('tombstone_lifetime = ["1s"]'), fatal(prefix + want + "array"));
  assert.deepEqual(fromFile("tombstone_lifetime = 1979-05-27"), fatal(prefix + want + "date-time"));
  assert.deepEqual(fromFile("[tombstone_lifetime]\na = 1"), fatal(prefix + want + "table"));
});

Deno.test("config: an integer duration beyond int64 nanoseconds is fatal", () => {
  assert.deepEqual(
    fromFile("tombstone_lifetime = 9223372036855"),
    fatal(
      "failed to load config file /c.toml - invalid value for tombstone_lifetime: " +
        "9223372036855 milliseconds is out of range",
    ),
  );
  assert.equal(
    fileOptions("tombstone_lifetime = 9223372036854").tombstoneLifetimeMs,
    9223372036854,
  );
});

Deno.test("config: strings must be strings", () => {
  assert.deepEqual(
    fromFile("tcp_address = 4160"),
    fatal(
      "failed to load config file /c.toml - invalid value for tcp_address: expected a string, got integer",
    ),
  );
  assert.deepEqual(
    fromFile("log_prefix = false"),
    fatal(
      "failed to load config file /c.toml - invalid value for log_prefix: expected a string, got boolean",
    ),
  );
});

Deno.test("config: bools are TOML bools or Go ParseBool strings", () => {
  assert.equal(fileOptions("legacy_http_api = true").legacyHttpApi, true);
  assert.equal(fileOptions('legacy_http_api = "T"').legacyHttpApi, true);
  assert.equal(fileOptions('legacy_http_api = "0"').legacyHttpApi, false);
  assert.deepEqual(
    fromFile('legacy_http_api = "yes"'),
    fatal(
      'failed to load config file /c.toml - invalid value for legacy_http_api: "yes" is not a boolean',
    ),
  );
  assert.deepEqual(
    fromFile("legacy_http_api = 1"),
    fatal(
      "failed to load config file /c.toml - invalid value for legacy_http_api: expected a boolean, got integer",
    ),
  );
});

Deno.test("config: max_share_per_host is a percentage from 1 to 100", () => {
  for (const bad of ["0", "101", "-5"]) {
    const cli = run([`--max-share-per-host=${bad}`]);
    assert.equal(cli.kind, "exit");
    assert.match(
      cli.kind === "exit" ? cli.stderr ?? "" : "",
      new RegExp(`invalid value "${bad}" for flag -max-share-per-host: must be a percentage`),
    );
  }
  const file = run(["--config", "/c.toml"], { "/c.toml": "max_share_per_host = 0" });
  assert.equal(file.kind === "exit" && file.code, 1);
});

Deno.test("config: max_identify_size must be a positive integer", () => {
  assert.equal(fileOptions("max_identify_size = 0x400").maxIdentifySize, 1024);
  const prefix = "failed to load config file /c.toml - invalid value for max_identify_size: ";
  assert.deepEqual(
    fromFile("max_identify_size = 0"),
    fatal(prefix + "must be a positive number of bytes"),
  );
  assert.deepEqual(
    fromFile("max_identify_size = -1"),
    fatal(prefix + "must be a positive number of bytes"),
  );
  assert.deepEqual(
    fromFile('max_identify_size = "1024"'),
    fatal(prefix + "expected an integer, got string"),
  );
  assert.deepEqual(
    fromFile("max_identify_size = 1024.0"),
    fatal(prefix + "expected an integer, got float"),
  );
  assert.deepEqual(
    fromFile("max_identify_size = 9223372036854775807"),
    fatal(prefix + "value out of range"),
  );
});

Deno.test("config: log_format in the file", () => {
  assert.equal(fileOptions('log_format = "JSON"').logFormat, "json");
  assert.deepEqual(
    fromFile('log_format = "xml"'),
    fatal(
      "failed to load config file /c.toml - invalid value for log_format: invalid log format 'xml' (text, json)",
    ),
  );
});

Deno.test("config: log_level in the file accepts any case", () => {
  assert.equal(fileOptions('log_level = "DEBUG"').logLevel, "debug");
  assert.equal(fileOptions('log_level = "Warn"').logLevel, "warn");
  assert.equal(fileOptions('log_level = "error"', ["--log-level=fatal"]).logLevel, "fatal");
});

Deno.test("config: an invalid log_level in the file is fatal", () => {
  assert.deepEqual(fromFile('log_level = "bogus"'), fatal("failed parsing log_level bogus"));
  assert.deepEqual(fromFile("log_level = 5"), fatal("failed parsing log_level 5"));
  assert.deepEqual(fromFile("log_level = true"), fatal("failed parsing log_level true"));
  assert.deepEqual(fromFile('log_level = ["a", "b"]'), fatal("failed parsing log_level [a b]"));
});

Deno.test("config: an invalid log_level in the file is fatal even with --log-level", () => {
  // The reference validates the file's log_level before resolving flags.
  assert.deepEqual(
    fromFile('log_level = "bogus"', ["--log-level=info"]),
    fatal("failed parsing log_level bogus"),
  );
});

Deno.test("config: an unused bad file value is not an error when the flag overrides it", () => {
  const got = fileOptions('tombstone_lifetime = "300"', ["--tombstone-lifetime=1s"]);
  assert.equal(got.tombstoneLifetimeMs, 1000);
});

Deno.test("config: unknown keys produce one warning naming them all", () => {
  const toml = 'foo = 1\ntcp_address = "a:1"\ntcp-address = "b:2"\n[bar]\nx = 1';
  assert.deepEqual(fromFile(toml), {
    kind: "run",
    options: { ...defaultOptions(HOST), tcpAddress: "a:1" },
    warnings: ["config file /c.toml: ignoring unknown keys: foo, tcp-address, bar"],
  });
});

Deno.test("config: config, version and verbose are never read from the file", () => {
  const e = env({
    "/c.toml": 'config = "/other.toml"\nversion = true\nverbose = true',
    "/other.toml": 'tcp_address = "other:1"',
  });
  assert.deepEqual(resolveCommandLine(["--config=/c.toml"], e), {
    kind: "run",
    options: defaultOptions(HOST),
    warnings: [],
  });
  assert.deepEqual(e.reads, ["/c.toml"]);
});

Deno.test("config: an unreadable file is fatal with a one-line reason", () => {
  assert.deepEqual(
    run(["--config=/missing.toml"]),
    fatal(
      "failed to load config file /missing.toml - No such file or directory (os error 2): " +
        "readfile '/missing.toml'",
    ),
  );
});

Deno.test("config: an unparsable file is fatal with a one-line reason", () => {
  assert.deepEqual(
    fromFile('tcp_address = "a:1"\nhttp_address = '),
    fatal("failed to load config file /c.toml - toml: line 2, column 16: invalid value"),
  );
  assert.deepEqual(
    fromFile('tcp_address = "a"\ntcp_address = "b"'),
    fatal(
      "failed to load config file /c.toml - toml: line 2, column 1: " +
        "trying to redefine an already defined table or value",
    ),
  );
});

Deno.test("config: an empty file changes nothing", () => {
  assert.deepEqual(fromFile(""), { kind: "run", options: defaultOptions(HOST), warnings: [] });
  assert.deepEqual(fromFile("# only a comment\n"), {
    kind: "run",
    options: defaultOptions(HOST),
    warnings: [],
  });
});

Deno.test("config: flag errors come before the config file is read", () => {
  const e = env();
  const result = resolveCommandLine(["--config=/missing.toml", "--nope"], e);
  assert.equal(result.kind === "exit" && result.code, 2);
  assert.deepEqual(e.reads, []);
});

Deno.test("config: createFlags defaults follow defaultOptions", () => {
  const flags = createFlags("h1");
  assert.equal(flags.broadcastAddress.value, "h1");
  assert.equal(flags.inactiveProducerTimeout.value, 300_000_000_000n);
  assert.equal(flags.tombstoneLifetime.value, 45_000_000_000n);
  assert.equal(flags.maxIdentifySize.value, 65536);
  assert.equal(flags.logLevel.value, "info");
  assert.equal(flags.logFormat.value, "text");
});

Deno.test("a fatal config error carries the command line's log format", () => {
  const result = resolveCommandLine(["--log-format=json", "--config=/x.toml"], {
    hostname: "h",
    readTextFile: () => 'log_level = "bogus"',
  });
  assert.equal(result.kind, "exit");
  if (result.kind !== "exit") return;
  assert.equal(result.code, 1);
  assert.equal(result.fatal, "failed parsing log_level bogus");
  assert.deepEqual(result.log, { format: "json" });
});

// ---- Access and TLS (issue 15) ----

Deno.test("config: without the access flags nothing is restricted and HTTPS is off", () => {
  const got = options([]);
  assert.equal(got.producerNetworks, undefined);
  assert.equal(got.adminNetworks, undefined);
  assert.deepEqual(got.authHttpAddresses, []);
  assert.equal(got.tls, undefined);
});

Deno.test("config: network flags repeat and take comma lists, IPv4 and IPv6", () => {
  const got = options([
    "--producer-networks=10.0.0.0/8,fd00::/8",
    "--producer-networks",
    "127.0.0.1",
  ]);
  assert.deepEqual(got.producerNetworks?.map((n) => n.prefix), [8, 8, 32]);
  assert.equal(got.adminNetworks, undefined);
});

Deno.test("config: a bad network or auth address is a flag error (exit 2) in Go's wording", () => {
  assert.deepEqual(
    run(["--admin-networks=10.0.0.0/33"]),
    flagError(
      'invalid value "10.0.0.0/33" for flag -admin-networks: invalid CIDR address: 10.0.0.0/33',
    ),
  );
  assert.deepEqual(
    run(["--producer-networks="]),
    flagError('invalid value "" for flag -producer-networks: empty network in ""'),
  );
  assert.deepEqual(
    run(["--auth-http-address=auth"]),
    flagError(
      'invalid value "auth" for flag -auth-http-address: invalid auth server address - ' +
        "address auth: missing port in address",
    ),
  );
  assert.deepEqual(
    run(["--auth-http-address=ftp://auth/x"]),
    flagError(
      'invalid value "ftp://auth/x" for flag -auth-http-address: auth server URL ' +
        '"ftp://auth/x" is not http:// or https://',
    ),
  );
  assert.deepEqual(
    run(["--tls-min-version=tls9"]),
    flagError('invalid value "tls9" for flag -tls-min-version: unknown tlsVersionOption "tls9"'),
  );
});

Deno.test("config: auth servers repeat, as nsqd's flag, in the order given", () => {
  const got = options(["--auth-http-address=a:1", "--auth-http-address=http://b:2/auth"]);
  assert.deepEqual(got.authHttpAddresses, ["a:1", "http://b:2/auth"]);
});

Deno.test("config: nsqd's key auth_http_addresses is accepted, but not beside auth_http_address", () => {
  assert.deepEqual(
    fileOptions('auth_http_addresses = ["a:1", "b:2"]').authHttpAddresses,
    ["a:1", "b:2"],
  );
  assert.deepEqual(fileOptions('auth_http_address = "a:1"').authHttpAddresses, ["a:1"]);
  assert.deepEqual(
    fromFile('auth_http_address = "a:1"\nauth_http_addresses = "b:2"'),
    fatal(
      "failed to load config file /c.toml - auth_http_address and auth_http_addresses both given",
    ),
  );
});

Deno.test("config: network keys take a TOML array or a comma string; other types are fatal", () => {
  assert.equal(fileOptions('admin_networks = "10.0.0.0/8, ::1"').adminNetworks?.length, 2);
  assert.equal(fileOptions("admin_networks = []").adminNetworks?.length, 0);
  assert.deepEqual(
    fromFile("producer_networks = 10"),
    fatal(
      "failed to load config file /c.toml - invalid value for producer_networks: expected a " +
        "string or an array of strings, got integer",
    ),
  );
  assert.deepEqual(
    fromFile('producer_networks = ["10.0.0.0/8", 1]'),
    fatal(
      "failed to load config file /c.toml - invalid value for producer_networks: expected a " +
        "string or an array of strings, got array",
    ),
  );
  assert.deepEqual(
    fromFile('producer_networks = ["nope"]'),
    fatal(
      "failed to load config file /c.toml - invalid value for producer_networks: invalid CIDR " +
        "address: nope",
    ),
  );
});

Deno.test("config: network flags on the command line replace the file's networks", () => {
  const got = fileOptions('producer_networks = ["10.0.0.0/8"]', ["--producer-networks=::1"]);
  assert.deepEqual(got.producerNetworks?.map((n) => n.prefix), [128]);
});

Deno.test("config: a zero auth timeout is fatal (every query must be bounded)", () => {
  assert.deepEqual(
    run(["--http-client-request-timeout=0"]),
    fatal("--http-client-request-timeout must be above zero"),
  );
});

Deno.test("config: TLS is on with both --tls-cert and --tls-key, whose files are read", () => {
  const got = options(["--tls-cert=/cert.pem", "--tls-key=/key.pem"], TLS_FILES);
  assert.deepEqual(got.tls, { cert: "CERT PEM", key: "KEY PEM" });
  assert.equal(got.httpsAddress, "0.0.0.0:4162");
});

Deno.test("config: TLS settings that cannot work stop start-up with one fatal message", () => {
  assert.deepEqual(
    run(["--tls-cert=/cert.pem"], TLS_FILES),
    fatal("--tls-cert and --tls-key must be given together"),
  );
  assert.deepEqual(
    run(["--https-address=127.0.0.1:0"]),
    fatal("--https-address needs --tls-cert and --tls-key"),
  );
  assert.deepEqual(
    run(["--tls-cert=/missing.pem", "--tls-key=/key.pem"], TLS_FILES),
    fatal(
      "failed to read --tls-cert /missing.pem - No such file or directory (os error 2): " +
        "readfile '/missing.pem'",
    ),
  );
  assert.deepEqual(
    run(["--tls-cert=/cert.pem", "--tls-key=/key.pem", "--tls-min-version=tls1.3"], TLS_FILES),
    fatal(
      "--tls-min-version=tls1.3 is not supported: Deno's TLS cannot refuse TLS 1.2 (it never " +
        "accepts anything older than TLS 1.2, so tls1.2 or lower is enforced)",
    ),
  );
});

Deno.test("config: --tls-min-version without TLS, and an empty one, change nothing", () => {
  assert.equal(options(["--tls-min-version=tls1.3"]).tls, undefined);
  assert.equal(options(["--tls-min-version=tls1.0", "--tls-min-version="]).tlsMinVersion, "tls1.0");
});

Deno.test("config: the new keys are known keys (no unknown-key warning)", () => {
  const result = fromFile(
    'admin_networks = "::1"\nauth_http_addresses = "a:1"\ntls_min_version = "tls1.2"',
  );
  assert.ok(result.kind === "run" && result.warnings.length === 0, JSON.stringify(result));
});
