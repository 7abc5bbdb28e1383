// The V8 flags `deno task start` runs the daemon with (deno.json), so that the
// benchmark and the soak measure the daemon as it is started in production.

const ROOT = decodeURIComponent(new URL("..", import.meta.url).pathname);

/** The start task's words after `deno` (e.g. `run`, `--allow-net`, ..., `main.ts`). */
export async function startTaskWords(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const task: string = config.tasks.start;
  return task.trim().split(/\s+/).slice(1);
}

/** The value of the start task's `--v8-flags=`, or undefined without one. */
export async function startTaskV8Flags(): Promise<string | undefined> {
  const flag = (await startTaskWords()).find((word) => word.startsWith("--v8-flags="));
  return flag?.slice("--v8-flags=".length);
}
