// The registry as it was before its memory layout changed (one Producer object
// per entry, a Set of registrations per peer, precomputed names): kept as the
// reference model that tests/unit/registry_test.ts compares the real one with,
// answer by answer, under random operations. Not used by the daemon.

import {
  type Category,
  compareProducers,
  isEphemeral,
  type LookupAnswer,
  type NodeInfo,
  type PeerInfo,
  type RegistryOptions,
  type RemovedMembership,
} from "../../src/registry.ts";

/** A peer's membership in one registration; tombstones are per membership. */
interface Producer {
  readonly peer: PeerInfo;
  tombstoned: boolean;
  /** Clock milliseconds; 0 when never tombstoned. */
  tombstonedAt: number;
}

class Registration {
  readonly producers: Map<string, Producer> = new Map();
  /** `category:key:subkey`, as the reference names registrations in /debug (sort key too). */
  readonly name: string;
  constructor(
    readonly category: Category,
    readonly key: string,
    readonly subkey: string,
  ) {
    this.name = `${category}:${key}:${subkey}`;
  }
}

interface TopicEntry {
  topic: Registration | undefined;
  channels: Map<string, Registration>;
  /** Changes whenever the topic's /lookup answer may change other than by the clock. */
  version: number;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortedKeys(map: Map<string, unknown>): string[] {
  return [...map.keys()].sort(compareStrings);
}

export class ModelRegistry {
  readonly #now: () => number;
  readonly #inactiveMs: number;
  readonly #tombstoneMs: number;
  readonly #client = new Registration("client", "", "");
  readonly #topics = new Map<string, TopicEntry>();
  /** peer id → every registration the peer is a producer of. */
  readonly #byPeer = new Map<string, Set<Registration>>();
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
  /** Entries tombstoned at some point and still registered; pruned when counted. */
  readonly #tombstoned = new Set<Producer>();

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
      for (const registration of this.#byPeer.get(peer.id) ?? []) {
        if (registration.category === "topic") this.#bump(registration.key);
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
    if (registration.producers.size === 0 && isEphemeral(channel)) {
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
      const registration = entry.channels.get(name)!;
      if (this.#removeProducer(registration, peerId)) channels.push(name);
    }
    let removedTopic = false;
    const registration = entry.topic;
    if (registration !== undefined) {
      removedTopic = this.#removeProducer(registration, peerId);
      if (registration.producers.size === 0 && isEphemeral(topic)) {
        this.#deleteRegistration(registration);
      }
    }
    return { channels, topic: removedTopic };
  }

  /**
   * A connection ended: the peer leaves every registration. Ephemeral
   * registrations left without producers are deleted too.
   */
  removePeer(peerId: string): RemovedMembership[] {
    const memberships = this.#byPeer.get(peerId);
    if (memberships === undefined) return [];
    const removed: RemovedMembership[] = [];
    for (const registration of [...memberships].sort(compareRegistrations)) {
      this.#removeProducer(registration, peerId);
      removed.push({
        category: registration.category,
        key: registration.key,
        subkey: registration.subkey,
      });
      const name = registration.category === "channel" ? registration.subkey : registration.key;
      if (
        registration.category !== "client" && registration.producers.size === 0 &&
        isEphemeral(name)
      ) {
        this.#deleteRegistration(registration);
      }
    }
    return removed;
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
    for (const producer of registration.producers.values()) {
      const { broadcastAddress, httpPort } = producer.peer;
      if (`${broadcastAddress}:${httpPort}` === node) {
        if (count === 0) {
          this.#bump(topic);
          this.#nodesVersion = ++this.#versions;
        }
        producer.tombstoned = true;
        producer.tombstonedAt = now;
        this.#tombstoned.add(producer);
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
    return producer.tombstoned && now - producer.tombstonedAt < this.#tombstoneMs;
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
    const now = this.#now();
    const producers: PeerInfo[] = [];
    let validThrough = Infinity;
    for (const producer of entry.topic.producers.values()) {
      const active = this.isActive(producer.peer, now);
      const tombstoned = this.isTombstoned(producer, now);
      if (active && !tombstoned) {
        producers.push(producer.peer);
        validThrough = Math.min(validThrough, producer.peer.lastUpdate + this.#inactiveMs);
      } else if (active) {
        // Visible again once the tombstone lifetime has passed (exclusive bound).
        validThrough = Math.min(validThrough, producer.tombstonedAt + this.#tombstoneMs - 1e-3);
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
    return this.nodesAnswer().nodes;
  }

  /** /nodes plus what a cache needs: the version and the time the answer stays valid through. */
  nodesAnswer(): { nodes: NodeInfo[]; version: number; validThrough: number } {
    const now = this.#now();
    const peers: PeerInfo[] = [];
    let validThrough = Infinity;
    for (const producer of this.#client.producers.values()) {
      if (this.isActive(producer.peer, now)) {
        peers.push(producer.peer);
        validThrough = Math.min(validThrough, producer.peer.lastUpdate + this.#inactiveMs);
      }
    }
    for (const producer of this.#tombstoned) {
      if (this.isTombstoned(producer, now)) {
        validThrough = Math.min(validThrough, producer.tombstonedAt + this.#tombstoneMs - 1e-3);
      }
    }
    peers.sort(compareProducers);
    const nodes = peers.map((peer) => {
      const topicRegistrations: Registration[] = [];
      for (const registration of this.#byPeer.get(peer.id) ?? []) {
        if (registration.category === "topic") topicRegistrations.push(registration);
      }
      topicRegistrations.sort((a, b) => compareStrings(a.key, b.key));
      return {
        peer,
        topics: topicRegistrations.map((r) => r.key),
        tombstones: topicRegistrations.map((r) =>
          this.isTombstoned(r.producers.get(peer.id)!, now)
        ),
      };
    });
    return { nodes, version: this.#nodesVersion, validThrough };
  }

  /** Changes whenever /nodes may change other than by the clock. */
  get nodesVersion(): number {
    return this.#nodesVersion;
  }

  /** Every registration that has producers, sorted by name, with its producers sorted. */
  debug(): { name: string; producers: Producer[] }[] {
    const registrations: Registration[] = [];
    if (this.#client.producers.size > 0) registrations.push(this.#client);
    for (const entry of this.#topics.values()) {
      if (entry.topic !== undefined && entry.topic.producers.size > 0) {
        registrations.push(entry.topic);
      }
      for (const channel of entry.channels.values()) {
        if (channel.producers.size > 0) registrations.push(channel);
      }
    }
    return registrations
      .map((r) => ({
        name: r.name,
        producers: [...r.producers.values()].sort((a, b) => compareProducers(a.peer, b.peer)),
      }))
      .sort((a, b) => compareStrings(a.name, b.name));
  }

  /** Identified peers that are active now. Costs one pass over the peers. */
  activeProducerCount(): number {
    const now = this.#now();
    let count = 0;
    for (const producer of this.#client.producers.values()) {
      if (this.isActive(producer.peer, now)) count++;
    }
    return count;
  }

  /** Producer entries currently hidden by a tombstone. Costs one pass over past tombstones. */
  tombstonedCount(): number {
    const now = this.#now();
    let count = 0;
    for (const producer of this.#tombstoned) {
      if (this.isTombstoned(producer, now)) count++;
      else this.#tombstoned.delete(producer);
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
      peers: this.#byPeer.size,
      topics: this.#topicCount,
      channels: this.#channelCount,
      clientProducers: this.#client.producers.size,
    };
  }

  /** Registrations the peer is a producer of (for tests and /nodes). */
  membershipsOf(peerId: string): Registration[] {
    return [...(this.#byPeer.get(peerId) ?? [])].sort(compareRegistrations);
  }

  /**
   * Verifies that the indexes agree with the registrations; throws on the
   * first disagreement. Cheap enough for tests, not meant for the hot path.
   */
  assertConsistent(): void {
    const fromRegistrations = new Map<string, Set<Registration>>();
    const note = (registration: Registration): void => {
      for (const id of registration.producers.keys()) {
        let set = fromRegistrations.get(id);
        if (set === undefined) fromRegistrations.set(id, set = new Set());
        set.add(registration);
      }
    };
    note(this.#client);
    let topics = 0;
    let channels = 0;
    for (const [name, entry] of this.#topics) {
      if (entry.topic === undefined && entry.channels.size === 0) {
        throw new Error(`empty topic entry ${name}`);
      }
      if (entry.topic !== undefined) {
        topics++;
        if (entry.topic.key !== name) throw new Error(`topic ${name} holds ${entry.topic.name}`);
        note(entry.topic);
      }
      for (const [channelName, registration] of entry.channels) {
        channels++;
        if (registration.key !== name || registration.subkey !== channelName) {
          throw new Error(`channel ${name}/${channelName} holds ${registration.name}`);
        }
        note(registration);
      }
    }
    if (topics !== this.#topicCount || channels !== this.#channelCount) {
      throw new Error(`counts ${this.#topicCount}/${this.#channelCount} != ${topics}/${channels}`);
    }
    const entries: Record<Category, number> = {
      client: this.#client.producers.size,
      topic: 0,
      channel: 0,
    };
    for (const entry of this.#topics.values()) {
      entries.topic += entry.topic?.producers.size ?? 0;
      for (const channel of entry.channels.values()) entries.channel += channel.producers.size;
    }
    for (const category of ["client", "topic", "channel"] as const) {
      if (entries[category] !== this.#entries[category]) {
        throw new Error(
          `${category} entries counted ${this.#entries[category]}, held ${entries[category]}`,
        );
      }
    }
    for (const producer of this.#tombstoned) {
      if (!producer.tombstoned) throw new Error("untombstoned producer in the tombstone set");
    }
    if (fromRegistrations.size !== this.#byPeer.size) {
      throw new Error(
        `peer index has ${this.#byPeer.size} peers, registrations ${fromRegistrations.size}`,
      );
    }
    for (const [id, set] of this.#byPeer) {
      const expected = fromRegistrations.get(id);
      if (expected === undefined || expected.size !== set.size) {
        throw new Error(`peer index of ${id} disagrees`);
      }
      for (const registration of set) {
        if (!expected.has(registration)) throw new Error(`peer index of ${id} disagrees`);
      }
    }
  }

  // ---- internals ----

  #entry(topic: string): TopicEntry {
    let entry = this.#topics.get(topic);
    if (entry === undefined) {
      entry = { topic: undefined, channels: new Map(), version: ++this.#versions };
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
      entry.topic = new Registration("topic", topic, "");
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
      registration = new Registration("channel", topic, channel);
      entry.channels.set(channel, registration);
      this.#channelCount++;
      entry.version = ++this.#versions;
    }
    return registration;
  }

  #addProducer(registration: Registration, peer: PeerInfo): boolean {
    if (registration.producers.has(peer.id)) return false;
    registration.producers.set(peer.id, { peer, tombstoned: false, tombstonedAt: 0 });
    this.#entries[registration.category]++;
    if (registration.category === "topic") this.#bump(registration.key);
    if (registration.category !== "channel") this.#nodesVersion = ++this.#versions;
    let memberships = this.#byPeer.get(peer.id);
    if (memberships === undefined) {
      memberships = new Set();
      this.#byPeer.set(peer.id, memberships);
    }
    memberships.add(registration);
    return true;
  }

  #removeProducer(registration: Registration, peerId: string): boolean {
    const producer = registration.producers.get(peerId);
    if (producer === undefined) return false;
    registration.producers.delete(peerId);
    this.#entries[registration.category]--;
    if (registration.category === "topic") this.#bump(registration.key);
    if (registration.category !== "channel") this.#nodesVersion = ++this.#versions;
    this.#tombstoned.delete(producer);
    this.#forgetMembership(peerId, registration);
    return true;
  }

  #forgetMembership(peerId: string, registration: Registration): void {
    const memberships = this.#byPeer.get(peerId);
    if (memberships === undefined) return;
    memberships.delete(registration);
    if (memberships.size === 0) this.#byPeer.delete(peerId);
  }

  #deleteRegistration(registration: Registration): void {
    for (const [peerId, producer] of registration.producers) {
      this.#forgetMembership(peerId, registration);
      this.#tombstoned.delete(producer);
    }
    this.#entries[registration.category] -= registration.producers.size;
    if (registration.category !== "channel" && registration.producers.size > 0) {
      this.#nodesVersion = ++this.#versions;
    }
    registration.producers.clear();
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

function compareRegistrations(a: Registration, b: Registration): number {
  return compareStrings(a.name, b.name);
}
