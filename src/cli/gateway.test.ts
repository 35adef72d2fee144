import { describe, expect, it } from '@jest/globals';
import { command, gatewaySettings, type GatewayFlags } from './gateway.ts';

const base: GatewayFlags = {
  host: '0.0.0.0',
  port: 8080,
  router: '127.0.0.1:9002',
  failureMode: 'FailClose',
  adminPort: 0,
  pickTimeout: 10_000,
  logLevel: 'info',
};
const noEnvoy = () => null;

describe('kvroute gateway flags', () => {
  it('builds built-in settings when no Envoy is found, TLS to the router by default', () => {
    expect(gatewaySettings({ ...base, endpoints: '10.0.0.1:8000,pod-b:8000' }, noEnvoy)).toEqual({
      host: '0.0.0.0',
      port: 8080,
      router: '127.0.0.1:9002',
      routerTls: true,
      failureMode: 'FailClose',
      fallbackEndpoints: [
        { host: '10.0.0.1', port: 8000, address: '10.0.0.1:8000' },
        { host: 'pod-b', port: 8000, address: 'pod-b:8000' },
      ],
      adminPort: 0,
      pickTimeoutMs: 10_000,
    });
  });

  it('runs Envoy when one is found, unless --builtin', () => {
    const found = (explicit?: string) => explicit ?? '/usr/bin/envoy';
    expect(gatewaySettings({ ...base, routerPlaintext: true }, found)).toMatchObject({ envoyBinary: '/usr/bin/envoy', routerTls: false });
    expect(gatewaySettings({ ...base, envoy: '/opt/envoy' }, found)).toMatchObject({ envoyBinary: '/opt/envoy' });
    expect(gatewaySettings({ ...base, builtin: true }, found)).not.toHaveProperty('envoyBinary');
  });

  it('names the flag that is wrong', () => {
    expect(() => gatewaySettings({ ...base, router: undefined }, noEnvoy)).toThrow('--router HOST:PORT is required');
    expect(() => gatewaySettings({ ...base, router: 'router' }, noEnvoy)).toThrow('--router expects host:port');
    expect(() => gatewaySettings({ ...base, router: 'a:1,b:2' }, noEnvoy)).toThrow('--router expects one host:port');
    expect(() => gatewaySettings({ ...base, endpoints: 'a:1,b' }, noEnvoy)).toThrow('--endpoints expects host:port');
    expect(() => gatewaySettings({ ...base, builtin: true, envoy: '/x' }, noEnvoy)).toThrow('--envoy and --builtin exclude each other');
  });

  it('parses durations, ports and the failure mode, refusing bad values', async () => {
    const parse = (args: string[]) => {
      const cmd = command()
        .exitOverride()
        .configureOutput({ writeErr: () => {} });
      cmd.action(() => {});
      return cmd.parseAsync(args, { from: 'user' }).then(() => cmd.opts());
    };
    await expect(parse(['--router', 'r:1', '--pick-timeout', '250ms', '--failure-mode', 'FailOpen', '--port', '0'])).resolves.toMatchObject(
      {
        pickTimeout: 250,
        failureMode: 'FailOpen',
        port: 0,
        adminPort: 0,
      },
    );
    await expect(parse(['--router', 'r:1', '--pick-timeout', 'soon'])).rejects.toThrow('--pick-timeout');
    await expect(parse(['--router', 'r:1', '--port', '70000'])).rejects.toThrow('--port expects a port');
    await expect(parse(['--router', 'r:1', '--failure-mode', 'Maybe'])).rejects.toThrow('Allowed choices are FailOpen, FailClose');
    await expect(parse([])).rejects.toThrow("required option '--router <host:port>' not specified");
  });
});
