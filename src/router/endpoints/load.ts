// An endpoint's load as the scheduler compares it (EndpointState.load): what the last scrape saw from
// other routers, plus this router's own requests counted live. The scrape lags (up to one interval,
// 50 ms by default), so counting our own requests from it would keep a request that just finished on
// its pod, and a pod that is idle would look busy to the load bound.

import type { EndpointMetrics } from '../types.ts';

/**
 * max(0, running + waiting - inFlightAtScrape) + inFlight: the scrape's count less the part that was
 * ours when it started (never below 0: some of ours may not have reached the engine yet), plus ours
 * now. Without fresh metrics, inFlight alone.
 */
export function endpointLoad(inFlight: number, metrics: EndpointMetrics | null): number {
  if (!metrics) return inFlight;
  const others = metrics.runningRequests + metrics.waitingRequests - metrics.inFlightAtScrape;
  return Math.max(0, others) + inFlight;
}
