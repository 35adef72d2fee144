// An envtest-like harness: starts etcd, kube-apiserver (self-signed serving cert, token auth for an
// admin in system:masters, RBAC, service-account keys) and optionally kube-controller-manager with
// only the garbage collector, from binaries hack/kube/install.sh cached; writes a kubeconfig; stops all.
// Also finds kubectl (built by the same script at the apiserver's version).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import YAML from 'yaml';
import { stopChild } from '../../src/common/child-process.ts';
import { KubeClient } from '../../src/common/kube/kube-client.ts';
import { freePort } from '../../test/support/ports.ts';
import { repoRoot } from '../../test/support/repo-root.ts';
import { until } from '../../test/support/until.ts';

export const KUBE_BIN_DIR = process.env.KVROUTE_KUBE_BIN ?? path.join(repoRoot, '.cache/kube/bin');
const INSTALL = 'run `bash hack/kube/install.sh` (caches them under .cache/kube)';

export function kubeBinariesAvailable(): boolean {
  return ['etcd', 'kube-apiserver', 'kube-controller-manager'].every((b) => fs.existsSync(path.join(KUBE_BIN_DIR, b)));
}

/** Whether KVROUTE_REQUIRE_KUBE is set (as CI does): then a missing kube peer fails the tests instead of skipping them. */
export function kubeRequired(): boolean {
  return Boolean(process.env.KVROUTE_REQUIRE_KUBE);
}

/** Whether kube tests must run: binaries present, or KVROUTE_REQUIRE_KUBE set (then absence fails). */
export function kubeTestsEnabled(): boolean {
  if (kubeBinariesAvailable()) return true;
  if (kubeRequired())
    throw new Error(`KVROUTE_REQUIRE_KUBE is set but ${KUBE_BIN_DIR} lacks etcd/kube-apiserver/kube-controller-manager: ${INSTALL}`);
  return false;
}

/**
 * @deprecated Poll with `until` from test/support/until.ts. Kept only for the router e2e tests being
 * written now (router-endpoints-kube, router-sim-metrics); remove once they import `until`.
 */
export function waitFor<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  what: string,
  timeoutMs = 10_000,
  intervalMs = 50,
): Promise<T> {
  return until(probe, { message: what, timeoutMs, intervalMs }) as Promise<T>;
}

/**
 * @deprecated Does nothing: cluster ports now come from the kernel (test/support/ports.ts), so test
 * files cannot collide. Kept only for the router e2e tests being written now; remove the calls.
 */
export function usePortRange(_min: number, _max: number): void {}

/**
 * kubectl for the manifest tests: the one hack/kube/install.sh built at the apiserver's version, else
 * one on PATH; undefined when there is none. Under KVROUTE_REQUIRE_KUBE only the pinned one counts,
 * and its absence throws, so a CI run cannot skip the tests that need it.
 */
export function kubectlBinary(): string | undefined {
  const pinned = path.join(KUBE_BIN_DIR, 'kubectl');
  if (fs.existsSync(pinned)) return pinned;
  if (kubeRequired()) throw new Error(`KVROUTE_REQUIRE_KUBE is set but ${pinned} is missing: ${INSTALL}`);
  return spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0 ? 'kubectl' : undefined;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

function writeCerts(dir: string): void {
  openssl(
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=kvroute-test-ca'],
    dir,
  );
  fs.writeFileSync(path.join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  openssl(
    ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'apiserver.key', '-out', 'apiserver.csr', '-subj', '/CN=kube-apiserver'],
    dir,
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'apiserver.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'apiserver.crt',
      '-days',
      '2',
      '-extfile',
      'san.cnf',
    ],
    dir,
  );
  openssl(['genrsa', '-out', 'sa.key', '2048'], dir);
  openssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
}

export interface KubeEnv {
  dir: string;
  server: string;
  kubeconfigPath: string;
  kubeConfig: KubeConfig;
  client: KubeClient;
  /** Whether kube-controller-manager's garbage collector runs. */
  readonly gc: boolean;
  /**
   * Starts kube-controller-manager with only the garbage collector. Start it after installing CRDs:
   * it rediscovers resources only every 30 s, and owners of undiscovered kinds are not watched.
   */
  startGarbageCollector(): Promise<void>;
  /** etcd's client URL (its v3 JSON gateway answers there too, e.g. POST /v3/kv/compaction). */
  readonly etcdUrl: string;
  /** Kills kube-apiserver (SIGKILL by default), leaving etcd running; resolves once it has exited. */
  stopApiServer(signal?: NodeJS.Signals): Promise<void>;
  /**
   * Starts kube-apiserver again on the same port, certificates and etcd, with `extraArgs` appended to
   * the flags it started with (a later flag wins); resolves once /readyz answers.
   */
  startApiServer(extraArgs?: string[]): Promise<void>;
  logs(): string;
  stop(): Promise<void>;
}

function kubeconfigFor(server: string, caFile: string, token: string): string {
  return YAML.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server, 'certificate-authority-data': fs.readFileSync(caFile).toString('base64') } }],
    users: [{ name: 'admin', user: { token } }],
    contexts: [{ name: 'test', context: { cluster: 'test', user: 'admin' } }],
    'current-context': 'test',
  });
}

export async function startKube(options: { gc?: boolean; apiServerArgs?: string[] } = {}): Promise<KubeEnv> {
  // gc defaults to off so callers can install CRDs first and then call startGarbageCollector().
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-kube-'));
  const procs: ChildProcess[] = [];
  const logs: string[] = [];
  const launch = (bin: string, args: string[]) => {
    const p = spawn(path.join(KUBE_BIN_DIR, bin), args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    // Appended: a restarted kube-apiserver keeps its earlier log.
    const logFile = fs.createWriteStream(path.join(dir, `${bin}.log`), { flags: 'a' });
    p.stdout!.pipe(logFile);
    p.stderr!.pipe(logFile);
    p.once('exit', (code, signal) => logs.push(`${bin} exited code=${code} signal=${signal}`));
    procs.push(p);
    return p;
  };
  const stop = async () => {
    for (const p of [...procs].reverse()) await stopChild(p, 5000);
    if (!process.env.KVROUTE_KEEP_KUBE_DIR) fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    writeCerts(dir);
    const token = randomBytes(16).toString('hex');
    fs.writeFileSync(path.join(dir, 'tokens.csv'), `${token},admin,admin-uid,"system:masters"\n`);
    const etcdPort = await freePort();
    const peerPort = await freePort();
    const apiPort = await freePort();
    launch('etcd', [
      `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ]);
    const apiServerFlags = [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      `--cert-dir=${dir}`,
      `--tls-cert-file=${path.join(dir, 'apiserver.crt')}`,
      `--tls-private-key-file=${path.join(dir, 'apiserver.key')}`,
      `--client-ca-file=${path.join(dir, 'ca.crt')}`,
      `--token-auth-file=${path.join(dir, 'tokens.csv')}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${path.join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${path.join(dir, 'sa.key')}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      // No controller creates the default ServiceAccount here, so pods could not be admitted with it.
      '--disable-admission-plugins=ServiceAccount',
      '--v=1',
      ...(options.apiServerArgs ?? []),
    ];
    let apiServer = launch('kube-apiserver', apiServerFlags);
    const server = `https://127.0.0.1:${apiPort}`;
    const kubeconfigPath = path.join(dir, 'kubeconfig');
    fs.writeFileSync(kubeconfigPath, kubeconfigFor(server, path.join(dir, 'ca.crt'), token));
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(kubeconfigPath);
    const client = new KubeClient(kubeConfig);
    // A peer that exits will not come back: fail at once rather than at the deadline.
    const peerExited = new Promise<never>((_, reject) => {
      for (const p of procs) p.once('exit', () => reject(new Error(`a peer exited: ${logs.join('; ')}; see ${dir}`)));
    });
    peerExited.catch(() => {});
    await Promise.race([
      until(() => client.request<string>('GET', '/readyz').then(() => true), {
        message: 'kube-apiserver /readyz',
        timeoutMs: 90_000,
        intervalMs: 200,
      }),
      peerExited,
    ]);
    // The default namespace is created by the apiserver's own controller shortly after it is ready.
    await until(() => client.get('/api/v1/namespaces/default').then(() => true), {
      message: 'namespace default',
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    let gc = false;
    const startGarbageCollector = async () => {
      if (gc) return;
      gc = true;
      launch('kube-controller-manager', [
        `--kubeconfig=${kubeconfigPath}`,
        '--controllers=garbagecollector',
        '--leader-elect=false',
        '--secure-port=0',
        '--concurrent-gc-syncs=5',
        '--v=1',
      ]);
      const log = path.join(dir, 'kube-controller-manager.log');
      await until(() => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('Proceeding to collect garbage'), {
        message: 'garbage collector synced',
        timeoutMs: 60_000,
        intervalMs: 100,
      });
    };
    if (options.gc) await startGarbageCollector();
    return {
      dir,
      server,
      kubeconfigPath,
      kubeConfig,
      client,
      get gc() {
        return gc;
      },
      startGarbageCollector,
      etcdUrl: `http://127.0.0.1:${etcdPort}`,
      stopApiServer: async (signal: NodeJS.Signals = 'SIGKILL') => {
        const p = apiServer;
        if (p.exitCode !== null || p.signalCode !== null) return;
        await new Promise<void>((resolve) => {
          p.once('exit', () => resolve());
          p.kill(signal);
        });
      },
      startApiServer: async (extraArgs: string[] = []) => {
        if (apiServer.exitCode === null && apiServer.signalCode === null) throw new Error('kube-apiserver is still running');
        const p = launch('kube-apiserver', [...apiServerFlags, ...extraArgs]);
        apiServer = p;
        const exited = new Promise<never>((_, reject) =>
          p.once('exit', (code, signal) => reject(new Error(`kube-apiserver exited on restart code=${code} signal=${signal}; see ${dir}`))),
        );
        exited.catch(() => {});
        await Promise.race([
          until(() => client.request<string>('GET', '/readyz').then(() => true), {
            message: 'restarted kube-apiserver /readyz',
            timeoutMs: 90_000,
            intervalMs: 100,
          }),
          exited,
        ]);
      },
      logs: () => logs.join('\n'),
      stop: async () => {
        client.close();
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
