// SPDX-License-Identifier: Apache-2.0
/**
 * The one entry point to `@peculiar/x509`: it needs the `reflect-metadata` polyfill loaded before
 * it, and a WebCrypto provider. Import `x509` from here, never from the package.
 */
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as ReturnType<typeof x509.cryptoProvider.get>);

/** The configured `@peculiar/x509` namespace. */
export { x509 };
