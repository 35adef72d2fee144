import { describe, expect, it } from '@jest/globals';
import { command, namespaceListFlag, peersFlag } from './operator.ts';

describe('kvroute operator --gateway-namespaces', () => {
  const parse = namespaceListFlag('--gateway-namespaces');

  it('takes a comma-separated list of namespaces, ignoring blanks and repeats', () => {
    expect(parse('istio-system,gateways')).toEqual(['istio-system', 'gateways']);
    expect(parse(' istio-system , ,istio-system,')).toEqual(['istio-system']);
    expect(parse('')).toEqual([]);
  });

  it('rejects a name that is not a namespace, naming the flag and the name', () => {
    expect(() => parse('istio-system,Istio_System')).toThrow(
      '--gateway-namespaces expects namespace names separated by commas (lower-case letters, digits and "-"), got "Istio_System"',
    );
    expect(() => parse('a'.repeat(64))).toThrow(/got "a{64}"/);
  });

  it('allows only the pool namespaces by default', () => {
    const option = command().options.find((o) => o.long === '--gateway-namespaces');
    expect(option?.defaultValue).toEqual([]);
  });
});

describe('kvroute operator NetworkPolicy flags', () => {
  // parseOptions sets the values without running the action (which would start an operator).
  const parse = (...args: string[]) => {
    const cmd = command();
    cmd.parseOptions(args);
    return cmd.opts();
  };

  it('renders NetworkPolicies by default, with default peers, and --no-network-policies turns them off', () => {
    expect(parse()).toMatchObject({ networkPolicies: true });
    expect(parse().gatewayPeers).toBeUndefined();
    expect(parse('--no-network-policies')).toMatchObject({ networkPolicies: false });
  });

  it('takes peers as a JSON array of NetworkPolicyPeer', () => {
    const peers = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'gw' } } }, { ipBlock: { cidr: '10.0.0.0/8' } }];
    expect(parse('--gateway-peers', JSON.stringify(peers), '--metrics-peers', JSON.stringify(peers.slice(1)))).toMatchObject({
      gatewayPeers: peers,
      metricsPeers: peers.slice(1),
    });
  });

  it('rejects malformed peers, naming the flag and the problem', () => {
    const flag = peersFlag('--gateway-peers');
    expect(() => flag('[{')).toThrow(/^--gateway-peers expects a JSON array of NetworkPolicy peers: /);
    expect(() => flag('[]')).toThrow(/^--gateway-peers: /);
    expect(() => flag('[{"podSelector":{"matchLabels":{"a":"b"}},"ipBlock":{"cidr":"10.0.0.0/8"}}]')).toThrow(
      '--gateway-peers: [0] expected podSelector and/or namespaceSelector, or ipBlock alone',
    );
    expect(() => flag('[{"podSelektor":{}}]')).toThrow(/^--gateway-peers: \[0\] /);
  });
});
