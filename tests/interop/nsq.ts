// The real NSQ programs and our daemon as processes on loopback, for the
// interop suite: each starts on port 0 (or ports given), its addresses are
// read from its own log, and every handle stops its process when disposed.

import assert from "node:assert/strict";
import { spawnDaemon } from "../support/helpers.ts";
import { type RunningProgram, startProgram, untilPasses } from "../support/processes.ts";
import { nsqPrograms } from "./programs.ts";

/** Bound for one real program's startup or shutdown. */
const START_MS = 10_000;

/** What the tests ask of a lookupd, ours or the reference. */
export interface Lookupd extends AsyncDisposable {
  readonly name: string;
  readonly tcpPort: number;
  readonly httpPort: number;
  /** `127.0.0.1:PORT`, as consumers and nsqadmin are given it. */
  readonly httpAddress: string;
  readonly tcpAddress: string;
  readonly url: string;
  /** stderr so far. */
  readonly lines: readonly string[];
  /** GET `path`; status and parsed JSON body. */
  get(path: string): Promise<{ status: number; body: unknown }>;
  /** GET `path`, which must answer 200; its JSON body. */
  json<T = unknown>(path: string): Promise<T>;
  stop(signal?: Deno.Signal): Promise<number>;
}

/** What go-nsq, nsqd and nsqadmin send, so that a --legacy-http-api daemon answers v1 too. */
const ACCEPT_V1 = "application/vnd.nsq; version=1.0";

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { headers: { Accept: ACCEPT_V1 } });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    throw new Error(`${url}: ${res.status} with a body that is not JSON: ${JSON.stringify(text)}`);
  }
}

function lookupdApi(
  name: string,
  tcpPort: number,
  httpPort: number,
): Pick<
  Lookupd,
  "name" | "tcpPort" | "httpPort" | "httpAddress" | "tcpAddress" | "url" | "get" | "json"
> {
  const url = `http://127.0.0.1:${httpPort}`;
  return {
    name,
    tcpPort,
    httpPort,
    httpAddress: `127.0.0.1:${httpPort}`,
    tcpAddress: `127.0.0.1:${tcpPort}`,
    url,
    get: (path) => getJson(url + path),
    json: async <T>(path: string): Promise<T> => {
      const { status, body } = await getJson(url + path);
      assert.equal(status, 200, `${name} GET ${path}: ${JSON.stringify(body)}`);
      return body as T;
    },
  };
}

/**
 * Our daemon (`deno run main.ts`) on loopback: port 0, or `ports` to come back
 * on the same ones after a restart.
 */
export async function startOurs(
  options: { ports?: { tcp: number; http: number }; args?: readonly string[] } = {},
): Promise<Lookupd> {
  const tcp = options.ports?.tcp ?? 0;
  const http = options.ports?.http ?? 0;
  const daemon = await spawnDaemon([
    `--tcp-address=127.0.0.1:${tcp}`,
    `--http-address=127.0.0.1:${http}`,
    "--broadcast-address=127.0.0.1",
    ...(options.args ?? []),
  ]);
  return {
    ...lookupdApi("ours", daemon.tcpPort, daemon.httpPort),
    lines: daemon.lines,
    stop: async (signal = "SIGTERM") => (await daemon.stop(signal)).code,
    [Symbol.asyncDispose]: async () => {
      await daemon.stop("SIGKILL").catch(() => undefined);
    },
  };
}

/** Reads `TCP: listening on ADDR`-style lines; the port of each kind asked. */
async function listeningPorts(
  program: RunningProgram,
  kinds: readonly string[],
): Promise<number[]> {
  const ports: number[] = [];
  for (const kind of kinds) {
    const match = await program.waitForLine(
      new RegExp(` ${kind}: listening on 127\\.0\\.0\\.1:(\\d+)$`),
      { ms: START_MS },
    );
    ports.push(Number(match[1]));
  }
  return ports;
}

/** The reference nsqlookupd v1.3.0 from the archive, on loopback port 0. */
export async function startReference(): Promise<Lookupd> {
  const program = startProgram(nsqPrograms().nsqlookupd, {
    name: "nsqlookupd (reference)",
    args: [
      "-tcp-address=127.0.0.1:0",
      "-http-address=127.0.0.1:0",
      "-broadcast-address=127.0.0.1",
    ],
  });
  try {
    const [tcp, http] = await listeningPorts(program, ["TCP", "HTTP"]);
    return {
      ...lookupdApi("reference", tcp, http),
      lines: program.stderr,
      stop: async (signal = "SIGTERM") => (await program.stop(signal)).code,
      [Symbol.asyncDispose]: async () => {
        await program.stop("SIGKILL");
      },
    };
  } catch (error) {
    await program.stop("SIGKILL");
    throw error;
  }
}

/** nsqd's /stats?format=json, the parts the tests read. */
export interface NsqdStats {
  topics: {
    topic_name: string;
    message_count: number;
    channels: {
      channel_name: string;
      client_count: number;
      message_count: number;
      clients: { ready_count: number }[];
    }[];
  }[];
}

export interface Nsqd extends AsyncDisposable {
  readonly name: string;
  readonly program: RunningProgram;
  readonly tcpPort: number;
  readonly httpPort: number;
  /** `127.0.0.1:PORT` of its TCP port, as consumers reach it. */
  readonly tcpAddress: string;
  /** `127.0.0.1:PORT` of its HTTP port: the `node` nsqadmin tombstones. */
  readonly httpAddress: string;
  stats(): Promise<NsqdStats>;
  /** Channels of `topic` in nsqd itself (not what a lookupd says). */
  channels(topic: string): Promise<string[]>;
  /** POST to nsqd's own HTTP API (`/topic/create?topic=...`); must answer 200. */
  post(pathAndQuery: string): Promise<void>;
  /** Resolves once nsqd has decoded the IDENTIFY reply of the lookupd at `tcpAddress`. */
  peerInfo(lookupdTcpAddress: string): Promise<string>;
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

let nodeIds = 0;

/** A real nsqd on loopback port 0, registering with each lookupd given. */
export async function startNsqd(
  name: string,
  lookupds: readonly Pick<Lookupd, "tcpAddress">[],
): Promise<Nsqd> {
  const dataPath = await Deno.makeTempDir({ prefix: "interop-nsqd-" });
  const program = startProgram(nsqPrograms().nsqd, {
    name,
    args: [
      `-data-path=${dataPath}`,
      "-tcp-address=127.0.0.1:0",
      "-http-address=127.0.0.1:0",
      "-broadcast-address=127.0.0.1",
      `-node-id=${++nodeIds}`,
      // go-nsq gives its first connection all of max-in-flight (200) as RDY, and a second
      // connection made meanwhile gets RDY only after a 5 s retry. Capping each connection
      // lets a consumer of two nsqds be ready on both at once.
      "-max-rdy-count=50",
      ...lookupds.map((l) => `-lookupd-tcp-address=${l.tcpAddress}`),
    ],
  });
  const stop = async (signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> => {
    try {
      return await program.stop(signal);
    } finally {
      await Deno.remove(dataPath, { recursive: true }).catch(() => undefined);
    }
  };
  try {
    const [tcpPort, httpPort] = await listeningPorts(program, ["TCP", "HTTP"]);
    const httpUrl = `http://127.0.0.1:${httpPort}`;
    const stats = async (): Promise<NsqdStats> => {
      const res = await fetch(`${httpUrl}/stats?format=json`);
      assert.equal(res.status, 200);
      return await res.json() as NsqdStats;
    };
    return {
      name,
      program,
      tcpPort,
      httpPort,
      tcpAddress: `127.0.0.1:${tcpPort}`,
      httpAddress: `127.0.0.1:${httpPort}`,
      stats,
      channels: async (topic) =>
        ((await stats()).topics.find((t) => t.topic_name === topic)?.channels ?? [])
          .map((c) => c.channel_name).sort(),
      post: async (pathAndQuery) => {
        const res = await fetch(httpUrl + pathAndQuery, { method: "POST" });
        const body = await res.text();
        assert.equal(res.status, 200, `${name} POST ${pathAndQuery}: ${body}`);
      },
      peerInfo: async (lookupdTcpAddress) => {
        const match = await program.waitForLine(
          new RegExp(`LOOKUPD\\(${lookupdTcpAddress.replaceAll(".", "\\.")}\\): peer info (.*)$`),
          { ms: START_MS },
        );
        return match[1];
      },
      stop,
      [Symbol.asyncDispose]: async () => {
        await stop("SIGKILL");
      },
    };
  } catch (error) {
    await stop("SIGKILL");
    throw error;
  }
}

/** to_nsq: publishes each line to `topic` on `nsqd` and exits; fails unless it exits 0. */
export async function toNsq(
  nsqd: Pick<Nsqd, "tcpAddress">,
  topic: string,
  lines: readonly string[],
): Promise<void> {
  await using program = startProgram(nsqPrograms().to_nsq, {
    args: [`-topic=${topic}`, `-nsqd-tcp-address=${nsqd.tcpAddress}`],
    stdin: lines.map((line) => `${line}\n`).join(""),
  });
  const status = await program.exited(START_MS);
  assert.equal(status.code, 0, `to_nsq failed\n${program.tail()}`);
}

/** go-nsq's lookupd poll interval for consumers in tests (its default is 60 s). */
export const CONSUMER_POLL = "lookupd_poll_interval,1s";

/**
 * nsq_tail on `topic`/`channel`, finding nsqd through the lookupd HTTP
 * addresses given (any form go-nsq accepts); its stdout is the message bodies.
 */
export function startTail(
  options: { topic: string; channel: string; lookupd: readonly string[]; count?: number },
): RunningProgram {
  return startProgram(nsqPrograms().nsq_tail, {
    name: `nsq_tail ${options.topic}/${options.channel}`,
    args: [
      `-topic=${options.topic}`,
      `-channel=${options.channel}`,
      ...options.lookupd.map((address) => `-lookupd-http-address=${address}`),
      `-consumer-opt=${CONSUMER_POLL}`,
      ...(options.count === undefined ? [] : [`-n=${options.count}`]),
    ],
  });
}

/** nsq_to_file writing to `outputDir`, syncing every 100 ms. */
export function startToFile(
  options: { outputDir: string; lookupd: readonly string[]; topic?: string; topicPattern?: string },
): RunningProgram {
  return startProgram(nsqPrograms().nsq_to_file, {
    name: "nsq_to_file",
    args: [
      `-output-dir=${options.outputDir}`,
      "-sync-interval=100ms",
      "-topic-refresh=1s",
      ...options.lookupd.map((address) => `-lookupd-http-address=${address}`),
      `-consumer-opt=${CONSUMER_POLL}`,
      ...(options.topic === undefined ? [] : [`-topic=${options.topic}`]),
      ...(options.topicPattern === undefined ? [] : [`-topic-pattern=${options.topicPattern}`]),
    ],
  });
}

/** The lines every file in `dir` holds, by topic (nsq_to_file names files `<TOPIC>.<HOST>...`). */
export async function filesByTopic(dir: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile) continue;
    const topic = entry.name.slice(0, entry.name.indexOf("."));
    const text = await Deno.readTextFile(`${dir}/${entry.name}`);
    const lines = text.split("\n").filter((line) => line !== "");
    out.set(topic, [...(out.get(topic) ?? []), ...lines]);
  }
  return out;
}

export interface Nsqadmin extends AsyncDisposable {
  readonly program: RunningProgram;
  readonly url: string;
  /** A request to nsqadmin's own API; status and parsed JSON body. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
}

/** A real nsqadmin on loopback port 0 that knows the cluster only through `lookupds`. */
export async function startNsqadmin(lookupds: readonly Lookupd[]): Promise<Nsqadmin> {
  const program = startProgram(nsqPrograms().nsqadmin, {
    args: [
      "-http-address=127.0.0.1:0",
      ...lookupds.map((l) => `-lookupd-http-address=${l.httpAddress}`),
    ],
  });
  try {
    const [port] = await listeningPorts(program, ["HTTP"]);
    const url = `http://127.0.0.1:${port}`;
    return {
      program,
      url,
      api: async (method, path, body) => {
        const res = await fetch(url + path, {
          method,
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await res.text();
        return { status: res.status, body: text === "" ? null : JSON.parse(text) };
      },
      [Symbol.asyncDispose]: async () => {
        await program.stop("SIGKILL");
      },
    };
  } catch (error) {
    await program.stop("SIGKILL");
    throw error;
  }
}

/** Waits until nsqd has `channel` of `topic` with `clients` consumers connected and ready (RDY > 0). */
export async function channelClients(
  nsqd: Nsqd,
  topic: string,
  channel: string,
  clients: number,
  ms = 10_000,
): Promise<void> {
  await untilPasses(async () => {
    const stats = await nsqd.stats();
    const found = stats.topics.find((t) => t.topic_name === topic)?.channels
      .find((c) => c.channel_name === channel);
    assert.equal(found?.client_count, clients, `${nsqd.name}: clients of ${topic}/${channel}`);
    assert.ok(
      found.clients.every((c) => c.ready_count > 0),
      `${nsqd.name}: every client of ${topic}/${channel} ready`,
    );
  }, ms);
}
