// Test-only inspection of a Registry: its memberships as the tests name them,
// and a full check that its indexes agree with each other. Production code
// never imports this module; it reads the indexes through registryInternals.

import {
  COMPACT_SLACK,
  compareRegistrations,
  type Producer,
  type Registration,
  type Registry,
  registryInternals,
} from "./registry.ts";

/** One registration the peer is a producer of, with every producer of it by peer id. */
export interface Membership {
  readonly name: string;
  readonly category: Registration["category"];
  readonly key: string;
  readonly subkey: string;
  readonly producers: ReadonlyMap<string, Producer>;
}

function view(registration: Registration): Membership {
  const producers = new Map<string, Producer>();
  for (const peer of registration.producers) {
    const tombstonedAt = registration.tombstones?.get(peer);
    producers.set(peer.id, {
      peer,
      tombstoned: tombstonedAt !== undefined,
      tombstonedAt: tombstonedAt ?? 0,
    });
  }
  const { name, category, key, subkey } = registration;
  return { name, category, key, subkey, producers };
}

/** Registrations the peer is a producer of, sorted by name. */
export function membershipsOf(registry: Registry, peerId: string): Membership[] {
  const state = registryInternals(registry).peers.get(peerId);
  if (state === undefined) return [];
  const live = new Set<Registration>();
  for (const registration of state.memberships) {
    if (registration.hasProducer(state.info)) live.add(registration);
  }
  return [...live].sort(compareRegistrations).map(view);
}

/**
 * Verifies that the indexes agree with the registrations; throws on the
 * first disagreement. Walks everything: for tests, never for the hot path.
 */
export function assertConsistent(registry: Registry): void {
  const internals = registryInternals(registry);
  /** Peer id → registrations holding it, from the registrations' side. */
  const held = new Map<string, Set<Registration>>();
  const reachable = new Set<Registration>();
  const note = (registration: Registration): void => {
    reachable.add(registration);
    if (new Set(registration.producers).size !== registration.producerCount) {
      fail(`${registration.name} holds a producer twice`);
    }
    for (const peer of registration.producers) {
      const state = internals.peers.get(peer.id);
      if (state === undefined) fail(`${registration.name} holds unknown peer ${peer.id}`);
      if (state!.info !== peer) fail(`${registration.name} holds a second PeerInfo for ${peer.id}`);
      let set = held.get(peer.id);
      if (set === undefined) held.set(peer.id, set = new Set());
      set.add(registration);
    }
    if (registration.tombstones !== undefined) {
      if (registration.category !== "topic") fail(`tombstones on ${registration.name}`);
      if (registration.tombstones.size === 0) fail(`empty tombstone map on ${registration.name}`);
      for (const peer of registration.tombstones.keys()) {
        if (!registration.hasProducer(peer)) {
          fail(`${registration.name} tombstones ${peer.id}, not a producer of it`);
        }
      }
    }
  };

  if (internals.client.category !== "client") fail("client registration miscategorised");
  note(internals.client);
  let topics = 0;
  let channels = 0;
  const entries = { client: internals.client.producerCount, topic: 0, channel: 0 };
  for (const [name, entry] of internals.topics) {
    if (entry.name !== name) fail(`topic entry ${name} is named ${entry.name}`);
    if (entry.topic === undefined && entry.channels.size === 0) fail(`empty topic entry ${name}`);
    if (entry.topic !== undefined) {
      topics++;
      if (entry.topic.category !== "topic" || entry.topic.key !== name) {
        fail(`topic ${name} holds ${entry.topic.name}`);
      }
      entries.topic += entry.topic.producerCount;
      note(entry.topic);
    }
    for (const [channelName, registration] of entry.channels) {
      channels++;
      if (
        registration.category !== "channel" || registration.key !== name ||
        registration.subkey !== channelName
      ) {
        fail(`channel ${name}/${channelName} holds ${registration.name}`);
      }
      entries.channel += registration.producerCount;
      note(registration);
    }
  }
  if (topics !== internals.topicCount || channels !== internals.channelCount) {
    fail(
      `counts ${internals.topicCount}/${internals.channelCount} != ${topics}/${channels}`,
    );
  }
  for (const category of ["client", "topic", "channel"] as const) {
    if (entries[category] !== internals.entries[category]) {
      fail(`${category} entries counted ${internals.entries[category]}, held ${entries[category]}`);
    }
  }
  checkTombstoneSet(registry, reachable);
  checkPeerIndex(registry, held);
}

function fail(message: string): never {
  throw new Error(message);
}

/** Every registration in the tombstone set exists and has tombstones; none in force is missed. */
function checkTombstoneSet(registry: Registry, reachable: Set<Registration>): void {
  const internals = registryInternals(registry);
  for (const registration of internals.tombstoned) {
    if (!reachable.has(registration)) fail(`deleted ${registration.name} in the tombstone set`);
    if (registration.tombstones === undefined) {
      fail(`${registration.name} in the tombstone set without tombstones`);
    }
  }
  // A registration with tombstones outside the set must have none in force
  // (the set is pruned only of those): tombstonedCount() would miss them.
  const now = registry.now();
  for (const registration of reachable) {
    if (registration.tombstones === undefined || internals.tombstoned.has(registration)) continue;
    for (const [peer, tombstonedAt] of registration.tombstones) {
      const producer: Producer = { peer, tombstoned: true, tombstonedAt };
      if (registry.isTombstoned(producer, now)) {
        fail(`${registration.name}: tombstone of ${peer.id} in force but not tracked`);
      }
    }
  }
}

/** The peer index holds exactly the memberships the registrations hold, compactly enough. */
function checkPeerIndex(registry: Registry, held: Map<string, Set<Registration>>): void {
  const internals = registryInternals(registry);
  if (held.size !== internals.peers.size) {
    fail(`peer index has ${internals.peers.size} peers, registrations ${held.size}`);
  }
  for (const [id, state] of internals.peers) {
    if (state.info.id !== id) fail(`peer index key ${id} holds ${state.info.id}`);
    const expected = held.get(id) ?? new Set<Registration>();
    const live = new Set<Registration>();
    for (const registration of state.memberships) {
      if (registration.hasProducer(state.info)) live.add(registration);
    }
    if (state.live !== expected.size) {
      fail(`peer ${id} counts ${state.live} memberships, registrations hold ${expected.size}`);
    }
    if (live.size !== expected.size || [...expected].some((r) => !live.has(r))) {
      fail(`peer index of ${id} disagrees with the registrations`);
    }
    if (state.memberships.length > 2 * state.live + COMPACT_SLACK) {
      fail(
        `peer ${id} keeps ${state.memberships.length} membership entries for ${state.live} live`,
      );
    }
  }
}
