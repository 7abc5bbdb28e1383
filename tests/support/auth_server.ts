// A tiny NSQ auth server for tests: answers `GET /auth?secret=…` the way a
// real one does (nsqd's protocol: ttl, identity, authorizations), from a
// table of secrets, and records every query. It can be told to misbehave:
// answer garbage, fail with 500, stall, or go away.

export interface Authorization {
  topic: string;
  channels: string[];
  permissions: ("subscribe" | "publish" | string)[];
}

export interface AuthAnswer {
  ttl: number;
  identity?: string;
  identity_url?: string;
  authorizations: Authorization[];
}

/** How the server answers every query until changed. */
export type AuthMode =
  /** From the table: 200 with the secret's answer, 403 for an unknown secret. */
  | "normal"
  /** 200 with a body that is no JSON. */
  | "garbage"
  /** 500. */
  | "error"
  /** Never answers (until the test ends). */
  | "stall";

export interface AuthQueryRecord {
  readonly path: string;
  readonly secret: string | null;
  readonly remoteIp: string | null;
  readonly tls: string | null;
  readonly commonName: string | null;
  /** The query string as sent, to check nsqd's parameter order and encoding. */
  readonly search: string;
  readonly accept: string | null;
}

export interface TestAuthServer extends AsyncDisposable {
  /** `127.0.0.1:PORT`, as --auth-http-address takes it. */
  readonly address: string;
  readonly port: number;
  /** Every query so far. */
  readonly queries: AuthQueryRecord[];
  mode: AuthMode;
  /** Secrets and their answers; change it at will. */
  readonly answers: Map<string, AuthAnswer | string>;
  close(): Promise<void>;
}

/** Starts the server on 127.0.0.1:0 (or `port`); dispose it (`await using`) to stop it. */
export function startAuthServer(
  answers: Record<string, AuthAnswer | string> = {},
  options: { port?: number; hostname?: string } = {},
): TestAuthServer {
  const table = new Map(Object.entries(answers));
  const queries: AuthQueryRecord[] = [];
  const stalled = new Set<() => void>();
  const state = { mode: "normal" as AuthMode };
  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    onListen: () => {},
  }, async (request) => {
    const url = new URL(request.url);
    const p = url.searchParams;
    queries.push({
      path: url.pathname,
      secret: p.get("secret"),
      remoteIp: p.get("remote_ip"),
      tls: p.get("tls"),
      commonName: p.get("common_name"),
      search: url.search,
      accept: request.headers.get("accept"),
    });
    switch (state.mode) {
      case "garbage":
        return new Response("<html>not json", { status: 200 });
      case "error":
        return new Response("auth backend down", { status: 500 });
      case "stall":
        await new Promise<void>((resolve) => stalled.add(resolve));
        return new Response("late", { status: 500 });
    }
    const answer = table.get(p.get("secret") ?? "");
    if (answer === undefined) return new Response("NOT_AUTHORIZED", { status: 403 });
    const body = typeof answer === "string" ? answer : JSON.stringify(answer);
    return new Response(body, { headers: { "Content-Type": "application/json" } });
  });
  const port = server.addr.port;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      for (const release of stalled) release();
      stalled.clear();
      await server.shutdown();
    })();
    return closing;
  };
  return {
    address: `127.0.0.1:${port}`,
    port,
    queries,
    answers: table,
    get mode(): AuthMode {
      return state.mode;
    },
    set mode(mode: AuthMode) {
      state.mode = mode;
      if (mode !== "stall") {
        for (const release of stalled) release();
        stalled.clear();
      }
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** An answer letting the secret subscribe to topics matching `topic` on channels matching `channels`. */
export function subscriber(topic: string, channels: string[] = [".*"], ttl = 3600): AuthAnswer {
  return {
    ttl,
    identity: "consumer",
    authorizations: [{ topic, channels, permissions: ["subscribe"] }],
  };
}
