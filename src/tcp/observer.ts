// What the TCP side reports, defined beside the code that calls it; the
// metrics module (ops/metrics.ts) implements it. Every method is a counter
// bump: cheap, synchronous, never throws back into the connection.

export type RemovalReason = "disconnect" | "idle_timeout" | "unregister";

/**
 * Why a connection was turned away or closed to make room:
 * - `admit`: the access-control policy refused it (before anything was read);
 * - `limit`: the connection cap was reached and nothing could be evicted;
 * - `per_remote`: its host already holds its share of the cap;
 * - `evicted`: an open connection (silent, or unidentified) closed to let a newcomer in.
 */
export type RefusalReason = "admit" | "limit" | "per_remote" | "evicted";

export interface TcpObserver {
  connectionAccepted(): void;
  /** `result` is `ok` or the error code the command failed with. */
  command(command: string, result: string): void;
  protocolError(code: string): void;
  /** Producer entries (peer × registration) removed, by why. */
  producersRemoved(reason: RemovalReason, count: number): void;
  /** A connection refused at accept or evicted, by reason (optional: added later). */
  connectionRefused?(reason: RefusalReason): void;
}

export const NOOP_TCP_OBSERVER: TcpObserver = {
  connectionAccepted: () => {},
  command: () => {},
  protocolError: () => {},
  producersRemoved: () => {},
  connectionRefused: () => {},
};
