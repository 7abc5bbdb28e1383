// The daemon as a separate process (`deno run main.ts`): the one launcher of
// tests/e2e, tests/interop and scripts/ (fuzz, load, stress). A process of its
// own is what the e2e tests mean by "the daemon as a whole", what lets the
// scripts measure its memory apart from their own, and what signals can be
// sent to. Built on processes.ts, so that its output is collected and its stop
// escalates to SIGKILL like any other program's.

import { freePort, sleep, withTimeout } from "./harness.ts";
import { type RunningProgram, startProgram } from "./processes.ts";

/** Absolute path of main.ts and the repository root (the child's working directory). */
export const MAIN_PATH = decodeURIComponent(new URL("../../main.ts", import.meta.url).pathname);
const REPO_ROOT = decodeURIComponent(new URL("../..", import.meta.url).pathname);

/** The permissions the daemon documents (README "Install"; the binary carries the same). */
const PERMISSIONS: readonly string[] = ["--allow-net", "--allow-read", "--allow-sys=hostname"];

/** `deno run`'s words for main.ts with `args`: permissions, runtime flags, main.ts, args. */
function runWords(
  args: readonly string[],
  runtimeFlags: readonly string[],
  permissions: readonly string[] = PERMISSIONS,
): string[] {
  return ["run", ...permissions, ...runtimeFlags, MAIN_PATH, ...args];
}

/** `deno run` of main.ts with the permissions the daemon documents (for runs to completion). */
export function daemonCommand(args: readonly string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: runWords(args, []),
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

export interface StoppedDaemon {
  code: number;
  signal: Deno.Signal | null;
  /** Milliseconds from sending the signal to the process having exited. */
  elapsedMs: number;
  /** What it wrote to stdout (lines joined by `\n`; the daemon writes nothing there). */
  stdout: string;
  /** Every stderr line the process wrote. */
  lines: string[];
}

export interface SpawnedDaemon extends AsyncDisposable {
  readonly pid: number;
  /** The same pid, where tests knew it as the child process's (`daemon.child.pid`). */
  readonly child: { readonly pid: number };
  readonly tcpPort: number;
  readonly httpPort: number;
  /** `http://127.0.0.1:HTTP_PORT` */
  readonly url: string;
  /** stderr lines so far, growing as the daemon writes them. */
  readonly lines: readonly string[];
  /** Whether the process is still running. */
  alive(): boolean;
  /** Sends `signal` (a no-op once exited). */
  kill(signal: Deno.Signal): void;
  /** Waits for a stderr line (at index `from` or later) matching `pattern`; returns it. */
  waitForLine(pattern: RegExp, options?: { from?: number; ms?: number }): Promise<string>;
  /**
   * Sends `signal` and waits for the exit and all output. Not exited after
   * `ms`: SIGKILL, then rejects (a daemon that ignores SIGTERM is a failure).
   */
  stop(signal?: Deno.Signal, ms?: number): Promise<StoppedDaemon>;
}

export interface SpawnOptions {
  /**
   * Where the daemon listens, and so how its readiness is seen:
   * - `{ tcp, http }`: ports the caller passed in `args` (see freePort);
   *   ready once the HTTP port accepts, so logs may be silenced;
   * - `"free"`: the launcher picks two free loopback ports and appends
   *   `--tcp-address=127.0.0.1:P --http-address=127.0.0.1:Q` to `args` (so
   *   they win over any in `args`); ready as above; retried with other ports
   *   if another process took one before the daemon bound it;
   * - omitted: the ports come from the `TCP/HTTP: listening on` log lines
   *   (which need `--log-level` info or lower and the text format).
   */
  ports?: { tcp: number; http: number } | "free";
  /** Runtime flags before main.ts, e.g. the release's `--v8-flags=...` (default: none). */
  runtimeFlags?: readonly string[];
  /**
   * The daemon's permissions instead of the documented ones, e.g. `["--allow-all"]`
   * (the only way the runtime lets it read /proc/self/limits).
   */
  permissions?: readonly string[];
  /**
   * RLIMIT_NOFILE for the daemon. Deno cannot set it, so bash's `ulimit` does
   * before it execs the runtime (the pid stays the daemon's).
   */
  descriptorLimit?: number;
  /** Bound on start-up. */
  ms?: number;
}

/**
 * Spawns the daemon, collects its stderr line by line, and waits until it
 * listens. Dispose it (`await using`) to kill it if a test or script fails early.
 */
export async function spawnDaemon(
  args: readonly string[],
  options: SpawnOptions = {},
): Promise<SpawnedDaemon> {
  if (options.ports !== "free") return await launch(args, options.ports, options);
  for (let attempt = 1;; attempt++) {
    const ports = { tcp: freePort(), http: freePort() };
    const withPorts = [
      ...args,
      `--tcp-address=127.0.0.1:${ports.tcp}`,
      `--http-address=127.0.0.1:${ports.http}`,
    ];
    try {
      return await launch(withPorts, ports, options);
    } catch (error) {
      // freePort() frees the port it found: another process may bind it first.
      const lost = error instanceof Error && error.message.includes("FATAL: listen (");
      if (!lost || attempt >= 3) throw error;
    }
  }
}

async function launch(
  args: readonly string[],
  ports: { tcp: number; http: number } | undefined,
  options: SpawnOptions,
): Promise<SpawnedDaemon> {
  const words = runWords(args, options.runtimeFlags ?? [], options.permissions);
  const program = options.descriptorLimit === undefined
    ? startProgram(Deno.execPath(), { args: words, cwd: REPO_ROOT, name: "nsqlookupd" })
    : startProgram("bash", {
      args: [
        "-c",
        `ulimit -n ${options.descriptorLimit} && exec "$@"`,
        "bash",
        Deno.execPath(),
        ...words,
      ],
      cwd: REPO_ROOT,
      name: "nsqlookupd",
    });
  let stopping: Promise<StoppedDaemon> | undefined;
  const stop = (signal: Deno.Signal = "SIGTERM", ms = 10_000): Promise<StoppedDaemon> => {
    stopping ??= stopProgram(program, signal, ms);
    return stopping;
  };
  const waitForLine = async (
    pattern: RegExp,
    { from = 0, ms = 10_000 }: { from?: number; ms?: number } = {},
  ): Promise<string> => (await program.waitForLine(pattern, { from, ms })).input;
  try {
    const ms = options.ms ?? 20_000;
    let tcpPort: number;
    let httpPort: number;
    if (ports !== undefined) {
      await withTimeout(
        untilListening(ports.http, () => program.status !== undefined),
        ms,
        "the HTTP port to accept",
      );
      ({ tcp: tcpPort, http: httpPort } = ports);
    } else {
      const portOf = async (kind: string): Promise<number> => {
        const line = await waitForLine(new RegExp(` INFO: ${kind}: listening on .*:(\\d+)$`), {
          ms,
        });
        return Number(line.slice(line.lastIndexOf(":") + 1));
      };
      tcpPort = await portOf("TCP");
      httpPort = await portOf("HTTP");
    }
    return {
      child: { pid: program.pid },
      pid: program.pid,
      tcpPort,
      httpPort,
      url: `http://127.0.0.1:${httpPort}`,
      lines: program.stderr,
      alive: () => program.status === undefined,
      kill: (signal) => program.kill(signal),
      waitForLine,
      stop,
      [Symbol.asyncDispose]: async (): Promise<void> => {
        await stop("SIGKILL").catch(() => undefined);
      },
    };
  } catch (error) {
    await program.stop("SIGKILL");
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`nsqlookupd did not start: ${reason}\nstderr:\n${program.stderr.join("\n")}`);
  }
}

async function stopProgram(
  program: RunningProgram,
  signal: Deno.Signal,
  ms: number,
): Promise<StoppedDaemon> {
  const started = performance.now();
  const { code, signal: by } = await program.stop(signal, ms);
  const elapsedMs = performance.now() - started;
  if (signal !== "SIGKILL" && by === "SIGKILL") {
    throw new Error(
      `timed out after ${ms} ms: nsqlookupd to exit after ${signal}\n${program.tail()}`,
    );
  }
  return {
    code,
    signal: by,
    elapsedMs,
    stdout: program.stdout.join("\n"),
    lines: [...program.stderr],
  };
}

/** Connects until `port` accepts (or the process has exited). */
async function untilListening(port: number, exited: () => boolean): Promise<void> {
  while (true) {
    if (exited()) throw new Error("nsqlookupd exited during startup");
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch (error) {
      if (!(error instanceof Deno.errors.ConnectionRefused)) throw error;
    }
    await sleep(20);
  }
}
