// `kvroute operator`: parses flags, loads the kubeconfig, and runs the operator until SIGTERM.

import { Command, Option } from 'commander';
import { KubeConfig } from '@kubernetes/client-node';
import { LOG_LEVELS, createLogger, parseLogLevel } from '../common/log.ts';
import { createRegistry } from '../common/metrics.ts';
import { onShutdown } from '../common/shutdown.ts';
import { Operator } from '../controllers/manager.ts';
import { DEFAULT_GATEWAY_PEERS, NetworkPolicyPeers } from '../controllers/pool/network-policy.ts';

function intFlag(flag: string, min: number) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min) throw new Error(`${flag} expects an integer >= ${min}, got "${text}"`);
    return n;
  };
}

/** A comma-separated list of namespace names (DNS labels); empty entries are ignored. */
export function namespaceListFlag(flag: string) {
  return (text: string): string[] => {
    const names = text
      .split(',')
      .map((n) => n.trim())
      .filter((n) => n !== '');
    const bad = names.find((n) => !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(n) || n.length > 63);
    if (bad !== undefined)
      throw new Error(`${flag} expects namespace names separated by commas (lower-case letters, digits and "-"), got "${bad}"`);
    return [...new Set(names)];
  };
}

/** A JSON array of NetworkPolicy peers (networking.k8s.io/v1 NetworkPolicyPeer), checked field by field. */
export function peersFlag(flag: string) {
  return (text: string) => {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new Error(`${flag} expects a JSON array of NetworkPolicy peers: ${(err as Error).message}`);
    }
    const parsed = NetworkPolicyPeers.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new Error(`${flag}: ${issue.path.length ? `[${issue.path.join('.')}] ` : ''}${issue.message}`);
    }
    return parsed.data;
  };
}

type Peers = ReturnType<ReturnType<typeof peersFlag>>;

interface OperatorFlags {
  kubeconfig?: string;
  namespace?: string;
  leaderElect: boolean;
  leaderElectionNamespace?: string;
  leaseDuration: number;
  renewDeadline: number;
  retryPeriod: number;
  metricsPort: number;
  healthPort: number;
  bindAddress: string;
  image: string;
  clusterDomain: string;
  gatewayNamespaces: string[];
  networkPolicies: boolean;
  gatewayPeers?: Peers;
  metricsPeers?: Peers;
  resync: number;
  logLevel: string;
}

export function command(): Command {
  return new Command()
    .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)')
    .option('--namespace <ns>', 'watch only this namespace (default: all namespaces)')
    .option('--leader-elect', 'elect one active operator through a coordination.k8s.io Lease', false)
    .option('--leader-election-namespace <ns>', 'namespace of the Lease (default: $POD_NAMESPACE, --namespace or "default")')
    .option('--lease-duration <ms>', 'how long a lease is valid without renewal', intFlag('--lease-duration', 1000), 10_000)
    .option('--renew-deadline <ms>', 'give up leadership when renewals fail for this long', intFlag('--renew-deadline', 500), 7_000)
    .option('--retry-period <ms>', 'interval between acquire and renew attempts', intFlag('--retry-period', 100), 1_500)
    .option('--metrics-port <port>', 'port for /metrics', intFlag('--metrics-port', 0), 8080)
    .option('--health-port <port>', 'port for /healthz and /readyz', intFlag('--health-port', 0), 8081)
    .option('--bind-address <host>', 'address the HTTP servers listen on', '0.0.0.0')
    .option('--image <image>', 'kvroute image for router Deployments whose pool names none', 'ghcr.io/kvroute/kvroute:0.1.0')
    .option('--cluster-domain <domain>', 'cluster DNS domain used in Envoy cluster names', 'cluster.local')
    .option(
      '--gateway-namespaces <ns,...>',
      "namespaces besides a pool's own where pools may place their EnvoyFilter (e.g. istio-system); empty: only the pool's namespace",
      namespaceListFlag('--gateway-namespaces'),
      [] as string[],
    )
    .option('--no-network-policies', "render no NetworkPolicies for the pools (default: each pool's router and model-server pods get one)")
    .option(
      '--gateway-peers <json>',
      'JSON array of NetworkPolicy peers allowed to reach ext_proc and the serving ports on the GIE path (default: pods labelled gateway.networking.k8s.io/gateway-name or gateway.envoyproxy.io/owning-gateway-name, any namespace)',
      peersFlag('--gateway-peers'),
    )
    .option(
      '--metrics-peers <json>',
      "JSON array of NetworkPolicy peers allowed to scrape the router's and indexer's metrics ports (default: anyone)",
      peersFlag('--metrics-peers'),
    )
    .option('--resync <ms>', 'period after which every object is reconciled and re-applied', intFlag('--resync', 1000), 600_000)
    .addOption(new Option('--log-level <level>', 'log threshold').choices(LOG_LEVELS).default('info'))
    .action(async (flags: OperatorFlags) => {
      const log = createLogger({ level: parseLogLevel(flags.logLevel), component: 'operator' });
      const kubeConfig = new KubeConfig();
      try {
        if (flags.kubeconfig) kubeConfig.loadFromFile(flags.kubeconfig);
        else kubeConfig.loadFromDefault();
      } catch (err) {
        throw new Error(`cannot load kubeconfig ${flags.kubeconfig ?? '(default locations)'}: ${(err as Error).message}`);
      }
      const registry = createRegistry();
      const operator = new Operator({
        kubeConfig,
        ...(flags.namespace ? { namespace: flags.namespace } : {}),
        leaderElect: flags.leaderElect,
        leaseNamespace: flags.leaderElectionNamespace ?? process.env.POD_NAMESPACE ?? flags.namespace ?? 'default',
        leaseDurationMs: flags.leaseDuration,
        renewDeadlineMs: flags.renewDeadline,
        retryPeriodMs: flags.retryPeriod,
        defaultImage: flags.image,
        clusterDomain: flags.clusterDomain,
        gatewayNamespaces: flags.gatewayNamespaces,
        networkPolicy: {
          enabled: flags.networkPolicies,
          gatewayPeers: flags.gatewayPeers ?? DEFAULT_GATEWAY_PEERS,
          ...(flags.metricsPeers ? { metricsPeers: flags.metricsPeers } : {}),
        },
        resyncMs: flags.resync,
        metricsPort: flags.metricsPort,
        healthPort: flags.healthPort,
        host: flags.bindAddress,
        log,
        registry,
        onLostLeadership: () => {
          log.error('exiting after losing leadership');
          process.exit(1);
        },
      });
      onShutdown(log, [() => operator.stop()]);
      await operator.start();
    });
}
