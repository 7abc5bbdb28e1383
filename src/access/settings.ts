// The values of the access and TLS flags, parsed for both the command line
// and the config file: network lists, auth server addresses, TLS versions.

import { parseListenAddress } from "../gocompat/address.ts";
import { err, ok, type Result } from "../result.ts";
import { formatNetwork, type Network, parseNetworkList } from "./networks.ts";

/** nsqd's --tls-min-version values. */
export type TlsVersion = "ssl3.0" | "tls1.0" | "tls1.1" | "tls1.2" | "tls1.3";

const TLS_VERSIONS: readonly TlsVersion[] = ["ssl3.0", "tls1.0", "tls1.1", "tls1.2", "tls1.3"];

/** nsqd's tlsMinVersionOption.Set: case-insensitive; its error text. */
export function parseTlsVersion(text: string): Result<TlsVersion> {
  const lower = text.toLowerCase();
  const found = TLS_VERSIONS.find((v) => v === lower);
  return found === undefined ? err(`unknown tlsVersionOption ${JSON.stringify(lower)}`) : ok(found);
}

/**
 * Deno's TLS (rustls) speaks TLS 1.2 and 1.3 and nothing older, and cannot be
 * told to refuse 1.2: every minimum up to tls1.2 holds, tls1.3 cannot.
 */
export function tlsVersionError(version: TlsVersion): string | undefined {
  return version === "tls1.3"
    ? "--tls-min-version=tls1.3 is not supported: Deno's TLS cannot refuse TLS 1.2 " +
      "(it never accepts anything older than TLS 1.2, so tls1.2 or lower is enforced)"
    : undefined;
}

/**
 * An `--auth-http-address`: `host:port` (nsqd then asks `http://host:port/auth`)
 * or a full http(s) URL, asked as it is.
 */
export function parseAuthAddress(text: string): Result<string> {
  if (text.includes("://")) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return err(`invalid auth server URL ${JSON.stringify(text)}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return err(`auth server URL ${JSON.stringify(text)} is not http:// or https://`);
    }
    return ok(text);
  }
  const address = parseListenAddress(text);
  if (!address.ok) return err(`invalid auth server address - ${address.error}`);
  if (address.value.hostname === "" || address.value.port === 0) {
    return err(`invalid auth server address ${JSON.stringify(text)}: needs a host and a port`);
  }
  return ok(text);
}

/** Several networks: each item a list (`10.0.0.0/8,::1`), as repeated flags or a TOML array give them. */
export function parseNetworkItems(items: readonly string[]): Result<Network[]> {
  const networks: Network[] = [];
  for (const item of items) {
    const parsed = parseNetworkList(item);
    if (!parsed.ok) return parsed;
    networks.push(...parsed.value);
  }
  return ok(networks);
}

/** How a network list shows in --help and logs (Go's StringArray: joined with commas). */
export function formatNetworks(networks: readonly Network[] | undefined): string {
  return networks === undefined ? "" : networks.map(formatNetwork).join(",");
}
