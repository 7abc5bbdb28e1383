// Unit tests of src/http/turns.ts: work goes on at once within a run's
// budget, and past it waits for a timer turn, in which sockets are polled.

import assert from "node:assert/strict";
import { Turns } from "../../../src/http/turns.ts";

Deno.test("within the budget pass() lets work go on at once", () => {
  let now = 0;
  const turns = new Turns({ budgetMs: 4, clock: () => now });
  assert.equal(turns.pass(), undefined);
  now = 3.9;
  assert.equal(turns.pass(), undefined);
});

Deno.test("past the budget pass() waits for the next turn, shared by everyone waiting, then a new run starts", async () => {
  let now = 0;
  let yields = 0;
  const turns = new Turns({ budgetMs: 4, clock: () => now, onYield: () => yields++ });
  assert.equal(turns.pass(), undefined);
  now = 4;
  const wait = turns.pass();
  assert.ok(wait instanceof Promise);
  assert.equal(turns.pass(), wait);
  assert.equal(yields, 2);
  await wait;
  assert.equal(turns.pass(), undefined, "a new run");
});

Deno.test("a run ends when the event loop turns, so work that waited on I/O starts a new one", async () => {
  let now = 0;
  const turns = new Turns({ budgetMs: 4, clock: () => now });
  assert.equal(turns.pass(), undefined);
  await new Promise((resolve) => setTimeout(resolve, 0));
  now = 100;
  assert.equal(turns.pass(), undefined);
});

Deno.test("with a budget of 0 every pass after the first of a run waits", async () => {
  const turns = new Turns({ budgetMs: 0 });
  assert.equal(turns.pass(), undefined);
  const wait = turns.pass();
  assert.ok(wait instanceof Promise);
  await wait;
  assert.equal(turns.pass(), undefined);
  assert.ok(turns.pass() instanceof Promise);
  await turns.pass();
});

Deno.test("a timer that is due runs while work passes its turns, which a chain of microtasks never lets happen", async () => {
  // Stands for a socket read that completed meanwhile: it runs in the next turn.
  const turns = new Turns({ budgetMs: 0 });
  let fired = false;
  setTimeout(() => fired = true, 0);
  let steps = 0;
  while (!fired && steps < 1_000) {
    steps++;
    const wait = turns.pass();
    if (wait !== undefined) await wait;
    else await Promise.resolve();
  }
  assert.ok(fired);
  assert.ok(steps < 10, `${steps} steps`);
});

Deno.test("a turn that fails (its connection closed) falls back to a timer turn", async () => {
  const turns = new Turns({ budgetMs: 0, turn: () => Promise.reject(new Error("closed")) });
  assert.equal(turns.pass(), undefined);
  const wait = turns.pass();
  assert.ok(wait instanceof Promise);
  await wait;
  await turns.settled();
});
