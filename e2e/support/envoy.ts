// A real Envoy for e2e tests: where hack/envoy/install.sh caches the binary. The gateway config the
// router is tested behind (the inference gateway's shape: ext_proc with full-duplex streamed bodies in
// front of an ORIGINAL_DST cluster that sends each request to the pod named in
// x-gateway-destination-endpoint) is product code in src/gateway/envoy-config.ts, re-exported here.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export { envoyGatewayConfig, type EnvoyGatewayOptions } from '../../src/gateway/envoy-config.ts';

const INSTALL_SCRIPT = 'hack/envoy/install.sh';
/** Where install.sh links the binary (it prints this path); KVROUTE_ENVOY_BIN overrides. */
const ENVOY_BIN = process.env.KVROUTE_ENVOY_BIN ?? path.join(ROOT, '.cache/envoy/bin/envoy');

export function envoyAvailable(): boolean {
  try {
    fs.accessSync(ENVOY_BIN, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Whether Envoy tests must run: set KVROUTE_REQUIRE_ENVOY (as CI does) to fail rather than skip without it. */
export function envoyRequired(): boolean {
  return Boolean(process.env.KVROUTE_REQUIRE_ENVOY);
}

/**
 * The Envoy binary installed by hack/envoy/install.sh. Does not install it (that needs the network and
 * a few seconds); throws naming the script when it is missing. Start more than one Envoy at a time with
 * --use-dynamic-base-id (or --disable-hot-restart), or their shared-memory regions collide.
 */
export function envoyBinary(): string {
  if (!envoyAvailable()) throw new Error(`Envoy not found at ${ENVOY_BIN}: run \`bash ${INSTALL_SCRIPT}\` (caches it under .cache/envoy)`);
  return ENVOY_BIN;
}
