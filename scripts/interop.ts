// `deno task interop [deno test options]`: our daemon against the real NSQ
// v1.3.0 programs. Finds them in NSQ_BIN_DIR, else on PATH (one sentence and
// exit 1 if any is missing or is another version), runs the `deno test` files
// of tests/interop/ one after another, and ends with one summary line saying
// how many real-program checks (test steps) ran. Exit code: deno test's.

import { writeStderr, writeStdout } from "../src/ops/logger.ts";
import {
  findNsqPrograms,
  isExecutableFile,
  NSQ_PROGRAMS,
  NSQ_VERSION,
  type NsqPrograms,
} from "../tests/interop/programs.ts";

const ROOT = decodeURIComponent(new URL("..", import.meta.url).pathname);
const decoder = new TextDecoder();

/** The summary line of `deno test` (colours removed) as check counts. */
export function parseSummary(
  line: string,
): { passed: number; failed: number } | undefined {
  // deno-lint-ignore no-control-regex
  const plain = line.replace(/\x1b\[[0-9;]*m/g, "");
  const match =
    /^(?:ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?/
      .exec(plain);
  if (match === null) return undefined;
  // Every interop test is a scenario whose checks are its steps; a scenario that fails before
  // its first step (a program did not start) counts as one failed check.
  const failedTests = Number(match[3]);
  const failedSteps = Number(match[4] ?? 0);
  return { passed: Number(match[2] ?? 0), failed: Math.max(failedSteps, failedTests) };
}

/**
 * Each program's `-version` must name v1.3.0: the differential mode compares with that one
 * (to_nsq has no -version).
 */
async function wrongVersions(programs: NsqPrograms): Promise<string[]> {
  const wrong: string[] = [];
  for (const name of NSQ_PROGRAMS.filter((name) => name !== "to_nsq")) {
    const child = new Deno.Command(programs[name], {
      args: ["-version"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    const { stdout, stderr } = await child.output();
    clearTimeout(timer);
    const text = (decoder.decode(stdout) + decoder.decode(stderr)).trim();
    if (!new RegExp(`^${name} v${NSQ_VERSION.replaceAll(".", "\\.")}\\b`).test(text)) {
      wrong.push(`${programs[name]} says ${JSON.stringify(text.split("\n")[0])}`);
    }
  }
  return wrong;
}

async function main(): Promise<number> {
  const found = findNsqPrograms(
    { NSQ_BIN_DIR: Deno.env.get("NSQ_BIN_DIR"), PATH: Deno.env.get("PATH") },
    isExecutableFile,
  );
  if (!found.ok) {
    writeStderr(`interop: ${found.error.message}\n`);
    return 1;
  }
  const wrong = await wrongVersions(found.value);
  if (wrong.length > 0) {
    writeStderr(`interop: the suite needs NSQ v${NSQ_VERSION}, but ${wrong.join("; ")}.\n`);
    return 1;
  }
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      "--allow-env",
      "--allow-sys=hostname",
      "--sanitize-ops",
      "--sanitize-resources",
      ...Deno.args,
      "tests/interop/",
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let summary: { passed: number; failed: number } | undefined;
  let rest = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    writeStdout(chunk);
    rest += chunk;
    for (let end = rest.indexOf("\n"); end !== -1; end = rest.indexOf("\n")) {
      summary = parseSummary(rest.slice(0, end)) ?? summary;
      rest = rest.slice(end + 1);
    }
  }
  summary = parseSummary(rest) ?? summary;
  const { code } = await child.status;
  const seconds = Math.round((performance.now() - started) / 1000);
  const where = found.value.nsqd.slice(0, found.value.nsqd.lastIndexOf("/"));
  if (summary === undefined) {
    writeStderr(`interop: deno test ended (exit ${code}) without a summary line (${seconds} s)\n`);
    return code === 0 ? 1 : code;
  }
  const total = summary.passed + summary.failed;
  writeStdout(
    `interop: ${total} checks against the real NSQ v${NSQ_VERSION} programs (${where}): ` +
      `${summary.passed} passed, ${summary.failed} failed, in ${seconds} s\n`,
  );
  return code;
}

if (import.meta.main) Deno.exit(await main());
