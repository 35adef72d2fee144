// Ports for peers that cannot listen on port 0 and report what they bound (etcd, kube-apiserver), or
// that derive further ports from one by an offset (vLLM's data-parallel rank r uses port + r). Every
// other server in a test listens on port 0 and its real port is read back from it.

import net from 'node:net';

function listenable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Ports this process handed out already: nothing binds them until the caller does, so never hand them out twice. */
const handedOut = new Set<number>();

function kernelPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A port the kernel handed out a moment ago and took back (free now; nothing holds it for you). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (;;) {
    const port = await kernelPort(host);
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

/** Where freePortBlock looks: below Linux's ephemeral range (32768-60999), so no outgoing connection takes them. */
const BLOCK_RANGE = { min: 20_000, max: 32_000 };

/**
 * The first of `count` consecutive ports that are free on every address (checked on 0.0.0.0, which
 * fails if any loopback address holds the port), starting at a random base so test files running
 * side by side rarely pick the same block.
 */
export async function freePortBlock(count: number): Promise<number> {
  if (!Number.isInteger(count) || count < 1 || count > 1000)
    throw new Error(`freePortBlock: count must be an integer in 1..1000, got ${count}`);
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = BLOCK_RANGE.min + Math.floor(Math.random() * (BLOCK_RANGE.max - BLOCK_RANGE.min - count));
    let free = true;
    for (let port = base; port < base + count && free; port++) free = !handedOut.has(port) && (await listenable(port, '0.0.0.0'));
    if (free) {
      for (let port = base; port < base + count; port++) handedOut.add(port);
      return base;
    }
  }
  throw new Error(`freePortBlock: no ${count} consecutive free ports found in ${BLOCK_RANGE.min}-${BLOCK_RANGE.max}`);
}
