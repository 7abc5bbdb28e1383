// scripts/compile.ts: the pure plan (targets, names, deno compile argv, archive
// layout, SHA256SUMS), argument parsing, our tar/zip writers read back by
// independent tools where present, and end-to-end runs that need no network.

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import denoJson from "../../../deno.json" with { type: "json" };
import { PRODUCT_VERSION } from "../../../src/version.ts";
import {
  type ArchiveFile,
  crc32,
  sha256Hex,
  tarBytes,
  tarGzBytes,
  zipBytes,
} from "../../../scripts/compile.ts";
import {
  archiveName,
  binaryName,
  checkDenortBin,
  checksumFileText,
  checkVersion,
  classifyCompileFailure,
  COMPILE_FLAGS,
  offlineMessage,
  parseCompileArgs,
  PERMISSION_FLAGS,
  planBuild,
  RUNTIME_FLAGS,
  type Target,
  TARGETS,
  UsageError,
} from "../../../scripts/compile_plan.ts";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The permissions of the proposed `compile` task in deno.json. */
const TASK_FLAGS = ["--allow-read", "--allow-write", "--allow-run", "--allow-env=DENORT_BIN"];

// ---------------------------------------------------------------- plan

Deno.test("plan: the five release targets, in order", () => {
  assert.deepEqual([...TARGETS], [
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "x86_64-pc-windows-msvc",
  ]);
});

Deno.test("plan: binary and archive names; .exe and .zip only for Windows", () => {
  const plan = planBuild({ version: "1.2.3", targets: TARGETS, outDir: "dist", projectRoot: "/p" });
  assert.deepEqual(
    plan.targets.map((t) => [t.binaryName, t.archiveName, t.archiveFormat]),
    [
      [
        "nsqlookupd-1.2.3-x86_64-unknown-linux-gnu",
        "nsqlookupd-1.2.3-x86_64-unknown-linux-gnu.tar.gz",
        "tar.gz",
      ],
      [
        "nsqlookupd-1.2.3-aarch64-unknown-linux-gnu",
        "nsqlookupd-1.2.3-aarch64-unknown-linux-gnu.tar.gz",
        "tar.gz",
      ],
      [
        "nsqlookupd-1.2.3-x86_64-apple-darwin",
        "nsqlookupd-1.2.3-x86_64-apple-darwin.tar.gz",
        "tar.gz",
      ],
      [
        "nsqlookupd-1.2.3-aarch64-apple-darwin",
        "nsqlookupd-1.2.3-aarch64-apple-darwin.tar.gz",
        "tar.gz",
      ],
      [
        "nsqlookupd-1.2.3-x86_64-pc-windows-msvc.exe",
        "nsqlookupd-1.2.3-x86_64-pc-windows-msvc.zip",
        "zip",
      ],
    ],
  );
  assert.equal(
    plan.targets[0].binaryPath,
    join("dist", "nsqlookupd-1.2.3-x86_64-unknown-linux-gnu"),
  );
  assert.equal(
    plan.targets[4].archivePath,
    join("dist", "nsqlookupd-1.2.3-x86_64-pc-windows-msvc.zip"),
  );
  assert.equal(plan.checksumPath, join("dist", "SHA256SUMS"));
});

Deno.test("plan: the version is deno.json's, the one --version prints", () => {
  assert.equal(PRODUCT_VERSION, denoJson.version);
  const plan = planBuild({
    version: PRODUCT_VERSION,
    targets: ["x86_64-unknown-linux-gnu"],
    outDir: "dist",
    projectRoot: ROOT,
  });
  assert.equal(plan.version, denoJson.version);
  assert.equal(
    plan.targets[0].binaryName,
    `nsqlookupd-${denoJson.version}-x86_64-unknown-linux-gnu`,
  );
});

Deno.test("compile config pins exactly deno.json's versions of the runtime dependencies", async () => {
  const compileConfig = JSON.parse(
    await Deno.readTextFile(new URL("../../../scripts/compile.config.json", import.meta.url)),
  ) as { imports: Record<string, string> };
  const imports: Record<string, string> = denoJson.imports;
  for (const [name, specifier] of Object.entries(compileConfig.imports)) {
    assert.equal(specifier, imports[name], `${name} differs from deno.json`);
  }
  // Every bare import reached from main.ts must be one the compile config maps.
  const graph = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--config", "scripts/compile.config.json", "main.ts"],
    cwd: new URL("../../..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(graph.code, 0, new TextDecoder().decode(graph.stderr));
  const info = JSON.parse(new TextDecoder().decode(graph.stdout)) as {
    npmPackages?: Record<string, unknown>;
  };
  assert.deepEqual(Object.keys(info.npmPackages ?? {}).map((p) => p.replace(/@[^@]*$/, "")), [
    "smol-toml",
  ]);
});

Deno.test("plan: deno compile argv with exactly the daemon's permissions", () => {
  assert.deepEqual([...PERMISSION_FLAGS], ["--allow-net", "--allow-read", "--allow-sys=hostname"]);
  assert.deepEqual([...RUNTIME_FLAGS], []);
  assert.deepEqual([...COMPILE_FLAGS], ["--no-prompt", ...PERMISSION_FLAGS, ...RUNTIME_FLAGS]);
  const plan = planBuild({ version: "0.1.0", targets: TARGETS, outDir: "out", projectRoot: "/p" });
  for (const t of plan.targets) {
    assert.deepEqual(t.compileArgs, [
      "compile",
      "--no-prompt",
      "--allow-net",
      "--allow-read",
      "--allow-sys=hostname",
      "--config",
      join("/p", "scripts", "compile.config.json"),
      "--target",
      t.target,
      "--output",
      join("out", binaryName("0.1.0", t.target)),
      join("/p", "main.ts"),
    ]);
    const broad = t.compileArgs.filter((a) =>
      /^--allow-(all|env|run|write|ffi|import)|^-A$|^--allow-sys$/.test(a)
    );
    assert.deepEqual(broad, []);
  }
});

Deno.test("plan: each archive is one directory with the binary, README.md and LICENSE", () => {
  const plan = planBuild({
    version: "0.1.0",
    targets: ["aarch64-apple-darwin", "x86_64-pc-windows-msvc"],
    outDir: "dist",
    projectRoot: "/p",
  });
  assert.deepEqual(plan.targets[0].archiveEntries, [
    { path: "nsqlookupd-0.1.0-aarch64-apple-darwin/", mode: 0o755 },
    {
      path: "nsqlookupd-0.1.0-aarch64-apple-darwin/nsqlookupd",
      source: join("dist", "nsqlookupd-0.1.0-aarch64-apple-darwin"),
      mode: 0o755,
    },
    {
      path: "nsqlookupd-0.1.0-aarch64-apple-darwin/README.md",
      source: join("/p", "README.md"),
      mode: 0o644,
    },
    {
      path: "nsqlookupd-0.1.0-aarch64-apple-darwin/LICENSE",
      source: join("/p", "LICENSE"),
      mode: 0o644,
    },
  ]);
  assert.deepEqual(
    plan.targets[1].archiveEntries.map((e) => [e.path, e.source]),
    [
      ["nsqlookupd-0.1.0-x86_64-pc-windows-msvc/", undefined],
      [
        "nsqlookupd-0.1.0-x86_64-pc-windows-msvc/nsqlookupd.exe",
        join("dist", "nsqlookupd-0.1.0-x86_64-pc-windows-msvc.exe"),
      ],
      ["nsqlookupd-0.1.0-x86_64-pc-windows-msvc/README.md", join("/p", "README.md")],
      ["nsqlookupd-0.1.0-x86_64-pc-windows-msvc/LICENSE", join("/p", "LICENSE")],
    ],
  );
});

Deno.test("plan: SHA256SUMS is sha256sum's format, sorted by file name", () => {
  const a = "a".repeat(64);
  const b = "b".repeat(64);
  assert.equal(
    checksumFileText([
      { file: "nsqlookupd-0.1.0-x86_64-pc-windows-msvc.zip", sha256: b },
      { file: "nsqlookupd-0.1.0-aarch64-apple-darwin.tar.gz", sha256: a },
    ]),
    `${a}  nsqlookupd-0.1.0-aarch64-apple-darwin.tar.gz\n` +
      `${b}  nsqlookupd-0.1.0-x86_64-pc-windows-msvc.zip\n`,
  );
  assert.equal(checksumFileText([]), "");
});

Deno.test("plan: the version must be semver (it goes into file names)", () => {
  assert.equal(checkVersion("0.1.0"), "0.1.0");
  assert.equal(checkVersion("1.0.0-rc.1"), "1.0.0-rc.1");
  for (const bad of ["", "v0.1.0", "0.1", "0.1.0/x", "0.1.0 "]) {
    assert.throws(() => checkVersion(bad), /not a semantic version/, bad);
  }
});

// ---------------------------------------------------------------- arguments

Deno.test("args: default is every target into dist/", () => {
  assert.deepEqual(parseCompileArgs([]), { kind: "build", targets: [...TARGETS], outDir: "dist" });
});

Deno.test("args: --target is repeatable (duplicates dropped), --out, = forms", () => {
  assert.deepEqual(
    parseCompileArgs([
      "--target",
      "x86_64-pc-windows-msvc",
      "--out=/tmp/x",
      "--target=aarch64-apple-darwin",
      "--target",
      "x86_64-pc-windows-msvc",
    ]),
    {
      kind: "build",
      targets: ["x86_64-pc-windows-msvc", "aarch64-apple-darwin"],
      outDir: "/tmp/x",
    },
  );
  assert.deepEqual(parseCompileArgs(["--out", "build"]).kind, "build");
  assert.deepEqual(parseCompileArgs(["--help"]), { kind: "help" });
  assert.deepEqual(parseCompileArgs(["-h", "--target", "bogus"]), { kind: "help" });
});

Deno.test("args: mistakes are UsageErrors with a clear message", () => {
  const cases: [string[], RegExp][] = [
    [
      ["--target", "x86_64-linux"],
      /unknown target "x86_64-linux"; expected one of: x86_64-unknown/,
    ],
    [["--target=aarch64-pc-windows-msvc"], /unknown target "aarch64-pc-windows-msvc"/],
    [["--target"], /--target needs a value/],
    [["--out"], /--out needs a value/],
    [["--out="], /--out needs a non-empty value/],
    [["--frob"], /unknown option "--frob"/],
    [["linux"], /unexpected argument "linux"/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseCompileArgs(args), (e: unknown) => {
      assert.ok(e instanceof UsageError, String(e));
      assert.match(e.message, message);
      return true;
    });
  }
});

Deno.test("args: DENORT_BIN fits exactly one target", () => {
  checkDenortBin(undefined, TARGETS);
  checkDenortBin("", TARGETS);
  checkDenortBin("/x/denort", ["x86_64-unknown-linux-gnu"]);
  assert.throws(() => checkDenortBin("/x/denort", TARGETS), /pass exactly one --target/);
});

// ---------------------------------------------------------------- failures

// Recorded from `deno compile` 2.9.6 on a machine without access to dl.deno.land.
const OFFLINE_STDERR = "\x1b[0m\x1b[32mCheck\x1b[0m main.ts\n" +
  "\x1b[0m\x1b[32mDownload\x1b[0m https://dl.deno.land/release/v2.9.6/denort-x86_64-apple-darwin.zip\n" +
  "\x1b[0m\x1b[1m\x1b[31merror\x1b[0m: Writing deno compile executable to temporary file 'x.tmp-5'\n\n" +
  "Caused by:\n    0: Setting up base binary.\n" +
  "    1: error sending request for url (https://dl.deno.land/release/v2.9.6/denort-x86_64-apple-darwin.zip): " +
  "client error (Connect): dns error: failed to lookup address information: Name or service not known\n" +
  "    2: client error (Connect)\n    3: dns error\n" +
  "    4: failed to lookup address information: Name or service not known\n\n" +
  "Stack backtrace:\n   0: <unknown>\n";

Deno.test("failure: offline deno compile is recognised and worded in one sentence", () => {
  assert.deepEqual(classifyCompileFailure(OFFLINE_STDERR), { kind: "offline" });
  assert.deepEqual(
    classifyCompileFailure(
      "error: Writing deno compile executable\nCaused by:\n    0: Setting up base binary.\n" +
        "    1: error sending request for url (https://dl.deno.land/x.zip): client error (Connect): " +
        "tcp connect error: Connection refused (os error 111)\n",
    ),
    { kind: "offline" },
  );
  const message = offlineMessage("x86_64-apple-darwin");
  assert.equal(
    message,
    "deno compile could not download the Deno runtime (denort) for x86_64-apple-darwin; " +
      "this machine has no access to dl.deno.land — build on a machine with internet access, " +
      "or set DENORT_BIN to a denort binary for that target to build offline.",
  );
  assert.ok(!message.includes("\n"));
});

Deno.test("failure: an unusable DENORT_BIN and other errors are told apart", () => {
  assert.deepEqual(
    classifyCompileFailure(
      "error: Writing deno compile executable\n\nCaused by:\n    0: Writing binary bytes\n" +
        "    1: Invalid object: Failed to parse PE\n",
    ),
    { kind: "bad-denort", detail: "Failed to parse PE" },
  );
  assert.deepEqual(
    classifyCompileFailure(
      "Caused by:\n    0: Could not find denort at '/nope'\n    1: No such file",
    ),
    { kind: "bad-denort", detail: "/nope does not exist" },
  );
  assert.deepEqual(
    classifyCompileFailure("error: TS2322 [ERROR]: Type 'string' is not assignable"),
    { kind: "other" },
  );
});

// ---------------------------------------------------------------- writers

const SAMPLE: ArchiveFile[] = [
  { path: "pkg/", mode: 0o755 },
  { path: "pkg/tool", mode: 0o755, data: encoder.encode("#!/bin/sh\necho hi\n".repeat(100)) },
  { path: "pkg/README.md", mode: 0o644, data: encoder.encode("# readme\n") },
  { path: "pkg/empty", mode: 0o644, data: new Uint8Array(0) },
  { path: "pkg/random", mode: 0o600, data: crypto.getRandomValues(new Uint8Array(3000)) },
];
const MTIME = Date.UTC(2026, 0, 2, 3, 4, 6);

interface ReadEntry {
  path: string;
  mode: number;
  dir: boolean;
  data: Uint8Array;
  mtime?: number;
}

/** A minimal ustar reader that also verifies each header checksum. */
function readTar(bytes: Uint8Array): ReadEntry[] {
  const text = (from: number, len: number): string =>
    decoder.decode(bytes.subarray(from, from + len)).replace(/\0.*$/s, "");
  const entries: ReadEntry[] = [];
  let at = 0;
  while (at + 512 <= bytes.length && bytes.subarray(at, at + 512).some((b) => b !== 0)) {
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : bytes[at + i];
    assert.equal(parseInt(text(at + 148, 8).trim(), 8), sum, "tar header checksum");
    assert.equal(text(at + 257, 6), "ustar");
    const prefix = text(at + 345, 155);
    const name = text(at, 100);
    const size = parseInt(text(at + 124, 12), 8);
    entries.push({
      path: prefix === "" ? name : `${prefix}/${name}`,
      mode: parseInt(text(at + 100, 8), 8),
      dir: text(at + 156, 1) === "5",
      data: bytes.slice(at + 512, at + 512 + size),
      mtime: parseInt(text(at + 136, 12), 8) * 1000,
    });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  assert.ok(bytes.length >= at + 1024, "two zero blocks end the archive");
  return entries;
}

async function inflate(data: Uint8Array, format: CompressionFormat): Promise<Uint8Array> {
  const body = new Blob([data as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new DecompressionStream(format));
  return new Uint8Array(await new Response(body).arrayBuffer());
}

/** A minimal zip reader driven by the central directory; checks CRCs. */
async function readZip(bytes: Uint8Array): Promise<ReadEntry[]> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length - 22;
  assert.equal(view.getUint32(end, true), 0x06054b50, "end of central directory");
  const count = view.getUint16(end + 10, true);
  let at = view.getUint32(end + 16, true);
  const entries: ReadEntry[] = [];
  for (let i = 0; i < count; i++) {
    assert.equal(view.getUint32(at, true), 0x02014b50, "central header");
    const method = view.getUint16(at + 10, true);
    const crc = view.getUint32(at + 16, true);
    const csize = view.getUint32(at + 20, true);
    const nameLen = view.getUint16(at + 28, true);
    const extLen = view.getUint16(at + 30, true);
    const commentLen = view.getUint16(at + 32, true);
    const attrs = view.getUint32(at + 38, true);
    const local = view.getUint32(at + 42, true);
    const path = decoder.decode(bytes.subarray(at + 46, at + 46 + nameLen));
    assert.equal(view.getUint32(local, true), 0x04034b50, "local header");
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const stored = bytes.slice(start, start + csize);
    const data = method === 8 ? await inflate(stored, "deflate-raw") : stored;
    assert.equal(crc32(data), crc, `crc of ${path}`);
    entries.push({ path, mode: (attrs >>> 16) & 0o7777, dir: (attrs & 0x10) !== 0, data });
    at += 46 + nameLen + extLen + commentLen;
  }
  return entries;
}

function assertSameEntries(read: ReadEntry[], files: ArchiveFile[]): void {
  assert.deepEqual(
    read.map((e) => [e.path, e.mode, e.dir, Array.from(e.data)]),
    files.map((f) => [
      f.path,
      f.mode,
      f.path.endsWith("/"),
      f.path.endsWith("/") ? [] : Array.from(f.data ?? []),
    ]),
  );
}

/** Runs a tool with `input` on stdin; undefined when the tool is not installed. */
async function tool(
  command: string,
  args: string[],
  input: Uint8Array,
): Promise<{ code: number; stdout: string; stderr: string } | undefined> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command, { args, stdin: "piped", stdout: "piped", stderr: "piped" })
      .spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const writer = child.stdin.getWriter();
  await writer.write(input);
  await writer.close();
  const out = await child.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

Deno.test("crc32 and sha256 match the standard check values", async () => {
  assert.equal(crc32(encoder.encode("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
  assert.equal(
    await sha256Hex(encoder.encode("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});

Deno.test("tar writer: ustar read back by our reader and by tar(1)", async () => {
  const plain = tarBytes(SAMPLE, MTIME);
  assert.equal(plain.length % 512, 0);
  const entries = readTar(plain);
  assertSameEntries(entries, SAMPLE);
  assert.ok(entries.every((e) => e.mtime === MTIME));

  const gz = await tarGzBytes(SAMPLE, MTIME);
  assert.deepEqual([gz[0], gz[1]], [0x1f, 0x8b], "gzip magic");
  assert.deepEqual(await inflate(gz, "gzip"), plain);

  const listed = await tool("tar", ["-tvzf", "-"], gz);
  if (listed === undefined) return; // no tar on this machine; our reader checked it
  assert.equal(listed.code, 0, listed.stderr);
  const lines = listed.stdout.trim().split("\n");
  assert.deepEqual(lines.map((l) => l.split(/\s+/).at(-1)), SAMPLE.map((f) => f.path));
  assert.match(lines[0], /^drwxr-xr-x/);
  assert.match(lines[1], /^-rwxr-xr-x/);
  assert.match(lines[2], /^-rw-r--r--/);
  assert.match(lines[4], /^-rw-------/);
});

Deno.test("tar writer: long paths use the ustar prefix field", () => {
  const path = "d".repeat(60) + "/" + "f".repeat(80);
  const entries = readTar(tarBytes([{ path, mode: 0o644, data: encoder.encode("x") }], MTIME));
  assert.equal(entries[0].path, path);
});

Deno.test("zip writer: read back by our reader and by Python's zipfile", async () => {
  const zip = await zipBytes(SAMPLE, MTIME);
  assertSameEntries(await readZip(zip), SAMPLE);

  const script = "import io, sys, zipfile\n" +
    "z = zipfile.ZipFile(io.BytesIO(sys.stdin.buffer.read()))\n" +
    "assert z.testzip() is None\n" +
    "for i in z.infolist():\n" +
    "    print(i.filename, oct(i.external_attr >> 16), i.file_size, i.compress_type, i.date_time)\n";
  const listed = await tool("python3", ["-c", script], zip);
  if (listed === undefined) return; // no python3; our reader checked it
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual(listed.stdout.trim().split("\n"), [
    "pkg/ 0o40755 0 0 (2026, 1, 2, 3, 4, 6)",
    "pkg/tool 0o100755 1800 8 (2026, 1, 2, 3, 4, 6)",
    "pkg/README.md 0o100644 9 0 (2026, 1, 2, 3, 4, 6)",
    "pkg/empty 0o100644 0 0 (2026, 1, 2, 3, 4, 6)",
    "pkg/random 0o100600 3000 0 (2026, 1, 2, 3, 4, 6)",
  ]);
});

// ---------------------------------------------------------------- end to end

/** The release target this host can fake a denort for, if any. */
function hostTarget(): Target | undefined {
  const target = Deno.build.target;
  return (TARGETS as readonly string[]).includes(target) ? target as Target : undefined;
}

/**
 * A stand-in denort in the host's executable format: deno compile only appends
 * its payload, so any executable of the right format (ELF/Mach-O/PE) will do.
 * The result is not a working nsqlookupd and is never run.
 */
function fakeDenort(): string {
  try {
    if (Deno.build.os === "linux" && Deno.statSync("/bin/true").isFile) return "/bin/true";
  } catch {
    // fall back to the deno binary itself
  }
  return Deno.execPath();
}

async function runCompile(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const base = Deno.env.toObject();
  delete base.DENORT_BIN;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...TASK_FLAGS, join(ROOT, "scripts", "compile.ts"), ...args],
    cwd: ROOT,
    clearEnv: true,
    env: { ...base, NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** The permission set deno compile embedded in the binary's metadata. */
function embeddedPermissions(binary: Uint8Array): Record<string, unknown> {
  const text = new TextDecoder("latin1").decode(binary);
  const match = text.match(/"permissions":(\{[^{}]*\})/);
  assert.ok(match, "no permissions metadata in the compiled binary");
  return JSON.parse(match[1]);
}

Deno.test({
  name: "e2e: DENORT_BIN build of one target writes binary, archive and SHA256SUMS",
  ignore: hostTarget() === undefined,
  fn: async () => {
    const target = hostTarget() as Target;
    const dir = await Deno.makeTempDir({ prefix: "compile_test_" });
    try {
      const outDir = join(dir, "out");
      const result = await runCompile(["--target", target, "--out", outDir], {
        DENORT_BIN: fakeDenort(),
      });
      assert.equal(result.code, 0, result.stderr + result.stdout);

      const version = denoJson.version;
      const binary = join(outDir, binaryName(version, target));
      const archive = archiveName(version, target);
      const names = [];
      for await (const entry of Deno.readDir(outDir)) names.push(entry.name);
      assert.deepEqual(names.sort(), ["SHA256SUMS", archive, binaryName(version, target)].sort());

      const archiveData = await Deno.readFile(join(outDir, archive));
      assert.equal(
        await Deno.readTextFile(join(outDir, "SHA256SUMS")),
        `${await sha256Hex(archiveData)}  ${archive}\n`,
      );
      const check = await new Deno.Command("sha256sum", {
        args: ["-c", "SHA256SUMS"],
        cwd: outDir,
        stdout: "piped",
        stderr: "piped",
      }).output().catch((error) => {
        if (error instanceof Deno.errors.NotFound) return undefined; // no coreutils here
        throw error;
      });
      if (check !== undefined) assert.equal(check.code, 0, decoder.decode(check.stdout));

      const binaryData = await Deno.readFile(binary);
      const dirName = `nsqlookupd-${version}-${target}`;
      const exe = target.includes("windows") ? "nsqlookupd.exe" : "nsqlookupd";
      const entries = target.includes("windows")
        ? await readZip(archiveData)
        : readTar(await inflate(archiveData, "gzip"));
      assert.deepEqual(
        entries.map((e) => [e.path, e.mode]),
        [
          [`${dirName}/`, 0o755],
          [`${dirName}/${exe}`, 0o755],
          [`${dirName}/README.md`, 0o644],
          [`${dirName}/LICENSE`, 0o644],
        ],
      );
      assert.deepEqual(entries[1].data, binaryData);
      assert.deepEqual(entries[2].data, await Deno.readFile(join(ROOT, "README.md")));
      assert.deepEqual(entries[3].data, await Deno.readFile(join(ROOT, "LICENSE")));

      // What deno compile baked in: net, read, sys=hostname, no prompt; nothing else.
      const perms = embeddedPermissions(binaryData);
      assert.deepEqual(perms.allow_net, []);
      assert.deepEqual(perms.allow_read, []);
      assert.deepEqual(perms.allow_sys, ["hostname"]);
      for (const key of ["allow_env", "allow_run", "allow_write", "allow_ffi"]) {
        assert.equal(perms[key], null, key);
      }
      assert.equal(perms.prompt, false);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** DENO_DIR of this deno, so a fresh one can borrow its npm cache. */
async function denoDir(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return JSON.parse(decoder.decode(out.stdout)).denoDir;
}

Deno.test({
  name: "e2e: without a reachable dl.deno.land it stops with one sentence, exit 1",
  // Symlinking the npm cache into a fresh DENO_DIR needs Unix.
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "compile_test_" });
    try {
      // A fresh DENO_DIR has no cached denort; its npm packages come from the
      // real cache; every download goes to a proxy that refuses connections.
      const freshDenoDir = join(dir, "deno_dir");
      await Deno.mkdir(freshDenoDir);
      await Deno.symlink(join(await denoDir(), "npm"), join(freshDenoDir, "npm"));
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const deadPort = listener.addr.port;
      listener.close();
      const proxy = `http://127.0.0.1:${deadPort}`;
      const outDir = join(dir, "out");
      const result = await runCompile(["--target", "aarch64-apple-darwin", "--out", outDir], {
        DENO_DIR: freshDenoDir,
        HTTPS_PROXY: proxy,
        https_proxy: proxy,
        HTTP_PROXY: proxy,
        http_proxy: proxy,
        NO_PROXY: "",
        no_proxy: "",
      });
      assert.equal(result.code, 1, result.stderr);
      assert.equal(result.stderr, offlineMessage("aarch64-apple-darwin") + "\n");
      const left = [];
      for await (const entry of Deno.readDir(outDir)) left.push(entry.name);
      assert.deepEqual(left, []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("e2e: unknown --target exits 2 with a one-line message", async () => {
  const result = await runCompile(["--target", "x86_64-linux", "--out", "/nonexistent"], {});
  assert.equal(result.code, 2);
  assert.match(
    result.stderr,
    /^compile\.ts: unknown target "x86_64-linux"; expected one of: .*\n$/,
  );
  assert.equal(result.stderr.split("\n").length, 2);
});
