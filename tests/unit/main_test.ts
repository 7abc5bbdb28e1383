// main.ts loads only what every run needs (start-up time is spent per
// module): the TOML parser (an npm module) only when --config names a file,
// the access rules only with an access flag. Shown with an empty Deno cache
// and --cached-only (any npm load fails there, while our own modules are
// local), and with the list of modules the runtime's debug log names.

import assert from "node:assert/strict";
import { MAIN_PATH, makeTempConfig, removeTempConfig } from "../support/helpers.ts";

/**
 * Starts main.ts on free ports with `runtimeArgs` before it and `args` after
 * it, stops it (SIGTERM) once both ports are announced, and returns its exit
 * code and stderr.
 */
async function startAndStop(
  runtimeArgs: string[],
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...runtimeArgs,
      "--allow-net",
      "--allow-read",
      "--allow-sys=hostname",
      MAIN_PATH,
      "--tcp-address=127.0.0.1:0",
      "--http-address=127.0.0.1:0",
      ...args,
    ],
    env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  let stderr = "";
  for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
    stderr += chunk;
    if (stderr.includes("HTTP: listening on")) child.kill("SIGTERM");
  }
  const { code } = await child.status;
  clearTimeout(timer);
  return { code, stderr };
}

async function runWithEmptyCache(args: string[]): Promise<{ code: number; stderr: string }> {
  const denoDir = await Deno.makeTempDir({ prefix: "nsqlookupd-empty-cache-" });
  try {
    return await startAndStop(["--cached-only"], args, { DENO_DIR: denoDir });
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
}

Deno.test("a run without --config starts without loading any npm module", async () => {
  const { code, stderr } = await runWithEmptyCache([]);
  assert.match(stderr, /HTTP: listening on/);
  assert.equal(code, 0, stderr);
});

Deno.test("a run with --config loads the TOML parser (and so needs the npm cache)", async () => {
  const config = await makeTempConfig('log_level = "info"\n');
  try {
    const { code, stderr } = await runWithEmptyCache([`--config=${config}`]);
    assert.doesNotMatch(stderr, /HTTP: listening on/);
    assert.match(stderr, /npm package not found in cache/);
    assert.notEqual(code, 0);
  } finally {
    await removeTempConfig(config);
  }
});

/**
 * The modules a start with `args` evaluates, as the runtime's debug log names
 * them ("V8 code cache hit for ES module: URL", or "Updating V8 code cache
 * ..." when the cache is cold), relative to the repository.
 */
async function modulesLoaded(args: string[]): Promise<string[]> {
  const { stderr } = await startAndStop(["--log-level=debug"], args);
  const root = new URL("../../", import.meta.url).href;
  const loaded = [...stderr.matchAll(/for ES module: (\S+?),/g)]
    .map((match) => match[1].replace(root, ""));
  // Without these the log's wording changed, and an empty list would prove nothing.
  for (const always of ["main.ts", "src/daemon.ts", "src/http/server.ts"]) {
    assert.ok(loaded.includes(always), `${always} not among the modules logged:\n${stderr}`);
  }
  return loaded;
}

/** The access rules (flag parsing needs only networks and settings), and npm packages. */
function onlySomeRunsNeed(module: string): boolean {
  const accessRules = module.startsWith("src/access/") &&
    !["src/access/networks.ts", "src/access/settings.ts"].includes(module);
  return accessRules || /\/npm\/|\/node_modules\//.test(module);
}

Deno.test("a default start loads neither the access rules nor the TOML parser", async () => {
  const loaded = await modulesLoaded([]);
  assert.deepEqual(loaded.filter(onlySomeRunsNeed), []);
});

Deno.test("an access flag loads the access rules at start-up", async () => {
  const loaded = await modulesLoaded(["--admin-networks=127.0.0.1"]);
  assert.ok(loaded.includes("src/access/access.ts"), loaded.join("\n"));
  assert.ok(loaded.includes("src/access/policy.ts"), loaded.join("\n"));
});
