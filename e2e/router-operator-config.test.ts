// The contract between the operator and the router: every router.yaml the operator renders from a pool
// is a config the router loads, from the schema through the plugin registry to a built scheduler, and
// the command line it renders is one `kvroute router` accepts.

import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { parseEndpointPickerConfig } from '../src/api/endpoint-picker-config.ts';
import { silentLogger } from '../src/common/log.ts';
import { command, type RouterFlags } from '../src/cli/router.ts';
import { buildRouterConfigMap, buildRouterDeployment } from '../src/controllers/pool/router.ts';
import { testModel, testPool } from '../src/controllers/testing.ts';
import { buildScheduler } from '../src/router/scheduling/build.ts';

const model = { name: 'meta-llama/Llama-3.1-8B-Instruct' };

const pools: Array<[string, Record<string, unknown>]> = [
  ['the defaults', { model, modelServer: { image: 'vllm/vllm-openai:v0.33.0' } }],
  [
    'custom weights and load bound',
    {
      model,
      selector: { matchLabels: { app: 'vllm' } },
      router: { loadBound: 2.5, schedulingProfile: { scorerWeights: { prefixCache: 10, queueDepth: 1, kvCacheUtilization: 4 } } },
    },
  ],
  [
    'every scorer weighted 0',
    {
      model,
      selector: { matchLabels: { app: 'vllm' } },
      router: {
        schedulingProfile: { scorerWeights: { prefixCache: 0, noHitLru: 0, queueDepth: 0, kvCacheUtilization: 0, runningRequests: 0 } },
      },
    },
  ],
  [
    'session affinity on a custom header',
    { model, selector: { matchLabels: { app: 'vllm' } }, router: { sessionAffinity: { enabled: true, header: 'x-user' } } },
  ],
];

describe('router.yaml rendered by the operator', () => {
  it.each(pools)('builds a scheduler for a pool with %s', (_what, spec) => {
    const pool = testPool(spec);
    const models = [
      testModel('chat', { modelName: 'chat', poolRef: { name: 'llama' }, criticality: 'Critical' }),
      testModel('sql', {
        modelName: 'sql',
        poolRef: { name: 'llama' },
        criticality: 'Sheddable',
        targetModels: [
          { name: 'sql-lora-v1', weight: 90 },
          { name: 'sql-lora-v2', weight: 10 },
        ],
      }),
    ];
    const config = parseEndpointPickerConfig(buildRouterConfigMap(pool, models).data!['router.yaml']!, 'router.yaml');
    const scheduler = buildScheduler(config, { log: silentLogger, registry: new Registry() });
    scheduler.close();
    expect(config.models.map((m) => m.modelName)).toEqual(['chat', 'sql']);
  });
});

describe('the router command line rendered by the operator', () => {
  it('is accepted by `kvroute router` and names the pool, its group, the config file and the served model', () => {
    const pool = testPool({ model: { ...model, servedName: 'llama-8b' }, modelServer: { image: 'vllm/vllm-openai:v0.33.0' } });
    const args = buildRouterDeployment(pool, { defaultImage: 'kvroute:test' }).spec!.template.spec!.containers[0]!.args!;
    expect(args[0]).toBe('router');
    let flags: RouterFlags | undefined;
    const cmd = command()
      .exitOverride()
      .action((f: RouterFlags) => {
        flags = f;
      });
    cmd.parse(args.slice(1), { from: 'user' });
    expect(flags).toMatchObject({
      grpcPort: 9002,
      grpcHealthPort: 9003,
      metricsPort: 9090,
      secureServing: true,
      configFile: '/etc/kvroute/router.yaml',
      poolName: 'llama',
      poolNamespace: 'ml',
      poolGroup: 'inference.kvroute.io',
      model: 'llama-8b',
      servingLabel: { key: 'llm-d.ai/inferenceServing', value: 'true' },
    });
  });
});
