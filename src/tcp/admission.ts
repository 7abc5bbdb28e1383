// Who gets a TCP connection slot when they are scarce: a pure table of the
// open connections by how much they have proven, in least-recently-active
// order, with per-host counts. No sockets here; tcp/server.ts asks it on
// every accept and tells it what each connection did.
//
// A newcomer always has proven nothing yet, so it may only displace others
// that have not either: first connections that never sent the protocol magic,
// then ones that sent it but never IDENTIFIED, each time the one silent the
// longest. An identified nsqd is never displaced by a newcomer.

/** How far a connection got: nothing, the protocol magic, or IDENTIFY. */
export type Standing = "silent" | "started" | "identified";

const RANK: Record<Standing, number> = { silent: 0, started: 1, identified: 2 };

export interface Tracked {
  /** The admission key of the remote: an IPv4 address or an IPv6 /64. */
  readonly host: string;
  standing: Standing;
  /** Last time it sent anything (or connected), for least-recently-active order. */
  lastActive: number;
}

/** Which limit a newcomer ran into. */
export type AdmissionReason = "limit" | "per_remote";

export type Admission<T extends Tracked> =
  | { kind: "admit" }
  | { kind: "evict"; victim: T; reason: AdmissionReason }
  | { kind: "refuse"; reason: AdmissionReason };

export interface AdmissionLimits {
  /** Connections held at once. */
  maxConnections: number;
  /** Connections one host may hold at once. */
  maxPerHost: number;
}

/** The share of the cap one host may hold by default. */
export const PER_HOST_SHARE = 1 / 8;

export function defaultMaxPerHost(maxConnections: number): number {
  if (!Number.isFinite(maxConnections)) return Infinity;
  return Math.max(1, Math.floor(maxConnections * PER_HOST_SHARE));
}

/**
 * The key connections are counted under: the address for IPv4 (IPv4-mapped
 * IPv6 included), the /64 prefix for IPv6, where one host typically owns a
 * whole /64 and could otherwise open each connection from a new address.
 */
export function hostKey(hostname: string): string {
  const address = hostname.startsWith("[") ? hostname.slice(1, -1) : hostname;
  if (!address.includes(":")) return address;
  const mapped = /^(?:0{0,4}:){0,5}(?:0{0,4}:)?ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return mapped[1];
  const groups = expandIpv6(address.split("%")[0]);
  return groups === undefined ? address : `${groups.slice(0, 4).join(":")}::/64`;
}

/** The eight groups of an IPv6 address, without leading zeros; undefined if malformed. */
function expandIpv6(address: string): string[] | undefined {
  const halves = address.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] === "" ? [] : halves[0].split(":");
  const tail = halves.length === 2 && halves[1] !== "" ? halves[1].split(":") : [];
  // An embedded IPv4 tail (::1.2.3.4) counts as two groups.
  const last = tail.length > 0 ? tail : head;
  if (last.length > 0 && last[last.length - 1].includes(".")) {
    const parts = last.pop()!.split(".").map(Number);
    last.push(((parts[0] << 8) | parts[1]).toString(16), ((parts[2] << 8) | parts[3]).toString(16));
  }
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 0) return undefined;
  const groups = [...head, ...Array<string>(missing).fill("0"), ...tail];
  return groups.map((g) => (/^[0-9a-f]{1,4}$/i.test(g) ? parseInt(g, 16).toString(16) : "?"));
}

/** Per standing, in least-recently-active order (Maps keep insertion order). */
type ByStanding<T> = Record<Standing, Map<T, true>>;

function byStanding<T>(): ByStanding<T> {
  return { silent: new Map(), started: new Map(), identified: new Map() };
}

function firstOf<T>(map: Map<T, true>): T | undefined {
  for (const entry of map.keys()) return entry;
  return undefined;
}

/** The host's connections, kept in the same order: its victim is found without a scan. */
interface Hosted<T> {
  size: number;
  readonly byStanding: ByStanding<T>;
}

export class ConnectionTable<T extends Tracked> {
  readonly #byStanding: ByStanding<T> = byStanding();
  readonly #byHost = new Map<string, Hosted<T>>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  count(standing: Standing): number {
    return this.#byStanding[standing].size;
  }

  /** The connections of a standing, least recently active first. */
  entries(standing: Standing): IterableIterator<T> {
    return this.#byStanding[standing].keys();
  }

  countForHost(host: string): number {
    return this.#byHost.get(host)?.size ?? 0;
  }

  add(entry: T): void {
    this.#byStanding[entry.standing].set(entry, true);
    let hosted = this.#byHost.get(entry.host);
    if (hosted === undefined) {
      this.#byHost.set(entry.host, hosted = { size: 0, byStanding: byStanding() });
    }
    hosted.byStanding[entry.standing].set(entry, true);
    hosted.size++;
    this.#size++;
  }

  remove(entry: T): void {
    if (!this.#byStanding[entry.standing].delete(entry)) return;
    const hosted = this.#byHost.get(entry.host);
    if (hosted !== undefined && hosted.byStanding[entry.standing].delete(entry)) {
      if (--hosted.size === 0) this.#byHost.delete(entry.host);
    }
    this.#size--;
  }

  /** It sent something: it becomes the most recently active of its standing. */
  touch(entry: T, now: number): void {
    entry.lastActive = now;
    const map = this.#byStanding[entry.standing];
    if (!map.delete(entry)) return;
    map.set(entry, true);
    const hosted = this.#byHost.get(entry.host)?.byStanding[entry.standing];
    if (hosted?.delete(entry)) hosted.set(entry, true);
  }

  /** It got further (magic, then IDENTIFY); a standing never goes back. */
  promote(entry: T, standing: Standing): void {
    if (RANK[standing] <= RANK[entry.standing]) return;
    if (!this.#byStanding[entry.standing].delete(entry)) return;
    const hosted = this.#byHost.get(entry.host)?.byStanding;
    hosted?.[entry.standing].delete(entry);
    entry.standing = standing;
    this.#byStanding[standing].set(entry, true);
    hosted?.[standing].set(entry, true);
  }

  /** What to do with a newcomer from `host`, given the limits. Changes nothing. */
  admit(host: string, limits: AdmissionLimits): Admission<T> {
    const hosted = this.#byHost.get(host);
    if (hosted !== undefined && hosted.size >= limits.maxPerHost) {
      // The host's own least-recently-active silent, else started, connection.
      const victim = firstOf(hosted.byStanding.silent) ?? firstOf(hosted.byStanding.started);
      return victim === undefined
        ? { kind: "refuse", reason: "per_remote" }
        : { kind: "evict", victim, reason: "per_remote" };
    }
    if (this.#size < limits.maxConnections) return { kind: "admit" };
    const victim = firstOf(this.#byStanding.silent) ?? firstOf(this.#byStanding.started);
    return victim === undefined
      ? { kind: "refuse", reason: "limit" }
      : { kind: "evict", victim, reason: "limit" };
  }
}
