// Unit tests of src/http/admission.ts: who makes room for a newcomer at the
// connection cap, and the per-remote share.

import assert from "node:assert/strict";
import {
  type AdmissionLimits,
  admit,
  defaultMaxPerRemote,
  defaultSoftLimit,
  longestWaiting,
  type Occupant,
} from "../../../src/http/admission.ts";

const LIMITS: AdmissionLimits = {
  maxConnections: 4,
  softLimit: 4,
  maxPerRemote: 3,
  minWaitMs: 100,
};
const NOW = 10_000;

function occupant(
  id: string,
  remote: string,
  waitingSince: number,
  waiting = true,
): Occupant<string> {
  return { id, remote, waiting, waitingSince };
}

Deno.test("below the cap a newcomer is admitted and no one is evicted", () => {
  const occupants = [occupant("a", "h1", 0), occupant("b", "h2", 0)];
  assert.deepEqual(admit({ remote: "h3", fromRemote: 0 }, 2, occupants, LIMITS, NOW), {
    kind: "admit",
  });
});

Deno.test("at the cap the connection waiting longest is evicted, by time since last served, not by deadline", () => {
  // A trickling head accepted long ago, an idle keep-alive served recently, a fresh one.
  const occupants = [
    occupant("idle", "h1", 9_000),
    occupant("trickle", "h2", 2_000),
    occupant("fresh", "h3", 9_990),
    occupant("busy", "h4", 0, false),
  ];
  assert.deepEqual(admit({ remote: "h5", fromRemote: 0 }, 4, occupants, LIMITS, NOW), {
    kind: "evict",
    victim: "trickle",
    reason: "connection limit",
    wait: true,
  });
});

Deno.test("connections being served are never evicted; with none waiting long enough the newcomer is refused", () => {
  const occupants = [
    occupant("busy1", "h1", 0, false),
    occupant("busy2", "h2", 0, false),
    occupant("young1", "h3", NOW - 50),
    occupant("young2", "h4", NOW - 99),
  ];
  assert.deepEqual(admit({ remote: "h5", fromRemote: 0 }, 4, occupants, LIMITS, NOW), {
    kind: "refuse",
    reason: "connection limit",
  });
  // At exactly minWaitMs a connection is old enough.
  const old = [...occupants.slice(0, 3), occupant("waited", "h4", NOW - 100)];
  assert.equal(admit({ remote: "h5", fromRemote: 0 }, 4, old, LIMITS, NOW).kind, "evict");
});

Deno.test("between the soft limit and the cap a newcomer evicts without waiting, or is admitted anyway", () => {
  const limits = { ...LIMITS, maxConnections: 8, softLimit: 4 };
  const occupants = [occupant("a", "h1", 0), occupant("b", "h2", 5_000)];
  assert.deepEqual(admit({ remote: "h3", fromRemote: 0 }, 5, occupants, limits, NOW), {
    kind: "evict",
    victim: "a",
    reason: "connection limit",
    wait: false,
  });
  const young = [occupant("a", "h1", NOW), occupant("b", "h2", NOW)];
  assert.deepEqual(admit({ remote: "h3", fromRemote: 0 }, 5, young, limits, NOW), {
    kind: "admit",
  });
});

Deno.test("a host at its share makes room from its own connections, never from others'", () => {
  const occupants = [
    occupant("other", "h2", 0),
    occupant("own-new", "h1", 9_000),
    occupant("own-old", "h1", 5_000),
    occupant("own-busy", "h1", 0, false),
  ];
  assert.deepEqual(admit({ remote: "h1", fromRemote: 3 }, 4, occupants, LIMITS, NOW), {
    kind: "evict",
    victim: "own-old",
    reason: "per-remote share",
    wait: true,
  });
  // Below the cap, no need to wait for the descriptor.
  assert.deepEqual(
    admit({ remote: "h1", fromRemote: 3 }, 3, occupants.slice(1), LIMITS, NOW),
    { kind: "evict", victim: "own-old", reason: "per-remote share", wait: false },
  );
});

Deno.test("a host at its share whose connections are all busy or young is refused, while other hosts get in", () => {
  const occupants = [
    occupant("own1", "h1", 0, false),
    occupant("own2", "h1", NOW),
    occupant("own3", "h1", NOW - 10),
  ];
  assert.deepEqual(admit({ remote: "h1", fromRemote: 3 }, 3, occupants, LIMITS, NOW), {
    kind: "refuse",
    reason: "per-remote share",
  });
  assert.deepEqual(admit({ remote: "h2", fromRemote: 0 }, 3, occupants, LIMITS, NOW), {
    kind: "admit",
  });
});

Deno.test("longestWaiting picks the earliest waitingSince among eligible waiting occupants", () => {
  const occupants = [
    occupant("a", "h1", 300),
    occupant("b", "h2", 100),
    occupant("c", "h2", 50, false),
    occupant("d", "h3", 200),
  ];
  assert.equal(longestWaiting(occupants, NOW, 0)?.id, "b");
  assert.equal(longestWaiting(occupants, NOW, 0, (o) => o.remote !== "h2")?.id, "d");
  assert.equal(longestWaiting(occupants, 350, 200)?.id, "b");
  assert.equal(longestWaiting(occupants, 250, 200), undefined);
  assert.equal(longestWaiting([], NOW, 0), undefined);
});

Deno.test("the default share is half the cap, at least 16 (never more than the cap); the soft limit leaves 1/32 free", () => {
  assert.equal(defaultMaxPerRemote(1024), 512);
  assert.equal(defaultMaxPerRemote(64), 32);
  assert.equal(defaultMaxPerRemote(20), 16);
  assert.equal(defaultMaxPerRemote(8), 8);
  assert.equal(defaultSoftLimit(1024), 992);
  assert.equal(defaultSoftLimit(31), 31);
});
