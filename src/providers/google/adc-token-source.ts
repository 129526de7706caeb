// SPDX-License-Identifier: Apache-2.0
/**
 * OAuth access tokens from Google Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS,
 * gcloud user credentials, or the GCE metadata server), through `google-auth-library`, which
 * `@google-cloud/storage` already brings along. Loaded only when the google provider is used.
 */

/** Returns a current OAuth access token (cached and refreshed by the source). */
export type TokenSource = (signal?: AbortSignal) => Promise<string>;

/** Scope for Compute Engine read/write. */
export const GOOGLE_COMPUTE_SCOPE = "https://www.googleapis.com/auth/compute";

/** A token source over Application Default Credentials with the compute scope. */
export function adcTokenSource(): TokenSource {
  let client: Promise<{ getAccessToken(): Promise<{ token?: string | null }> }> | undefined;
  return async () => {
    client ??= import("google-auth-library").then(({ GoogleAuth }) =>
      new GoogleAuth({ scopes: [GOOGLE_COMPUTE_SCOPE] }).getClient(),
    );
    let token: string | null | undefined;
    try {
      token = (await (await client).getAccessToken()).token;
    } catch (err) {
      // Try again from scratch next time (credentials may appear, the metadata server recover).
      client = undefined;
      throw err;
    }
    if (!token) throw new Error("Application Default Credentials returned no access token");
    return token;
  };
}
