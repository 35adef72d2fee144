import { describe, expect, it } from '@jest/globals';
import { endpoint, profileConfig, request, testScheduler } from '../test-helpers.ts';
import { decodeSessionToken, encodeSessionToken } from './session-affinity.ts';

describe('session-affinity-scorer', () => {
  const pool = [endpoint('10.0.0.1:8000'), endpoint('10.0.0.2:8000'), endpoint('10.0.0.3:8000')];

  it('round-trips an address through the token and refuses tokens that are not one', () => {
    expect(encodeSessionToken('10.0.0.2:8000')).toBe(Buffer.from('10.0.0.2:8000').toString('base64'));
    expect(decodeSessionToken(encodeSessionToken('[fd00::1]:8000'))).toBe('[fd00::1]:8000');
    expect(decodeSessionToken('not base64!')).toBeUndefined();
    expect(decodeSessionToken(Buffer.from([0, 1, 2]).toString('base64'))).toBeUndefined();
  });

  it('sends a session back to the endpoint its token names and sets the token on every response', async () => {
    const scheduler = testScheduler(profileConfig([{ type: 'session-affinity-scorer', weight: 1 }]));
    const first = await scheduler.schedule(request(), pool);
    const token = first.responseHeaders?.['x-session-token'];
    expect(token).toBe(encodeSessionToken(first.targets[0]!.address));
    for (let i = 0; i < 10; i++) {
      const next = await scheduler.schedule(request({ headers: { 'x-session-token': token! } }), pool);
      expect(next.targets[0]!.address).toBe(first.targets[0]!.address);
      expect(next.scores[first.targets[0]!.address]).toBe(1);
      expect(next.responseHeaders).toEqual({ 'x-session-token': token });
    }
  });

  it('gives no preference for a token naming an endpoint that is gone', async () => {
    const scheduler = testScheduler(profileConfig([{ type: 'session-affinity-scorer', weight: 1 }]));
    const result = await scheduler.schedule(request({ headers: { 'x-session-token': encodeSessionToken('10.9.9.9:8000') } }), pool);
    expect(Object.values(result.scores)).toEqual([0, 0, 0]);
    expect(result.responseHeaders?.['x-session-token']).toBe(encodeSessionToken(result.targets[0]!.address));
  });
});
