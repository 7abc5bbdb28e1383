// The registration DB: which producers (nsqd peers) are registered for which
// topics and channels. No I/O and no timers; time comes from an injected clock,
// so every behaviour is unit-testable. Indexed by topic and by peer so that each
// operation costs in proportion to its answer, not to the registry's size.
//
// Memory is what limits a fleet (1,000 nsqd x 300 registrations = 300,000
// producer entries), so an entry is as small as V8 allows: the registration
// holds the peer's PeerInfo in a Set (no object per entry), the peer holds the
// registration in a plain array (no Set per peer), tombstones live in a map
// that only tombstoned registrations have, and a registration shares its
// topic's name string instead of keeping a copy.

import { mergeRuns, sortedRuns } from "./sorted.ts";

export type Category = "client" | "topic" | "channel";

export const EPHEMERAL_SUFFIX = "#ephemeral";

export function isEphemeral(name: string): boolean {
  return name.endsWith(EPHEMERAL_SUFFIX);
}

/** What a peer told us in IDENTIFY, plus the connection's address. */
export interface PeerInfo {
  /** The connection's remote `ip:port`; unique per connection. */
  readonly id: string;
  readonly remoteAddress: string;
  readonly hostname: string;
  readonly broadcastAddress: string;
  readonly tcpPort: number;
  readonly httpPort: number;
  readonly version: string;
  readonly topologyZone: string;
  readonly topologyRegion: string;
  /** Clock milliseconds of IDENTIFY or the last PING. */
  lastUpdate: number;
}

/** A peer's membership in one registration, as /debug shows it (built when asked for). */
export interface Producer {
  readonly peer: PeerInfo;
  /** Raw flag: stays true once tombstoned, for as long as the entry exists (as in the reference). */
  readonly tombstoned: boolean;
  /** Clock milliseconds; 0 when never tombstoned. */
  readonly tombstonedAt: number;
}

/**
 * Producers a registration keeps in a plain array, grown by copying so that it
 * is exactly as long as it needs to be: most registrations have a few dozen
 * at most, and a Set of ten costs three times the memory. Past this many, a
 * Set keeps joins and leaves O(1).
 */
export const SMALL_PRODUCER_LIMIT = 64;

/** One registration (`client`, `topic(T)` or `channel(T,C)`) and its producers. */
class Registration {
  /** One PeerInfo per peer id (the registry's own, see Registry.#peers); unordered. */
  #producers: PeerInfo[] | Set<PeerInfo> = [];
  /** Tombstone time per producer; topic registrations only, and only once tombstoned. */
  tombstones: Map<PeerInfo, number> | undefined = undefined;
  constructor(
    readonly category: Category,
    readonly key: string,
    readonly subkey: string,
  ) {}

  /** `category:key:subkey`, as the reference names registrations in /debug. Built when asked for. */
  get name(): string {
    return `${this.category}:${this.key}:${this.subkey}`;
  }

  /** The producers. Do not add or remove producers while iterating. */
  get producers(): Iterable<PeerInfo> {
    return this.#producers;
  }

  get producerCount(): number {
    const producers = this.#producers;
    return producers instanceof Set ? producers.size : producers.length;
  }

  hasProducer(peer: PeerInfo): boolean {
    const producers = this.#producers;
    return producers instanceof Set ? producers.has(peer) : producers.includes(peer);
  }

  /** Adds a producer it does not have. */
  addProducer(peer: PeerInfo): void {
    const producers = this.#producers;
    // concat() allocates exactly the new length; push() would leave up to 16 slots spare.
    if (producers instanceof Set) producers.add(peer);
    else if (producers.length < SMALL_PRODUCER_LIMIT) this.#producers = producers.concat(peer);
    else this.#producers = new Set(producers).add(peer);
  }

  /** False when it was no producer of this registration. */
  removeProducer(peer: PeerInfo): boolean {
    const producers = this.#producers;
    if (producers instanceof Set) return producers.delete(peer);
    const at = producers.indexOf(peer);
    if (at === -1) return false;
    // In place (a disconnect storm makes no garbage): the last one takes its slot.
    const last = producers.pop()!;
    if (at < producers.length) producers[at] = last;
    return true;
  }

  clearProducers(): void {
    this.#producers = [];
  }
}
export type { Registration };

/** A peer with at least one membership. */
interface PeerState {
  readonly info: PeerInfo;
  /**
   * Registrations joined, in order. Leaving one does not search this array:
   * the entry goes stale (its registration no longer holds `info`) and may
   * come back as a repeat; stale entries and repeats are dropped once they
   * outnumber the live ones (see #compact), so the array stays below
   * 2 x live + COMPACT_SLACK entries.
   */
  memberships: Registration[];
  /** Registrations the peer is a producer of now. */
  live: number;
}

/** Stale membership entries a peer may keep before its array is compacted (see PeerState). */
export const COMPACT_SLACK = 16;

interface TopicEntry {
  /** The topic's name: the one copy that its registrations share. */
  readonly name: string;
  topic: Registration | undefined;
  readonly channels: Map<string, Registration>;
  /** Changes whenever the topic's /lookup answer may change other than by the clock. */
  version: number;
}

/** A /lookup answer plus what a cache needs to know when it goes stale. */
export interface LookupAnswer {
  channels: string[];
  producers: PeerInfo[];
  /** The topic's version when answered; compare with topicVersion(). */
  version: number;
  /** Clock time up to which (inclusive) the answer cannot change by time alone. */
  validThrough: number;
}

export interface RegistryOptions {
  /** Milliseconds since the epoch. */
  now: () => number;
  inactiveProducerTimeoutMs: number;
  tombstoneLifetimeMs: number;
}

export interface NodeInfo {
  peer: PeerInfo;
  topics: string[];
  tombstones: boolean[];
}

export interface RemovedMembership {
  readonly category: Category;
  readonly key: string;
  readonly subkey: string;
}

export interface DebugEntry {
  name: string;
  producers: Producer[];
}

/** Order of producers in every answer: broadcast address, TCP port, remote address. */
export function compareProducers(a: PeerInfo, b: PeerInfo): number {
  if (a.broadcastAddress !== b.broadcastAddress) {
    return a.broadcastAddress < b.broadcastAddress ? -1 : 1;
  }
  if (a.tcpPort !== b.tcpPort) return a.tcpPort - b.tcpPort;
  if (a.remoteAddress !== b.remoteAddress) return a.remoteAddress < b.remoteAddress ? -1 : 1;
  return 0;
}

/** Code-unit order, the order of every sorted list the API answers. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortedKeys(map: Map<string, unknown>): string[] {
  return [...map.keys()].sort(compareStrings);
}

const COLON = 0x3a;

/**
 * Orders registrations as their names `category:key:subkey` sort, without
 * building the names (a disconnect sorts all of a peer's registrations).
 */
export function compareRegistrations(a: RemovedMembership, b: RemovedMembership): number {
  // No category is a prefix of another, so the category decides when they differ.
  if (a.category !== b.category) return compareStrings(a.category, b.category);
  if (a.key === b.key) return compareStrings(a.subkey, b.subkey);
  if (a.key.includes(":") || b.key.includes(":")) {
    return compareStrings(`${a.key}:${a.subkey}`, `${b.key}:${b.subkey}`);
  }
  // Different keys without ':': past a shorter key, its ':' meets the longer key's next char.
  if (b.key.startsWith(a.key)) return COLON < b.key.charCodeAt(a.key.length) ? -1 : 1;
  if (a.key.startsWith(b.key)) return a.key.charCodeAt(b.key.length) < COLON ? -1 : 1;
  return compareStrings(a.key, b.key);
}

/** What src/registry_testing.ts reads to check the indexes; nothing else uses it. */
export interface RegistryInternals {
  readonly client: Registration;
  readonly topics: ReadonlyMap<string, TopicEntry>;
  readonly peers: ReadonlyMap<string, PeerState>;
  readonly tombstoned: ReadonlySet<Registration>;
  readonly topicCount: number;
  readonly channelCount: number;
  readonly entries: Readonly<Record<Category, number>>;
}

/** Set once the class below is defined; see RegistryInternals. */
export let registryInternals: (registry: Registry) => RegistryInternals;

export class Registry {
  readonly #now: () => number;
  readonly #inactiveMs: number;
  readonly #tombstoneMs: number;
  readonly #client = new Registration("client", "", "");
  readonly #topics = new Map<string, TopicEntry>();
  /** Peers with at least one membership, by id; their PeerInfo is the one every registration holds. */
  readonly #peers = new Map<string, PeerState>();
  #topicCount = 0;
  #channelCount = 0;
  /** Source of versions: every change takes the next number. */
  #versions = 0;
  /** Version of the set of topic names (/topics). */
  #topicsVersion = 0;
  /** Version of everything /nodes shows other than by the clock. */
  #nodesVersion = 0;
  /** Producer entries per category, for metrics. */
  readonly #entries: Record<Category, number> = { client: 0, topic: 0, channel: 0 };
  /** Registrations holding tombstones that may still be in force; pruned when counted. */
  readonly #tombstoned = new Set<Registration>();

  static {
    registryInternals = (registry) => ({
      client: registry.#client,
      topics: registry.#topics,
      peers: registry.#peers,
      tombstoned: registry.#tombstoned,
      topicCount: registry.#topicCount,
      channelCount: registry.#channelCount,
      entries: { ...registry.#entries },
    });
  }

  constructor(options: RegistryOptions) {
    this.#now = options.now;
    this.#inactiveMs = options.inactiveProducerTimeoutMs;
    this.#tombstoneMs = options.tombstoneLifetimeMs;
  }

  now(): number {
    return this.#now();
  }

  // ---- producer side (TCP) ----

  /** Adds the peer to the `client` registration; false if it already was. */
  identify(peer: PeerInfo): boolean {
    return this.#addProducer(this.#client, peer);
  }

  /** Refreshes a peer's liveness (PING). Returns the previous lastUpdate. */
  touch(peer: PeerInfo): number {
    const previous = peer.lastUpdate;
    peer.lastUpdate = this.#now();
    // A peer coming back from inactivity reappears in its topics' /lookup answers.
    if (peer.lastUpdate - previous > this.#inactiveMs) {
      this.#nodesVersion = ++this.#versions;
      const state = this.#peers.get(peer.id);
      if (state !== undefined) {
        for (const registration of state.memberships) {
          if (registration.category === "topic" && registration.hasProducer(state.info)) {
            this.#bump(registration.key);
          }
        }
      }
    }
    return previous;
  }

  registerTopic(peer: PeerInfo, topic: string): boolean {
    return this.#addProducer(this.#ensureTopic(topic), peer);
  }

  registerChannel(peer: PeerInfo, topic: string, channel: string): boolean {
    return this.#addProducer(this.#ensureChannel(topic, channel), peer);
  }

  /** UNREGISTER topic channel: true if the peer was a producer of it. */
  unregisterChannel(peerId: string, topic: string, channel: string): boolean {
    const registration = this.#topics.get(topic)?.channels.get(channel);
    if (registration === undefined) return false;
    const removed = this.#removeProducer(registration, peerId);
    if (registration.producerCount === 0 && isEphemeral(channel)) {
      this.#deleteRegistration(registration);
    }
    return removed;
  }

  /**
   * UNREGISTER topic: removes the peer from every channel of the topic and
   * from the topic. Returns the channels it was removed from (sorted) and
   * whether it was a producer of the topic itself.
   */
  unregisterTopic(peerId: string, topic: string): { channels: string[]; topic: boolean } {
    const entry = this.#topics.get(topic);
    if (entry === undefined) return { channels: [], topic: false };
    const channels: string[] = [];
    for (const name of sortedKeys(entry.channels)) {
      if (this.#removeProducer(entry.channels.get(name)!, peerId)) channels.push(name);
    }
    let removedTopic = false;
    const registration = entry.topic;
    if (registration !== undefined) {
      removedTopic = this.#removeProducer(registration, peerId);
      if (registration.producerCount === 0 && isEphemeral(topic)) {
        this.#deleteRegistration(registration);
      }
    }
    return { channels, topic: removedTopic };
  }

  /**
   * A connection ended: the peer leaves every registration, which are
   * returned sorted by name. Ephemeral registrations left without producers
   * are deleted too.
   */
  removePeer(peerId: string): RemovedMembership[] {
    const removed: RemovedMembership[] = [];
    for (const step of this.removePeerInSteps(peerId, Infinity)) removed.push(...step);
    return removed;
  }

  /**
   * removePeer in steps, for a peer with tens of thousands of registrations
   * (one step of the whole would hold the thread for tens of milliseconds):
   * the peer is gone at the first step (no longer identified, nor in /nodes);
   * its registrations are then sorted a run of `perStep` per step (each yields
   * nothing) and left `perStep` per step, in order, each step yielding those
   * it left. Until the last step, the registrations not yet reached still
   * show the peer, as a connection's end reaches Go's registrations one at a
   * time too.
   */
  *removePeerInSteps(
    peerId: string,
    perStep: number,
  ): Generator<RemovedMembership[], void, undefined> {
    const state = this.#peers.get(peerId);
    if (state === undefined) return;
    this.#peers.delete(peerId);
    // The state is dropped: without stale entries its own array is the list to sort.
    const memberships = state.memberships.length === state.live
      ? state.memberships
      : liveMemberships(state);
    const runs: Registration[][] = [];
    for (const run of sortedRuns(memberships, perStep, compareRegistrations)) {
      runs.push(run);
      if (run.length === perStep) yield [];
    }
    let step: Registration[] = [];
    for (const registration of mergeRuns(runs, compareRegistrations)) {
      // Between steps a registration may have been deleted (a topic delete over HTTP).
      if (!registration.hasProducer(state.info)) continue;
      this.#leave(registration, state.info);
      const name = registration.category === "channel" ? registration.subkey : registration.key;
      if (
        registration.category !== "client" && registration.producerCount === 0 &&
        isEphemeral(name)
      ) {
        this.#deleteRegistration(registration);
      }
      step.push(registration);
      if (step.length === perStep) {
        yield step;
        step = [];
      }
    }
    if (step.length > 0) yield step;
  }

  // ---- administrative side (HTTP) ----

  /** Creates `topic(topic)`; false if it existed. */
  createTopic(topic: string): boolean {
    const existed = this.#topics.get(topic)?.topic !== undefined;
    this.#ensureTopic(topic);
    return !existed;
  }

  /** Creates `channel(topic,channel)`; false if it existed. */
  createChannel(topic: string, channel: string): boolean {
    const existed = this.#topics.get(topic)?.channels.has(channel) ?? false;
    this.#ensureChannel(topic, channel);
    return !existed;
  }

  /** Deletes `topic(topic)` and all its channels. Returns the deleted channel names and whether the topic existed. */
  deleteTopic(topic: string): { channels: string[]; topic: boolean } {
    const entry = this.#topics.get(topic);
    if (entry === undefined) return { channels: [], topic: false };
    const channels = sortedKeys(entry.channels);
    for (const name of channels) this.#deleteRegistration(entry.channels.get(name)!);
    const hadTopic = entry.topic !== undefined;
    if (entry.topic !== undefined) this.#deleteRegistration(entry.topic);
    return { channels, topic: hadTopic };
  }

  /** False when no such channel registration exists. */
  deleteChannel(topic: string, channel: string): boolean {
    const registration = this.#topics.get(topic)?.channels.get(channel);
    if (registration === undefined) return false;
    this.#deleteRegistration(registration);
    return true;
  }

  /** Tombstones, in `topic(topic)`, producers whose `broadcast_address:http_port` is `node`. */
  tombstone(topic: string, node: string): number {
    const registration = this.#topics.get(topic)?.topic;
    if (registration === undefined) return 0;
    let count = 0;
    const now = this.#now();
    for (const peer of registration.producers) {
      if (`${peer.broadcastAddress}:${peer.httpPort}` === node) {
        if (count === 0) {
          this.#bump(topic);
          this.#nodesVersion = ++this.#versions;
        }
        (registration.tombstones ??= new Map()).set(peer, now);
        this.#tombstoned.add(registration);
        count++;
      }
    }
    return count;
  }

  // ---- queries ----

  isActive(peer: PeerInfo, now: number = this.#now()): boolean {
    return now - peer.lastUpdate <= this.#inactiveMs;
  }

  isTombstoned(producer: Producer, now: number = this.#now()): boolean {
    return producer.tombstoned && this.#inForce(producer.tombstonedAt, now);
  }

  /** Names of all topic registrations, unsorted: for answers that sort them in steps. */
  *topicNames(): Generator<string, void, undefined> {
    for (const [name, entry] of this.#topics) {
      if (entry.topic !== undefined) yield name;
    }
  }

  /** Names of all topic registrations, sorted. */
  topics(): string[] {
    const names: string[] = [];
    for (const [name, entry] of this.#topics) {
      if (entry.topic !== undefined) names.push(name);
    }
    return names.sort(compareStrings);
  }

  /** Channel registrations of a topic, sorted; empty for an unknown topic. */
  channels(topic: string): string[] {
    const entry = this.#topics.get(topic);
    return entry === undefined ? [] : sortedKeys(entry.channels);
  }

  /** undefined when `topic(topic)` does not exist. Producers: active and not tombstoned, sorted. */
  lookup(topic: string): LookupAnswer | undefined {
    const entry = this.#topics.get(topic);
    if (entry?.topic === undefined) return undefined;
    const registration = entry.topic;
    const now = this.#now();
    const producers: PeerInfo[] = [];
    let validThrough = Infinity;
    for (const peer of registration.producers) {
      const active = this.isActive(peer, now);
      const tombstonedAt = registration.tombstones?.get(peer);
      if (tombstonedAt === undefined || !this.#inForce(tombstonedAt, now)) {
        if (active) {
          producers.push(peer);
          validThrough = Math.min(validThrough, peer.lastUpdate + this.#inactiveMs);
        }
      } else if (active) {
        // Visible again once the tombstone lifetime has passed (exclusive bound).
        validThrough = Math.min(validThrough, tombstonedAt + this.#tombstoneMs - 1e-3);
      }
    }
    return {
      channels: sortedKeys(entry.channels),
      producers: producers.sort(compareProducers),
      version: entry.version,
      validThrough,
    };
  }

  /** The topic's current version, or undefined without a `topic(topic)` registration. O(1). */
  topicVersion(topic: string): number | undefined {
    const entry = this.#topics.get(topic);
    return entry?.topic === undefined ? undefined : entry.version;
  }

  /** Changes whenever the set of topic registrations changes. */
  get topicsVersion(): number {
    return this.#topicsVersion;
  }

  /** Every active identified peer with its topics and per-topic tombstone state. */
  nodes(): NodeInfo[] {
    return [...this.iterateNodes()];
  }

  /** /nodes plus what a cache needs: the version and the time the answer stays valid through. */
  nodesAnswer(): { nodes: NodeInfo[]; version: number; validThrough: number } {
    const now = this.#now();
    const validThrough = this.nodesValidThrough(now);
    return { nodes: [...this.iterateNodes(now)], version: this.#nodesVersion, validThrough };
  }

  /** The registry clock time through which /nodes, as it is at `now`, stays true. */
  nodesValidThrough(now: number = this.#now()): number {
    let validThrough = Infinity;
    for (const peer of this.#client.producers) {
      if (this.isActive(peer, now)) {
        validThrough = Math.min(validThrough, peer.lastUpdate + this.#inactiveMs);
      }
    }
    for (const registration of this.#tombstoned) {
      for (const tombstonedAt of registration.tombstones!.values()) {
        if (this.#inForce(tombstonedAt, now)) {
          validThrough = Math.min(validThrough, tombstonedAt + this.#tombstoneMs - 1e-3);
        }
      }
    }
    return validThrough;
  }

  /**
   * /nodes one node at a time, for answers written in slices: which peers,
   * and in what order, is fixed by the first pull (at `now`); each node's
   * topics are read when it is pulled. A peer gone by then yields no topics.
   */
  *iterateNodes(now: number = this.#now()): Generator<NodeInfo, void, undefined> {
    const peers: PeerInfo[] = [];
    for (const peer of this.#client.producers) {
      if (this.isActive(peer, now)) peers.push(peer);
    }
    peers.sort(compareProducers);
    for (const peer of peers) {
      const state = this.#peers.get(peer.id);
      const topics = state === undefined || state.info !== peer
        ? []
        : liveMemberships(state, "topic").sort((a, b) => compareStrings(a.key, b.key));
      yield {
        peer,
        topics: topics.map((r) => r.key),
        tombstones: topics.map((r) => {
          const tombstonedAt = r.tombstones?.get(peer);
          return tombstonedAt !== undefined && this.#inForce(tombstonedAt, now);
        }),
      };
    }
  }

  /** Changes whenever /nodes may change other than by the clock. */
  get nodesVersion(): number {
    return this.#nodesVersion;
  }

  /** Every registration that has producers, sorted by name, with its producers sorted. */
  debug(): DebugEntry[] {
    const entries: DebugEntry[] = [];
    for (const entry of this.iterateDebug()) if (entry !== null) entries.push(entry);
    return entries;
  }

  /**
   * /debug one registration at a time, for answers written in slices. First
   * the registrations are gathered and sorted in runs of `runLength`, one run
   * per pull (each pull yields null), so that no step sorts the whole
   * registry; then the runs are merged, one registration per pull. Which
   * registrations, and in what order, is fixed by then; each one's producers
   * are read when it is pulled, and one left without any is skipped.
   */
  *iterateDebug(runLength = Infinity): Generator<DebugEntry | null, void, undefined> {
    const runs: Registration[][] = [];
    for (const run of sortedRuns(this.#debugRegistrations(), runLength, compareRegistrations)) {
      runs.push(run);
      if (run.length === runLength) yield null;
    }
    for (const registration of mergeRuns(runs, compareRegistrations)) {
      if (registration.producerCount === 0) continue;
      const producers: Producer[] = [];
      for (const peer of registration.producers) {
        const tombstonedAt = registration.tombstones?.get(peer);
        producers.push({
          peer,
          tombstoned: tombstonedAt !== undefined,
          tombstonedAt: tombstonedAt ?? 0,
        });
      }
      producers.sort((a, b) => compareProducers(a.peer, b.peer));
      yield { name: registration.name, producers };
    }
  }

  /** Registrations with producers, in no particular order. */
  *#debugRegistrations(): Generator<Registration, void, undefined> {
    if (this.#client.producerCount > 0) yield this.#client;
    for (const entry of this.#topics.values()) {
      if (entry.topic !== undefined && entry.topic.producerCount > 0) yield entry.topic;
      for (const channel of entry.channels.values()) {
        if (channel.producerCount > 0) yield channel;
      }
    }
  }

  /** Identified peers that are active now. Costs one pass over the peers. */
  activeProducerCount(): number {
    const now = this.#now();
    let count = 0;
    for (const peer of this.#client.producers) {
      if (this.isActive(peer, now)) count++;
    }
    return count;
  }

  /** Producer entries currently hidden by a tombstone. Costs one pass over past tombstones. */
  tombstonedCount(): number {
    const now = this.#now();
    let count = 0;
    for (const registration of this.#tombstoned) {
      let inForce = 0;
      for (const tombstonedAt of registration.tombstones!.values()) {
        if (this.#inForce(tombstonedAt, now)) inForce++;
      }
      if (inForce === 0) this.#tombstoned.delete(registration);
      count += inForce;
    }
    return count;
  }

  /** Producer entries (peer × registration) per category. */
  entryCounts(): Readonly<Record<Category, number>> {
    return { ...this.#entries };
  }

  /** Sizes for metrics and consistency checks. */
  stats(): { peers: number; topics: number; channels: number; clientProducers: number } {
    return {
      peers: this.#peers.size,
      topics: this.#topicCount,
      channels: this.#channelCount,
      clientProducers: this.#client.producerCount,
    };
  }

  // ---- internals ----

  #inForce(tombstonedAt: number, now: number): boolean {
    return now - tombstonedAt < this.#tombstoneMs;
  }

  #entry(topic: string): TopicEntry {
    let entry = this.#topics.get(topic);
    if (entry === undefined) {
      entry = { name: topic, topic: undefined, channels: new Map(), version: ++this.#versions };
      this.#topics.set(topic, entry);
    }
    return entry;
  }

  #bump(topic: string): void {
    const entry = this.#topics.get(topic);
    if (entry !== undefined) entry.version = ++this.#versions;
  }

  #ensureTopic(topic: string): Registration {
    const entry = this.#entry(topic);
    if (entry.topic === undefined) {
      entry.topic = new Registration("topic", entry.name, "");
      this.#topicCount++;
      entry.version = ++this.#versions;
      this.#topicsVersion = ++this.#versions;
    }
    return entry.topic;
  }

  #ensureChannel(topic: string, channel: string): Registration {
    const entry = this.#entry(topic);
    let registration = entry.channels.get(channel);
    if (registration === undefined) {
      registration = new Registration("channel", entry.name, channel);
      entry.channels.set(channel, registration);
      this.#channelCount++;
      entry.version = ++this.#versions;
    }
    return registration;
  }

  #addProducer(registration: Registration, peer: PeerInfo): boolean {
    let state = this.#peers.get(peer.id);
    if (state !== undefined && registration.hasProducer(state.info)) return false;
    if (state === undefined) {
      state = { info: peer, memberships: [], live: 0 };
      this.#peers.set(peer.id, state);
    }
    registration.addProducer(state.info);
    state.memberships.push(registration);
    state.live++;
    this.#compactIfStale(state);
    this.#entries[registration.category]++;
    if (registration.category === "topic") this.#bump(registration.key);
    if (registration.category !== "channel") this.#nodesVersion = ++this.#versions;
    return true;
  }

  #removeProducer(registration: Registration, peerId: string): boolean {
    const state = this.#peers.get(peerId);
    if (state === undefined || !registration.hasProducer(state.info)) return false;
    this.#leave(registration, state.info);
    this.#forget(state);
    return true;
  }

  /** Takes `peer` out of `registration` and its counts; the peer's own state is the caller's. */
  #leave(registration: Registration, peer: PeerInfo): void {
    registration.removeProducer(peer);
    this.#entries[registration.category]--;
    if (registration.category === "topic") this.#bump(registration.key);
    if (registration.category !== "channel") this.#nodesVersion = ++this.#versions;
    this.#dropTombstone(registration, peer);
  }

  /** One membership of the peer ended. */
  #forget(state: PeerState): void {
    if (--state.live === 0) this.#peers.delete(state.info.id);
    else this.#compactIfStale(state);
  }

  #compactIfStale(state: PeerState): void {
    if (state.memberships.length > 2 * state.live + COMPACT_SLACK) {
      state.memberships = liveMemberships(state);
    }
  }

  #dropTombstone(registration: Registration, peer: PeerInfo): void {
    const tombstones = registration.tombstones;
    if (tombstones?.delete(peer) && tombstones.size === 0) {
      registration.tombstones = undefined;
      this.#tombstoned.delete(registration);
    }
  }

  #deleteRegistration(registration: Registration): void {
    const producers = registration.producerCount;
    for (const peer of registration.producers) {
      // A peer being removed in steps is no longer in #peers: nothing to forget.
      const state = this.#peers.get(peer.id);
      if (state !== undefined && state.info === peer) this.#forget(state);
    }
    registration.clearProducers();
    registration.tombstones = undefined;
    this.#tombstoned.delete(registration);
    this.#entries[registration.category] -= producers;
    if (registration.category !== "channel" && producers > 0) {
      this.#nodesVersion = ++this.#versions;
    }
    if (registration.category === "client") return;
    const entry = this.#topics.get(registration.key);
    if (entry === undefined) return;
    entry.version = ++this.#versions;
    if (registration.category === "topic") {
      if (entry.topic === registration) {
        entry.topic = undefined;
        this.#topicCount--;
        this.#topicsVersion = ++this.#versions;
      }
    } else if (entry.channels.get(registration.subkey) === registration) {
      entry.channels.delete(registration.subkey);
      this.#channelCount--;
    }
    if (entry.topic === undefined && entry.channels.size === 0) {
      this.#topics.delete(registration.key);
    }
  }
}

/**
 * The registrations a peer is a producer of now, each once, in joining
 * order (optionally of one category). Costs one pass over its array.
 */
function liveMemberships(state: PeerState, category?: Category): Registration[] {
  const live: Registration[] = [];
  // Repeats only follow a stale entry, so without stale entries there are none.
  const repeats = state.memberships.length > state.live ? new Set<Registration>() : undefined;
  for (const registration of state.memberships) {
    if (category !== undefined && registration.category !== category) continue;
    if (!registration.hasProducer(state.info)) continue;
    if (repeats !== undefined) {
      if (repeats.has(registration)) continue;
      repeats.add(registration);
    }
    live.push(registration);
  }
  return live;
}
