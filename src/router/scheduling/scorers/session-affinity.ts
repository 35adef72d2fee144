// llm-d's session-affinity-scorer: a client that echoes the `x-session-token` response header goes
// back to the endpoint that served its session. The token is base64 of that endpoint's address; the
// router sets it on every response to the endpoint it picked.

import { z } from 'zod';
import { definePlugin, type ScoreVector } from '../types.ts';

const SESSION_TOKEN_HEADER = 'x-session-token';

export function encodeSessionToken(address: string): string {
  return Buffer.from(address, 'utf8').toString('base64');
}

/** The address a token names, or undefined for a token that is not base64 of printable text. */
export function decodeSessionToken(token: string): string | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(token.trim())) return undefined;
  const address = Buffer.from(token.trim(), 'base64').toString('utf8');
  return /^[\x21-\x7e]+$/.test(address) ? address : undefined;
}

export const sessionAffinityScorer = definePlugin({
  type: 'session-affinity-scorer',
  kind: 'scorer',
  parameters: z.strictObject({}),
  create: (name) => ({
    kind: 'scorer',
    type: 'session-affinity-scorer',
    name,
    score: (cycle, endpoints): ScoreVector => {
      const token = cycle.request.headers[SESSION_TOKEN_HEADER];
      const address = token === undefined ? undefined : decodeSessionToken(token);
      return endpoints.map((e) => (address !== undefined && e.endpoint.address === address ? 1 : 0));
    },
    postPick: (cycle, outcome) => {
      const first = outcome.targets[0];
      if (first) cycle.responseHeaders[SESSION_TOKEN_HEADER] = encodeSessionToken(first.endpoint.address);
    },
  }),
});
