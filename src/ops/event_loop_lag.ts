// How long the one JavaScript thread was held: a timer asked for every
// `intervalMs` runs late by as long as something ran in the way (a long piece
// of work, a GC pause, the process not scheduled). The late part of each tick
// is reported, so that /metrics shows every stall as it happened, not an
// average that hides it.

/** The tick: short enough to see a 20 ms stall as one, cheap (100 timers a second). */
export const EVENT_LOOP_LAG_INTERVAL_MS = 10;

export interface EventLoopLagOptions {
  /** Called with each tick's lag in seconds (0 when on time). */
  observe: (seconds: number) => void;
  intervalMs?: number;
  /** Monotonic milliseconds. */
  now?: () => number;
}

export class EventLoopLag {
  readonly #observe: (seconds: number) => void;
  readonly #intervalMs: number;
  readonly #now: () => number;
  #last: number | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(options: EventLoopLagOptions) {
    this.#observe = options.observe;
    this.#intervalMs = options.intervalMs ?? EVENT_LOOP_LAG_INTERVAL_MS;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Starts ticking; the timer does not keep the process alive. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#last = this.#now();
    const timer = setInterval(() => this.tick(), this.#intervalMs);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#last = undefined;
  }

  /** One tick of the timer: how late it came is observed. */
  tick(): void {
    const now = this.#now();
    if (this.#last !== undefined) {
      this.#observe(Math.max(0, now - this.#last - this.#intervalMs) / 1000);
    }
    this.#last = now;
  }
}
