// SPDX-License-Identifier: Apache-2.0
/**
 * Test support: a TCP proxy on 127.0.0.1 that forwards to a target and can, on command, stop
 * forwarding without closing sockets (a network partition as the endpoints see it), refuse new
 * connections, or cut every connection.
 */
import { connect, createServer, type Server, type Socket } from "node:net";

/** Proxy behaviour. */
export type ProxyMode = "forward" | "blackhole" | "refuse";

/** A running proxy. */
export interface TcpProxy {
  /** `127.0.0.1:port`. */
  address: string;
  port: number;
  /** Current behaviour; set to change it for existing and new connections. */
  mode: ProxyMode;
  /** Destroys every open connection (both sides see a reset). */
  cutAll(): void;
  stop(): Promise<void>;
}

/** Starts a proxy to `targetHost:targetPort`. */
export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const state = { mode: "forward" as ProxyMode };
  const server: Server = createServer((client) => {
    if (state.mode === "refuse") {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, targetHost);
    sockets.add(client);
    sockets.add(upstream);
    const pipe = (from: Socket, to: Socket) => {
      from.on("data", (chunk) => {
        // A blackholed link drops bytes silently: neither side sees an error or a close.
        if (state.mode === "forward") to.write(chunk);
      });
      from.on("close", () => {
        sockets.delete(from);
        if (state.mode === "forward") to.destroy();
      });
      from.on("error", () => to.destroy());
    };
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    address: `127.0.0.1:${port}`,
    port,
    get mode() {
      return state.mode;
    },
    set mode(m: ProxyMode) {
      state.mode = m;
    },
    cutAll() {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
