// IP networks for --producer-networks and --admin-networks: CIDR parsing as
// Go's net.ParseCIDR does it (host bits cleared, IPv4 and IPv6), and the
// membership test of Go's IPNet.Contains, where an IPv4-mapped IPv6 address
// (`::ffff:10.1.2.3`, how a dual-stack listener shows IPv4 clients) is the
// IPv4 address it maps.

import { err, ok, type Result } from "../result.ts";

/** One network: 4 or 16 address bytes with the host bits cleared, and the prefix length. */
export interface Network {
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

/** Go's net.ParseIP for the literal forms (no zone); undefined when it is no IP address. */
export function parseIp(text: string): Uint8Array | undefined {
  return text.includes(":") ? parseIpv6(text) : parseIpv4(text);
}

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i];
    // Go refuses leading zeros (they would be octal elsewhere) and more than 3 digits.
    if (!/^[0-9]{1,3}$/.test(part) || (part.length > 1 && part[0] === "0")) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    bytes[i] = value;
  }
  return bytes;
}

function parseIpv6(text: string): Uint8Array | undefined {
  const bytes = new Uint8Array(16);
  let rest = text;
  // An embedded IPv4 tail (`::ffff:1.2.3.4`) fills the last 4 bytes.
  let tail: Uint8Array | undefined;
  if (rest.includes(".")) {
    const colon = rest.lastIndexOf(":");
    tail = parseIpv4(rest.slice(colon + 1));
    if (tail === undefined) return undefined;
    // Keep a `::` before the tail; drop a single separating `:`.
    rest = rest.endsWith("::", colon + 1) ? rest.slice(0, colon + 1) : rest.slice(0, colon);
  }
  const gap = rest.indexOf("::");
  if (gap !== rest.lastIndexOf("::")) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    for (const group of s.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return undefined;
      out.push(parseInt(group, 16));
    }
    return out;
  };
  const words = tail === undefined ? 8 : 6;
  let all: number[];
  if (gap === -1) {
    const list = groups(rest);
    if (list === undefined || list.length !== words) return undefined;
    all = list;
  } else {
    const head = groups(rest.slice(0, gap));
    const back = groups(rest.slice(gap + 2));
    if (head === undefined || back === undefined) return undefined;
    // `::` stands for at least one group of zeros.
    if (head.length + back.length >= words) return undefined;
    all = [...head, ...new Array(words - head.length - back.length).fill(0), ...back];
  }
  for (let i = 0; i < all.length; i++) {
    bytes[i * 2] = all[i] >> 8;
    bytes[i * 2 + 1] = all[i] & 0xff;
  }
  if (tail !== undefined) bytes.set(tail, 12);
  return bytes;
}

/** The IPv4 address an IPv4-mapped IPv6 address stands for (Go's IP.To4). */
function toIpv4(bytes: Uint8Array): Uint8Array | undefined {
  if (bytes.length === 4) return bytes;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return undefined;
  if (bytes[10] !== 0xff || bytes[11] !== 0xff) return undefined;
  return bytes.subarray(12);
}

/** Go's net.ParseCIDR: `ADDRESS/PREFIX`, host bits cleared. */
export function parseCidr(text: string): Result<Network> {
  const slash = text.indexOf("/");
  if (slash === -1) return err(`invalid CIDR address: ${text}`);
  const address = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  const max = address === undefined ? 0 : address.length * 8;
  if (
    address === undefined || !/^[0-9]{1,3}$/.test(prefixText) ||
    (prefixText.length > 1 && prefixText[0] === "0") || Number(prefixText) > max
  ) {
    return err(`invalid CIDR address: ${text}`);
  }
  let bytes = address;
  let prefix = Number(prefixText);
  // Go treats `::ffff:a.b.c.d/N` as the IPv4 network a.b.c.d/(N-96).
  const mapped = address.length === 16 ? toIpv4(address) : undefined;
  if (mapped !== undefined) {
    bytes = mapped;
    prefix = Math.max(0, prefix - 96);
  }
  return ok({ bytes: mask(bytes, prefix), prefix });
}

function mask(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = bytes[i] & (0xff << (8 - bits));
  }
  return out;
}

/** Go's IPNet.String(): `10.0.0.0/8`, `fd00::/8`. */
export function formatNetwork(network: Network): string {
  return `${formatIp(network.bytes)}/${network.prefix}`;
}

/** Go's IP.String() for 4 or 16 bytes: dotted quad, or RFC 5952 IPv6 text. */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  const v4 = toIpv4(bytes);
  if (v4 !== undefined) return v4.join(".");
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i] << 8) | bytes[i + 1]);
  // The longest run of two or more zero words becomes `::` (the first one on a tie).
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (list: number[]): string => list.map((w) => w.toString(16)).join(":");
  if (bestStart === -1) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLength))}`;
}

/**
 * A comma-separated list of networks, as `--producer-networks` takes it. A bare
 * address is the network of that one host (`/32`, `/128`); empty items are errors.
 */
export function parseNetworkList(text: string): Result<Network[]> {
  const networks: Network[] = [];
  for (const raw of text.split(",")) {
    const item = raw.trim();
    if (item === "") return err(`empty network in ${JSON.stringify(text)}`);
    if (!item.includes("/")) {
      const bytes = parseIp(item);
      if (bytes === undefined) return err(`invalid CIDR address: ${item}`);
      const v4 = toIpv4(bytes) ?? bytes;
      networks.push({ bytes: v4, prefix: v4.length * 8 });
      continue;
    }
    const network = parseCidr(item);
    if (!network.ok) return network;
    networks.push(network.value);
  }
  return ok(networks);
}

/** Parses `hostname` as a peer address is given by Deno (zone allowed, IPv4-mapped unmapped). */
export function peerIp(hostname: string): Uint8Array | undefined {
  const zone = hostname.indexOf("%");
  const bytes = parseIp(zone === -1 ? hostname : hostname.slice(0, zone));
  return bytes === undefined ? undefined : toIpv4(bytes) ?? bytes;
}

/** Whether `ip` (4 or 16 bytes, IPv4-mapped already unmapped) is in `network`. */
export function networkContains(network: Network, ip: Uint8Array): boolean {
  if (ip.length !== network.bytes.length) return false;
  const full = network.prefix >> 3;
  for (let i = 0; i < full; i++) if (ip[i] !== network.bytes[i]) return false;
  const bits = network.prefix & 7;
  if (bits === 0) return true;
  const m = 0xff << (8 - bits) & 0xff;
  return (ip[full] & m) === network.bytes[full];
}

/** Peer addresses remembered per set; a bound so that many clients cannot grow it. */
const MEMO_LIMIT = 4096;

/** A set of networks, asked about peer hostnames (`127.0.0.1`, `::ffff:10.0.0.1`, `::1`). */
export class NetworkSet {
  readonly networks: readonly Network[];
  readonly #memo = new Map<string, boolean>();

  constructor(networks: readonly Network[]) {
    this.networks = networks;
  }

  /** Whether the peer is in one of the networks; false for anything that is no IP address. */
  contains(hostname: string): boolean {
    const known = this.#memo.get(hostname);
    if (known !== undefined) return known;
    const ip = peerIp(hostname);
    const found = ip !== undefined && this.networks.some((n) => networkContains(n, ip));
    if (this.#memo.size >= MEMO_LIMIT) this.#memo.clear();
    this.#memo.set(hostname, found);
    return found;
  }

  /** `10.0.0.0/8,::1/128`, how --help and logs show the set. */
  toString(): string {
    return this.networks.map(formatNetwork).join(",");
  }
}
