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

/**
 * Entries by key, at most `maxChars` of bodies in all (the oldest entry goes
 * first), so keys that are never asked again, such as deleted topics, cannot
 * hold memory for ever.
 */
export class AnswerCache {
  readonly #entries = new Map<string, CachedAnswer>();
  readonly #maxChars: number;
  #chars = 0;

  constructor(maxChars: number) {
    this.#maxChars = maxChars;
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
    const size = entry.body.length;
    if (size > this.#maxChars) return;
    for (const [oldest, old] of this.#entries) {
      if (this.#chars + size <= this.#maxChars) break;
      this.#entries.delete(oldest);
      this.#chars -= old.body.length;
    }
    this.#entries.set(key, entry);
    this.#chars += size;
  }

  delete(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#chars -= entry.body.length;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Characters of bodies held. */
  get chars(): number {
    return this.#chars;
  }
}
