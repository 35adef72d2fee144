import { describe, expect, it } from '@jest/globals';
import { eventTopic, replicaTopicProblem } from './config.ts';

describe('eventTopic', () => {
  it("defaults to vLLM's kv@<pod>@<model>", () => {
    expect(eventTopic({ podId: 'sim-1', model: 'M', kvEventsTopic: null })).toBe('kv@sim-1@M');
  });

  it('substitutes {pod} and {model} in a configured topic', () => {
    expect(eventTopic({ podId: 'sim-1', model: 'M', kvEventsTopic: 'pool/{pod}/{model}/{pod}' })).toBe('pool/sim-1/M/sim-1');
    expect(eventTopic({ podId: 'sim-1', model: 'M', kvEventsTopic: 'fixed' })).toBe('fixed');
  });
});

describe('replicaTopicProblem', () => {
  it('rejects a fixed topic shared by more than one replica', () => {
    expect(replicaTopicProblem('kv@a@M', 2)).toMatch(/shared by all 2 replicas.*\{pod\}/);
  });

  it('accepts a topic with {pod}, a fixed topic for one pod, and the default topic', () => {
    expect(replicaTopicProblem('kv@{pod}@M', 3)).toBeNull();
    expect(replicaTopicProblem('kv@a@M', 1)).toBeNull();
    expect(replicaTopicProblem(null, 3)).toBeNull();
  });
});
