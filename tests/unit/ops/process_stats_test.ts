import assert from "node:assert/strict";
import {
  parseBootTime,
  parseMaxFds,
  parseProcStat,
  parseResidentBytes,
  type ProcessSources,
  processStatsReader,
} from "../../../src/ops/process_stats.ts";

// A real /proc/self/stat line, with a command name made awkward on purpose.
const STAT = "3798 (nsq lookupd) x) R 3796 3796 4096 0 -1 4194304 101 0 0 0 250 130 0 0 20 0 " +
  "1 0 179618 3133440 413 18446744073709551615 94905403133952 94905403153833 0 0 0 0 0 0 0 0 0 17";

const LIMITS = [
  "Limit                     Soft Limit           Hard Limit           Units     ",
  "Max cpu time              unlimited            unlimited            seconds   ",
  "Max open files            20000                1048576              files     ",
].join("\n");

Deno.test("parseProcStat: CPU seconds, virtual size and start ticks, past a command name with ') '", () => {
  assert.deepEqual(parseProcStat(STAT), {
    cpuSeconds: 3.8,
    virtualBytes: 3133440,
    startTicks: 179618,
  });
  assert.equal(parseProcStat("3798 (cat R 1 2"), undefined);
  assert.equal(parseProcStat("3798 (cat) R 1 2 3"), undefined);
});

Deno.test("parseBootTime, parseResidentBytes, parseMaxFds read their one line", () => {
  assert.equal(parseBootTime("cpu  1 2 3\nbtime 1796165613\nprocesses 9\n"), 1796165613);
  assert.equal(parseBootTime("cpu 1 2 3\n"), undefined);
  assert.equal(parseResidentBytes("VmSize:\t    3892 kB\nVmRSS:\t    2092 kB\n"), 2092 * 1024);
  assert.equal(parseResidentBytes("Name: x\n"), undefined);
  assert.equal(parseMaxFds(LIMITS), 20000, "the soft limit");
  assert.equal(parseMaxFds(LIMITS.replace("20000  ", "unlimited")), undefined);
});

function sources(files: Record<string, string> | "refused"): ProcessSources {
  return {
    readText: (path) => {
      if (files === "refused" || !(path in files)) {
        throw new Deno.errors.NotCapable(`Requires all access to "${path}"`);
      }
      return files[path];
    },
    countDir: (path) => {
      if (files === "refused" || path !== "/proc/self/fd") throw new Deno.errors.NotCapable(path);
      return 7;
    },
    memoryRss: () => 5 * 1024 * 1024,
    cpuMicros: () => ({ user: 1_500_000, system: 250_000 }),
    timeOrigin: 1_700_000_000_500,
  };
}

Deno.test("processStatsReader: every figure from /proc when it is readable", () => {
  const read = processStatsReader(sources({
    "/proc/stat": "btime 1796165613\n",
    "/proc/self/stat": STAT,
    "/proc/self/status": "VmRSS:\t    2092 kB\n",
    "/proc/self/limits": LIMITS,
  }));
  assert.deepEqual(read(), {
    cpuSeconds: 3.8,
    residentBytes: 2092 * 1024,
    virtualBytes: 3133440,
    openFds: 7,
    maxFds: 20000,
    startTimeSeconds: 1796165613 + 1796.18,
  });
});

Deno.test("processStatsReader: under the sandbox, the runtime's figures and nothing only /proc knows", () => {
  const read = processStatsReader(sources("refused"));
  assert.deepEqual(read(), {
    cpuSeconds: 1.75,
    residentBytes: 5 * 1024 * 1024,
    virtualBytes: undefined,
    openFds: undefined,
    maxFds: undefined,
    startTimeSeconds: 1_700_000_000.5,
  });
  const noCpu = processStatsReader({ ...sources("refused"), cpuMicros: () => undefined });
  assert.equal(noCpu().cpuSeconds, undefined, "left out where no source has it");
});
