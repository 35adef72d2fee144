import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { metrics } from '../scheduling/test-helpers.ts';
import { endpointLoad } from './load.ts';

describe('endpointLoad', () => {
  it("counts the scrape's running + waiting less this router's share when it started, plus this router's requests now", () => {
    // 3 running + 1 waiting, 2 of them ours at the scrape; 1 of ours in flight now: 2 others + 1 ours.
    expect(endpointLoad(1, metrics({ runningRequests: 3, waitingRequests: 1, inFlightAtScrape: 2 }))).toBe(3);
    // Ours finished since the scrape: they no longer count, although the scrape still shows them.
    expect(endpointLoad(0, metrics({ runningRequests: 2, inFlightAtScrape: 2 }))).toBe(0);
  });

  it('never takes more of ours off the scrape than it shows (some had not reached the engine), and is inFlight alone without metrics', () => {
    expect(endpointLoad(3, metrics({ runningRequests: 1, inFlightAtScrape: 3 }))).toBe(3);
    expect(endpointLoad(2, null)).toBe(2);
  });

  it("is never below this router's live count, nor below what the scrape saw from others", () => {
    fc.assert(
      fc.property(fc.nat(100), fc.nat(100), fc.nat(100), fc.nat(100), (inFlight, running, waiting, atScrape) => {
        const load = endpointLoad(inFlight, metrics({ runningRequests: running, waitingRequests: waiting, inFlightAtScrape: atScrape }));
        expect(load).toBeGreaterThanOrEqual(inFlight);
        expect(load).toBeGreaterThanOrEqual(running + waiting - atScrape);
      }),
    );
  });
});
