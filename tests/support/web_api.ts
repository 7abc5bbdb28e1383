// Tests call the HTTP API where production does, `api.answer()`, and read the
// answer as a web Response only for the convenience of assertions.

import { formatAddress } from "../../src/gocompat/address.ts";
import type { HttpAnswer } from "../../src/gocompat/http1.ts";
import { type HttpApi, MAX_BODY_BYTES } from "../../src/http/api.ts";

export type WebHandler = (
  request: Request,
  info?: { remoteAddr: Deno.NetAddr },
) => Promise<Response>;

/** `request` as our HTTP server hands it to `answer()`, answered as a Response. */
export function webHandler(api: HttpApi): WebHandler {
  return async (request, info) => {
    const body = request.body === null ? 0 : (await request.arrayBuffer()).byteLength;
    const answer = await api.answer({
      method: request.method,
      target: request.url,
      accept: request.headers.get("accept") ?? undefined,
      remote: info === undefined
        ? undefined
        : formatAddress(info.remoteAddr.hostname, info.remoteAddr.port),
      bodyTooLarge: body > MAX_BODY_BYTES,
    });
    return toResponse(answer);
  };
}

/** An answer as a web Response, with the type Go would have sniffed when it set none. */
export function toResponse(answer: HttpAnswer): Response {
  const headers: [string, string][] = answer.headers.map(([name, value]) => [name, value]);
  if (answer.defaultContentType !== undefined) {
    headers.push(["Content-Type", answer.defaultContentType]);
  }
  const { body } = answer;
  if (body === null || typeof body === "string" || body instanceof Uint8Array) {
    return new Response(body, { status: answer.status, headers });
  }
  const chunks: BlobPart[] = [];
  for (let r = body.slices.next(); !r.done; r = body.slices.next()) chunks.push(r.value);
  return new Response(new Blob(chunks), { status: answer.status, headers });
}
