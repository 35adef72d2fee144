import { afterEach, describe, expect, it } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import { startHttpApiServer } from '../../../test/support/http-api-server.ts';
import { until } from '../../../test/support/until.ts';
import { createLogger } from '../log.ts';
import { Informer } from './informer.ts';
import { KubeClient } from './kube-client.ts';

/** An API server stand-in for one collection: 404 (kind not served) until `serve` is set, then a list and an open watch. */
async function fakeApiServer() {
  const state = { serve: false, requests: [] as { at: number; watch: boolean }[] };
  const api = await startHttpApiServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const watch = url.searchParams.get('watch') === 'true';
    state.requests.push({ at: Date.now(), watch });
    if (!state.serve) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          kind: 'Status',
          apiVersion: 'v1',
          status: 'Failure',
          reason: 'NotFound',
          code: 404,
          message: 'the server could not find the requested resource',
        }),
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    if (!watch) {
      res.end(
        JSON.stringify({
          kind: 'ThingList',
          apiVersion: 'example.com/v1',
          metadata: { resourceVersion: '7' },
          items: [{ metadata: { name: 'a', namespace: 'ns', resourceVersion: '7' } }],
        }),
      );
      return;
    }
    res.flushHeaders(); // the watch stays open until close()
  });
  return { state, ...api };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe('Informer', () => {
  it('backs off while its kind is not served, warning once for the streak, and says when it recovers', async () => {
    const api = await fakeApiServer();
    const lines: { level: string; msg: string }[] = [];
    const log = createLogger({ level: 'debug', write: (l) => lines.push(JSON.parse(l) as { level: string; msg: string }) });
    const client = new KubeClient(api.kc);
    const informer = new Informer<KubernetesObject>(api.kc, client, {
      name: 'things',
      path: '/apis/example.com/v1/things',
      log,
      backoff: { initialMs: 50, maxMs: 10_000 },
    });
    cleanups.push(async () => {
      await informer.stop();
      client.close();
      await api.close();
    });
    const started = informer.start();

    // Lists at 0, 50, 150, 350 ms: each wait twice the last (the old informer reset its delay before each list).
    await until(() => api.state.requests.length >= 4, { message: 'four list attempts', timeoutMs: 10_000 });
    // Timers never fire early: each gap is at least the delay scheduled for it.
    const at = api.state.requests.map((r) => r.at);
    const gaps = at.slice(1, 4).map((t, i) => t - at[i]!);
    expect(gaps.map((g, i) => g >= [50, 100, 200][i]! - 5)).toEqual([true, true, true]);
    const delays = lines.filter((l) => l.msg.startsWith('list/watch failed')).map((l) => (l as unknown as { inMs: number }).inMs);
    expect(delays.slice(0, 3)).toEqual([50, 100, 200]);
    expect(lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual(['list/watch failed; retrying with backoff']);
    expect(informer.synced).toBe(false);

    api.state.serve = true;
    await started;
    expect(informer.synced).toBe(true);
    expect(informer.get('a', 'ns')?.metadata?.name).toBe('a');
    await until(() => lines.some((l) => l.msg === 'list/watch recovered'), { message: 'recovery logged' });
  });
});
