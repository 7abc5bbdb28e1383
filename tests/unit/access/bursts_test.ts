import assert from "node:assert/strict";
import { Burst } from "../../../src/access/bursts.ts";
import { ManualClock } from "../../support/helpers.ts";

Deno.test("bursts: the first event of a burst is reported, the next ones only once per interval", () => {
  const clock = new ManualClock(0);
  const burst = new Burst(1000, clock.now);
  assert.deepEqual(burst.event(), { count: 1, sinceLastLine: 1, elapsedMs: 0 });
  for (let i = 0; i < 9; i++) {
    clock.advance(100);
    assert.equal(burst.event(), undefined);
  }
  clock.advance(100);
  assert.deepEqual(burst.event(), { count: 11, sinceLastLine: 10, elapsedMs: 1000 });
  assert.ok(burst.active);
});

Deno.test("bursts: ending reports the burst once; a new burst starts over", () => {
  const clock = new ManualClock(0);
  const burst = new Burst(1000, clock.now);
  assert.equal(burst.end(), undefined);
  burst.event();
  burst.event();
  clock.advance(250);
  assert.deepEqual(burst.end(), { count: 2, sinceLastLine: 1, elapsedMs: 250 });
  assert.ok(!burst.active);
  assert.equal(burst.end(), undefined);
  assert.deepEqual(burst.event(), { count: 1, sinceLastLine: 1, elapsedMs: 0 });
});

Deno.test("bursts: a million events cost no line beyond one per interval", () => {
  const clock = new ManualClock(0);
  const burst = new Burst(10_000, clock.now);
  let lines = 0;
  for (let i = 0; i < 1_000_000; i++) {
    if (i % 1000 === 0) clock.advance(100);
    if (burst.event() !== undefined) lines++;
  }
  // 100 s of events: the first line, then one per 10 s.
  assert.equal(lines, 10);
});
