// Query strings parsed as Go's url.ParseQuery does, strictly: a bad
// percent-escape or a `;` separator is an error; the first value of a repeated
// key counts (req.URL.Query().Get); `+` is a space.

export type QueryParams = Map<string, string>;

const decoder = new TextDecoder();

const encoder = new TextEncoder();

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}

/** Go's url.QueryUnescape; undefined for an invalid escape. */
export function queryUnescape(text: string): string | undefined {
  if (!text.includes("%")) return text.includes("+") ? text.replaceAll("+", " ") : text;
  const input = encoder.encode(text);
  const output = new Uint8Array(input.length);
  let n = 0;
  for (let i = 0; i < input.length; i++) {
    const byte = input[i];
    if (byte === 0x25) {
      const high = hexValue(input[i + 1] ?? 0);
      const low = hexValue(input[i + 2] ?? 0);
      if (high < 0 || low < 0) return undefined;
      output[n++] = high * 16 + low;
      i += 2;
    } else {
      output[n++] = byte === 0x2b ? 0x20 : byte;
    }
  }
  return decoder.decode(output.subarray(0, n));
}

/** undefined when the query string is invalid. */
export function parseQuery(query: string): QueryParams | undefined {
  const params: QueryParams = new Map();
  if (query === "") return params;
  for (const part of query.split("&")) {
    if (part.includes(";")) return undefined;
    if (part === "") continue;
    const eq = part.indexOf("=");
    const key = queryUnescape(eq === -1 ? part : part.slice(0, eq));
    const value = queryUnescape(eq === -1 ? "" : part.slice(eq + 1));
    if (key === undefined || value === undefined) return undefined;
    if (!params.has(key)) params.set(key, value);
  }
  return params;
}
