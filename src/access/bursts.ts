// Log lines for repeated events (an auth server failing, refused peers
// reconnecting in a loop): the first event of a burst is logged, the rest are
// counted and summed up at most once per interval, and the end of the burst
// is logged with its count. A flood costs a counter increment, not a line.

export interface BurstReport {
  /** Events in the burst so far, this one included. */
  readonly count: number;
  /** Events since the last line about this burst. */
  readonly sinceLastLine: number;
  /** Clock milliseconds since the burst began. */
  readonly elapsedMs: number;
}

export class Burst {
  readonly #intervalMs: number;
  readonly #now: () => number;
  #count = 0;
  #sinceLastLine = 0;
  #startedAt = 0;
  #lastLineAt = 0;

  /** `intervalMs`: the longest silence about an ongoing burst. */
  constructor(intervalMs: number, now: () => number) {
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  get active(): boolean {
    return this.#count > 0;
  }

  /** Records one event; a report when it deserves a line (first of a burst, or interval passed). */
  event(): BurstReport | undefined {
    const now = this.#now();
    this.#count++;
    this.#sinceLastLine++;
    if (this.#count === 1) this.#startedAt = now;
    else if (now - this.#lastLineAt < this.#intervalMs) return undefined;
    const report = {
      count: this.#count,
      sinceLastLine: this.#sinceLastLine,
      elapsedMs: now - this.#startedAt,
    };
    this.#lastLineAt = now;
    this.#sinceLastLine = 0;
    return report;
  }

  /** Ends the burst; its report when there was one. */
  end(): BurstReport | undefined {
    if (this.#count === 0) return undefined;
    const report = {
      count: this.#count,
      sinceLastLine: this.#sinceLastLine,
      elapsedMs: this.#now() - this.#startedAt,
    };
    this.#count = 0;
    this.#sinceLastLine = 0;
    return report;
  }
}
