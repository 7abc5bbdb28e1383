// --max-share-per-host: one remote host holds at most that percent of each
// connection cap, while other hosts still get in.

import assert from "node:assert/strict";
import { connectionLimits, openFilesLimit } from "../../src/ops/limits.ts";
import { eventually, sleep, startDaemon } from "../support/helpers.ts";

async function pingFrom(port: number, localAddress: string): Promise<number> {
  const client = Deno.createHttpClient({ localAddress });
  try {
    const res = await fetch(`http://127.0.0.1:${port}/ping`, { client });
    await res.body?.cancel();
    return res.status;
  } finally {
    client.close();
  }
}

Deno.test("one host holding its HTTP share does not keep another host out", async () => {
  // 1% of the HTTP cap (1,024 unless the descriptor limit says less).
  await using daemon = startDaemon({ maxSharePerHost: 1, logLevel: "warn" });
  const port = daemon.httpAddr.port;
  const share = Math.max(1, Math.floor(connectionLimits(openFilesLimit()).http / 100));
  const held: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < share + 5; i++) {
      held.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    await sleep(100);
    await eventually(() => daemon.httpServer.connectionCount <= share);
    assert.equal(await pingFrom(port, "127.0.0.2"), 200);
  } finally {
    for (const conn of held) conn.close();
  }
});
