import assert from "node:assert/strict";
import { startDaemon } from "./helpers.ts";

Deno.test("with --http-guard=false Deno.serve answers on the public port itself", async () => {
  await using daemon = startDaemon({ httpGuard: false });
  assert.equal(daemon.httpServer, undefined);
  const res = await daemon.get("/ping");
  assert.equal(await res.text(), "OK");
  await eventuallyLogged(daemon.logs, /^INFO: 200 GET \/ping \(127\.0\.0\.1:\d+\) /);
});

Deno.test("by default HTTP is served by our HTTP server", async () => {
  await using daemon = startDaemon();
  assert.notEqual(daemon.httpServer, undefined);
  const res = await daemon.get("/ping");
  assert.equal(await res.text(), "OK");
  assert.equal(daemon.httpServer!.connectionCount >= 1, true);
});

async function eventuallyLogged(logs: string[], pattern: RegExp): Promise<void> {
  for (let i = 0; i < 200 && !logs.some((l) => pattern.test(l)); i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.ok(logs.some((l) => pattern.test(l)), logs.join("\n"));
}
