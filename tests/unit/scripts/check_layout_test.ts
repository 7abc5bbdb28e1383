// scripts/check_layout.ts: the code map's rules catch what breaks them.

import assert from "node:assert/strict";
import { checkLayout } from "../../../scripts/check_layout.ts";

async function tree(files: Record<string, string>): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "layout-" });
  for (const [path, text] of Object.entries({ "main.ts": "", ...files })) {
    await Deno.mkdir(`${root}/${path.split("/").slice(0, -1).join("/")}`, { recursive: true });
    await Deno.writeTextFile(`${root}/${path}`, text);
  }
  return root;
}

async function breaches(files: Record<string, string>): Promise<string[]> {
  const root = await tree(files);
  try {
    return await checkLayout(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("a tree that follows the map has no breach", async () => {
  assert.deepEqual(
    await breaches({
      "src/registry.ts": 'import { ok } from "./result.ts";\nimport { x } from "./names.ts";\n',
      "src/result.ts": "",
      "src/names.ts": "",
      "src/gocompat/json.ts": 'import { ok } from "../result.ts";\n',
      "src/tcp/server.ts": 'import { Registry } from "../registry.ts";\n',
      "src/ops/metrics.ts": 'import type { TcpObserver } from "../tcp/server.ts";\n',
      "src/daemon.ts": 'import { TcpServer } from "./tcp/server.ts";\n',
    }),
    [],
  );
});

Deno.test("the registry importing anything with I/O is a breach", async () => {
  const found = await breaches({
    "src/registry.ts": 'import { createLogger } from "./ops/logger.ts";\n',
    "src/ops/logger.ts": "",
  });
  assert.deepEqual(found, ["src/registry.ts:1: core may not import ops (src/ops/logger.ts)"]);
});

Deno.test("gocompat importing a product module is a breach", async () => {
  const found = await breaches({
    "src/gocompat/http1.ts": 'import type { ApiRequest } from "../http/api.ts";\n',
    "src/http/api.ts": "",
  });
  assert.deepEqual(found, [
    "src/gocompat/http1.ts:1: gocompat may not import http (src/http/api.ts)",
  ]);
});

Deno.test("ops may import tcp/ and http/ for types only", async () => {
  const found = await breaches({
    "src/ops/limits.ts": 'import { HTTP_MAX } from "../http/server.ts";\n',
    "src/http/server.ts": "",
  });
  assert.deepEqual(found, ["src/ops/limits.ts:1: ops may not import http (src/http/server.ts)"]);
});

Deno.test("a pure module doing I/O through Deno is a breach; errors and types are not", async () => {
  const found = await breaches({
    "src/tcp/protocol.ts": "export const a: Deno.NetAddr | undefined = undefined;\n" +
      "// Deno.listen in a comment is fine\n" +
      "const e = Deno.errors.NotFound;\n" +
      "const f = Deno.readFileSync('x');\n",
  });
  assert.deepEqual(found, ["src/tcp/protocol.ts:4: a pure module uses Deno.readFileSync"]);
});

Deno.test("a function in src/ longer than 80 lines is a breach", async () => {
  const body = Array.from({ length: 81 }, (_, i) => `  const v${i} = ${i};`).join("\n");
  const found = await breaches({ "src/names.ts": `export function long(): void {\n${body}\n}\n` });
  assert.deepEqual(found, ["src/names.ts:1: long is 81 lines (at most 80)"]);
});
