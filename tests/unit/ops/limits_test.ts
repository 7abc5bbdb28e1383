// src/ops/limits.ts: the descriptor limit, measured without holding the thread.

import assert from "node:assert/strict";
import { probeHeadroomSliced } from "../../../src/ops/limits.ts";

Deno.test("headroom measured in batches lets other work run between them, and closes all it opened", async () => {
  let open = 0;
  let closed = 0;
  const file = (): { close(): void } => {
    if (open === 1_000) throw new Error("EMFILE");
    open++;
    return { close: () => closed++ };
  };
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 0);
  const headroom = await probeHeadroomSliced(() => false, file, { first: 100, then: 100 });
  clearInterval(ticker);
  assert.equal(headroom, 1_000);
  assert.equal(closed, 1_000);
  assert.ok(ticks >= 5, `${ticks} timer turns during 10 batches`);
});

Deno.test("what the headroom measurement opened is closed in batches too, with other work running between them", async () => {
  let open = 0;
  let ticks = 0;
  const ticksAtClose: number[] = [];
  const file = (): { close(): void } => {
    if (open === 1_000) throw new Error("EMFILE");
    open++;
    return { close: () => ticksAtClose.push(ticks) };
  };
  const ticker = setInterval(() => ticks++, 0);
  const headroom = await probeHeadroomSliced(() => false, file, { first: 100, then: 100 });
  clearInterval(ticker);
  assert.equal(headroom, 1_000);
  assert.equal(ticksAtClose.length, 1_000);
  const turns = ticksAtClose[ticksAtClose.length - 1] - ticksAtClose[0];
  assert.ok(turns >= 5, `${turns} timer turns while 10 batches were closed`);
});

Deno.test("a headroom measurement stopped midway says nothing and closes what it opened", async () => {
  let opened = 0;
  let closed = 0;
  let batches = 0;
  const headroom = await probeHeadroomSliced(() => ++batches === 2, () => {
    opened++;
    return { close: () => closed++ };
  }, { first: 100, then: 100 });
  assert.equal(headroom, undefined);
  assert.equal(opened, 200);
  assert.equal(closed, 200);
});

Deno.test("the first slice is opened before the probe yields, so a limit within it is known before any connection is accepted", async () => {
  const probe = (
    limit: number,
  ): { opened: () => number; headroom: Promise<number | undefined> } => {
    let open = 0;
    const headroom = probeHeadroomSliced(() => false, () => {
      if (open === limit) throw new Error("EMFILE");
      open++;
      return { close: () => {} };
    }, { first: 256, then: 64 });
    return { opened: () => open, headroom };
  };
  const small = probe(200);
  assert.equal(small.opened(), 200);
  assert.equal(await small.headroom, 200);
  const large = probe(1000);
  assert.equal(large.opened(), 256);
  assert.equal(await large.headroom, 1000);
});
