import { describe, expect, it } from '@jest/globals';
import { command, namespaceListFlag } from './operator.ts';

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
