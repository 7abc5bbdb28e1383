// Wiring only: command line → logger → daemon → signals → exit.

import { resolveCommandLineLoading } from "./src/config.ts";
import { type Daemon, ListenError, loadDaemonModules, startDaemon } from "./src/daemon.ts";
import { createLogger, writeStderr, writeStdout } from "./src/ops/logger.ts";
import { defaultOptions } from "./src/options.ts";
import { installSignalHandlers } from "./src/ops/signals.ts";

/** Reads the config file; failures are worded as Go's os.Open errors are. */
function readConfigFile(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`open ${path}: no such file or directory`);
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new Error(`open ${path}: permission denied`);
    }
    if (error instanceof Deno.errors.IsADirectory) throw new Error(`read ${path}: is a directory`);
    throw error;
  }
}

async function main(): Promise<void> {
  const hostname = Deno.hostname();
  const cli = await resolveCommandLineLoading(Deno.args, {
    hostname,
    readTextFile: readConfigFile,
  });
  if (cli.kind === "exit") {
    if (cli.stdout !== undefined) writeStdout(cli.stdout);
    if (cli.stderr !== undefined) writeStderr(cli.stderr);
    if (cli.fatal !== undefined) {
      const defaults = defaultOptions(hostname);
      createLogger({
        level: defaults.logLevel,
        // The reference prints this line with its fixed prefix, whatever --log-prefix says.
        prefix: defaults.logPrefix,
        format: cli.log?.format ?? defaults.logFormat,
      }).fatal(cli.fatal);
    }
    Deno.exit(cli.code);
  }
  const { options } = cli;
  const logger = createLogger({
    level: options.logLevel,
    prefix: options.logPrefix,
    format: options.logFormat,
  });
  for (const warning of cli.warnings) logger.warn(warning);
  // Awaited before the signal handlers are hooked, so that from them to the
  // listening lines nothing waits (see below).
  await loadDaemonModules(options);

  let daemon: Daemon | undefined;
  // Hooked before binding: once "HTTP: listening on" is logged a supervisor
  // may send SIGTERM at once, and a signal that arrives before the listener
  // exists kills the process (exit 143) without the graceful shutdown.
  // startDaemon is synchronous, so the handler never runs before it returns.
  // The other signals that would kill a Deno process are ignored (logged once),
  // and a shutdown that overruns its deadline still exits.
  installSignalHandlers({
    logger,
    onShutdown: async () => {
      await daemon?.shutdown();
      Deno.exit(0);
    },
  });
  try {
    daemon = startDaemon(options, { logger, hostname });
  } catch (error) {
    if (error instanceof ListenError) {
      logger.fatal(error.message);
      Deno.exit(1);
    }
    throw error;
  }
}

await main();
