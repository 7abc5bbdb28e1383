// Signals: which ones shut the daemon down, which ones it ignores, and the
// hard deadline on shutdown.
//
// - Shutdown: SIGINT and SIGTERM (Ctrl-C and Ctrl-Break on Windows, where
//   Deno delivers nothing else; registering SIGTERM there throws on old Deno).
//   Shutdown is graceful but bounded: past SHUTDOWN_DEADLINE_MS the process
//   exits anyway, so the README's "within 5 s" holds however busy it is.
// - Ignored (logged once each): signals whose default action would kill the
//   process although nothing asked it to stop. Go's nsqlookupd (measured,
//   v1.3.0) survives SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU,
//   SIGIO and SIGPIPE; without a listener Deno dies of each but SIGPIPE (which
//   the runtime ignores itself, so it is left alone). SIGHUP kills Go's daemon
//   unless started under nohup; Deno ≥ 2.9.2 catches SIGHUP itself and exits
//   even under nohup, so here it is ignored: a hangup never takes the daemon
//   down.
// - SIGUSR1: Deno ≥ 2.9.2 also starts a V8 inspector on 127.0.0.1:9229 when it
//   receives SIGUSR1 (after the first 0.5 s; before, SIGUSR1 kills it), and a
//   listener does not prevent it; any local user can then run code in the
//   daemon. No flag, environment variable or permission turns it off (checked
//   on 2.9.6), and the releases without it (≤ 2.9.1) cannot cancel a blocked
//   socket write (closing such a connection leaks it forever), so no pin is
//   safe. Instead the daemon holds 127.0.0.1:9229 itself (guardInspectorPort):
//   the runtime's inspector then fails to bind ("Failed to start inspector
//   server", on stderr) and nothing listens. The listener here keeps SIGUSR1
//   from killing the process on any version.

import type { Logger } from "./logger.ts";

/** The hard bound on a graceful shutdown, under the README's promise of 5 s. */
export const SHUTDOWN_DEADLINE_MS = 4_500;

export function shutdownSignals(os: typeof Deno.build.os): Deno.Signal[] {
  return os === "windows" ? ["SIGINT", "SIGBREAK"] : ["SIGINT", "SIGTERM"];
}

/** Signals whose default action would end the daemon although nobody asked it to stop. */
export function ignoredSignals(os: typeof Deno.build.os): Deno.Signal[] {
  return os === "windows" ? [] : [
    "SIGHUP",
    "SIGUSR1",
    "SIGUSR2",
    "SIGALRM",
    "SIGVTALRM",
    "SIGPROF",
    "SIGXCPU",
    "SIGIO",
  ];
}

/**
 * Whether this Deno opens an inspector on SIGUSR1: the feature shipped in
 * 2.9.2 (denoland/deno#35738) with no way to turn it off.
 */
export function sigusr1OpensInspector(version: string = Deno.version.deno): boolean {
  const match = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (match === null) return true;
  const [major, minor, patch] = match.slice(1).map(Number);
  return major > 2 || (major === 2 && (minor > 9 || (minor === 9 && patch >= 2)));
}

/** Where the runtime's SIGUSR1 inspector listens (fixed: it takes no configuration). */
export const INSPECTOR_PORT = 9229;
/** While another process holds the port, binding it is retried this often. */
export const INSPECTOR_GUARD_RETRY_MS = 30_000;

export interface InspectorGuard {
  /** Whether this process holds 127.0.0.1:9229 now. */
  held(): boolean;
  close(): void;
}

/**
 * Holds 127.0.0.1:9229 (listening, never accepting) so that the inspector
 * Deno starts on SIGUSR1 cannot bind it. When another process holds the port,
 * the inspector cannot bind either; binding is retried in case it lets go.
 * Neither the listener nor the retry timer keeps the process alive.
 */
export function guardInspectorPort(
  listen: () => { close(): void; unref?(): void } = () =>
    Deno.listen({ hostname: "127.0.0.1", port: INSPECTOR_PORT }),
  retryMs: number = INSPECTOR_GUARD_RETRY_MS,
): InspectorGuard {
  let listener: { close(): void } | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;
  const bind = (): void => {
    try {
      const bound = listen();
      bound.unref?.();
      listener = bound;
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    } catch {
      // In use (by another process: the inspector cannot bind it either) or refused.
    }
  };
  bind();
  if (listener === undefined && retryMs > 0) {
    const retry = setInterval(bind, retryMs);
    Deno.unrefTimer(retry);
    timer = retry;
  }
  return {
    held: () => listener !== undefined,
    close: () => {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      listener?.close();
      listener = undefined;
    },
  };
}

export interface SignalApi {
  addSignalListener(signal: Deno.Signal, handler: () => void): void;
}

export interface SignalHandlingOptions {
  /** The graceful shutdown (main.ts: daemon.shutdown(), then exit 0). */
  onShutdown(signal: Deno.Signal): unknown;
  /** Logs each ignored signal once, and a shutdown past its deadline. */
  logger?: Logger;
  /** Ends the process when the shutdown overruns its deadline (default Deno.exit). */
  exit?: (code: number) => void;
  deadlineMs?: number;
  os?: typeof Deno.build.os;
  api?: SignalApi;
  /** Starts the deadline timer (default setTimeout); returns nothing, the exit ends all. */
  setTimer?: (fn: () => void, ms: number) => void;
  /** The Deno version, for the SIGUSR1 warning and guard. */
  denoVersion?: string;
  /** Holds the inspector's port where the runtime opens one on SIGUSR1 (default guardInspectorPort). */
  guardInspector?: () => InspectorGuard;
}

export interface SignalHandling {
  /** The shutdown signals hooked (a platform may refuse some). */
  shutdown: Deno.Signal[];
  /** The signals ignored. */
  ignored: Deno.Signal[];
  /** The inspector port guard, where this runtime needs one. */
  inspectorGuard: InspectorGuard | undefined;
}

/** Registers `signal`, unless this platform refuses it; true if registered. */
function listen(api: SignalApi, signal: Deno.Signal, handler: () => void): boolean {
  try {
    api.addSignalListener(signal, handler);
    return true;
  } catch {
    return false;
  }
}

/**
 * Hooks the shutdown signals (the first one starts the shutdown and its
 * deadline) and the ignored ones. Call it before the listening lines are
 * logged: a supervisor may signal as soon as it sees them.
 */
export function installSignalHandlers(options: SignalHandlingOptions): SignalHandling {
  const os = options.os ?? Deno.build.os;
  const api = options.api ?? Deno;
  const exit = options.exit ?? ((code: number) => Deno.exit(code));
  const setTimer = options.setTimer ?? ((fn: () => void, ms: number) => void setTimeout(fn, ms));
  const deadlineMs = options.deadlineMs ?? SHUTDOWN_DEADLINE_MS;
  const { logger } = options;
  const inspectorGuard = os !== "windows" && sigusr1OpensInspector(options.denoVersion)
    ? (options.guardInspector ?? guardInspectorPort)()
    : undefined;
  let shuttingDown = false;
  const shutdown = shutdownSignals(os).filter((signal) =>
    listen(api, signal, () => {
      if (shuttingDown) return;
      shuttingDown = true;
      setTimer(() => {
        logger?.warn(`${signal}: shutdown not finished after ${deadlineMs}ms - exiting now`);
        exit(0);
      }, deadlineMs);
      // A failing shutdown must not become an uncaught error; the deadline still exits.
      const failed = (error: unknown): void => {
        logger?.error(`${signal}: shutdown failed - ${String(error)}`);
      };
      try {
        const pending = options.onShutdown(signal);
        if (pending instanceof Promise) pending.catch(failed);
      } catch (error) {
        failed(error);
      }
    })
  );
  const seen = new Set<Deno.Signal>();
  const ignored = ignoredSignals(os).filter((signal) =>
    listen(api, signal, () => {
      if (seen.has(signal)) return;
      seen.add(signal);
      const inspector = signal === "SIGUSR1" && inspectorGuard !== undefined
        ? inspectorGuard.held()
          ? ` (the runtime's debugger could not open: this process holds 127.0.0.1:${INSPECTOR_PORT})`
          : ` (127.0.0.1:${INSPECTOR_PORT} is held by another process, so the runtime's debugger could not open there)`
        : "";
      logger?.warn(`${signal} received: ignored${inspector}; further ${signal}s are not logged`);
    })
  );
  return { shutdown, ignored, inspectorGuard };
}

/**
 * The first shutdown signal calls `onSignal` once; also ignores the signals
 * that would otherwise kill the daemon. Returns the shutdown signals hooked.
 * (installSignalHandlers with a logger is the fuller form.)
 */
export function onShutdownSignal(
  onSignal: (signal: Deno.Signal) => unknown,
  os: typeof Deno.build.os = Deno.build.os,
  api: SignalApi = Deno,
  more: Partial<SignalHandlingOptions> = {},
): Deno.Signal[] {
  return installSignalHandlers({ ...more, onShutdown: onSignal, os, api }).shutdown;
}
