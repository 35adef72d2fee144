// The `kvroute` command: a table of subcommands, each in its own module that is loaded only when used,
// so `kvroute hash` does not pay for loading the operator's Kubernetes client.

import { Command } from 'commander';

interface Subcommand {
  description: string;
  load: () => Promise<{ command: () => Command }>;
}

const SUBCOMMANDS: Record<string, Subcommand> = {
  hash: {
    description: 'print vLLM sha256_cbor block hashes for token ids read from stdin',
    load: () => import('./hash.ts'),
  },
  indexer: {
    description: 'run the KV-cache indexer: ingest vLLM KV events over ZMQ and score prompts by cached prefix',
    load: () => import('./indexer.ts'),
  },
  sim: {
    description: 'run simulated vLLM pods: OpenAI API, prefix cache, KV events, vLLM metrics, no GPU',
    load: () => import('./sim.ts'),
  },
  router: {
    description: 'run the Envoy ext_proc endpoint picker: route each request to the pod with its prefix cached',
    load: () => import('./router.ts'),
  },
  gateway: {
    description: "run a gateway in front of the router (Envoy as GIE's standalone gateway, or the built-in front)",
    load: () => import('./gateway.ts'),
  },
  demo: {
    description: 'compare routing strategies on simulated pods through the real router and gateway (the two-command demo)',
    load: () => import('./demo.ts'),
  },
  bench: {
    description: 'benchmarks of the running system: `bench routing` compares strategies on any workload or trace',
    load: () => import('./bench.ts'),
  },
  operator: {
    description: 'run the operator against the current kubeconfig (InferencePool, InferenceModel)',
    load: () => import('./operator.ts'),
  },
  render: {
    description: 'print every object the operator would apply for InferencePool/InferenceModel files, without a cluster',
    load: () => import('./render.ts'),
  },
};

export async function main(argv: string[]): Promise<void> {
  const name = argv[2];
  const sub = name !== undefined ? SUBCOMMANDS[name] : undefined;
  if (!sub) {
    const program = new Command('kvroute')
      .description('cache-aware LLM inference pools on Kubernetes')
      .helpOption('-h, --help', 'show help')
      .showHelpAfterError();
    for (const [cmd, { description }] of Object.entries(SUBCOMMANDS)) program.command(cmd).description(description);
    if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
      program.outputHelp();
      return;
    }
    program.error(`unknown command "${name}"; run "kvroute --help" for the list`);
  }
  const mod = await sub!.load();
  const command = mod.command().name(name!).description(sub!.description).showHelpAfterError();
  await command.parseAsync(argv.slice(3), { from: 'user' });
}
