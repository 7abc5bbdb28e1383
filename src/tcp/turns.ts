// Connections take turns on the one JavaScript thread.
//
// Deno completes a socket read or write eagerly when the kernel is ready, so a
// connection loop `read → handle → write → read` whose peer keeps sending
// never returns to the event loop: other connections' bytes, timers and HTTP
// requests wait until that peer pauses. Here each piece of synchronous work
// (a bounded batch of commands, a disconnect's cleanup) is a unit that runs in
// a slice: units run at once while the slice has budget, then queue in FIFO
// order, and the queue drains in the next slice, after a macrotask
// (setTimeout 0) has let the event loop poll I/O and run timers. A busy peer
// therefore gets one unit per round, behind every other waiting connection.

export interface TurnSchedulerOptions {
  /** Longest a slice keeps running units before yielding to the event loop. */
  sliceMs?: number;
  /** Most units per slice: each is followed by a socket write and read. */
  maxUnitsPerSlice?: number;
  /** Monotonic milliseconds. */
  now?: () => number;
  /** Runs `fn` after the event loop has polled I/O and timers; returns a cancel function. */
  defer?: (fn: () => void) => () => void;
}

export const SLICE_MS = 5;
export const MAX_UNITS_PER_SLICE = 128;

/** A unit could not run because the scheduler was closed. */
export class SchedulerClosedError extends Error {
  override name = "SchedulerClosedError";
}

interface Unit {
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** The default pause between slices: a zero-delay timer; returns its cancel function. */
export function deferWithTimer(fn: () => void): () => void {
  const timer = setTimeout(fn, 0);
  return () => clearTimeout(timer);
}

export class TurnScheduler {
  readonly #sliceMs: number;
  readonly #maxUnits: number;
  readonly #now: () => number;
  readonly #defer: (fn: () => void) => () => void;
  /** FIFO with a moving head, so a long queue is not shifted element by element. */
  #queue: Unit[] = [];
  #head = 0;
  /** Start of the open slice; undefined when none is open (the next unit opens one). */
  #sliceStart: number | undefined;
  #sliceUnits = 0;
  #cancelTimer: (() => void) | undefined;
  #closed = false;
  #slices = 0;

  constructor(options: TurnSchedulerOptions = {}) {
    this.#sliceMs = options.sliceMs ?? SLICE_MS;
    this.#maxUnits = options.maxUnitsPerSlice ?? MAX_UNITS_PER_SLICE;
    this.#now = options.now ?? (() => performance.now());
    this.#defer = options.defer ?? deferWithTimer;
  }

  /** Units waiting for a turn. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  /** Slices opened so far (each ends with a return to the event loop). */
  get slices(): number {
    return this.#slices;
  }

  /**
   * Runs `work` (synchronous) in a turn: at once if the slice has budget and
   * nobody is waiting, else after the units queued before it.
   */
  run<T>(work: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new SchedulerClosedError("scheduler closed"));
    if (this.queued === 0 && this.#hasBudget()) {
      this.#openSlice();
      this.#sliceUnits++;
      try {
        return Promise.resolve(work());
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      this.#openSlice();
    });
  }

  /** Rejects every waiting unit and stops; later run() calls reject at once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    const waiting = this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    for (const unit of waiting) unit.reject(new SchedulerClosedError("scheduler closed"));
  }

  #hasBudget(): boolean {
    if (this.#sliceStart === undefined) return true;
    return this.#sliceUnits < this.#maxUnits && this.#now() - this.#sliceStart < this.#sliceMs;
  }

  /** A slice ends only when the deferred callback runs, i.e. after the event loop had its turn. */
  #openSlice(): void {
    if (this.#sliceStart === undefined) {
      this.#sliceStart = this.#now();
      this.#sliceUnits = 0;
      this.#slices++;
    }
    this.#cancelTimer ??= this.#defer(() => this.#nextSlice());
  }

  #nextSlice(): void {
    this.#cancelTimer = undefined;
    this.#sliceStart = undefined;
    if (this.queued === 0) return;
    this.#openSlice();
    while (this.queued > 0 && this.#hasBudget()) {
      const unit = this.#queue[this.#head];
      this.#queue[this.#head++] = undefined as unknown as Unit;
      this.#sliceUnits++;
      try {
        unit.resolve(unit.work());
      } catch (error) {
        unit.reject(error);
      }
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }
}
