// One HTTP exchange with an auth server, as nsqd's http_api client does it:
// GET with `Accept: application/vnd.nsq; version=1.0`, the whole exchange
// bounded by the request timeout, the answer read up to a size bound. The
// secret travels in the URL, so no error text here ever contains the URL.

import { type AuthQuery, authUrl, MAX_AUTH_ANSWER_BYTES } from "./auth.ts";
import type { QueryFn, QueryResult } from "./auth_service.ts";
import { formatDuration } from "../gocompat/duration.ts";

const ACCEPT_V1 = "application/vnd.nsq; version=1.0";

/** The QueryFn of the daemon; `client` lets tests add a CA (`Deno.createHttpClient`). */
export function httpAuthQuery(client?: Deno.HttpClient): QueryFn {
  return (address, query, timeoutMs) => queryAuthServer(address, query, timeoutMs, client);
}

async function queryAuthServer(
  address: string,
  query: AuthQuery,
  timeoutMs: number,
  client: Deno.HttpClient | undefined,
): Promise<QueryResult> {
  const url = authUrl(address, query);
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  try {
    const response = await fetch(url, {
      headers: { Accept: ACCEPT_V1 },
      signal: controller.signal,
      ...(client === undefined ? {} : { client }),
    });
    const body = await readBounded(response);
    if (body === undefined) {
      return { kind: "error", reason: `answer larger than ${MAX_AUTH_ANSWER_BYTES} bytes` };
    }
    return { kind: "answer", status: response.status, statusText: response.statusText, body };
  } catch (error) {
    if (timedOut) {
      return {
        kind: "error",
        reason: `no answer within ${formatDuration(BigInt(Math.round(timeoutMs * 1e6)))}`,
      };
    }
    return { kind: "error", reason: describe(error, url) };
  } finally {
    clearTimeout(timer);
  }
}

/** The body as text, or undefined (and the rest discarded) beyond the bound. */
async function readBounded(response: Response): Promise<string | undefined> {
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_AUTH_ANSWER_BYTES) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

/** An error's text without the URL (it carries the secret), on one line. */
function describe(error: unknown, url: string): string {
  let text = error instanceof Error ? error.message : String(error);
  for (let e = error instanceof Error ? error.cause : undefined; e instanceof Error; e = e.cause) {
    text += `: ${e.message}`;
  }
  text = text.replaceAll(url, "<auth url>");
  // Whatever form the URL took (encoded, cut), nothing after `secret=` is kept.
  text = text.replace(/secret=[^\s&)"']*/g, "secret=<hidden>");
  return text.replace(/\s+/g, " ").trim();
}
