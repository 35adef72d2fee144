// The gateway config e2e tests run Envoy with must be one Envoy accepts: `envoy --mode validate` checks
// it against the real binary's protos and filter factories (e.g. FULL_DUPLEX_STREAMED needs trailers SEND).

import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { envoyAvailable, envoyBinary, envoyGatewayConfig, envoyRequired, type EnvoyGatewayOptions } from './support/envoy.ts';

const run = promisify(execFile);

// Skipped (with the reason in the title) only when Envoy is absent and not required; under
// KVROUTE_REQUIRE_ENVOY a missing binary fails each test through envoyBinary()'s error.
const enabled = envoyAvailable() || envoyRequired();
const describeEnvoy = enabled ? describe : describe.skip;
const SKIP_REASON = 'skipped: no Envoy; run bash hack/envoy/install.sh, or set KVROUTE_REQUIRE_ENVOY=1 to fail instead';
if (!enabled) console.warn(`e2e/envoy-config.test.ts ${SKIP_REASON}`);
const title = enabled ? 'envoy --mode validate' : `envoy --mode validate (${SKIP_REASON})`;

const variants: Array<[string, EnvoyGatewayOptions]> = [
  ['plaintext ext_proc, fail closed', { listenPort: 0, adminPort: 0, eppPort: 9002, eppTls: false, failureModeAllow: false }],
  [
    'TLS ext_proc, fail open, short message timeout',
    { listenPort: 0, adminPort: 0, eppPort: 9002, eppTls: true, failureModeAllow: true, messageTimeoutS: 5 },
  ],
];

describeEnvoy(title, () => {
  let dir: string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-envoy-config-'));
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it.each(variants)('accepts the gateway config: %s', async (name, opts) => {
    const file = path.join(dir, `${name.replace(/[^a-z0-9]+/gi, '-')}.yaml`);
    const text = envoyGatewayConfig(opts);
    fs.writeFileSync(file, text);

    // --disable-hot-restart: no shared-memory region, so validations running side by side cannot collide.
    const result = await run(envoyBinary(), ['--mode', 'validate', '--disable-hot-restart', '--log-level', 'warn', '-c', file], {
      timeout: 60_000,
    }).then(
      (r) => ({ code: 0, output: r.stdout + r.stderr }),
      (err: { code?: number; stdout?: string; stderr?: string }) => ({
        code: err.code ?? -1,
        output: `${err.stdout ?? ''}${err.stderr ?? ''}`,
      }),
    );
    expect({ code: result.code, output: result.output }).toEqual({ code: 0, output: expect.stringContaining('OK') });

    // And the options reached the config.
    const parsed = JSON.stringify(YAML.parse(text));
    expect(parsed).toContain(`"failure_mode_allow":${opts.failureModeAllow}`);
    expect(parsed).toContain(`"message_timeout":"${opts.messageTimeoutS ?? 1000}s"`);
    expect(parsed.includes('UpstreamTlsContext')).toBe(opts.eppTls);
  });

  it('rejects a config Envoy cannot load (the check is not vacuous)', async () => {
    const file = path.join(dir, 'broken.yaml');
    const text = envoyGatewayConfig(variants[0]![1]).replace('request_trailer_mode: SEND', 'request_trailer_mode: SKIP');
    fs.writeFileSync(file, text);
    const code = await run(envoyBinary(), ['--mode', 'validate', '--disable-hot-restart', '--log-level', 'critical', '-c', file], {
      timeout: 60_000,
    }).then(
      () => 0,
      (err: { code?: number }) => err.code ?? -1,
    );
    expect(code).not.toBe(0);
  });
});
