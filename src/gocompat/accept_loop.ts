// Accepting connections without spinning, for the TCP and HTTP servers alike.

/** Where accept() failures are reported (the daemon's logger). */
export interface AcceptLogger {
  error(message: string): void;
}

export const ACCEPT_BACKOFF_MIN_MS = 5;
export const ACCEPT_BACKOFF_MAX_MS = 1_000;

export interface AcceptLoopOptions {
  listener: Deno.TcpListener;
  /** `TCP` or `HTTP`: the log line's prefix. */
  label: string;
  logger: AcceptLogger;
  /** False once the server closes: the loop ends, and a connection accepted late is closed. */
  accepting(): boolean;
  /** Takes a new connection; awaited before the next accept(). */
  take(conn: Deno.TcpConn): void | Promise<void>;
  /** accept() and the pause between failures; injectable for tests. */
  accept?: (listener: Deno.TcpListener) => Promise<Deno.TcpConn>;
  sleep?: (ms: number) => Promise<void>;
  /**
   * Awaited after each connection is taken. accept() completes at once while
   * the backlog holds connections, so without a pause a connection storm
   * would be accepted in one go, never letting the event loop run (nor closed
   * sockets release their descriptors).
   */
  pace?: () => Promise<void>;
}

/** Accepts until the listener closes or `accepting()` turns false. */
export async function acceptLoop(options: AcceptLoopOptions): Promise<void> {
  const { listener, label, logger } = options;
  const accept = options.accept ?? ((l: Deno.TcpListener) => l.accept());
  const sleep = options.sleep ?? sleepMs;
  let backoff = 0;
  while (options.accepting()) {
    let conn: Deno.TcpConn;
    try {
      conn = await accept(listener);
      backoff = 0;
    } catch (error) {
      if (!options.accepting() || error instanceof Deno.errors.BadResource) return;
      if (error instanceof Deno.errors.NotConnected) continue; // reset before accept()
      // Out of descriptors (EMFILE) or memory: retrying at once would spin and
      // flood the log until something closes. Pause, doubling, as Go does.
      backoff = Math.min(ACCEPT_BACKOFF_MAX_MS, Math.max(ACCEPT_BACKOFF_MIN_MS, backoff * 2));
      logger.error(`${label}: accept() failure - ${String(error)}; retrying in ${backoff}ms`);
      await sleep(backoff);
      continue;
    }
    if (!options.accepting()) {
      closeQuietly(conn);
      return;
    }
    await options.take(conn);
    if (options.pace !== undefined) await options.pace();
  }
}

/** A timer's pause: the accept loop's default between failures (and the TCP server's pacing). */
export function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}
