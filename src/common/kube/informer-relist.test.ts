// The informer when its watch expires (410 Gone, the resourceVersion compacted away), answered either
// as an ERROR event in the watch stream or as the watch request's own status: it re-lists, reports the
// re-list through onList and its log, and its cache and events follow the new list.

import { afterEach, describe, expect, it } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import { startHttpApiServer } from '../../../test/support/http-api-server.ts';
import { until } from '../../../test/support/until.ts';
import { createLogger } from '../log.ts';
import { Informer } from './informer.ts';
import { KubeClient } from './kube-client.ts';

const GONE = { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: 'too old resource version' };

/** One collection whose first watch expires the way `expiry` says; the second list has b instead of a, and later watches stay open. */
async function expiringApiServer(expiry: 'event' | 'status') {
  const requests: { watch: boolean; resourceVersion: string | null }[] = [];
  let lists = 0;
  const api = await startHttpApiServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const watch = url.searchParams.get('watch') === 'true';
    requests.push({ watch, resourceVersion: url.searchParams.get('resourceVersion') });
    if (!watch) {
      lists += 1;
      const [rv, name] = lists === 1 ? ['7', 'a'] : ['20', 'b'];
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          kind: 'ThingList',
          metadata: { resourceVersion: rv },
          items: [{ metadata: { name, namespace: 'ns', resourceVersion: rv } }],
        }),
      );
      return;
    }
    const firstWatch = requests.filter((r) => r.watch).length === 1;
    if (firstWatch && expiry === 'status') {
      res.writeHead(410, { 'content-type': 'application/json' });
      res.end(JSON.stringify(GONE));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    if (firstWatch) {
      res.end(JSON.stringify({ type: 'ERROR', object: GONE }) + '\n');
      return;
    }
    res.flushHeaders(); // later watches stay open until close()
  });
  return { requests, ...api };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe('Informer after its watch expires', () => {
  for (const expiry of ['event', 'status'] as const) {
    it(`re-lists when the watch is answered with 410 Gone (${expiry === 'event' ? 'an ERROR event' : 'the HTTP status'}), counts it and follows the new list`, async () => {
      const api = await expiringApiServer(expiry);
      const client = new KubeClient(api.kc);
      const lines: { msg: string }[] = [];
      const lists: boolean[] = [];
      const events: string[] = [];
      const informer = new Informer<KubernetesObject>(api.kc, client, {
        name: 'things',
        path: '/apis/example.com/v1/things',
        log: createLogger({ level: 'debug', write: (l) => lines.push(JSON.parse(l)) }),
        onList: (relist) => lists.push(relist),
      });
      informer.on((event, obj) => events.push(`${event} ${obj.metadata?.name}`));
      cleanups.push(async () => {
        await informer.stop();
        client.close();
        await api.close();
      });
      await informer.start();
      await until(() => informer.get('b', 'ns'), { message: 'the re-listed object in the cache' });
      expect(informer.get('a', 'ns')).toBeUndefined();
      expect(lists).toEqual([false, true]);
      expect(events).toEqual(['add a', 'delete a', 'add b']);
      expect(lines.filter((l) => l.msg.startsWith('re-listing'))).toHaveLength(1);
      // The watch after the re-list resumes from the new list's resourceVersion, not the expired one.
      await until(() => api.requests.filter((r) => r.watch).length === 2, { message: 'a second watch' });
      expect(api.requests.filter((r) => r.watch).map((r) => r.resourceVersion)).toEqual(['7', '20']);
      expect(informer.synced).toBe(true);
    });
  }
});
