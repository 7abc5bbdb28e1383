// Unit tests of src/ops/event_loop_lag.ts: each tick reports how late it ran.

import assert from "node:assert/strict";
import { EventLoopLag } from "../../../src/ops/event_loop_lag.ts";

Deno.test("a tick reports how much later than its interval it ran, 0 when on time", () => {
  let now = 0;
  const seen: number[] = [];
  const lag = new EventLoopLag({ observe: (s) => seen.push(s), intervalMs: 10, now: () => now });
  lag.tick(); // the first tick only starts the count
  now = 10;
  lag.tick();
  now = 18;
  lag.tick(); // early (a timer batch): on time, never negative
  now = 53;
  lag.tick();
  assert.deepEqual(seen, [0, 0, 0.025]);
});

Deno.test("a stall of the thread is seen as one tick that late, and stop() ends the ticks", async () => {
  const seen: number[] = [];
  const lag = new EventLoopLag({ observe: (s) => seen.push(s) });
  lag.start();
  try {
    await new Promise((resolve) => setTimeout(resolve, 30));
    const until = performance.now() + 60;
    while (performance.now() < until) {
      // holding the thread
    }
    await new Promise((resolve) => setTimeout(resolve, 30));
  } finally {
    lag.stop();
  }
  assert.ok(Math.max(...seen) >= 0.045, `worst ${Math.max(...seen)} s`);
  const ticks = seen.length;
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(seen.length, ticks);
});
