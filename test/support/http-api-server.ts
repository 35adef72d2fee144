// A stand-in Kubernetes API server over plain HTTP for informer tests: the test answers each request
// itself (lists, watches left open, errors); this starts the server and gives a KubeConfig for it.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export interface HttpApiServer {
  kc: KubeConfig;
  /** Closes every connection, open watches included, then the server. */
  close(): Promise<void>;
}

export async function startHttpApiServer(handler: http.RequestListener): Promise<HttpApiServer> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    // client-node refuses plain HTTP unless TLS verification is off.
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return {
    kc,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
