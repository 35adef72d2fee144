import { describe, it, expect } from '@jest/globals';
import { KubeApiError } from '../../common/kube/kube-client.ts';
import { changedConditions, eventType, refusedByTerminatingNamespace } from './events.ts';

const c = (type: string, status: 'True' | 'False', reason = 'R') => ({
  type,
  status,
  reason,
  message: '',
  lastTransitionTime: '2026-01-01T00:00:00Z',
});

describe('condition events', () => {
  it('warns when Ready or Accepted turn False or Degraded turns True, and is neutral about Progressing', () => {
    expect(eventType(c('Ready', 'False'))).toBe('Warning');
    expect(eventType(c('Ready', 'True'))).toBe('Normal');
    expect(eventType(c('Accepted', 'False'))).toBe('Warning');
    expect(eventType(c('Degraded', 'True'))).toBe('Warning');
    expect(eventType(c('Degraded', 'False'))).toBe('Normal');
    expect(eventType(c('Progressing', 'True'))).toBe('Normal');
  });

  it('reports only conditions whose status or reason changed', () => {
    const prev = [c('Ready', 'False', 'NoReadyEndpoints'), c('Degraded', 'False', 'AsExpected'), c('Progressing', 'True', 'RollingOut')];
    const next = [c('Ready', 'False', 'RouterUnavailable'), c('Degraded', 'False', 'AsExpected'), c('Progressing', 'False', 'RolledOut')];
    expect(changedConditions(prev, next).map((x) => x.type)).toEqual(['Ready', 'Progressing']);
    expect(changedConditions(undefined, next)).toHaveLength(3);
  });

  it('tells a refusal by a terminating namespace from other forbidden errors', () => {
    const terminating =
      'POST /api/v1/namespaces/x/events: 403 events "p." is forbidden: unable to create new content in namespace x because it is being terminated';
    expect(refusedByTerminatingNamespace(new KubeApiError(403, 'Forbidden', terminating))).toBe(true);
    expect(
      refusedByTerminatingNamespace(new KubeApiError(403, 'Forbidden', 'events is forbidden: User "sa" cannot create resource "events"')),
    ).toBe(false);
    expect(refusedByTerminatingNamespace(new Error(terminating))).toBe(false);
  });
});
