// src/tcp/turns.ts: units of work take turns in FIFO order, a slice runs at
// most its budget of units and milliseconds, and the rest wait until the
// event loop has had its turn. Deterministic: the clock and the deferral are
// driven by hand.

import assert from "node:assert/strict";
import { SchedulerClosedError, TurnScheduler } from "../../../src/tcp/turns.ts";

interface Manual {
  turns: TurnScheduler;
  advance(ms: number): void;
  /** The event loop had its turn: the next slice runs. */
  yieldToEventLoop(): Promise<void>;
  /** Slices scheduled and not run yet. */
  pending(): number;
}

/** A scheduler whose clock and "after the event loop" callback are driven by hand. */
function manual(options: { sliceMs?: number; maxUnitsPerSlice?: number } = {}): Manual {
  let now = 0;
  const deferred: (() => void)[] = [];
  const turns = new TurnScheduler({
    ...options,
    now: () => now,
    defer: (fn) => {
      deferred.push(fn);
      return () => {
        const i = deferred.indexOf(fn);
        if (i !== -1) deferred.splice(i, 1);
      };
    },
  });
  return {
    turns,
    advance: (ms: number) => void (now += ms),
    yieldToEventLoop: async (): Promise<void> => {
      const fn = deferred.shift();
      assert.ok(fn !== undefined, "no slice was scheduled");
      fn();
      // Let the continuations of the units that ran enqueue their next units.
      for (let i = 0; i < 10; i++) await Promise.resolve();
    },
    pending: () => deferred.length,
  };
}

/** A connection that wants `units` turns in a row, logging its name at each. */
async function busy(
  turns: TurnScheduler,
  name: string,
  units: number,
  log: string[],
): Promise<void> {
  for (let i = 0; i < units; i++) await turns.run(() => log.push(name));
}

Deno.test("turns: with budget left and nobody waiting, a unit runs at once", async () => {
  const m = manual();
  let ran = false;
  const result = m.turns.run(() => {
    ran = true;
    return 42;
  });
  assert.equal(ran, true);
  assert.equal(await result, 42);
  // The slice stays open until the event loop has had its turn.
  assert.equal(m.pending(), 1);
  await m.yieldToEventLoop();
  m.turns.close();
});

Deno.test("turns: a busy connection gets one unit per round while another waits: they alternate", async () => {
  const m = manual({ maxUnitsPerSlice: 4 });
  const log: string[] = [];
  const a = busy(m.turns, "A", 6, log);
  const b = busy(m.turns, "B", 6, log);
  const c = busy(m.turns, "C", 1, log);
  // The first slice: A's and B's and C's first units fit its budget of 4...
  for (let i = 0; i < 10; i++) await Promise.resolve();
  // ...and from then on everyone waits in line.
  while (m.pending() > 0) await m.yieldToEventLoop();
  await Promise.all([a, b, c]);
  assert.deepEqual(log.join(""), "ABCABABABABAB");
  m.turns.close();
});

Deno.test("turns: a slice ends after its unit budget and resumes only after the event loop's turn", async () => {
  const m = manual({ maxUnitsPerSlice: 3 });
  const ran: number[] = [];
  const all = Array.from({ length: 7 }, (_, i) => m.turns.run(() => ran.push(i)));
  assert.deepEqual(ran, [0, 1, 2]);
  assert.equal(m.turns.queued, 4);
  await m.yieldToEventLoop();
  assert.deepEqual(ran, [0, 1, 2, 3, 4, 5]);
  await m.yieldToEventLoop();
  assert.deepEqual(ran, [0, 1, 2, 3, 4, 5, 6]);
  await Promise.all(all);
  assert.equal(m.turns.slices, 3);
  // The last slice closes on its own turn of the event loop.
  await m.yieldToEventLoop();
  assert.equal(m.pending(), 0);
  m.turns.close();
});

Deno.test("turns: a slice ends once its time budget is spent, however few units ran", async () => {
  const m = manual({ sliceMs: 5, maxUnitsPerSlice: 1000 });
  const ran: string[] = [];
  m.turns.run(() => {
    ran.push("slow");
    m.advance(6);
  });
  const next = m.turns.run(() => ran.push("next"));
  assert.deepEqual(ran, ["slow"], "the next unit waits for the event loop");
  await m.yieldToEventLoop();
  await next;
  assert.deepEqual(ran, ["slow", "next"]);
  await m.yieldToEventLoop();
  m.turns.close();
});

Deno.test("turns: a unit that throws rejects its own promise only", async () => {
  const m = manual();
  const failed = m.turns.run(() => {
    throw new Error("bug");
  });
  await assert.rejects(failed, /bug/);
  assert.equal(await m.turns.run(() => "fine"), "fine");
  await m.yieldToEventLoop();
  m.turns.close();
});

Deno.test("turns: close rejects waiting units and later ones, and cancels the pending slice", async () => {
  const m = manual({ maxUnitsPerSlice: 1 });
  await m.turns.run(() => {});
  const waiting = m.turns.run(() => assert.fail("must not run"));
  m.turns.close();
  await assert.rejects(waiting, SchedulerClosedError);
  await assert.rejects(m.turns.run(() => {}), SchedulerClosedError);
  assert.equal(m.pending(), 0);
});

Deno.test("turns: with the real timer, queued units run after a macrotask", async () => {
  const turns = new TurnScheduler({ maxUnitsPerSlice: 1 });
  const order: string[] = [];
  const first = turns.run(() => order.push("first"));
  const second = turns.run(() => order.push("second"));
  setTimeout(() => order.push("timer"), 0);
  await Promise.all([first, second]);
  assert.deepEqual(order.slice(0, 1), ["first"]);
  assert.ok(order.includes("second"));
  turns.close();
});
