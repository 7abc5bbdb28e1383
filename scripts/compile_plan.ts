// Pure planning for `deno task compile`: which targets, what the binaries and
// archives are called, the exact `deno compile` argv, what goes into each
// archive, and the SHA256SUMS text. No I/O here; scripts/compile.ts does it.

import { join } from "node:path";

/** The release targets, in build order. */
export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

export type Target = typeof TARGETS[number];

/**
 * Exactly what the daemon needs, baked into the binary:
 * - net: the TCP and HTTP listeners;
 * - read: the `--config` file, whose path is only known at run time, so it cannot be scoped;
 * - sys=hostname: `Deno.hostname()` for the default broadcast address.
 * No env, run, write, ffi. `--no-prompt` makes anything else fail instead of
 * prompting (compiled binaries prompt by default), which a daemon must not do.
 */
export const PERMISSION_FLAGS: readonly string[] = [
  "--allow-net",
  "--allow-read",
  "--allow-sys=hostname",
];

/**
 * Runtime options baked into the binary (and what `deno task start` passes).
 * A young generation of at most 2 MiB per semi-space: every connection the
 * daemon accepts survives its first garbage collections, and V8's default
 * (16 MiB) made each young-generation collection copy up to 16 MiB of them in
 * one pause, 100-130 ms under a storm of 16,000 connections (measured). On its
 * own a small young generation promotes early and raised RSS under that storm
 * (4 MiB: +209..305 MiB, measured); with a heap that grows by 10% between major
 * collections the storm stayed at +93 MiB and a 1,000-producer fleet at ~97 MiB
 * RSS instead of ~140 (measured by `deno task stress` and the bench).
 */
export const RUNTIME_FLAGS: readonly string[] = [
  "--v8-flags=--max-semi-space-size=2,--heap-growing-percent=10",
];

export const COMPILE_FLAGS: readonly string[] = [
  "--no-prompt",
  ...PERMISSION_FLAGS,
  ...RUNTIME_FLAGS,
];

export const PRODUCT = "nsqlookupd";
export const DEFAULT_OUT_DIR = "dist";
/** Files from the project root shipped next to the binary in every archive. */
export const DOC_FILES: readonly string[] = ["README.md", "LICENSE"];

export const USAGE = `Usage: deno task compile [--target <target>]... [--out <dir>]

Builds standalone ${PRODUCT} binaries with \`deno compile\`, packs each with README.md and
LICENSE (.tar.gz, .zip for Windows) and writes SHA256SUMS.

  --target <target>  build only this target (repeatable); default: all of
                     ${TARGETS.join(",\n                     ")}
  --out <dir>        output directory (default: ${DEFAULT_OUT_DIR})
  -h, --help         print this help

Set DENORT_BIN to a denort binary for the (single) target to build without downloading it.
`;

/** A command-line mistake: print the message and exit 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

export type CompileCommand =
  | { kind: "help" }
  | { kind: "build"; targets: Target[]; outDir: string };

export function isTarget(value: string): value is Target {
  return (TARGETS as readonly string[]).includes(value);
}

function checkTarget(value: string): Target {
  if (!isTarget(value)) {
    throw new UsageError(
      `unknown target "${value}"; expected one of: ${TARGETS.join(", ")}`,
    );
  }
  return value;
}

/** Parses `--target <t>` (repeatable), `--out <dir>`, their `=` forms, and `-h`/`--help`. */
export function parseCompileArgs(args: readonly string[]): CompileCommand {
  const targets: Target[] = [];
  let outDir = DEFAULT_OUT_DIR;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "-h" || arg === "--help") return { kind: "help" };
    const eq = arg.indexOf("=");
    const name = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    if (name !== "--target" && name !== "--out") {
      throw new UsageError(
        arg.startsWith("-") ? `unknown option "${arg}"` : `unexpected argument "${arg}"`,
      );
    }
    let value: string;
    if (name !== arg) {
      value = arg.slice(eq + 1);
    } else {
      const next = args[i + 1];
      if (next === undefined) throw new UsageError(`${name} needs a value`);
      value = next;
      i++;
    }
    if (value === "") throw new UsageError(`${name} needs a non-empty value`);
    if (name === "--target") {
      const target = checkTarget(value);
      if (!targets.includes(target)) targets.push(target);
    } else {
      outDir = value;
    }
  }
  return { kind: "build", targets: targets.length > 0 ? targets : [...TARGETS], outDir };
}

const VERSION_PATTERN = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

/** The version goes into file names: insist on plain semver. */
export function checkVersion(version: string): string {
  if (!VERSION_PATTERN.test(version)) {
    throw new Error(`deno.json "version" is "${version}", which is not a semantic version`);
  }
  return version;
}

export function isWindows(target: Target): boolean {
  return target.endsWith("-windows-msvc");
}

export type ArchiveFormat = "tar.gz" | "zip";

export interface ArchiveEntry {
  /** Path inside the archive, `/`-separated; directories end with `/`. */
  path: string;
  /** File to read the contents from; absent for directories. */
  source?: string;
  /** Unix permission bits. */
  mode: number;
}

export interface TargetPlan {
  target: Target;
  /** `nsqlookupd-0.1.0-x86_64-pc-windows-msvc.exe` */
  binaryName: string;
  binaryPath: string;
  /** Arguments for the `deno` executable (starting with `compile`). */
  compileArgs: string[];
  archiveFormat: ArchiveFormat;
  /** `nsqlookupd-0.1.0-x86_64-unknown-linux-gnu.tar.gz` */
  archiveName: string;
  archivePath: string;
  archiveEntries: ArchiveEntry[];
}

export interface BuildPlan {
  version: string;
  outDir: string;
  targets: TargetPlan[];
  checksumPath: string;
}

export interface PlanInput {
  version: string;
  targets: readonly Target[];
  outDir: string;
  /** Absolute project root (holds deno.json, main.ts, README.md, LICENSE). */
  projectRoot: string;
}

export function baseName(version: string, target: Target): string {
  return `${PRODUCT}-${version}-${target}`;
}

export function binaryName(version: string, target: Target): string {
  return baseName(version, target) + (isWindows(target) ? ".exe" : "");
}

export function archiveName(version: string, target: Target): string {
  return baseName(version, target) + (isWindows(target) ? ".zip" : ".tar.gz");
}

export function compileArgs(
  target: Target,
  output: string,
  projectRoot: string,
): string[] {
  return [
    "compile",
    ...COMPILE_FLAGS,
    // Runtime dependencies only: deno.json also imports test-only npm packages,
    // which deno compile would otherwise fetch for every target platform.
    "--config",
    join(projectRoot, "scripts", "compile.config.json"),
    "--target",
    target,
    "--output",
    output,
    join(projectRoot, "main.ts"),
  ];
}

/**
 * Each archive holds one directory named like the archive, with the binary
 * (as plain `nsqlookupd` / `nsqlookupd.exe`), README.md and LICENSE.
 */
export function archiveEntries(
  version: string,
  target: Target,
  binaryPath: string,
  projectRoot: string,
): ArchiveEntry[] {
  const dir = baseName(version, target);
  const exe = PRODUCT + (isWindows(target) ? ".exe" : "");
  return [
    { path: `${dir}/`, mode: 0o755 },
    { path: `${dir}/${exe}`, source: binaryPath, mode: 0o755 },
    ...DOC_FILES.map((file) => ({
      path: `${dir}/${file}`,
      source: join(projectRoot, file),
      mode: 0o644,
    })),
  ];
}

export function planBuild(input: PlanInput): BuildPlan {
  const version = checkVersion(input.version);
  const targets = input.targets.map((target): TargetPlan => {
    const binary = binaryName(version, target);
    const binaryPath = join(input.outDir, binary);
    const archive = archiveName(version, target);
    return {
      target,
      binaryName: binary,
      binaryPath,
      compileArgs: compileArgs(target, binaryPath, input.projectRoot),
      archiveFormat: isWindows(target) ? "zip" : "tar.gz",
      archiveName: archive,
      archivePath: join(input.outDir, archive),
      archiveEntries: archiveEntries(version, target, binaryPath, input.projectRoot),
    };
  });
  return {
    version,
    outDir: input.outDir,
    targets,
    checksumPath: join(input.outDir, "SHA256SUMS"),
  };
}

/** DENORT_BIN is one runtime binary, which fits exactly one target. */
export function checkDenortBin(denortBin: string | undefined, targets: readonly Target[]): void {
  if (denortBin !== undefined && denortBin !== "" && targets.length !== 1) {
    throw new UsageError(
      `DENORT_BIN names one denort binary, which fits one target; pass exactly one --target with it (got ${targets.length})`,
    );
  }
}

/** `sha256sum` output: `<hex>  <file>` per line, sorted by file name. */
export function checksumFileText(sums: readonly { file: string; sha256: string }[]): string {
  return [...sums]
    .sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0))
    .map(({ file, sha256 }) => `${sha256}  ${file}\n`)
    .join("");
}

// deno compile writes coloured, multi-line errors ("Caused by: ... Stack
// backtrace"); we turn the known ones into one sentence.

export type CompileFailure =
  | { kind: "offline" }
  | { kind: "bad-denort"; detail: string }
  | { kind: "other" };

export function stripAnsi(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

export function classifyCompileFailure(stderr: string): CompileFailure {
  const text = stripAnsi(stderr);
  if (
    text.includes("Setting up base binary") &&
    /dl\.deno\.land|error sending request|dns error|tcp connect error|Download/.test(text)
  ) {
    return { kind: "offline" };
  }
  const notFound = text.match(/Could not find denort at '([^']*)'/);
  if (notFound) return { kind: "bad-denort", detail: `${notFound[1]} does not exist` };
  const invalid = text.match(/Invalid object: ([^\n]*)/);
  if (invalid) return { kind: "bad-denort", detail: invalid[1].trim() };
  return { kind: "other" };
}

export function offlineMessage(target: Target): string {
  return `deno compile could not download the Deno runtime (denort) for ${target}; ` +
    `this machine has no access to dl.deno.land — build on a machine with internet access, ` +
    `or set DENORT_BIN to a denort binary for that target to build offline.`;
}

export function badDenortMessage(target: Target, denortBin: string, detail: string): string {
  return `DENORT_BIN (${denortBin}) is not a usable denort binary for ${target} (${detail}); ` +
    `point it at the denort release binary for that target.`;
}
