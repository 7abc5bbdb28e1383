// Which signals mean "shut down" on each OS. Deno on Windows delivers only
// Ctrl-C (SIGINT) and Ctrl-Break (SIGBREAK); registering SIGTERM there throws.

export function shutdownSignals(os: typeof Deno.build.os): Deno.Signal[] {
  return os === "windows" ? ["SIGINT", "SIGBREAK"] : ["SIGINT", "SIGTERM"];
}

export interface SignalApi {
  addSignalListener(signal: Deno.Signal, handler: () => void): void;
}

/** Calls `onSignal` once, for the first shutdown signal; returns the signals hooked. */
export function onShutdownSignal(
  onSignal: (signal: Deno.Signal) => void,
  os: typeof Deno.build.os = Deno.build.os,
  api: SignalApi = Deno,
): Deno.Signal[] {
  let fired = false;
  const hooked: Deno.Signal[] = [];
  for (const signal of shutdownSignals(os)) {
    try {
      api.addSignalListener(signal, () => {
        if (fired) return;
        fired = true;
        onSignal(signal);
      });
      hooked.push(signal);
    } catch {
      // Not deliverable on this platform; the others still work.
    }
  }
  return hooked;
}
