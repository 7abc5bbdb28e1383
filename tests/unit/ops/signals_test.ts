// src/signals.ts: which signals mean "shut down" per OS, and the guard that
// keeps one unregistrable signal (SIGTERM on Windows) from breaking startup.

import assert from "node:assert/strict";
import { onShutdownSignal, shutdownSignals, type SignalApi } from "../../../src/ops/signals.ts";

Deno.test("signals: Windows uses Ctrl-C and Ctrl-Break, Unix SIGINT and SIGTERM", () => {
  assert.deepEqual(shutdownSignals("windows"), ["SIGINT", "SIGBREAK"]);
  assert.deepEqual(shutdownSignals("linux"), ["SIGINT", "SIGTERM"]);
  assert.deepEqual(shutdownSignals("darwin"), ["SIGINT", "SIGTERM"]);
});

/** Records handlers; `refuse` lists signals whose registration throws, as Deno's does. */
function fakeApi(refuse: Deno.Signal[] = []): SignalApi & {
  handlers: Map<Deno.Signal, () => void>;
  attempts: Deno.Signal[];
} {
  const handlers = new Map<Deno.Signal, () => void>();
  const attempts: Deno.Signal[] = [];
  return {
    handlers,
    attempts,
    addSignalListener(signal, handler): void {
      attempts.push(signal);
      if (refuse.includes(signal)) {
        throw new TypeError(`Windows only supports ctrl-c (SIGINT) and ctrl-break (SIGBREAK)`);
      }
      handlers.set(signal, handler);
    },
  };
}

for (const os of ["windows", "linux", "darwin"] as const) {
  Deno.test(`signals: ${os} hooks both signals; the first one fires the callback once`, () => {
    const api = fakeApi();
    const fired: Deno.Signal[] = [];
    const hooked = onShutdownSignal((signal) => fired.push(signal), os, api);
    assert.deepEqual(hooked, shutdownSignals(os));
    assert.deepEqual([...api.handlers.keys()], shutdownSignals(os));
    const [first, second] = shutdownSignals(os);
    api.handlers.get(second)?.();
    api.handlers.get(first)?.();
    api.handlers.get(second)?.();
    assert.deepEqual(fired, [second]);
  });
}

Deno.test("signals: a signal that cannot be registered is skipped, the others still work", () => {
  for (
    const [os, refused, kept] of [
      ["windows", "SIGBREAK", "SIGINT"],
      ["windows", "SIGINT", "SIGBREAK"],
      ["linux", "SIGTERM", "SIGINT"],
    ] as const
  ) {
    const api = fakeApi([refused]);
    const fired: Deno.Signal[] = [];
    const hooked = onShutdownSignal((signal) => fired.push(signal), os, api);
    assert.deepEqual(api.attempts, shutdownSignals(os), "tried every signal");
    assert.deepEqual(hooked, [kept]);
    assert.deepEqual([...api.handlers.keys()], [kept]);
    api.handlers.get(kept)?.();
    api.handlers.get(kept)?.();
    assert.deepEqual(fired, [kept]);
  }
});

Deno.test("signals: SIGTERM on Windows (refused by old Deno) does not throw", () => {
  // What the daemon would do if the OS table were wrong: register SIGTERM on a
  // platform that refuses it. The guard keeps startup alive.
  const api = fakeApi(["SIGTERM", "SIGBREAK"]);
  assert.doesNotThrow(() => onShutdownSignal(() => {}, "windows", api));
  assert.doesNotThrow(() => onShutdownSignal(() => {}, "linux", api));
});

Deno.test("signals: the real Deno API accepts this platform's shutdown signals", () => {
  const hooked: [Deno.Signal, () => void][] = [];
  const api: SignalApi = {
    addSignalListener(signal, handler): void {
      Deno.addSignalListener(signal, handler);
      hooked.push([signal, handler]);
    },
  };
  try {
    assert.deepEqual(
      onShutdownSignal(() => {}, Deno.build.os, api),
      shutdownSignals(Deno.build.os),
    );
  } finally {
    for (const [signal, handler] of hooked) Deno.removeSignalListener(signal, handler);
  }
});
