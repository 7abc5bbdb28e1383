// src/ops/signals.ts: which signals shut the daemon down and which it ignores
// per OS, the hard deadline on shutdown, the one log line per ignored signal,
// and the guard that keeps an unregistrable signal from breaking startup.

import assert from "node:assert/strict";
import {
  guardInspectorPort,
  ignoredSignals,
  type InspectorGuard,
  installSignalHandlers,
  onShutdownSignal,
  SHUTDOWN_DEADLINE_MS,
  shutdownSignals,
  type SignalApi,
  type SignalHandling,
  sigusr1OpensInspector,
} from "../../../src/ops/signals.ts";
import { captureLogger } from "../../support/helpers.ts";

Deno.test("signals: Windows shuts down on Ctrl-C and Ctrl-Break, Unix on SIGINT and SIGTERM", () => {
  assert.deepEqual(shutdownSignals("windows"), ["SIGINT", "SIGBREAK"]);
  assert.deepEqual(shutdownSignals("linux"), ["SIGINT", "SIGTERM"]);
  assert.deepEqual(shutdownSignals("darwin"), ["SIGINT", "SIGTERM"]);
});

Deno.test("signals: on Unix every signal that would kill the daemon unasked is ignored, SIGUSR1 included", () => {
  const expected = [
    "SIGHUP",
    "SIGUSR1",
    "SIGUSR2",
    "SIGALRM",
    "SIGVTALRM",
    "SIGPROF",
    "SIGXCPU",
    "SIGIO",
  ];
  assert.deepEqual(ignoredSignals("linux"), expected);
  assert.deepEqual(ignoredSignals("darwin"), expected);
  assert.deepEqual(ignoredSignals("windows"), []);
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

interface Installed {
  api: ReturnType<typeof fakeApi>;
  logs: string[];
  fired: Deno.Signal[];
  exits: number[];
  timers: { fn: () => void; ms: number }[];
  handling: SignalHandling;
  send(signal: Deno.Signal): void;
}

/** A guard that holds the port, or not, without binding anything. */
function fakeGuard(held: boolean): InspectorGuard & { guards: number } {
  const guard = { guards: 0, held: () => held, close: () => {} };
  return guard;
}

/** installSignalHandlers with fakes for everything that touches the process. */
function install(os: typeof Deno.build.os, options: {
  refuse?: Deno.Signal[];
  onShutdown?: (signal: Deno.Signal) => unknown;
  denoVersion?: string;
  guardHeld?: boolean;
} = {}): Installed {
  const api = fakeApi(options.refuse);
  const { logger, logs } = captureLogger();
  const fired: Deno.Signal[] = [];
  const exits: number[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const handling = installSignalHandlers({
    os,
    api,
    logger,
    denoVersion: options.denoVersion ?? "2.9.1",
    onShutdown: options.onShutdown ?? ((signal) => void fired.push(signal)),
    exit: (code) => void exits.push(code),
    setTimer: (fn, ms) => void timers.push({ fn, ms }),
    guardInspector: () => fakeGuard(options.guardHeld ?? true),
  });
  const send = (signal: Deno.Signal): void => api.handlers.get(signal)?.();
  return { api, logs, fired, exits, timers, handling, send };
}

for (const os of ["windows", "linux", "darwin"] as const) {
  Deno.test(`signals: on ${os} the first shutdown signal starts the shutdown, once`, () => {
    const h = install(os);
    assert.deepEqual(h.handling.shutdown, shutdownSignals(os));
    assert.deepEqual(h.handling.ignored, ignoredSignals(os));
    assert.deepEqual([...h.api.handlers.keys()], [...shutdownSignals(os), ...ignoredSignals(os)]);
    const [first, second] = shutdownSignals(os);
    h.send(second);
    h.send(first);
    h.send(second);
    assert.deepEqual(h.fired, [second]);
    assert.equal(h.timers.length, 1, "one deadline");
  });
}

Deno.test("signals: a shutdown still running at the deadline exits 0 anyway, with a warning", () => {
  const h = install("linux", { onShutdown: () => new Promise(() => {}) });
  h.send("SIGTERM");
  assert.deepEqual(h.exits, []);
  assert.equal(h.timers[0].ms, SHUTDOWN_DEADLINE_MS);
  assert.ok(SHUTDOWN_DEADLINE_MS < 5_000, "within the README's 5 s");
  h.timers[0].fn();
  assert.deepEqual(h.exits, [0]);
  assert.ok(
    h.logs.includes(
      `WARNING: SIGTERM: shutdown not finished after ${SHUTDOWN_DEADLINE_MS}ms - exiting now`,
    ),
    h.logs.join("\n"),
  );
});

Deno.test("signals: a shutdown that throws or rejects is logged, and the deadline still stands", async () => {
  const thrown = install("linux", {
    onShutdown: () => {
      throw new Error("boom");
    },
  });
  thrown.send("SIGINT");
  assert.ok(
    thrown.logs.includes("ERROR: SIGINT: shutdown failed - Error: boom"),
    thrown.logs.join(),
  );
  assert.equal(thrown.timers.length, 1);
  const rejected = install("linux", { onShutdown: () => Promise.reject(new Error("late")) });
  rejected.send("SIGTERM");
  await Promise.resolve();
  await Promise.resolve();
  assert.ok(rejected.logs.includes("ERROR: SIGTERM: shutdown failed - Error: late"));
  assert.equal(rejected.timers.length, 1);
});

Deno.test("signals: an ignored signal is logged once, then never again, and shuts nothing down", () => {
  const h = install("linux");
  for (let i = 0; i < 3; i++) {
    for (const signal of ignoredSignals("linux")) h.send(signal);
  }
  assert.deepEqual(h.fired, []);
  assert.deepEqual(h.timers, []);
  assert.deepEqual(
    h.logs,
    ignoredSignals("linux").map((signal) =>
      `WARNING: ${signal} received: ignored; further ${signal}s are not logged`
    ),
  );
});

Deno.test("signals: on a Deno that opens a debugger on SIGUSR1 the inspector's port is held, and the log line says so", () => {
  const guarded = install("linux", { denoVersion: "2.9.6", guardHeld: true });
  assert.ok(guarded.handling.inspectorGuard !== undefined);
  guarded.send("SIGUSR1");
  guarded.send("SIGUSR2");
  assert.deepEqual(guarded.logs, [
    "WARNING: SIGUSR1 received: ignored (the runtime's debugger could not open: this process " +
    "holds 127.0.0.1:9229); further SIGUSR1s are not logged",
    "WARNING: SIGUSR2 received: ignored; further SIGUSR2s are not logged",
  ]);
  const elsewhere = install("linux", { denoVersion: "2.9.6", guardHeld: false });
  elsewhere.send("SIGUSR1");
  assert.match(elsewhere.logs[0], /127\.0\.0\.1:9229 is held by another process/);
  // Runtimes without the feature need no guard.
  assert.equal(install("linux", { denoVersion: "2.9.1" }).handling.inspectorGuard, undefined);
  assert.equal(install("windows", { denoVersion: "2.9.6" }).handling.inspectorGuard, undefined);
});

Deno.test("signals: the inspector guard holds its port; while another process holds it, it retries", () => {
  let inUse = true;
  let binds = 0;
  let closed = 0;
  const listen = (): { close(): void } => {
    binds++;
    if (inUse) throw new Deno.errors.AddrInUse("in use");
    return { close: () => void closed++ };
  };
  const guard = guardInspectorPort(listen, 60_000);
  assert.equal(guard.held(), false);
  assert.equal(binds, 1);
  inUse = false;
  guard.close();
  assert.equal(closed, 0);
  const held = guardInspectorPort(listen, 60_000);
  assert.equal(held.held(), true);
  held.close();
  assert.equal(closed, 1);
  assert.equal(held.held(), false);
});

Deno.test("signals: the inspector guard binds a real port and lets it go (port 0 here, 9229 in the daemon)", async () => {
  let port = 0;
  const guard = guardInspectorPort(() => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    port = listener.addr.port;
    return listener;
  });
  assert.ok(guard.held());
  // Bound and never accepting: a client connects (the kernel's backlog) and hears nothing.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.close();
  guard.close();
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port }),
    Deno.errors.ConnectionRefused,
  );
});

Deno.test("signals: the SIGUSR1 debugger came with Deno 2.9.2", () => {
  for (const version of ["2.9.1", "2.9.0", "2.8.12", "1.46.3"]) {
    assert.equal(sigusr1OpensInspector(version), false, version);
  }
  for (const version of ["2.9.2", "2.9.6", "2.10.0", "3.0.0", "2.9.2-rc.1", "garbage"]) {
    assert.equal(sigusr1OpensInspector(version), true, version);
  }
});

Deno.test("signals: a signal that cannot be registered is skipped, the others still work", () => {
  for (
    const [os, refused, kept] of [
      ["windows", "SIGBREAK", "SIGINT"],
      ["windows", "SIGINT", "SIGBREAK"],
      ["linux", "SIGTERM", "SIGINT"],
    ] as const
  ) {
    const h = install(os, { refuse: [refused, "SIGIO"] });
    assert.deepEqual(h.api.attempts, [...shutdownSignals(os), ...ignoredSignals(os)]);
    assert.deepEqual(h.handling.shutdown, [kept]);
    assert.ok(!h.handling.ignored.includes("SIGIO"));
    h.send(kept);
    h.send(kept);
    assert.deepEqual(h.fired, [kept]);
  }
});

Deno.test("signals: onShutdownSignal (main.ts's form) hooks the same signals", () => {
  const api = fakeApi();
  const more = { guardInspector: () => fakeGuard(true) };
  assert.deepEqual(onShutdownSignal(() => {}, "linux", api, more), shutdownSignals("linux"));
  assert.deepEqual([...api.handlers.keys()], [
    ...shutdownSignals("linux"),
    ...ignoredSignals("linux"),
  ]);
  const windows = fakeApi(["SIGTERM"]);
  assert.doesNotThrow(() => onShutdownSignal(() => {}, "windows", windows));
});

Deno.test("signals: the real Deno API accepts every signal this platform hooks", () => {
  const hooked: [Deno.Signal, () => void][] = [];
  const api: SignalApi = {
    addSignalListener(signal, handler): void {
      Deno.addSignalListener(signal, handler);
      hooked.push([signal, handler]);
    },
  };
  try {
    const handling = installSignalHandlers({
      onShutdown: () => {},
      api,
      exit: () => {},
      setTimer: () => {},
      guardInspector: () => fakeGuard(true),
    });
    assert.deepEqual(handling.shutdown, shutdownSignals(Deno.build.os));
    assert.deepEqual(handling.ignored, ignoredSignals(Deno.build.os));
  } finally {
    for (const [signal, handler] of hooked) Deno.removeSignalListener(signal, handler);
  }
});
