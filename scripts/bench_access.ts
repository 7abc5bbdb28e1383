// /lookup throughput with auth on (warm cache) against auth off: the daemon as
// a separate process, loaded over loopback by keep-alive connections, the two
// modes alternated and the medians compared. Prints figures and PASS/MISS
// (target: auth on ≥ 0.7 × auth off); never asserts.
//
//   deno run --allow-net --allow-read --allow-run scripts/bench_access.ts [--rounds 5 --seconds 4]

import { startAuthServer, subscriber } from "../tests/support/auth_server.ts";
import { spawnDaemon } from "../tests/support/daemon_process.ts";
import { intArgs } from "../tests/support/harness.ts";
import { identifyCommand } from "../tests/support/helpers.ts";
import { writeStdout } from "../src/ops/logger.ts";

const { rounds, seconds, connections } = intArgs(Deno.args, {
  rounds: 5,
  seconds: 4,
  connections: 32,
});
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const REQUEST = encoder.encode(
  "GET /lookup?topic=clicks HTTP/1.1\r\nHost: lookupd\r\n" +
    "Accept: application/vnd.nsq; version=1.0\r\nAuthorization: Bearer s3cret\r\n\r\n",
);

/** Reads one whole response (Content-Length framed); throws unless it is a 200. */
async function readResponse(conn: Deno.Conn, buffer: Uint8Array): Promise<void> {
  let text = "";
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("connection closed");
    text += decoder.decode(buffer.subarray(0, n));
    const end = text.indexOf("\r\n\r\n");
    const length = /content-length: (\d+)/i.exec(text);
    if (end >= 0 && length !== null && text.length >= end + 4 + Number(length[1])) break;
  }
  if (!text.startsWith("HTTP/1.1 200")) throw new Error(text.slice(0, 120));
}

/** Requests per second over `seconds`, after a one-second warm-up. */
async function load(port: number): Promise<number> {
  let count = 0;
  let stop = false;
  const worker = async (): Promise<void> => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (!stop) {
        await conn.write(REQUEST);
        await readResponse(conn, buffer);
        count++;
      }
    } finally {
      conn.close();
    }
  };
  const workers = Array.from({ length: connections }, worker);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const before = count;
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const rate = (count - before) / ((performance.now() - started) / 1000);
  stop = true;
  await Promise.all(workers);
  return rate;
}

async function run(authAddress: string | undefined): Promise<number> {
  await using daemon = await spawnDaemon([
    "--broadcast-address=127.0.0.1",
    "--log-level=warn",
    ...(authAddress === undefined ? [] : [`--auth-http-address=${authAddress}`]),
  ], { ports: "free" });
  const producer = await Deno.connect({ hostname: "127.0.0.1", port: daemon.tcpPort });
  const body = '{"broadcast_address":"127.0.0.1","hostname":"h","tcp_port":4150,' +
    '"http_port":4151,"version":"1.3.0"}';
  await producer.write(encoder.encode("  V1"));
  await producer.write(identifyCommand(body));
  await producer.write(encoder.encode("REGISTER clicks archive\nREGISTER clicks metrics\n"));
  await new Promise((resolve) => setTimeout(resolve, 300));
  try {
    return await load(daemon.httpPort);
  } finally {
    producer.close();
    await daemon.stop();
  }
}

const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

await using auth = startAuthServer({ s3cret: subscriber(".*") });
const off: number[] = [];
const on: number[] = [];
for (let i = 0; i < rounds; i++) {
  off.push(await run(undefined));
  on.push(await run(auth.address));
}
const ratio = median(on) / median(off);
writeStdout(
  `/lookup, ${connections} keep-alive connections, ${rounds} × ${seconds}s alternated\n` +
    `auth off: ${off.map(Math.round).join(", ")} req/s (median ${Math.round(median(off))})\n` +
    `auth on:  ${on.map(Math.round).join(", ")} req/s (median ${Math.round(median(on))}, ` +
    `${auth.queries.length} auth queries in all)\n` +
    `ratio ${ratio.toFixed(2)} ${ratio >= 0.7 ? "PASS" : "MISS"} (target ≥ 0.70)\n`,
);
