// Where the real NSQ v1.3.0 programs are: every one of them in NSQ_BIN_DIR
// when it is set, else each one on PATH. Shared by `deno task interop`
// (scripts/interop.ts) and the interop tests, so both find the same files.

import { err, ok, type Result } from "../../src/result.ts";

/** The programs the interop suite runs. */
export const NSQ_PROGRAMS = [
  "nsqd",
  "nsqlookupd",
  "nsqadmin",
  "nsq_tail",
  "nsq_to_file",
  "to_nsq",
] as const;

export type NsqProgram = typeof NSQ_PROGRAMS[number];
export type NsqPrograms = Readonly<Record<NsqProgram, string>>;

export const NSQ_VERSION = "1.3.0";

const HOW_TO_GET = "unpack NSQ v1.3.0 (https://github.com/nsqio/nsq/releases/tag/v1.3.0) and set " +
  "NSQ_BIN_DIR to the folder that holds nsqd";

export interface ProgramsNotFound {
  readonly code: "NSQ_PROGRAMS_NOT_FOUND";
  /** One sentence saying what is missing where and what to do. */
  readonly message: string;
}

/**
 * Resolves every program's path from `env` (NSQ_BIN_DIR, PATH) using
 * `isExecutableFile`, or says in one sentence which are missing.
 */
export function findNsqPrograms(
  env: { readonly NSQ_BIN_DIR?: string; readonly PATH?: string },
  isExecutableFile: (path: string) => boolean,
): Result<NsqPrograms, ProgramsNotFound> {
  const found: Partial<Record<NsqProgram, string>> = {};
  const missing: NsqProgram[] = [];
  const binDir = env.NSQ_BIN_DIR;
  const dirs = binDir !== undefined && binDir !== ""
    ? [binDir]
    : (env.PATH ?? "").split(":").filter((dir) => dir !== "");
  for (const program of NSQ_PROGRAMS) {
    const path = dirs.map((dir) => `${dir.replace(/\/+$/, "")}/${program}`).find(isExecutableFile);
    if (path === undefined) missing.push(program);
    else found[program] = path;
  }
  if (missing.length === 0) return ok(found as NsqPrograms);
  const where = binDir !== undefined && binDir !== ""
    ? `in NSQ_BIN_DIR (${binDir})`
    : "on PATH (NSQ_BIN_DIR is not set)";
  return err({
    code: "NSQ_PROGRAMS_NOT_FOUND",
    message: `the NSQ v${NSQ_VERSION} programs ${missing.join(", ")} were not found ${where}: ` +
      `${HOW_TO_GET}.`,
  });
}

/** A regular file with an execute bit. */
export function isExecutableFile(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}

let cached: NsqPrograms | undefined;

/** The programs for this process's environment; throws the one-sentence message if missing. */
export function nsqPrograms(): NsqPrograms {
  if (cached !== undefined) return cached;
  const result = findNsqPrograms(
    { NSQ_BIN_DIR: Deno.env.get("NSQ_BIN_DIR"), PATH: Deno.env.get("PATH") },
    isExecutableFile,
  );
  if (!result.ok) throw new Error(result.error.message);
  cached = result.value;
  return cached;
}
