// One Prometheus registry per server process, with Node's default process metrics and a prefix.

import { Registry, collectDefaultMetrics } from 'prom-client';

export function createRegistry(prefix = 'kvroute_'): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix });
  return registry;
}
