// Any program as a child process for tests and scripts: its stdout and stderr
// collected line by line, waits on those lines and on conditions that are
// always bounded, and a stop that escalates to SIGKILL so that nothing
// outlives the test that started it.

import { withTimeout } from "./harness.ts";

const encoder = new TextEncoder();

export interface ProgramOptions {
  args?: readonly string[];
  cwd?: string;
  env?: Record<string, string>;
  /** Written to the program's stdin, which is then closed; without it stdin is /dev/null. */
  stdin?: string;
  /** How the program is called in messages (default: the file name). */
  name?: string;
}

export type Stream = "stdout" | "stderr";

export interface RunningProgram extends AsyncDisposable {
  readonly name: string;
  readonly pid: number;
  /** Lines so far, growing as the program writes them. */
  readonly stdout: readonly string[];
  readonly stderr: readonly string[];
  /** Set once the program has exited. */
  readonly status: Deno.CommandStatus | undefined;
  /** The first line of `stream` (from index `from`) matching `pattern`. */
  waitForLine(
    pattern: RegExp,
    options?: { stream?: Stream; from?: number; ms?: number },
  ): Promise<RegExpExecArray>;
  /** The exit status, once all output is read; throws after `ms` (the program keeps running). */
  exited(ms?: number): Promise<Deno.CommandStatus>;
  /** Sends `signal` (a no-op once exited). */
  kill(signal: Deno.Signal): void;
  /** Sends `signal`, then SIGKILL if it has not exited after `ms`; the exit status. */
  stop(signal?: Deno.Signal, ms?: number): Promise<Deno.CommandStatus>;
  /** The last lines of both streams, for failure messages. */
  tail(lines?: number): string;
}

/** Starts `path` with `options`; dispose it (`await using`) to stop it whatever happens. */
export function startProgram(path: string, options: ProgramOptions = {}): RunningProgram {
  const name = options.name ?? path.slice(path.lastIndexOf("/") + 1);
  const child = new Deno.Command(path, {
    args: [...(options.args ?? [])],
    cwd: options.cwd,
    env: options.env,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: Record<Stream, string[]> = { stdout: [], stderr: [] };
  let waiters: (() => void)[] = [];
  const notify = (): void => {
    const current = waiters;
    waiters = [];
    for (const wake of current) wake();
  };
  const changed = (): Promise<void> => new Promise((resolve) => waiters.push(resolve));
  const done: Record<Stream, boolean> = { stdout: false, stderr: false };
  const collect = async (stream: Stream, readable: ReadableStream<Uint8Array>): Promise<void> => {
    let rest = "";
    for await (const chunk of readable.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      for (let end = rest.indexOf("\n"); end !== -1; end = rest.indexOf("\n")) {
        lines[stream].push(rest.slice(0, end));
        rest = rest.slice(end + 1);
      }
      notify();
    }
    if (rest !== "") lines[stream].push(rest);
    done[stream] = true;
    notify();
  };
  const reading = Promise.all([
    collect("stdout", child.stdout),
    collect("stderr", child.stderr),
  ]);
  const writing = options.stdin === undefined ? Promise.resolve() : (async () => {
    const writer = child.stdin.getWriter();
    try {
      await writer.write(encoder.encode(options.stdin));
      await writer.close();
    } catch {
      // it exited without reading all of its input: its output will say why
    }
  })();
  let status: Deno.CommandStatus | undefined;
  const finished = (async () => {
    const s = await child.status;
    await Promise.all([reading, writing]);
    status = s;
    notify();
    return s;
  })();

  const tail = (n = 30): string =>
    [
      `--- ${name} stdout (last ${n} lines)`,
      ...lines.stdout.slice(-n),
      `--- ${name} stderr (last ${n} lines)`,
      ...lines.stderr.slice(-n),
    ].join("\n");

  const kill = (signal: Deno.Signal): void => {
    if (status !== undefined) return;
    try {
      child.kill(signal);
    } catch {
      // it exited meanwhile
    }
  };

  const exited = (ms = 10_000): Promise<Deno.CommandStatus> =>
    withTimeout(finished, ms, `${name} to exit\n${tail()}`);

  let stopping: Promise<Deno.CommandStatus> | undefined;
  const stop = (signal: Deno.Signal = "SIGTERM", ms = 5_000): Promise<Deno.CommandStatus> => {
    stopping ??= (async () => {
      kill(signal);
      const timer = setTimeout(() => kill("SIGKILL"), ms);
      try {
        return await finished;
      } finally {
        clearTimeout(timer);
      }
    })();
    return stopping;
  };

  const waitForLine = async (
    pattern: RegExp,
    { stream = "stderr", from = 0, ms = 10_000 }: { stream?: Stream; from?: number; ms?: number } =
      {},
  ): Promise<RegExpExecArray> => {
    const search = async (): Promise<RegExpExecArray> => {
      for (let i = from;; i++) {
        while (i >= lines[stream].length) {
          if (done[stream]) throw new Error(`${name}'s ${stream} ended`);
          await changed();
        }
        const match = pattern.exec(lines[stream][i]);
        if (match !== null) return match;
      }
    };
    try {
      return await withTimeout(search(), ms, `a line of ${name}'s ${stream} matching ${pattern}`);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`${reason}\n${tail()}`);
    }
  };

  return {
    name,
    pid: child.pid,
    stdout: lines.stdout,
    stderr: lines.stderr,
    get status() {
      return status;
    },
    waitForLine,
    exited,
    kill,
    stop,
    tail,
    [Symbol.asyncDispose]: async () => {
      await stop("SIGKILL");
    },
  };
}

/**
 * Calls `check` until it returns without throwing, at most for `ms`; then
 * rethrows its last error (so the failure shows the last state observed).
 * For effects that travel between processes, which no test can await directly.
 */
export async function untilPasses<T>(
  check: () => T | Promise<T>,
  ms = 5_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = performance.now() + ms;
  while (true) {
    try {
      return await check();
    } catch (error) {
      if (performance.now() + intervalMs > deadline) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
