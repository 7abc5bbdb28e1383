// The version line the reference prints for --version and at startup, with our
// own product and runtime versions appended so bug reports identify the build.

import denoJson from "../deno.json" with { type: "json" };

/** The NSQ release whose nsqlookupd behaviour (and /info version) we reproduce. */
export const NSQ_VERSION = "1.3.0";

/** This implementation's own version, from deno.json. */
export const PRODUCT_VERSION: string = denoJson.version;

/** `nsqlookupd v1.3.0 (nsqlookupd-deno v0.1.0, deno 2.9.6)`. */
export function versionLine(): string {
  return `nsqlookupd v${NSQ_VERSION} (nsqlookupd-deno v${PRODUCT_VERSION}, deno ${Deno.version.deno})`;
}
