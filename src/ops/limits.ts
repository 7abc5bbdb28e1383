// Connection caps derived from the descriptor limit. A process that runs out
// of descriptors cannot even accept a newcomer to decide whom to let in (and
// some parts of the runtime panic on EMFILE), so the TCP and HTTP servers
// together never hold more connections than the limit allows.
//
// Finding the limit: Deno raises the soft RLIMIT_NOFILE to the hard limit at
// startup but has no API to read it; its sandbox refuses /proc/self/limits
// (and /proc/self/status, /proc/self/fd) to anything short of --allow-all,
// and no --allow-sys value exposes it (checked on 2.9.6). So /proc is read
// when the process may; otherwise the headroom is measured by opening
// /dev/null (--allow-read, which the daemon has anyway) until EMFILE or until
// enough for the default caps — at most DEFAULT_DESCRIPTORS_NEEDED opens, then
// all closed: ~15 µs each, so at most ~0.3 s of work, once, at start-up. The
// first PROBE_FIRST_SLICE are opened before the daemon accepts anyone (the
// smallest limits are then known before the first client can use up the
// headroom), the rest in slices of about a millisecond, so that no client
// waits long behind the probe.

import { err, ok, type Result } from "../result.ts";

/** HTTP connections at once (HTTP and HTTPS together) when the descriptor limit allows. */
export const HTTP_MAX_CONNECTIONS = 1024;
/** Producer (TCP) connections held at most when the descriptor limit allows. */
export const TCP_MAX_CONNECTIONS = 16_384;
/** Descriptors kept for the runtime itself: stdio, listeners, caches, V8. */
export const RESERVED_DESCRIPTORS = 64;
/** An HTTP connection uses one: the client's socket (our server runs on Deno.listen). */
export const DESCRIPTORS_PER_HTTP_CONNECTION = 1;

export interface ConnectionLimits {
  tcp: number;
  http: number;
  /** The descriptor limit they were derived from, when known. */
  openFiles: number | undefined;
}

/** What the default caps need: TCP, one per HTTP connection, and the reserve. */
export const DEFAULT_DESCRIPTORS_NEEDED = TCP_MAX_CONNECTIONS +
  DESCRIPTORS_PER_HTTP_CONNECTION * HTTP_MAX_CONNECTIONS + RESERVED_DESCRIPTORS;

/** The soft limit in /proc/self/limits' `Max open files` line; `unlimited` as such. */
export function parseOpenFilesLimit(text: string): Result<number | "unlimited"> {
  const line = text.split("\n").find((l) => l.startsWith("Max open files"));
  if (line === undefined) return err("no `Max open files` line");
  const soft = line.slice("Max open files".length).trim().split(/\s+/)[0];
  if (soft === "unlimited") return ok("unlimited");
  return /^\d+$/.test(soft) ? ok(Number(soft)) : err(`unreadable soft limit "${soft}"`);
}

/**
 * Descriptors this process can still open, counted by opening `path` up to
 * `enough` times (then closing them all); undefined if `path` cannot be
 * opened at all. Stops early at EMFILE, which is the point.
 */
export function probeDescriptorHeadroom(
  enough: number,
  open: () => { close(): void } = () => Deno.openSync("/dev/null"),
): number | undefined {
  const held: { close(): void }[] = [];
  try {
    while (held.length < enough) held.push(open());
  } catch {
    // EMFILE (the limit), or the path is not openable (then held is empty).
  } finally {
    closeAll(held);
  }
  return held.length === 0 ? undefined : held.length;
}

export interface OpenFilesSources {
  /** /proc/self/limits' text; throws when the sandbox refuses it. */
  read?: () => string;
  /** Headroom measurement when /proc is refused; undefined when it cannot measure. */
  probe?: (enough: number) => number | undefined;
  os?: typeof Deno.build.os;
}

/** The process's own answer, found once: the limit does not change while it runs. */
let found: { limit: number | undefined } | undefined;

/** Descriptors the sliced probe opens at once, before the first connection is accepted. */
export const PROBE_FIRST_SLICE = 512;
/**
 * Descriptors the sliced probe opens per later macrotask: 6-8 ms of the thread,
 * within the 20 ms bound; smaller slices (64 was tried) leave limits between
 * ~540 and ~1,050 unknown for several turns, where a storm in the first
 * milliseconds meets EMFILE on accept.
 */
export const PROBE_SLICE = 512;

/**
 * The descriptor limit without blocking: /proc when readable, else the
 * headroom measured PROBE_FIRST_SLICE descriptors at once, then PROBE_SLICE
 * per macrotask (a synchronous probe of 17,472 descriptors holds the thread
 * for a third of a second). Measured once per process; `stopped` ends a
 * measurement early (shutdown).
 */
export function openFilesLimitSliced(stopped: () => boolean): Promise<number | undefined> {
  measuring ??= measureSliced(stopped).then((limit) => {
    if (limit === undefined && stopped()) measuring = undefined;
    return limit;
  });
  return measuring;
}

let measuring: Promise<number | undefined> | undefined;

async function measureSliced(stopped: () => boolean): Promise<number | undefined> {
  const fromProc = procLimit(readProcLimits);
  if (fromProc !== undefined) return fromProc === "unlimited" ? undefined : fromProc;
  if (Deno.build.os === "windows") return undefined;
  return await probeHeadroomSliced(stopped, () => Deno.openSync("/dev/null"));
}

/**
 * probeDescriptorHeadroom in slices: `first` descriptors before the first
 * await, then `then` per macrotask, and closed `then` per macrotask;
 * undefined when stopped or when nothing could be opened.
 */
export async function probeHeadroomSliced(
  stopped: () => boolean,
  open: () => { close(): void },
  slices: { first: number; then: number } = { first: PROBE_FIRST_SLICE, then: PROBE_SLICE },
): Promise<number | undefined> {
  const held: { close(): void }[] = [];
  try {
    for (let slice = slices.first; held.length < DEFAULT_DESCRIPTORS_NEEDED; slice = slices.then) {
      for (let i = 0; i < slice && held.length < DEFAULT_DESCRIPTORS_NEEDED; i++) {
        held.push(open());
      }
      await nextMacrotask();
      if (stopped()) return undefined;
    }
  } catch {
    // EMFILE: the limit (or nothing openable: then held is empty).
  } finally {
    // Closed in slices too: 17,472 closes in one go held the thread 50-84 ms
    // while a fleet was registering with the daemon that had just started.
    for (let i = 0; i < held.length; i += slices.then) {
      if (i > 0) await nextMacrotask();
      closeAll(held.slice(i, i + slices.then));
    }
  }
  return held.length === 0 ? undefined : held.length;
}

function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * The descriptor limit to size the caps from: the soft RLIMIT_NOFILE when
 * /proc/self/limits is readable, else the measured headroom (at most
 * DEFAULT_DESCRIPTORS_NEEDED, which is all the defaults need). Undefined
 * when unlimited or unknown (not Linux, nothing openable). Without `sources`
 * the answer is computed once per process.
 */
export function openFilesLimit(sources?: OpenFilesSources | (() => string)): number | undefined {
  if (sources === undefined) {
    found ??= { limit: openFilesLimit({}) };
    return found.limit;
  }
  const { read, probe, os } = typeof sources === "function"
    ? { read: sources, probe: () => undefined, os: "linux" as const }
    : sources;
  const fromProc = procLimit(read ?? readProcLimits);
  if (fromProc !== undefined) return fromProc === "unlimited" ? undefined : fromProc;
  if ((os ?? Deno.build.os) === "windows") return undefined;
  return (probe ?? probeDescriptorHeadroom)(DEFAULT_DESCRIPTORS_NEEDED);
}

/**
 * The defaults, or, with a known limit too small for them, HTTP gets at most a
 * quarter of the descriptors and TCP the rest.
 */
export function connectionLimits(openFiles: number | undefined): ConnectionLimits {
  if (openFiles === undefined || openFiles >= DEFAULT_DESCRIPTORS_NEEDED) {
    return { tcp: TCP_MAX_CONNECTIONS, http: HTTP_MAX_CONNECTIONS, openFiles };
  }
  const budget = Math.max(0, openFiles - RESERVED_DESCRIPTORS);
  const http = Math.max(
    4,
    Math.min(HTTP_MAX_CONNECTIONS, Math.floor(budget / 4 / DESCRIPTORS_PER_HTTP_CONNECTION)),
  );
  const tcp = Math.max(4, budget - http * DESCRIPTORS_PER_HTTP_CONNECTION);
  return { tcp, http, openFiles };
}

function closeAll(files: readonly { close(): void }[]): void {
  for (const file of files) {
    try {
      file.close();
    } catch {
      // closed already
    }
  }
}

function readProcLimits(): string {
  return Deno.readTextFileSync("/proc/self/limits");
}

/** What /proc/self/limits says, or undefined when it cannot be read or parsed (measure instead). */
function procLimit(read: () => string): number | "unlimited" | undefined {
  try {
    const parsed = parseOpenFilesLimit(read());
    return parsed.ok ? parsed.value : undefined;
  } catch {
    // Refused by the sandbox (NotCapable) or absent.
    return undefined;
  }
}
