import assert from "node:assert/strict";
import { startDaemon } from "../support/helpers.ts";

Deno.test("smoke: ping over HTTP and TCP", async () => {
  await using daemon = startDaemon();
  const res = await daemon.get("/ping");
  assert.equal(await res.text(), "OK");
  const client = await daemon.connect();
  await client.magic();
  assert.equal(await client.command("PING"), "OK");
  const reply = await client.identify();
  assert.ok(reply.includes("testhost"), reply);
});
