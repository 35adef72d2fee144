// `kvroute render -f FILE [-f FILE...]`: prints, as multi-document YAML, every object the operator would
// apply for the InferencePool and InferenceModel documents given, with no cluster, for review, diffs and
// GitOps. Files, directories (their .yaml/.yml/.json files) and "-" (stdin) are read; notes about what
// the operator would report instead of applying go to stderr.

import fs from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import YAML from 'yaml';
import { peersFlag } from './operator.ts';
import { renderDocuments, type RenderDocument, type RenderResult } from '../controllers/render.ts';
import { DEFAULT_GATEWAY_PEERS } from '../controllers/pool/network-policy.ts';
import { OPTIONAL_APIS, staticServedApis, type ApiKind } from '../controllers/runtime/optional-apis.ts';

export interface RenderFlags {
  file: string[];
  namespace: string;
  image: string;
  clusterDomain: string;
  gatewayNamespaces: string[];
  /** undefined: every optional API the operator knows is served. */
  apiVersions?: ApiKind[];
  /** commander's --no-network-policies; undefined (programmatic callers): on. */
  networkPolicies?: boolean;
  gatewayPeers?: ReturnType<ReturnType<typeof peersFlag>>;
  metricsPeers?: ReturnType<ReturnType<typeof peersFlag>>;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];
const list = (value: string, previous: string[] = []) => [
  ...previous,
  ...value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
];

/** --api-versions items as Helm writes them: group/version/Kind, for the optional APIs the operator knows. */
function apiVersionsFlag(value: string, previous: ApiKind[] = []): ApiKind[] {
  const out = [...previous];
  for (const item of list(value)) {
    const api = OPTIONAL_APIS.find((a) => `${a.group}/${a.version}/${a.kind}` === item);
    if (!api) {
      throw new InvalidArgumentError(
        `"${item}" is not an optional API the operator uses; expected one of ${OPTIONAL_APIS.map((a) => `${a.group}/${a.version}/${a.kind}`).join(', ')}`,
      );
    }
    out.push(api);
  }
  return out;
}

/** The documents of each input: a file, every .yaml/.yml/.json file of a directory (sorted), or "-" for stdin. */
export function readDocuments(inputs: readonly string[], stdin: () => string = () => fs.readFileSync(0, 'utf8')): RenderDocument[] {
  const files: { name: string; text: string }[] = [];
  for (const input of inputs) {
    if (input === '-') {
      files.push({ name: '(stdin)', text: stdin() });
      continue;
    }
    let stat: fs.Stats;
    try {
      stat = fs.statSync(input);
    } catch (err) {
      throw new Error(
        `-f ${input}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`,
      );
    }
    const names = stat.isDirectory()
      ? fs
          .readdirSync(input)
          .filter((f) => /\.(ya?ml|json)$/.test(f))
          .sort()
          .map((f) => path.join(input, f))
      : [input];
    for (const name of names) files.push({ name, text: fs.readFileSync(name, 'utf8') });
  }
  const out: RenderDocument[] = [];
  for (const { name, text } of files) {
    YAML.parseAllDocuments(text).forEach((doc, index) => {
      if (doc.errors.length > 0) throw new Error(`${name}: document ${index + 1}: not valid YAML: ${doc.errors[0]!.message}`);
      out.push({ file: name, index, doc: doc.toJS() });
    });
  }
  return out;
}

/** The rendered objects as multi-document YAML, each headed by where it came from. */
export function formatRendered(result: RenderResult): string {
  return result.objects.map((o) => `---\n# Source: ${o.source}\n${YAML.stringify(o.object, { lineWidth: 0 })}`).join('');
}

export function render(flags: RenderFlags, stdin?: () => string): RenderResult {
  return renderDocuments(readDocuments(flags.file, stdin), {
    namespace: flags.namespace,
    defaultImage: flags.image,
    clusterDomain: flags.clusterDomain,
    gatewayNamespaces: new Set(flags.gatewayNamespaces),
    apis: staticServedApis(flags.apiVersions ?? OPTIONAL_APIS),
    networkPolicy: {
      enabled: flags.networkPolicies ?? true,
      gatewayPeers: flags.gatewayPeers ?? DEFAULT_GATEWAY_PEERS,
      ...(flags.metricsPeers ? { metricsPeers: flags.metricsPeers } : {}),
    },
  });
}

export function command(): Command {
  return new Command()
    .requiredOption('-f, --file <path>', 'InferencePool / InferenceModel YAML (a file, a directory, or - for stdin); repeatable', collect)
    .option('-n, --namespace <ns>', 'namespace of documents that name none', 'default')
    .option(
      '--image <image>',
      "kvroute image for router Deployments whose pool names none (the operator's --image)",
      'ghcr.io/kvroute/kvroute:0.1.0',
    )
    .option(
      '--cluster-domain <domain>',
      "cluster DNS domain used in Envoy cluster names (the operator's --cluster-domain)",
      'cluster.local',
    )
    .option(
      '--gateway-namespaces <list>',
      "namespaces besides a pool's own where gateway objects may go (the operator's --gateway-namespaces)",
      list,
      [],
    )
    .option(
      '--api-versions <list>',
      `optional APIs the target cluster serves, as group/version/Kind (default: all of ${OPTIONAL_APIS.map((a) => a.kind).join(', ')})`,
      apiVersionsFlag,
    )
    .option('--no-network-policies', "render no NetworkPolicies (the operator's --no-network-policies)")
    .option(
      '--gateway-peers <json>',
      "JSON array of NetworkPolicy peers that may reach ext_proc (the operator's --gateway-peers)",
      peersFlag('--gateway-peers'),
    )
    .option(
      '--metrics-peers <json>',
      "JSON array of NetworkPolicy peers that may scrape metrics (the operator's --metrics-peers)",
      peersFlag('--metrics-peers'),
    )
    .action((flags: RenderFlags) => {
      // An invalid input throws a RenderError naming every problem; the kvroute entry point prints it and exits 1.
      const result = render(flags);
      process.stdout.write(formatRendered(result));
      for (const note of result.notes) process.stderr.write(`kvroute render: note: ${note}\n`);
    });
}
