// Listen addresses in Go's `host:port` syntax, and peer addresses printed the
// way Go prints them (`1.2.3.4:5`, `[::1]:5`; IPv4-mapped IPv6 unmapped).

import { err, ok, type Result } from "../result.ts";

export interface ListenAddress {
  hostname: string;
  port: number;
}

/** Go's net.SplitHostPort plus a port check. */
export function parseListenAddress(text: string): Result<ListenAddress> {
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close === -1) return err(`address ${text}: missing ']' in address`);
    if (text[close + 1] !== ":") return err(`address ${text}: missing port in address`);
    host = text.slice(1, close);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon === -1) return err(`address ${text}: missing port in address`);
    host = text.slice(0, colon);
    if (host.includes(":")) return err(`address ${text}: too many colons in address`);
    portText = text.slice(colon + 1);
  }
  if (!/^[0-9]+$/.test(portText) || Number(portText) > 65535) {
    return err(`address ${text}: invalid port`);
  }
  return ok({ hostname: host, port: Number(portText) });
}

/** Go listens dual-stack on `[::]` for a wildcard host (`0.0.0.0` or empty). */
export function isWildcardHost(hostname: string): boolean {
  return hostname === "" || hostname === "0.0.0.0" || hostname === "::";
}

export function formatAddress(hostname: string, port: number): string {
  const host = hostname.startsWith("::ffff:") && hostname.includes(".")
    ? hostname.slice("::ffff:".length)
    : hostname;
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

export function formatNetAddr(addr: Deno.Addr): string {
  return addr.transport === "tcp" || addr.transport === "udp"
    ? formatAddress(addr.hostname, addr.port)
    : String(addr.transport);
}
