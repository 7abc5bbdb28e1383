// The base of the support library, shared by tests and scripts/ (fuzz, load,
// stress): timing helpers, /metrics, percentiles, a plain-text table, and the
// TCP protocol's framing. The daemon as a separate process is
// daemon_process.ts.

import { writeStderr } from "../../src/ops/logger.ts";

const encoder = new TextEncoder();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves with `promise`, or rejects once `ms` have passed (the timer never outlives it). */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Binds 127.0.0.1:0, notes the port and frees it: for runs whose logs do not show the ports. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** One scrape of /metrics as `series → value` (series written as in the text). */
export async function scrape(url: string): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`);
  const text = await res.text();
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

export interface Memory {
  rss: number;
  heapUsed: number;
}

export async function memory(url: string): Promise<Memory> {
  const m = await scrape(url);
  return {
    rss: m.get("process_resident_memory_bytes") ?? NaN,
    heapUsed: m.get("nsqlookupd_heap_used_bytes") ?? NaN,
  };
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
export const ms = (value: number): string => `${value.toFixed(2)} ms`;

/** Prints rows as an aligned two- or three-column table to `write`. */
export function table(rows: readonly (readonly string[])[], write: (text: string) => void): void {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => widths[i] = Math.max(widths[i] ?? 0, cell.length));
  }
  for (const row of rows) {
    write(row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd() + "\n");
  }
}

/** Writes all of `bytes`. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
}

/** Reads until `n` bytes arrived (or EOF); returns them. */
export async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array | null> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const read = await conn.read(out.subarray(got));
    if (read === null) return null;
    got += read;
  }
  return out;
}

/** Reads one response frame (4-byte length, payload) as text; null at EOF. */
export async function readFrame(conn: Deno.Conn): Promise<string | null> {
  const header = await readExactly(conn, 4);
  if (header === null) return null;
  const size = new DataView(header.buffer).getUint32(0);
  const payload = await readExactly(conn, size);
  return payload === null ? null : new TextDecoder().decode(payload);
}

/** IDENTIFY with its 4-byte big-endian body size, as nsqd sends it. */
export function identifyCommand(body: string | Uint8Array): Uint8Array {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const out = new Uint8Array(9 + 4 + bytes.length);
  out.set(encoder.encode("IDENTIFY\n"));
  new DataView(out.buffer).setInt32(9, bytes.length);
  out.set(bytes, 13);
  return out;
}

/** The parts one after another; strings as UTF-8. */
export function concat(...parts: (string | Uint8Array)[]): Uint8Array<ArrayBuffer> {
  const chunks = parts.map((p) => typeof p === "string" ? encoder.encode(p) : p);
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** `--name value` / `--name=value` integer arguments with defaults. */
export function intArgs<T extends Record<string, number>>(args: readonly string[], defaults: T): T {
  const out: Record<string, number> = { ...defaults };
  for (let i = 0; i < args.length; i++) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(args[i]);
    if (match === null || !(match[1] in defaults)) {
      writeStderr(`unknown argument ${args[i]}; known: ${Object.keys(defaults).join(", ")}\n`);
      Deno.exit(2);
    }
    const value = match[2] ?? args[++i];
    if (value === undefined || !/^\d+$/.test(value)) {
      writeStderr(`--${match[1]} needs a non-negative integer\n`);
      Deno.exit(2);
    }
    out[match[1]] = Number(value);
  }
  return out as T;
}
