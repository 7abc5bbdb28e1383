// The benchmark's floor: a bare Deno.serve answering one constant JSON body
// with the same headers as /lookup. Usage: bench_baseline.ts PORT BODY_BYTES

import { writeStdout } from "../src/ops/logger.ts";

const port = Number(Deno.args[0] ?? "0");
const size = Number(Deno.args[1] ?? "200");
const prefix = '{"channels":[],"producers":[{"pad":"';
const suffix = '"}]}';
const body = prefix + "x".repeat(Math.max(0, size - prefix.length - suffix.length)) + suffix;
const headers: [string, string][] = [
  ["Content-Type", "application/json; charset=utf-8"],
  ["X-NSQ-Content-Type", "nsq; version=1.0"],
];

// Framed as nsqlookupd (Go) frames it: Content-Length up to 2048 bytes, chunked above.
const bytes = new TextEncoder().encode(body);
const respond = bytes.length > 2048
  ? () =>
    new Response(
      new ReadableStream({
        start(controller): void {
          controller.enqueue(bytes);
          controller.close();
        },
      }),
      { headers },
    )
  : () => new Response(body, { headers });
const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, respond);
writeStdout(`listening ${server.addr.port}\n`);
Deno.addSignalListener("SIGTERM", () => {
  server.shutdown().then(() => Deno.exit(0));
});
