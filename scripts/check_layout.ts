// The code map (README "Code map") as a check that `deno task check` runs:
// which folder may import which, which modules must stay free of I/O, and
// how long a function in src/ may grow. Exits 1 naming every breach.
//
//   deno run --allow-read scripts/check_layout.ts

import { writeStderr, writeStdout } from "../src/ops/logger.ts";

/** Where a module sits in the map. */
type Layer =
  | "core" // registry, names, errors, result, version: the product's pure heart
  | "gocompat" // Go's standard library re-done: knows nothing of nsqlookupd
  | "tcp"
  | "http"
  | "access"
  | "ops"
  | "wiring" // daemon, config, options: may import anything in src/
  | "main";

/** What each layer may import (its own layer always). */
const MAY_IMPORT: Readonly<Record<Layer, readonly Layer[]>> = {
  core: ["gocompat"],
  gocompat: [],
  tcp: ["core", "gocompat", "ops"],
  http: ["core", "gocompat", "ops"],
  access: ["core", "gocompat", "ops", "http"],
  // Metrics implement the observers declared in tcp/ and http/: types only.
  ops: ["core", "gocompat"],
  wiring: ["core", "gocompat", "tcp", "http", "access", "ops"],
  main: ["core", "gocompat", "tcp", "http", "access", "ops", "wiring"],
};

/** Imports of these layers are allowed to `ops/` when they are `import type`. */
const TYPE_ONLY_FOR_OPS: readonly Layer[] = ["tcp", "http", "access"];

/** Modules that must stay pure: no I/O through the Deno namespace. */
const PURE = [
  /^src\/(registry|names|errors|result|version)\.ts$/,
  /^src\/gocompat\/(http1|flags|duration|query|json|address)\.ts$/,
  /^src\/tcp\/(protocol|identify)\.ts$/,
  /^src\/http\/(routes|router|render|cache|policies)\.ts$/,
];
/** `Deno.x` members that are not I/O: error classes and the runtime's version. */
const HARMLESS_DENO = new Set(["errors", "version", "build"]);

/** Longest function body allowed in src/, in lines. */
const MAX_FUNCTION_LINES = 80;
/** Functions that are declarative tables, allowed to be longer, with the reason. */
const LONG_TABLES: Readonly<Record<string, string>> = {
  "src/config.ts:createFlags": "the flag table: one entry per flag, nothing else",
};

function layerOf(path: string): Layer | undefined {
  if (path === "main.ts") return "main";
  const folder = path.match(/^src\/([a-z_]+)\//)?.[1];
  if (folder !== undefined) {
    return (["gocompat", "tcp", "http", "access", "ops"] as const).find((l) => l === folder);
  }
  if (/^src\/(daemon|config|options)\.ts$/.test(path)) return "wiring";
  if (/^src\/[a-z_]+\.ts$/.test(path)) return "core";
  return undefined;
}

interface Import {
  readonly target: string;
  readonly typeOnly: boolean;
  readonly line: number;
}

const IMPORT = /^(import|export)\s+(type\s+)?[^"']*?from\s+["']([^"']+)["']/gms;

function importsOf(path: string, text: string): Import[] {
  const found: Import[] = [];
  for (const match of text.matchAll(IMPORT)) {
    const specifier = match[3];
    const line = text.slice(0, match.index).split("\n").length;
    const typeOnly = match[2] !== undefined;
    if (!specifier.startsWith(".")) {
      found.push({ target: specifier, typeOnly, line });
      continue;
    }
    const dir = path.split("/").slice(0, -1);
    for (const part of specifier.split("/")) {
      if (part === "..") dir.pop();
      else if (part !== ".") dir.push(part);
    }
    found.push({ target: dir.join("/"), typeOnly, line });
  }
  return found;
}

function importBreaches(path: string, text: string): string[] {
  const layer = layerOf(path);
  if (layer === undefined) return [];
  const breaches: string[] = [];
  for (const { target, typeOnly, line } of importsOf(path, text)) {
    const where = `${path}:${line}`;
    if (!target.startsWith("src/") && target !== "main.ts") {
      const allowed = target.startsWith("node:") ||
        (path === "src/config.ts" && target === "smol-toml") ||
        (path === "src/version.ts" && target === "deno.json");
      if (!allowed) breaches.push(`${where}: imports ${target} (only config.ts may use a package)`);
      continue;
    }
    const to = layerOf(target);
    // The one Result shape is everybody's.
    if (to === undefined || to === layer || target === "src/result.ts") continue;
    if (MAY_IMPORT[layer].includes(to)) continue;
    if (layer === "ops" && typeOnly && TYPE_ONLY_FOR_OPS.includes(to)) continue;
    breaches.push(`${where}: ${layer} may not import ${to} (${target})`);
  }
  return breaches;
}

function purityBreaches(path: string, text: string): string[] {
  if (!PURE.some((pattern) => pattern.test(path))) return [];
  const breaches: string[] = [];
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    const code = line.trimStart();
    if (code.startsWith("//") || code.startsWith("*") || code.startsWith("/*")) return;
    for (const match of line.matchAll(/\bDeno\.([a-z]\w*)/g)) {
      if (!HARMLESS_DENO.has(match[1])) {
        breaches.push(`${path}:${i + 1}: a pure module uses Deno.${match[1]}`);
      }
    }
  });
  return breaches;
}

/**
 * Functions by their formatted shape: a line opening a function at some
 * indentation ends at the first later line that is that indentation plus `}`.
 */
function longFunctions(path: string, text: string): string[] {
  const lines = text.split("\n");
  const opener =
    /^(\s*)(export\s+)?(async\s+)?(function\*?\s+([\w$]+)|(?:(?:public|private|static|get|set|async)\s+)*(#?[\w$]+)\s*(<[^>]*>)?\(.*\)(:\s*[^=]+)?\s*\{$|(?:const|let)\s+([\w$]+)\s*=\s*(async\s*)?\(.*=>\s*\{$)/;
  const breaches: string[] = [];
  lines.forEach((line, start) => {
    const match = line.match(opener);
    if (match === null || !line.trimEnd().endsWith("{")) return;
    const name = match[5] ?? match[6] ?? match[9] ?? "?";
    if (["if", "for", "while", "switch", "catch", "with"].includes(name)) return;
    const indent = match[1];
    let end = start + 1;
    while (end < lines.length && !new RegExp(`^${indent}\\}`).test(lines[end])) end++;
    const length = end - start - 1;
    const key = `${path}:${name}`;
    if (length > MAX_FUNCTION_LINES && LONG_TABLES[key] === undefined) {
      breaches.push(
        `${path}:${start + 1}: ${name} is ${length} lines (at most ${MAX_FUNCTION_LINES})`,
      );
    }
  });
  return breaches;
}

async function sourceFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) files.push(...await sourceFiles(path));
    else if (entry.name.endsWith(".ts")) files.push(path);
  }
  return files;
}

export async function checkLayout(root: string): Promise<string[]> {
  const files = [
    "main.ts",
    ...(await sourceFiles(`${root}/src`)).map((f) => f.slice(root.length + 1)),
  ];
  const breaches: string[] = [];
  for (const path of files.sort()) {
    const text = await Deno.readTextFile(`${root}/${path}`);
    breaches.push(...importBreaches(path, text), ...purityBreaches(path, text));
    if (path.startsWith("src/")) breaches.push(...longFunctions(path, text));
  }
  return breaches;
}

if (import.meta.main) {
  const root = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
  const breaches = await checkLayout(root);
  if (breaches.length > 0) {
    writeStderr(`layout: ${breaches.length} breach(es) of the code map:\n${breaches.join("\n")}\n`);
    Deno.exit(1);
  }
  writeStdout("layout: imports, purity and function lengths follow the code map\n");
}
