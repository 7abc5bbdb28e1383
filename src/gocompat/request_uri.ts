// Go's url.ParseRequestURI (Go 1.19) as a yes/no check: the request targets
// that nsqlookupd's net/http refuses with `400 Bad Request` right after the
// request line. Go accepts more than paths: `*`, any `scheme:` (an opaque
// `foo:bar` too), and `scheme://authority/path` with a checked authority.

const PERCENT = 0x25;

function isAlpha(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a);
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isHex(c: number): boolean {
  return isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

function hexValue(c: number): number {
  return isDigit(c) ? c - 0x30 : (c | 0x20) - 0x61 + 10;
}

/** ASCII bytes a host may hold as they are (url.shouldEscape in host mode). */
const HOST_BYTE = new Uint8Array(128);
for (
  const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" +
    "!$&'()*+,;=:[]<>\"-_.~"
) {
  HOST_BYTE[c.charCodeAt(0)] = 1;
}

/** Bytes url.validUserinfo accepts. */
const USERINFO_BYTE = new Uint8Array(128);
for (
  const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" +
    "-._:~!$&'()*+,;=%@"
) {
  USERINFO_BYTE[c.charCodeAt(0)] = 1;
}

type Mode = "path" | "host" | "zone";

/** url.unescape's checks: well-formed `%XX`, and in a host only allowed bytes. */
function unescapes(s: string, mode: Mode): boolean {
  for (let i = 0; i < s.length;) {
    const c = s.charCodeAt(i);
    if (c === PERCENT) {
      if (i + 2 >= s.length || !isHex(s.charCodeAt(i + 1)) || !isHex(s.charCodeAt(i + 2))) {
        return false;
      }
      const escape = s.slice(i, i + 3);
      const high = hexValue(s.charCodeAt(i + 1));
      if (mode === "host" && high < 8 && escape !== "%25") return false;
      if (mode === "zone") {
        const v = (high << 4) | hexValue(s.charCodeAt(i + 2));
        if (escape !== "%25" && v !== 0x20 && (v >= 0x80 || HOST_BYTE[v] === 0)) return false;
      }
      i += 3;
      continue;
    }
    if (mode !== "path" && c < 0x80 && HOST_BYTE[c] === 0) return false;
    i++;
  }
  return true;
}

function validOptionalPort(port: string): boolean {
  if (port === "") return true;
  if (port[0] !== ":") return false;
  for (let i = 1; i < port.length; i++) if (!isDigit(port.charCodeAt(i))) return false;
  return true;
}

function validHost(host: string): boolean {
  if (host.startsWith("[")) {
    const close = host.lastIndexOf("]");
    if (close < 0 || !validOptionalPort(host.slice(close + 1))) return false;
    const zone = host.slice(0, close).indexOf("%25");
    if (zone >= 0) {
      return unescapes(host.slice(0, zone), "host") &&
        unescapes(host.slice(zone, close), "zone") && unescapes(host.slice(close), "host");
    }
  } else {
    const colon = host.lastIndexOf(":");
    if (colon !== -1 && !validOptionalPort(host.slice(colon))) return false;
  }
  return unescapes(host, "host");
}

function validAuthority(authority: string): boolean {
  const at = authority.lastIndexOf("@");
  if (!validHost(at < 0 ? authority : authority.slice(at + 1))) return false;
  if (at < 0) return true;
  const userinfo = authority.slice(0, at);
  for (let i = 0; i < userinfo.length; i++) {
    const c = userinfo.charCodeAt(i);
    if (c >= 0x80 || USERINFO_BYTE[c] === 0) return false;
  }
  const colon = userinfo.indexOf(":");
  return colon === -1
    ? unescapes(userinfo, "path")
    : unescapes(userinfo.slice(0, colon), "path") && unescapes(userinfo.slice(colon + 1), "path");
}

/**
 * Whether Go's url.ParseRequestURI accepts the target. `target` is the raw
 * bytes as a binary string (one char per byte), without control bytes (the
 * request-line scan refuses those first).
 */
export function isValidRequestUri(target: string): boolean {
  if (target === "") return false;
  if (target === "*") return true;
  // getScheme: letters, then digits + - . after the first, up to a colon.
  let scheme = "";
  let rest = target;
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (isAlpha(c)) continue;
    if (isDigit(c) || c === 0x2b || c === 0x2d || c === 0x2e) {
      if (i === 0) break;
      continue;
    }
    if (c === 0x3a) {
      if (i === 0) return false; // missing protocol scheme
      scheme = target.slice(0, i);
      rest = target.slice(i + 1);
    }
    break;
  }
  const question = rest.indexOf("?");
  if (question !== -1) rest = rest.slice(0, question);
  if (!rest.startsWith("/")) return scheme !== ""; // opaque `scheme:rest`, else invalid
  if (scheme !== "" && rest.startsWith("//")) {
    const slash = rest.indexOf("/", 2);
    const authority = slash === -1 ? rest.slice(2) : rest.slice(2, slash);
    if (!validAuthority(authority)) return false;
    rest = slash === -1 ? "" : rest.slice(slash);
  }
  return unescapes(rest, "path");
}
