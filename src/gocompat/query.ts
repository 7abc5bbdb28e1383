// Query strings parsed as Go's url.ParseQuery does, strictly: a bad
// percent-escape or a `;` separator is an error; the first value of a repeated
// key counts (req.URL.Query().Get); `+` is a space.

import { err, ok, type Result } from "../result.ts";

export type QueryParams = Map<string, string>;

const decoder = new TextDecoder();

const encoder = new TextEncoder();

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}

/** Go's url.QueryUnescape. */
export function queryUnescape(text: string): Result<string> {
  if (!text.includes("%")) return ok(text.includes("+") ? text.replaceAll("+", " ") : text);
  const input = encoder.encode(text);
  const output = new Uint8Array(input.length);
  let n = 0;
  for (let i = 0; i < input.length; i++) {
    const byte = input[i];
    if (byte === 0x25) {
      const high = hexValue(input[i + 1] ?? 0);
      const low = hexValue(input[i + 2] ?? 0);
      if (high < 0 || low < 0) return err(`invalid URL escape`);
      output[n++] = high * 16 + low;
      i += 2;
    } else {
      output[n++] = byte === 0x2b ? 0x20 : byte;
    }
  }
  return ok(decoder.decode(output.subarray(0, n)));
}

/** Go's url.ParseQuery, strict: the first error fails the whole query. */
export function parseQuery(query: string): Result<QueryParams> {
  const params: QueryParams = new Map();
  if (query === "") return ok(params);
  for (const part of query.split("&")) {
    if (part.includes(";")) return err("invalid semicolon separator in query");
    if (part === "") continue;
    const eq = part.indexOf("=");
    const key = queryUnescape(eq === -1 ? part : part.slice(0, eq));
    const value = queryUnescape(eq === -1 ? "" : part.slice(eq + 1));
    if (!key.ok) return key;
    if (!value.ok) return value;
    if (!params.has(key.value)) params.set(key.value, value.value);
  }
  return ok(params);
}
