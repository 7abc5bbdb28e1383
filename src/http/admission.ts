// Who gets a connection slot when slots run short: a pure policy over a
// snapshot of the connections, so that the HTTP server only applies it.
//
// Descriptors are finite, so the number of connections is capped; but a hard
// wall would let whoever holds the slots (an attacker trickling request heads,
// announcing bodies it never sends, or idling) lock everyone else out. So a
// newcomer may take the slot of a connection that is waiting on its client —
// the one waiting the longest — and one remote host may hold only a share of
// the slots. Connections the server is busy with (computing or writing an
// answer) are never taken; newcomers younger than a minimum age neither, so
// that a burst of newcomers does not evict each other before they could send
// their request.

/** One connection as the policy sees it. */
export interface Occupant<T> {
  readonly id: T;
  /** The remote host (no port), e.g. `10.0.0.7`. */
  readonly remote: string;
  /** Waiting on its client: idle between requests, or receiving a request head or body. */
  readonly waiting: boolean;
  /**
   * Since when it waits without having been served: its accept, or the end of
   * its last answer. Trickling a request does not make it younger.
   */
  readonly waitingSince: number;
}

export interface AdmissionLimits {
  /** The cap: never more connections than this. */
  readonly maxConnections: number;
  /** From this many on, a newcomer makes room right away (without waiting for the cap). */
  readonly softLimit: number;
  /** The most connections one remote host may hold. */
  readonly maxPerRemote: number;
  /** Connections waiting for less than this are not evicted. */
  readonly minWaitMs: number;
}

/** Which limit a newcomer ran into, worded as the log line says it. */
export type AdmissionReason = "connection limit" | "per-remote share";

export type Admission<T> =
  /** Take the newcomer. */
  | { readonly kind: "admit" }
  /**
   * Close `victim`, then take the newcomer; `wait`: only once the victim has
   * let go of its descriptor (the cap is reached).
   */
  | {
    readonly kind: "evict";
    readonly victim: T;
    readonly reason: AdmissionReason;
    readonly wait: boolean;
  }
  /** Close the newcomer. */
  | { readonly kind: "refuse"; readonly reason: AdmissionReason };

/**
 * The default share of one remote host: half the cap (at least 16), so that
 * one host never holds more than half the slots, while clients behind one
 * address (a proxy, a NAT) still have plenty.
 */
export function defaultMaxPerRemote(maxConnections: number): number {
  return Math.min(maxConnections, Math.max(16, Math.floor(maxConnections / 2)));
}

/** Newcomers evict ahead of the cap once fewer than 1/32 of the slots are free. */
export function defaultSoftLimit(maxConnections: number): number {
  return maxConnections - Math.floor(maxConnections / 32);
}

/** The occupant waiting the longest (at least minWaitMs), among those `eligible`. */
export function longestWaiting<T>(
  occupants: Iterable<Occupant<T>>,
  now: number,
  minWaitMs: number,
  eligible: (o: Occupant<T>) => boolean = () => true,
): Occupant<T> | undefined {
  let oldest: Occupant<T> | undefined;
  for (const o of occupants) {
    if (!o.waiting || now - o.waitingSince < minWaitMs || !eligible(o)) continue;
    if (oldest === undefined || o.waitingSince < oldest.waitingSince) oldest = o;
  }
  return oldest;
}

/**
 * What to do with a newcomer from `remote`, given the connections there are
 * (`count` of them, `fromRemote` from the same host).
 */
export function admit<T>(
  newcomer: { readonly remote: string; readonly fromRemote: number },
  count: number,
  occupants: Iterable<Occupant<T>>,
  limits: AdmissionLimits,
  now: number,
): Admission<T> {
  const atCap = count >= limits.maxConnections;
  if (newcomer.fromRemote >= limits.maxPerRemote) {
    // The host's own longest-waiting connection makes room (a client pool
    // recycling its connections keeps working); else the newcomer goes.
    const own = longestWaiting(
      occupants,
      now,
      limits.minWaitMs,
      (o) => o.remote === newcomer.remote,
    );
    if (own === undefined) return { kind: "refuse", reason: "per-remote share" };
    return { kind: "evict", victim: own.id, reason: "per-remote share", wait: atCap };
  }
  if (count < limits.softLimit) return { kind: "admit" };
  const oldest = longestWaiting(occupants, now, limits.minWaitMs);
  if (oldest !== undefined) {
    return { kind: "evict", victim: oldest.id, reason: "connection limit", wait: atCap };
  }
  return atCap ? { kind: "refuse", reason: "connection limit" } : { kind: "admit" };
}
