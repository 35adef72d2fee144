// The operator under faults (issue 10), in the quick form of bench/chaos/operator.ts: a real
// kube-apiserver + etcd and `kvroute operator` processes; the API server killed and restarted, watches
// expired (410 Gone) by etcd compaction, the leader of two replicas SIGKILLed. Each fault must end with
// every desired object back and current, none lost, duplicated, orphaned or recreated; the watches
// must re-list and resume; the failover must take the lease's expiry and stay under 15 s.

import { describe, it, expect, beforeAll } from '@jest/globals';
import { operatorChaosTable, runOperatorChaos, type ObjectAudit, type OperatorChaosReport } from '../../bench/chaos/operator.ts';
import { kubeTestsEnabled } from '../kube/cluster.ts';

const describeKube = kubeTestsEnabled() ? describe : describe.skip;

/** The informers over the operator's own kinds, which must all re-list after their watches expire. */
const CORE_INFORMERS = ['inferencepools', 'inferencemodels', 'deployments', 'services', 'configmaps', 'namespaces'];

const nothingWrong = (a: ObjectAudit) => ({ lost: a.lost, duplicated: a.duplicated, orphaned: a.orphaned, recreated: a.recreated });
const NOTHING = { lost: [], duplicated: [], orphaned: [], recreated: [] };

describeKube('operator chaos (quick)', () => {
  let report: OperatorChaosReport;

  beforeAll(async () => {
    report = await runOperatorChaos({ quick: true, progress: () => {} });
    process.stdout.write(`${operatorChaosTable(report)}\nload average ${report.loadAverage.end.join(' ')}\n`);
  }, 240_000);

  it('converges after the API server is killed and restarted, with every informer restarted and nothing lost or duplicated', () => {
    const r = report.apiServerRestart;
    expect(r.operatorSurvived).toBe(true);
    // The operator saw the outage (its list/watches failed and backed off) and came back on its own.
    expect(r.informers.restarts).toBeGreaterThan(0);
    expect(r.audit.desired).toBe(r.audit.present);
    expect(nothingWrong(r.audit)).toEqual(NOTHING);
  });

  it('re-lists every informer whose watch expired with 410 Gone, learns what changed meanwhile, and keeps watching', () => {
    const r = report.watchExpiry;
    expect(r.operatorSurvived).toBe(true);
    for (const informer of CORE_INFORMERS) expect(r.informers.relistedInformers).toContain(informer);
    expect(r.informers.relistLogLines).toBe(r.informers.relists);
    expect(r.relistedMs).toBeGreaterThanOrEqual(0);
    // The change made after the re-lists converged too: the watches resumed from the new lists.
    expect(r.resumeConvergeMs).toBeGreaterThanOrEqual(0);
    expect(nothingWrong(r.audit)).toEqual(NOTHING);
  });

  it('fails over to the other replica when the leader is SIGKILLed, after the lease expires and within 15 s, losing and duplicating nothing', () => {
    const runs = report.leaderFailover.flatMap((f) => f.runs);
    expect(runs.length).toBeGreaterThan(0);
    for (const run of runs) {
      expect(run.failoverMs).toBeLessThan(15_000);
      // Nothing but the dead leader's lease expiring lets the follower in.
      expect(run.failoverMs).toBeGreaterThanOrEqual(run.leaseExpiryBoundMs);
      expect(run.leaseTransitions).toBe(1);
      expect(run.reconcileAfterKillMs).toBeGreaterThanOrEqual(run.failoverMs);
      // The new leader's first reconciles re-apply every object unchanged: no write, no new copy.
      expect(run.rewritten).toBe(0);
      expect(nothingWrong(run.audit)).toEqual(NOTHING);
    }
    expect(report.targets).toEqual({ failoverUnder15s: true, noDuplicatedOrLost: true, convergedAfterEveryFault: true });
  });
});
