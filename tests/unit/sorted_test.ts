// Sorting in steps gives exactly what one sort gives.

import assert from "node:assert/strict";
import fc from "fast-check";
import { mergeRuns, sortedRuns } from "../../src/sorted.ts";
import { compareStrings } from "../../src/registry.ts";

Deno.test("sorted runs, merged, equal one sort of the whole list, for any list and run length", () => {
  fc.assert(
    fc.property(
      fc.array(fc.string({ maxLength: 6 })),
      fc.integer({ min: 1, max: 9 }),
      (names, n) => {
        const runs = [...sortedRuns(names, n, compareStrings)];
        assert.ok(runs.every((run) => run.length <= n && run.length > 0));
        assert.deepEqual([...mergeRuns(runs, compareStrings)], [...names].sort(compareStrings));
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("each step sorts one run: 10,000 names in runs of 1,000 take 10 steps", () => {
  const names = Array.from({ length: 10_000 }, (_, i) => `t${(i * 7919) % 10_000}`);
  const runs = sortedRuns(names, 1_000, compareStrings);
  let steps = 0;
  const all: string[][] = [];
  for (let r = runs.next(); !r.done; r = runs.next()) {
    steps++;
    all.push(r.value);
  }
  assert.equal(steps, 10);
  const merged = [...mergeRuns(all, compareStrings)];
  assert.equal(merged.length, 10_000);
  assert.deepEqual(merged, [...names].sort(compareStrings));
});

Deno.test("one run is already the merge: returned as it is, not walked through the heap", () => {
  const run = ["a", "b", "c"];
  assert.equal(mergeRuns([run], compareStrings), run);
  assert.deepEqual([...mergeRuns([], compareStrings)], []);
});
