// A turn of the event loop in which the runtime has polled its sockets.
//
// Deno runs work that is ready (reads and accepts that complete at once,
// due timers) before it polls its sockets again. A read issued before the
// byte it waits for is written completes only once the runtime has polled
// them, so a server that yields with it lets every other socket's readiness
// be seen before its next slice, at ~20 µs a turn; a zero-delay timer takes a
// millisecond or more (Deno clamps it). The HTTP server yields this way
// between runs of busy connections, the TCP server between slices of its
// turn scheduler. Measured on row 5 of issue 12 (16,500 silent connections
// that all close, 12,000 dead connections then accepted and closed in about
// a second): worst /ping 59 ms on average over four runs with loopback turns
// in the TCP server, 92 ms with timer turns.

/**
 * Event-loop turns through a loopback TCP connection to this process: a read
 * issued before the byte it waits for is written completes only once the
 * runtime has polled its sockets.
 */
export class LoopbackTurn {
  readonly #reader: Deno.TcpConn;
  readonly #writer: Deno.TcpConn;
  readonly #one = new Uint8Array(1);
  readonly #sink = new Uint8Array(64);

  private constructor(reader: Deno.TcpConn, writer: Deno.TcpConn) {
    this.#reader = reader;
    this.#writer = writer;
  }

  /** The connection, or undefined when it cannot be had (no permission, no loopback). */
  static async open(): Promise<LoopbackTurn | undefined> {
    let listener: Deno.TcpListener | undefined;
    let writer: Deno.TcpConn | undefined;
    try {
      listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const accepted = listener.accept();
      writer = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
      const reader = await accepted;
      writer.setNoDelay(true);
      return new LoopbackTurn(reader, writer);
    } catch {
      writer?.close();
      return undefined;
    } finally {
      listener?.close();
    }
  }

  /** Settles after the runtime has polled its sockets (one at a time: Turns shares it). */
  async turn(): Promise<void> {
    const read = this.#reader.read(this.#sink).catch(() => null); // closed: the turn is over
    await this.#writer.write(this.#one);
    await read;
  }

  close(): void {
    for (const conn of [this.#reader, this.#writer]) {
      try {
        conn.close();
      } catch {
        // closed already
      }
    }
  }
}
