// An envtest-like harness: starts etcd, kube-apiserver (self-signed serving cert, token auth for an
// admin in system:masters, RBAC, service-account keys) and optionally kube-controller-manager with
// only the garbage collector, from binaries hack/kube/install.sh cached; writes a kubeconfig; stops all.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import YAML from 'yaml';
import { stopChild } from '../../src/common/child-process.ts';
import { KubeClient } from '../../src/common/kube/kube-client.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const KUBE_BIN_DIR = process.env.KVROUTE_KUBE_BIN ?? path.join(ROOT, '.cache/kube/bin');
let PORT_RANGE = { min: 16000, max: 16099 };

/** Confines this test file's clusters to its own port range, so files running side by side cannot collide. */
export function usePortRange(min: number, max: number): void {
  PORT_RANGE = { min, max };
}

export function kubeBinariesAvailable(): boolean {
  return ['etcd', 'kube-apiserver', 'kube-controller-manager'].every((b) => fs.existsSync(path.join(KUBE_BIN_DIR, b)));
}

/** Whether kube tests must run: binaries present, or KVROUTE_REQUIRE_KUBE set (then absence fails). */
export function kubeTestsEnabled(): boolean {
  if (kubeBinariesAvailable()) return true;
  if (process.env.KVROUTE_REQUIRE_KUBE) throw new Error(`KVROUTE_REQUIRE_KUBE is set but ${KUBE_BIN_DIR} lacks etcd/kube-apiserver/kube-controller-manager: run hack/kube/install.sh`);
  return false;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

const claimed = new Set<number>();
/** A free port from the range this suite may use, starting at a random offset to spread parallel files. */
export async function freePort(): Promise<number> {
  const span = PORT_RANGE.max - PORT_RANGE.min + 1;
  const start = Math.floor(Math.random() * span);
  for (let i = 0; i < span; i++) {
    const port = PORT_RANGE.min + ((start + i) % span);
    if (claimed.has(port)) continue;
    if (await portFree(port)) {
      claimed.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${PORT_RANGE.min}-${PORT_RANGE.max}`);
}

export async function waitFor<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, what: string, timeoutMs = 10_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

function writeCerts(dir: string): void {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=kvroute-test-ca'], dir);
  fs.writeFileSync(path.join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'apiserver.key', '-out', 'apiserver.csr', '-subj', '/CN=kube-apiserver'], dir);
  openssl(['x509', '-req', '-in', 'apiserver.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'apiserver.crt', '-days', '2', '-extfile', 'san.cnf'], dir);
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

export async function startKube(options: { gc?: boolean } = {}): Promise<KubeEnv> {
  // gc defaults to off so callers can install CRDs first and then call startGarbageCollector().
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-kube-'));
  const procs: ChildProcess[] = [];
  const logs: string[] = [];
  const launch = (bin: string, args: string[]) => {
    const p = spawn(path.join(KUBE_BIN_DIR, bin), args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const logFile = fs.createWriteStream(path.join(dir, `${bin}.log`));
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
    launch('kube-apiserver', [
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
    ]);
    const server = `https://127.0.0.1:${apiPort}`;
    const kubeconfigPath = path.join(dir, 'kubeconfig');
    fs.writeFileSync(kubeconfigPath, kubeconfigFor(server, path.join(dir, 'ca.crt'), token));
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(kubeconfigPath);
    const client = new KubeClient(kubeConfig);
    await waitFor(async () => {
      if (procs.some((p) => p.exitCode !== null)) throw new Error(`a peer exited: ${logs.join('; ')}; see ${dir}`);
      return (await client.request<string>('GET', '/readyz').then(() => true, () => false)) || undefined;
    }, 'kube-apiserver /readyz', 90_000, 200);
    // The default namespace is created by the apiserver's own controller shortly after it is ready.
    await waitFor(() => client.get('/api/v1/namespaces/default').then(() => true), 'namespace default', 30_000, 100);
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
      await waitFor(() => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('Proceeding to collect garbage'), 'garbage collector synced', 60_000, 100);
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
