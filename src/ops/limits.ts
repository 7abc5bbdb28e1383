// Connection caps derived from the descriptor limit. A Deno process that runs
// out of descriptors does not degrade: Deno.serve dies on EMFILE ("Uncaught
// (in promise) Http: Error: Too many open files"), and other parts of the
// runtime panic. So the TCP and HTTP servers together must never hold more
// connections than the limit allows.
//
// Deno raises the soft RLIMIT_NOFILE to the hard limit at startup but gives no
// API to read it, and its sandbox refuses /proc/self/limits unless the process
// runs with --allow-all. So: with the limit known, the caps are derived from
// it; otherwise the defaults below hold, which need a hard limit of at least
// DEFAULT_DESCRIPTORS_NEEDED (17,472) to protect the process.

import { HTTP_MAX_CONNECTIONS } from "../http/server.ts";

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

/**
 * The soft RLIMIT_NOFILE from /proc/self/limits; undefined elsewhere than
 * Linux, when the sandbox refuses the file (anything short of --allow-all; it
 * never prompts), or when unlimited.
 */
export function openFilesLimit(
  read: () => string = () => Deno.readTextFileSync("/proc/self/limits"),
): number | undefined {
  try {
    const line = read().split("\n").find((l) => l.startsWith("Max open files"));
    const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
    return soft !== undefined && /^\d+$/.test(soft) ? Number(soft) : undefined;
  } catch {
    return undefined;
  }
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
