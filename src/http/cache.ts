// Serialized answers of the hot read paths, reused until the registry says
// they changed. The one validity rule lives here: an entry serves only while
// its key's registry version is the one it was built from and the clock has
// not passed the time it stays valid through (a producer expiring or a
// tombstone lapsing changes an answer without any registry change).

export interface CachedAnswer {
  readonly version: number;
  /** Registry clock time (ms) through which the answer stays true. */
  readonly validThrough: number;
  readonly body: string;
  /** The body's UTF-8 bytes, for answers large enough to be worth keeping encoded. */
  readonly encoded?: Uint8Array<ArrayBuffer>;
}

export interface AnswerCacheOptions {
  /**
   * Whether a key can still be asked for (its topic exists). Each set() looks
   * at the two oldest entries: a dead one goes, a live one moves to the back.
   * So entries of deleted topics go within a few insertions, instead of
   * sitting in the budget until it overflows.
   */
  live?: (key: string) => boolean;
  /**
   * Characters an entry costs besides its body (the key, the entry object, the
   * map slot): the answer of an empty topic is 30 characters, and a budget of
   * bodies alone would let hundreds of thousands of them pile up.
   */
  entryOverhead?: number;
}

/** Entries looked at per set() by the sweep for dead keys. */
const SWEEP_PER_SET = 2;

/**
 * Entries by key, at most `maxChars` in all (bodies and per-entry overhead;
 * the oldest entry goes first), so keys that are never asked again, such as
 * deleted topics, cannot hold memory for ever.
 */
export class AnswerCache {
  readonly #entries = new Map<string, CachedAnswer>();
  readonly #maxChars: number;
  readonly #live: ((key: string) => boolean) | undefined;
  readonly #overhead: number;
  #chars = 0;

  constructor(maxChars: number, options: AnswerCacheOptions = {}) {
    this.#maxChars = maxChars;
    this.#live = options.live;
    this.#overhead = options.entryOverhead ?? 0;
  }

  /** The entry for `key` if it is still the answer at `version` and `now`; stale ones go. */
  get(key: string, version: number | undefined, now: number): CachedAnswer | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.version === version && now <= entry.validThrough) return entry;
    this.delete(key);
    return undefined;
  }

  set(key: string, entry: CachedAnswer): void {
    this.delete(key);
    this.#sweep();
    const size = this.#cost(entry);
    if (size > this.#maxChars) return;
    for (const [oldest, old] of this.#entries) {
      if (this.#chars + size <= this.#maxChars) break;
      this.#entries.delete(oldest);
      this.#chars -= this.#cost(old);
    }
    this.#entries.set(key, entry);
    this.#chars += size;
  }

  delete(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#chars -= this.#cost(entry);
  }

  #cost(entry: CachedAnswer): number {
    return entry.body.length + this.#overhead;
  }

  #sweep(): void {
    const live = this.#live;
    if (live === undefined) return;
    const oldest: [string, CachedAnswer][] = [];
    for (const pair of this.#entries) {
      oldest.push(pair);
      if (oldest.length === SWEEP_PER_SET) break;
    }
    for (const [key, entry] of oldest) {
      this.#entries.delete(key);
      if (live(key)) this.#entries.set(key, entry);
      else this.#chars -= this.#cost(entry);
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Characters held: bodies, and the per-entry overhead. */
  get chars(): number {
    return this.#chars;
  }
}
