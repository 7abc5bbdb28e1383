// Fairness between connections on one JavaScript thread.
//
// Deno completes a socket read or write at once when the kernel has the bytes
// (or the room): a connection whose client keeps it busy (pipelined requests,
// a large answer to a fast reader) then goes read → answer → write → read in
// microtasks and never returns to the event loop, so no other connection's
// input is even polled. A macrotask is not enough either: the runtime polls
// sockets only when it has nothing ready to run, so a setImmediate chain
// still starves them (measured: a quiet client waited 14 ms median behind
// one busy one). So work runs in runs; a run that has lasted `budgetMs` ends
// with a turn in which the runtime polls every socket before the busy
// connections go on. The turn is a read on a loopback connection to
// ourselves (ops/loopback_turn.ts), issued before the byte it waits for is written: the runtime
// must poll its sockets to complete it, and sleeps no longer than that
// (measured: 20 µs a turn, a quiet client 0.7 ms median behind a busy one).
// A zero-delay timer does the same in a millisecond or more (Deno clamps
// it), and stands in when the loopback connection cannot be had.

import { setImmediate } from "node:timers";

/**
 * Work in one go before other connections get their turn. A newcomer waits
 * about a run for each step (accept, read): with 4 ms, /ping took 49-58 ms
 * while 4 connections pipelined topic create/lookup/delete (row 6 of issue
 * 12), with 2 ms 20-30 ms, for the same /lookup throughput (1.04x the bare
 * Deno.serve in the bench, 1.02-1.09x before).
 */
export const TURN_BUDGET_MS = 2;

export interface TurnsOptions {
  /** 0: every pass() after the first of a run waits for the next turn. */
  budgetMs?: number;
  /** Monotonic milliseconds. */
  clock?: () => number;
  /** Settles after the runtime has polled its sockets; default a zero-delay timer. */
  turn?: () => Promise<void>;
  /** Each time work waits for the next turn (for tests and diagnostics). */
  onYield?: () => void;
}

const timerTurn = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

export class Turns {
  readonly #budget: number;
  readonly #clock: () => number;
  readonly #turn: () => Promise<void>;
  readonly #onYield: (() => void) | undefined;
  /** When the current run started; undefined once the event loop turned. */
  #runStart: number | undefined;
  #next: Promise<void> | undefined;
  readonly #endRun = (): void => {
    this.#runStart = undefined;
  };

  constructor(options: TurnsOptions = {}) {
    this.#budget = options.budgetMs ?? TURN_BUDGET_MS;
    this.#clock = options.clock ?? (() => performance.now());
    this.#turn = options.turn ?? timerTurn;
    this.#onYield = options.onYield;
  }

  /** Settles once no turn is pending (a server that closes leaves nothing behind). */
  async settled(): Promise<void> {
    while (this.#next !== undefined) await this.#next;
  }

  /**
   * Called between two pieces of a connection's work: undefined to go on at
   * once, or a promise that settles on the next turn, after every other
   * connection had its chance.
   */
  pass(): Promise<void> | undefined {
    const now = this.#clock();
    if (this.#runStart === undefined) {
      // A new run: it ends at the latest when the event loop next turns.
      this.#runStart = now;
      setImmediate(this.#endRun);
      return undefined;
    }
    if (now - this.#runStart < this.#budget) return undefined;
    this.#onYield?.();
    this.#next ??= this.#turn().catch(() => timerTurn()).then(() => {
      this.#next = undefined;
      this.#runStart = undefined;
    });
    return this.#next;
  }
}
