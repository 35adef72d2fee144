// How fast the operator's informers retry a failed list/watch. The shared informer's default (doubling
// to 30 s, like client-go's reflector, sized for thousands of clients of one API server) leaves an
// operator blind for up to 30 s after the API server comes back: the chaos suite measured 15 s of
// convergence after an 18 s outage. One operator with a dozen watches can afford a 5 s ceiling: about
// two requests a second against an API server that is down.

export const OPERATOR_INFORMER_BACKOFF = { initialMs: 500, maxMs: 5_000 } as const;
