// main.ts loads only what every run needs: the TOML parser (an npm module)
// only when --config names a file. Shown with an empty Deno cache and
// --cached-only: any npm load fails there, while our own modules are local.

import assert from "node:assert/strict";
import { MAIN_PATH, makeTempConfig, removeTempConfig } from "../support/helpers.ts";

async function runWithEmptyCache(args: string[]): Promise<{ code: number; stderr: string }> {
  const denoDir = await Deno.makeTempDir({ prefix: "nsqlookupd-empty-cache-" });
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--cached-only",
        "--allow-net",
        "--allow-read",
        "--allow-sys=hostname",
        MAIN_PATH,
        "--tcp-address=127.0.0.1:0",
        "--http-address=127.0.0.1:0",
        ...args,
      ],
      env: { DENO_DIR: denoDir },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Up once both ports are announced; then stopped, which must be clean.
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    let stderr = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderr += chunk;
      if (stderr.includes("HTTP: listening on")) child.kill("SIGTERM");
    }
    const { code } = await child.status;
    clearTimeout(timer);
    return { code, stderr };
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
