// Sorting a registry-sized list in steps: sorting 300,000 names at once holds
// the one JavaScript thread for a long time, so a sliced answer sorts runs of
// a few thousand (one run a step) and merges them as it writes.

/** Items in runs of at most `runLength`, each run sorted; one run per step. */
export function* sortedRuns<T>(
  items: Iterable<T>,
  runLength: number,
  compare: (a: T, b: T) => number,
): Generator<T[], void, undefined> {
  let run: T[] = [];
  for (const item of items) {
    run.push(item);
    if (run.length === runLength) {
      yield run.sort(compare);
      run = [];
    }
  }
  if (run.length > 0) yield run.sort(compare);
}

/**
 * The items of sorted runs, merged in order. One run (the usual case: a few
 * hundred items) is already in order and is returned as it is; several are
 * merged through a binary heap of run heads.
 */
export function mergeRuns<T>(runs: readonly T[][], compare: (a: T, b: T) => number): Iterable<T> {
  return runs.length === 1 ? runs[0] : mergeHeap(runs, compare);
}

function* mergeHeap<T>(
  runs: readonly T[][],
  compare: (a: T, b: T) => number,
): Generator<T, void, undefined> {
  // heap[i] = [run index, position in that run], ordered by the item there.
  const heap: [number, number][] = [];
  const itemAt = (entry: [number, number]): T => runs[entry[0]][entry[1]];
  const less = (a: number, b: number): boolean => compare(itemAt(heap[a]), itemAt(heap[b])) < 0;
  const swap = (a: number, b: number): void => {
    [heap[a], heap[b]] = [heap[b], heap[a]];
  };
  const down = (i: number): void => {
    while (true) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < heap.length && less(left, least)) least = left;
      if (right < heap.length && less(right, least)) least = right;
      if (least === i) return;
      swap(i, least);
      i = least;
    }
  };
  for (let r = 0; r < runs.length; r++) if (runs[r].length > 0) heap.push([r, 0]);
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) down(i);
  while (heap.length > 0) {
    const head = heap[0];
    yield itemAt(head);
    if (++head[1] === runs[head[0]].length) {
      const last = heap.pop()!;
      if (heap.length === 0) return;
      heap[0] = last;
    }
    down(0);
  }
}
