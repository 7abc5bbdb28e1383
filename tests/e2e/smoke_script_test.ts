// scripts/smoke.sh, run as a user's CI would: against `deno run main.ts`
// (the command `deno task smoke` uses), against a daemon already running,
// and against ports where nothing (or something wrong) answers.

import assert from "node:assert/strict";
import {
  freePort,
  MAIN_PATH,
  outputWithin,
  startBreakingProxy,
  startDaemon,
} from "../support/helpers.ts";

const SMOKE = decodeURIComponent(new URL("../../scripts/smoke.sh", import.meta.url).pathname);
const REPO_ROOT = decodeURIComponent(new URL("../..", import.meta.url).pathname);
const DENO_RUN = [
  Deno.execPath(),
  "run",
  "--allow-net",
  "--allow-read",
  "--allow-sys=hostname",
  MAIN_PATH,
];

interface SmokeRun {
  code: number;
  stdout: string;
  stderr: string;
}

async function smoke(args: string[], env: Record<string, string> = {}): Promise<SmokeRun> {
  const child = new Deno.Command("bash", {
    args: [SMOKE, ...args],
    cwd: REPO_ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const { code, stdout, stderr } = await outputWithin(child, 60_000, "smoke.sh to finish");
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

/** The check lines, in order, for a run that starts the daemon itself. */
const STARTED_CHECKS = [
  /^smoke: starting: .* --tcp-address=127\.0\.0\.1:0 --http-address=127\.0\.0\.1:0 --broadcast-address=127\.0\.0\.1$/,
  /^smoke: ok: daemon started \(pid \d+\): TCP 127\.0\.0\.1:(\d+), HTTP 127\.0\.0\.1:(\d+)$/,
  /^smoke: ok: GET \/ping -> 200 OK$/,
  /^smoke: ok: GET \/info -> \{"version":"1\.3\.0"\}$/,
  /^smoke: ok: TCP IDENTIFY -> \{"broadcast_address":"127\.0\.0\.1",.*"version":"1\.3\.0"\}$/,
  /^smoke: ok: TCP REGISTER smoke_topic smoke_channel -> OK$/,
  /^smoke: ok: TCP PING -> OK$/,
  /^smoke: ok: GET \/lookup\?topic=smoke_topic -> 200, X-NSQ-Content-Type: nsq; version=1\.0, producer 127\.0\.0\.1:54150, channel smoke_channel$/,
  /^smoke: ok: producer gone from \/lookup after its TCP connection closed$/,
  /^smoke: ok: SIGTERM -> exit code 0$/,
  /^smoke: passed \(9 checks\)$/,
];

function assertLines(stdout: string, patterns: RegExp[]): void {
  const lines = stdout.trimEnd().split("\n");
  assert.equal(lines.length, patterns.length, stdout);
  lines.forEach((line, i) => assert.match(line, patterns[i]));
}

Deno.test("smoke.sh: passes against `deno run main.ts` and prints each check", async () => {
  const run = await smoke(DENO_RUN);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.equal(run.stderr, "");
  assertLines(run.stdout, STARTED_CHECKS);
});

Deno.test("smoke.sh: passes with bash's /dev/tcp when curl is not used", async () => {
  const run = await smoke(DENO_RUN, { SMOKE_NO_CURL: "1" });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assertLines(run.stdout, STARTED_CHECKS);
});

Deno.test("smoke.sh: checks a daemon already running at --tcp-port/--http-port", async () => {
  await using daemon = startDaemon();
  const run = await smoke([
    "--tcp-port",
    String(daemon.tcpAddr.port),
    `--http-port=${daemon.httpAddr.port}`,
  ]);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const lines = run.stdout.trimEnd().split("\n");
  assert.equal(
    lines[0],
    `smoke: checking the daemon at TCP 127.0.0.1:${daemon.tcpAddr.port}, HTTP 127.0.0.1:${daemon.httpAddr.port}`,
  );
  assert.equal(lines.at(-1), "smoke: passed (7 checks)");
  assert.ok(!run.stdout.includes("SIGTERM"));
});

Deno.test("smoke.sh: fails with a clear message when nothing listens on the port", async () => {
  const tcp = freePort();
  const http = freePort();
  const envs: Record<string, string>[] = [{}, { SMOKE_NO_CURL: "1" }];
  for (const env of envs) {
    const run = await smoke([
      "--timeout",
      "1",
      "--tcp-port",
      String(tcp),
      "--http-port",
      String(http),
    ], env);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(
      run.stderr,
      new RegExp(
        `^smoke: FAIL: nothing answers GET /ping at http://127\\.0\\.0\\.1:${http} within 1s \\(.+\\)\n$`,
      ),
    );
    assert.ok(!run.stdout.includes("smoke: ok:"), run.stdout);
  }
});

Deno.test("smoke.sh: fails with the daemon's own error when it cannot start", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const run = await smoke(["--tcp-port", String(busy.addr.port), ...DENO_RUN]);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(
      run.stderr,
      /^smoke: FAIL: the daemon exited with code 1 before logging 'TCP: listening on' and 'HTTP: listening on'\n/,
    );
    assert.match(
      run.stderr,
      new RegExp(`FATAL: listen \\(127\\.0\\.0\\.1:${busy.addr.port}\\) failed`),
    );
  } finally {
    busy.close();
  }
});

Deno.test("smoke.sh: fails when /lookup lacks X-NSQ-Content-Type (what go-nsq needs)", async () => {
  await using daemon = startDaemon();
  await using proxy = startBreakingProxy(daemon.httpUrl, (r) => {
    r.headers.delete("x-nsq-content-type");
    return r;
  });
  const run = await smoke([
    "--tcp-port",
    String(daemon.tcpAddr.port),
    "--http-port",
    String(proxy.port),
  ]);
  assert.equal(run.code, 1, run.stdout + run.stderr);
  assert.equal(
    run.stderr,
    "smoke: FAIL: GET /lookup?topic=smoke_topic: expected header 'X-NSQ-Content-Type: nsq; version=1.0' (go-nsq needs it), got ''\n",
  );
});
