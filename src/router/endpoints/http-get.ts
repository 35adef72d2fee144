// A plain HTTP GET of a small text page over a keep-alive connection, for the metrics scraper. The
// global fetch (undici) builds WHATWG Request/Response objects, body streams and an AbortSignal per
// call; at one scrape per endpoint every 50 ms that was about a tenth of the router's CPU under load
// (bench/router.ts profile). node:http with a keep-alive agent does the same job for a fraction.

import http from 'node:http';

export interface TextResponse {
  status: number;
  text: string;
}

/** GETs `url` and reads its body as text; `timeoutMs` bounds the whole exchange. */
export type GetText = (url: string, timeoutMs: number) => Promise<TextResponse>;

/** One scrape per endpoint at a time, so one socket per endpoint is kept open between scrapes. */
const agent = new http.Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 });

/**
 * A timeout fails with an Error named 'TimeoutError' (as AbortSignal.timeout's), connection failures
 * with Node's errors (`code` ECONNREFUSED, ECONNRESET, ...), so callers can tell the two apart.
 */
export const getText: GetText = (url, timeoutMs) =>
  new Promise<TextResponse>((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      res.setEncoding('utf8');
      let text = '';
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, text });
      });
      res.on('error', fail);
    });
    const timer = setTimeout(() => {
      const err = new Error(`GET ${url}: no answer within ${timeoutMs} ms`);
      err.name = 'TimeoutError';
      req.destroy(err);
    }, timeoutMs);
    function fail(err: Error): void {
      clearTimeout(timer);
      reject(err);
    }
    req.on('error', fail);
  });

/** A GetText over a fetch function (tests and callers that bring their own HTTP client). */
export function getTextWithFetch(f: typeof fetch): GetText {
  return async (url, timeoutMs) => {
    const res = await f(url, { signal: AbortSignal.timeout(timeoutMs) });
    // Read the body either way, so the keep-alive connection is reusable.
    return { status: res.status, text: await res.text() };
  };
}
