import { afterEach, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { getText } from './http-get.ts';

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

async function serve(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
}

describe('getText', () => {
  it('reads the status and the whole body, reusing one connection across calls', async () => {
    const sockets = new Set<unknown>();
    const url = await serve((req, res) => {
      sockets.add(req.socket);
      res.statusCode = req.url === '/metrics' ? 200 : 404;
      res.end('vllm:num_requests_waiting 0\n'.repeat(1000));
    });
    for (let i = 0; i < 3; i++) {
      const r = await getText(url, 1000);
      expect(r.status).toBe(200);
      expect(r.text).toBe('vllm:num_requests_waiting 0\n'.repeat(1000));
    }
    expect(sockets.size).toBe(1);
  });

  it('passes an error status on with the body', async () => {
    const url = await serve((_req, res) => {
      res.statusCode = 503;
      res.end('down');
    });
    expect(await getText(url, 1000)).toEqual({ status: 503, text: 'down' });
  });

  it('fails with a TimeoutError when the server does not answer in time', async () => {
    const url = await serve(() => {});
    const started = Date.now();
    const err = (await getText(url, 100).catch((e: unknown) => e)) as Error;
    expect(err.name).toBe('TimeoutError');
    expect(err.message).toContain('no answer within 100 ms');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('fails with ECONNREFUSED when nothing listens', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const err = (await getText(`http://127.0.0.1:${port}/metrics`, 1000).catch((e: unknown) => e)) as NodeJS.ErrnoException;
    expect(err.code).toBe('ECONNREFUSED');
  });
});
