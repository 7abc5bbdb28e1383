// Unit tests of src/ops/loopback_turn.ts: a turn completes only after the
// runtime has polled its sockets, and a closed one fails instead of hanging.

import assert from "node:assert/strict";
import { LoopbackTurn } from "../../../src/ops/loopback_turn.ts";

Deno.test("a loopback turn completes only after the runtime polled its sockets: a read that was ready completes first", async () => {
  const loopback = await LoopbackTurn.open();
  assert.ok(loopback !== undefined);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const server = await accepted;
  try {
    let read = false;
    const pending = server.read(new Uint8Array(16)).then(() => read = true);
    await client.write(new Uint8Array([1]));
    // Busy work that never returns to the event loop except through turns.
    let turns = 0;
    while (!read && turns < 1_000) {
      turns++;
      await loopback.turn();
    }
    assert.ok(read);
    assert.ok(turns < 10, `${turns} turns`);
    await pending;
  } finally {
    loopback.close();
    client.close();
    server.close();
    listener.close();
  }
});

Deno.test("a turn on a closed loopback connection fails at once instead of waiting forever", async () => {
  const loopback = await LoopbackTurn.open();
  assert.ok(loopback !== undefined);
  loopback.close();
  await assert.rejects(loopback.turn());
});
