// The standard process figures Prometheus clients export (process_cpu_seconds_total,
// process_resident_memory_bytes, ...), read as client_golang reads them: from
// /proc on Linux. Deno's sandbox refuses /proc/self to anything short of
// --allow-all; then resident memory, CPU time and start time come from the
// runtime instead, and what only /proc knows (virtual memory, descriptors) is
// left out.

/** Each figure, or undefined where it cannot be read. */
export interface ProcessStats {
  cpuSeconds?: number;
  residentBytes?: number;
  virtualBytes?: number;
  openFds?: number;
  maxFds?: number;
  startTimeSeconds?: number;
}

/** Linux reports CPU times and the start time in clock ticks of 1/100 s (USER_HZ), as procfs assumes. */
const USER_HZ = 100;

/**
 * Fields of /proc/PID/stat after the command name (which may hold spaces and
 * parentheses, so it is skipped up to the last ')'): index 0 is field 3, state.
 */
function statFields(stat: string): string[] | undefined {
  const end = stat.lastIndexOf(")");
  if (end === -1) return undefined;
  return stat.slice(end + 2).trim().split(/\s+/);
}

/** CPU seconds, virtual size and start ticks from /proc/self/stat (proc(5) fields 14, 15, 22, 23). */
export function parseProcStat(
  stat: string,
): { cpuSeconds: number; virtualBytes: number; startTicks: number } | undefined {
  const fields = statFields(stat);
  if (fields === undefined || fields.length < 21) return undefined;
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const startTicks = Number(fields[19]);
  const virtualBytes = Number(fields[20]);
  if (![utime, stime, startTicks, virtualBytes].every(Number.isFinite)) return undefined;
  return { cpuSeconds: (utime + stime) / USER_HZ, virtualBytes, startTicks };
}

/** Boot time (Unix seconds) from /proc/stat's `btime` line. */
export function parseBootTime(procStat: string): number | undefined {
  const match = /^btime\s+(\d+)$/m.exec(procStat);
  return match === null ? undefined : Number(match[1]);
}

/** VmRSS from /proc/self/status, in bytes. */
export function parseResidentBytes(status: string): number | undefined {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return match === null ? undefined : Number(match[1]) * 1024;
}

/** The soft "Max open files" limit from /proc/self/limits; undefined when unlimited. */
export function parseMaxFds(limits: string): number | undefined {
  const match = /^Max open files\s+(\S+)/m.exec(limits);
  return match === null || !/^\d+$/.test(match[1]) ? undefined : Number(match[1]);
}

/** Where the figures come from; each read may throw (the sandbox, another OS). */
export interface ProcessSources {
  readText(path: string): string;
  countDir(path: string): number;
  /** Runtime fallbacks, used when /proc cannot be read. */
  memoryRss(): number;
  cpuMicros(): { user: number; system: number } | undefined;
  /** Wall-clock milliseconds when the runtime started. */
  timeOrigin: number;
}

/** Deno's undocumented CPU usage call (what node:process uses); absent in some versions. */
function denoCpuUsage(): { user: number; system: number } | undefined {
  const cpuUsage = (Deno as unknown as { cpuUsage?: () => { user: number; system: number } })
    .cpuUsage;
  return typeof cpuUsage === "function" ? cpuUsage() : undefined;
}

export const DENO_PROCESS_SOURCES: ProcessSources = {
  readText: (path) => Deno.readTextFileSync(path),
  countDir: (path) => {
    let count = 0;
    for (const _ of Deno.readDirSync(path)) count++;
    return count;
  },
  memoryRss: () => Deno.memoryUsage().rss,
  cpuMicros: denoCpuUsage,
  timeOrigin: performance.timeOrigin,
};

function attempt<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}

/**
 * A reader of the figures. The boot time is read once; everything else on
 * each call. Call it at scrape time.
 */
export function processStatsReader(
  sources: ProcessSources = DENO_PROCESS_SOURCES,
): () => ProcessStats {
  const bootTime = attempt(() => parseBootTime(sources.readText("/proc/stat")));
  return () => {
    const stat = attempt(() => parseProcStat(sources.readText("/proc/self/stat")));
    const cpu = stat === undefined ? attempt(() => sources.cpuMicros()) : undefined;
    const readable = stat !== undefined;
    // The /proc figure when the sandbox allows it, else the runtime's.
    const startTimeSeconds = readable && bootTime !== undefined
      ? bootTime + stat.startTicks / USER_HZ
      : sources.timeOrigin / 1000;
    return {
      cpuSeconds: stat?.cpuSeconds ??
        (cpu === undefined ? undefined : (cpu.user + cpu.system) / 1e6),
      residentBytes:
        (readable
          ? attempt(() => parseResidentBytes(sources.readText("/proc/self/status")))
          : undefined) ?? attempt(() => sources.memoryRss()),
      virtualBytes: stat?.virtualBytes,
      openFds: readable ? attempt(() => sources.countDir("/proc/self/fd")) : undefined,
      maxFds: readable
        ? attempt(() => parseMaxFds(sources.readText("/proc/self/limits")))
        : undefined,
      startTimeSeconds,
    };
  };
}
