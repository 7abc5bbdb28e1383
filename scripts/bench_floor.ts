// The runtime's floors under bench.ts's start-up row: each does the least a
// process of its kind can do, and imports nothing, so that the time it takes
// is the runtime's own.
//
//   deno run scripts/bench_floor.ts                        prints one line, ends
//   deno run --allow-net scripts/bench_floor.ts PORT       bare Deno.listen: 200 OK to anything
//   deno run --allow-net scripts/bench_floor.ts PORT timer the same, a timer armed first
//
// The timer variant is there because Deno 2.9 loads its Node.js timers
// (node:timers and some twenty modules behind it) the first time a script
// touches setTimeout or setInterval: any server with timeouts pays for that
// before it answers, the bare listener does not.

const port = Deno.args[0];
if (port === undefined) {
  Deno.stdout.writeSync(new TextEncoder().encode("ready\n"));
} else {
  if (Deno.args[1] === "timer") clearTimeout(setTimeout(() => {}, 60_000));
  const answer = new TextEncoder().encode(
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK",
  );
  const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(port) });
  for await (const conn of listener) {
    // One read is enough for a /ping; the answer closes the connection.
    conn.read(new Uint8Array(4096))
      .then(() => conn.write(answer))
      .catch(() => 0)
      .finally(() => conn.close());
  }
}
