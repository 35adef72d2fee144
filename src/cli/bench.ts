// `kvroute bench routing`: the demo's harness with every knob: the workload (built-in, a Mooncake
// trace or a JSONL file), the strategies, the pods, the arrival process, the cache size, the seed.

import { Command, InvalidArgumentError } from 'commander';
import { STRATEGY_ORDER, parseStrategies } from '../demo/harness.ts';
import { WORKLOAD_KINDS } from '../demo/workloads/spec.ts';
import { addRoutingOptions, positiveInt, runFromFlags, type RoutingFlags } from './routing-run.ts';

interface BenchRoutingFlags extends RoutingFlags {
  workload: string;
  strategies: string;
}

function speedupFlag(text: string | undefined): number | true {
  if (text === undefined) return true;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError(`--trace-timing expects a positive speed-up, got "${text}"`);
  return n;
}

function routing(): Command {
  return addRoutingOptions(new Command('routing'), { pods: 4 })
    .description('compare routing strategies through the real router and gateway on one workload')
    .option(
      '--workload <spec>',
      `${WORKLOAD_KINDS.join(' | ')}; built-ins take overrides, e.g. shared-prefix:groups=24,rounds=3`,
      'shared-prefix',
    )
    .option('--strategies <a,b,...>', `strategies to run, in order (${STRATEGY_ORDER.join(', ')})`, STRATEGY_ORDER.join(','))
    .option('--trace-timing [speedup]', "replay the workload's own timestamps (traces, JSONL t_ms), divided by speedup", speedupFlag)
    .option('--max-input-tokens <n>', 'Mooncake: cut longer prompts to this many tokens', positiveInt('--max-input-tokens'))
    .option('--max-output-tokens <n>', "cap every request's max_tokens", positiveInt('--max-output-tokens'))
    .action(async (flags: BenchRoutingFlags) => {
      let strategies;
      try {
        strategies = parseStrategies(flags.strategies);
      } catch (err) {
        throw new InvalidArgumentError((err as Error).message);
      }
      await runFromFlags(flags, flags.workload, strategies);
    });
}

export function command(): Command {
  return new Command('bench').description('benchmarks of the running system').addCommand(routing());
}
