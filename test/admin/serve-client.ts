// SPDX-License-Identifier: Apache-2.0
/** Test support: HTTPS requests to `nstance-admin serve`, trusting only the given certificate. */
import type { IncomingHttpHeaders } from "node:http";
import { request } from "node:https";

/** A response with its body as text and, when it is JSON, parsed. */
export interface HttpsResult {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests index into JSON bodies freely
  json: any;
}

/** Options of {@link httpsRequest}. */
export interface HttpsRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** The only certificate trusted (the server's self-signed one). */
  ca: string;
  /** Bearer token for the Authorization header. */
  token?: string;
}

/** Sends one request on a fresh connection (TLS 1.3 only) and reads the whole answer. */
export function httpsRequest(url: string, opts: HttpsRequestOptions): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: opts.method ?? "GET",
        ca: opts.ca,
        minVersion: "TLSv1.3",
        agent: false,
        headers: {
          ...(opts.token !== undefined ? { authorization: `Bearer ${opts.token}` } : {}),
          ...(opts.body !== undefined ? { "content-type": "application/json" } : {}),
          ...opts.headers,
        },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url} within 30 s`)));
    req.on("error", reject);
    req.end(opts.body);
  });
}
