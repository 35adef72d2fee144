// `kvroute demo`: the routing comparison a new user runs first. Starts simulated vLLM pods, the
// indexer, the router and a gateway (Envoy when found) as child processes, sends the shared-prefix
// workload through the gateway under every strategy in turn, and prints one table per strategy, a
// comparison, and issue 8's targets.

import { Command } from 'commander';
import { STRATEGY_ORDER } from '../demo/harness.ts';
import { addRoutingOptions, runFromFlags, type RoutingFlags } from './routing-run.ts';

export function command(): Command {
  return addRoutingOptions(new Command('demo'), { pods: 4 }).action(async (flags: RoutingFlags) => {
    await runFromFlags(flags, 'shared-prefix', STRATEGY_ORDER);
  });
}
