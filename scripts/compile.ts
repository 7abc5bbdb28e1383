// `deno task compile`: standalone binaries for every release target, packed
// with README.md and LICENSE, plus SHA256SUMS. The plan (names, argv, archive
// layout) is in compile_plan.ts; this file runs it. The tar and zip writers are
// our own so the build needs no `tar`/`zip` on the host (Windows runners,
// minimal containers) and the archives are byte-for-byte deterministic.

import { basename, dirname, join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { writeStderr, writeStdout } from "../src/ops/logger.ts";
import { PRODUCT_VERSION } from "../src/version.ts";
import {
  type ArchiveEntry,
  badDenortMessage,
  checkDenortBin,
  checksumFileText,
  classifyCompileFailure,
  DOC_FILES,
  offlineMessage,
  parseCompileArgs,
  planBuild,
  type TargetPlan,
  USAGE,
  UsageError,
} from "./compile_plan.ts";

/** A failure already worded for the user: print the message, exit 1, no stack. */
export class BuildError extends Error {
  override name = "BuildError";
}

// ---------------------------------------------------------------- archives

/** Archive member with its contents in memory. */
export interface ArchiveFile {
  path: string;
  mode: number;
  /** Absent (or ignored) for directories, whose paths end with `/`. */
  data?: Uint8Array;
}

const encoder = new TextEncoder();

async function transform(data: Uint8Array, stream: CompressionStream): Promise<Uint8Array> {
  const body = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(stream);
  return new Uint8Array(await new Response(body).arrayBuffer());
}

function writeOctal(header: Uint8Array, offset: number, width: number, value: number): void {
  // `width - 1` octal digits, zero-padded, then NUL.
  const digits = value.toString(8);
  if (digits.length > width - 1) throw new Error(`tar: value ${value} does not fit`);
  header.set(encoder.encode(digits.padStart(width - 1, "0")), offset);
  header[offset + width - 1] = 0;
}

function writeText(header: Uint8Array, offset: number, width: number, text: string): void {
  const bytes = encoder.encode(text);
  if (bytes.length > width) throw new Error(`tar: "${text}" is longer than ${width} bytes`);
  header.set(bytes, offset);
}

function tarHeader(file: ArchiveFile, size: number, mtime: number): Uint8Array {
  const header = new Uint8Array(512);
  const isDir = file.path.endsWith("/");
  let name = file.path;
  let prefix = "";
  if (encoder.encode(name).length > 100) {
    const cut = name.lastIndexOf("/", name.length - 2);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
  }
  writeText(header, 0, 100, name);
  writeOctal(header, 100, 8, file.mode & 0o7777);
  writeOctal(header, 108, 8, 0); // uid
  writeOctal(header, 116, 8, 0); // gid
  writeOctal(header, 124, 12, isDir ? 0 : size);
  writeOctal(header, 136, 12, Math.floor(mtime / 1000));
  header.fill(0x20, 148, 156); // checksum placeholder: spaces
  header[156] = isDir ? 0x35 : 0x30; // '5' directory, '0' regular file
  writeText(header, 257, 6, "ustar\0");
  writeText(header, 263, 2, "00");
  writeText(header, 265, 32, "root");
  writeText(header, 297, 32, "root");
  writeText(header, 345, 155, prefix);
  let sum = 0;
  for (const byte of header) sum += byte;
  writeText(header, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return header;
}

/** A POSIX ustar archive (uncompressed). `mtime` is in milliseconds. */
export function tarBytes(files: readonly ArchiveFile[], mtime: number): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (const file of files) {
    const data = file.path.endsWith("/") ? new Uint8Array(0) : file.data ?? new Uint8Array(0);
    const header = tarHeader(file, data.length, mtime);
    const padded = Math.ceil(data.length / 512) * 512;
    parts.push(header, data, new Uint8Array(padded - data.length));
    total += 512 + padded;
  }
  parts.push(new Uint8Array(1024)); // two zero blocks end the archive
  total += 1024;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export async function tarGzBytes(
  files: readonly ArchiveFile[],
  mtime: number,
): Promise<Uint8Array> {
  return await transform(tarBytes(files, mtime), new CompressionStream("gzip"));
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** MS-DOS date and time fields (UTC; zip stores no zone). */
function dosDateTime(mtime: number): { time: number; date: number } {
  const d = new Date(mtime);
  const year = Math.min(Math.max(d.getUTCFullYear(), 1980), 2107);
  return {
    time: (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1),
    date: ((year - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
  };
}

/**
 * A zip archive: files deflated (or stored when that is smaller), Unix modes
 * in the external attributes so `unzip` restores the executable bit. No zip64:
 * members and the archive must stay under 4 GiB.
 */
export async function zipBytes(files: readonly ArchiveFile[], mtime: number): Promise<Uint8Array> {
  const { time, date } = dosDateTime(mtime);
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const file of files) {
    const isDir = file.path.endsWith("/");
    const raw = isDir ? new Uint8Array(0) : file.data ?? new Uint8Array(0);
    const deflated = raw.length > 0
      ? await transform(raw, new CompressionStream("deflate-raw"))
      : raw;
    const useDeflate = deflated.length < raw.length;
    const body = useDeflate ? deflated : raw;
    const method = useDeflate ? 8 : 0;
    const crc = crc32(raw);
    const name = encoder.encode(file.path);
    if (raw.length > 0xfffffffe || offset > 0xfffffffe) {
      throw new Error(`zip: ${file.path} is too large for a zip without zip64`);
    }

    const local = new Uint8Array(30 + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true); // version needed: 2.0
    lv.setUint16(6, 0, true); // flags
    lv.setUint16(8, method, true);
    lv.setUint16(10, time, true);
    lv.setUint16(12, date, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, body.length, true);
    lv.setUint32(22, raw.length, true);
    lv.setUint16(26, name.length, true);
    lv.setUint16(28, 0, true); // extra length
    local.set(name, 30);

    const central = new Uint8Array(46 + name.length);
    const cv = new DataView(central.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, (3 << 8) | 20, true); // made by: Unix, 2.0
    cv.setUint16(6, 20, true);
    cv.setUint16(8, 0, true);
    cv.setUint16(10, method, true);
    cv.setUint16(12, time, true);
    cv.setUint16(14, date, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, body.length, true);
    cv.setUint32(24, raw.length, true);
    cv.setUint16(28, name.length, true);
    // 30 extra length, 32 comment length, 34 disk, 36 internal attributes: 0
    const unixMode = (isDir ? 0o040000 : 0o100000) | (file.mode & 0o7777);
    cv.setUint32(38, ((unixMode << 16) | (isDir ? 0x10 : 0)) >>> 0, true);
    cv.setUint32(42, offset, true);
    central.set(name, 46);

    locals.push(local, body);
    centrals.push(central);
    offset += local.length + body.length;
  }
  const centralSize = centrals.reduce((n, c) => n + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, files.length, true);
  ev.setUint16(10, files.length, true);
  ev.setUint32(12, centralSize, true);
  ev.setUint32(16, offset, true);
  const out = new Uint8Array(offset + centralSize + end.length);
  let at = 0;
  for (const part of [...locals, ...centrals, end]) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------- build

async function loadEntries(entries: readonly ArchiveEntry[]): Promise<ArchiveFile[]> {
  const files: ArchiveFile[] = [];
  for (const entry of entries) {
    files.push({
      path: entry.path,
      mode: entry.mode,
      data: entry.source === undefined ? undefined : await Deno.readFile(entry.source),
    });
  }
  return files;
}

async function compileTarget(plan: TargetPlan, denortBin: string | undefined): Promise<void> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: plan.compileArgs,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (output.success) return;
  const stderr = new TextDecoder().decode(output.stderr);
  const failure = classifyCompileFailure(stderr);
  if (failure.kind === "offline") throw new BuildError(offlineMessage(plan.target));
  if (failure.kind === "bad-denort" && denortBin !== undefined) {
    throw new BuildError(badDenortMessage(plan.target, denortBin, failure.detail));
  }
  writeStderr(stderr.endsWith("\n") ? stderr : stderr + "\n");
  throw new BuildError(`deno compile failed for ${plan.target} (exit code ${output.code}).`);
}

export interface BuildOptions {
  args: readonly string[];
  /** Project root (holds deno.json, main.ts, README.md, LICENSE). */
  projectRoot: string;
  version: string;
  denortBin: string | undefined;
  /** Archive member timestamps, in milliseconds. */
  mtime: number;
}

/** Returns the exit code; throws UsageError (2) or BuildError (1). */
export async function build(options: BuildOptions): Promise<number> {
  const command = parseCompileArgs(options.args);
  if (command.kind === "help") {
    writeStdout(USAGE);
    return 0;
  }
  checkDenortBin(options.denortBin, command.targets);
  const plan = planBuild({
    version: options.version,
    targets: command.targets,
    outDir: command.outDir,
    projectRoot: options.projectRoot,
  });
  for (const file of DOC_FILES) {
    try {
      await Deno.stat(join(options.projectRoot, file));
    } catch {
      throw new BuildError(`${file} is missing from ${options.projectRoot}; archives ship it.`);
    }
  }
  await Deno.mkdir(plan.outDir, { recursive: true });
  const sums: { file: string; sha256: string }[] = [];
  for (const target of plan.targets) {
    writeStdout(`compiling ${target.binaryPath}\n`);
    await compileTarget(target, options.denortBin);
    const files = await loadEntries(target.archiveEntries);
    const archive = target.archiveFormat === "zip"
      ? await zipBytes(files, options.mtime)
      : await tarGzBytes(files, options.mtime);
    await Deno.writeFile(target.archivePath, archive);
    sums.push({ file: target.archiveName, sha256: await sha256Hex(archive) });
    writeStdout(`packed    ${target.archivePath}\n`);
  }
  await Deno.writeTextFile(plan.checksumPath, checksumFileText(sums));
  writeStdout(`wrote     ${plan.checksumPath}\n`);
  return 0;
}

async function main(): Promise<void> {
  const denortBin = Deno.env.get("DENORT_BIN");
  try {
    Deno.exitCode = await build({
      args: Deno.args,
      projectRoot: dirname(dirname(fromFileUrl(import.meta.url))),
      version: PRODUCT_VERSION,
      denortBin: denortBin === "" ? undefined : denortBin,
      mtime: Date.now(),
    });
  } catch (error) {
    if (error instanceof UsageError) {
      writeStderr(
        `${basename(fromFileUrl(import.meta.url))}: ${error.message} (see --help)\n`,
      );
      Deno.exitCode = 2;
    } else if (error instanceof BuildError) {
      writeStderr(`${error.message}\n`);
      Deno.exitCode = 1;
    } else {
      writeStderr(`compile failed: ${error instanceof Error ? error.message : String(error)}\n`);
      Deno.exitCode = 1;
    }
  }
}

if (import.meta.main) await main();
