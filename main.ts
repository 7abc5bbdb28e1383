// Wiring only: command line → logger → daemon → signals → exit.

import { resolveCommandLine } from "./src/config.ts";
import { ListenError, startDaemon } from "./src/daemon.ts";
import { createLogger, writeStderr, writeStdout } from "./src/logger.ts";
import { defaultOptions } from "./src/options.ts";
import { onShutdownSignal } from "./src/signals.ts";

function main(): void {
  const hostname = Deno.hostname();
  const cli = resolveCommandLine(Deno.args, {
    hostname,
    readTextFile: (path) => Deno.readTextFileSync(path),
  });
  if (cli.kind === "exit") {
    if (cli.stdout !== undefined) writeStdout(cli.stdout);
    if (cli.stderr !== undefined) writeStderr(cli.stderr);
    if (cli.fatal !== undefined) {
      const defaults = defaultOptions(hostname);
      createLogger({ level: defaults.logLevel, prefix: defaults.logPrefix }).fatal(cli.fatal);
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

  let daemon;
  try {
    daemon = startDaemon(options, { logger, hostname });
  } catch (error) {
    if (error instanceof ListenError) {
      logger.fatal(error.message);
      Deno.exit(1);
    }
    throw error;
  }
  const running = daemon;
  onShutdownSignal(async () => {
    await running.shutdown();
    Deno.exit(0);
  });
}

main();
