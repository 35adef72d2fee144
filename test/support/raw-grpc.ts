// A gRPC call over a bare node:http2 client, for tests of what grpc-js clients never send (a call
// with no request message, odd grpc-timeout values).

import http2 from 'node:http2';

/** One gRPC message: a flag byte, a 4-byte big-endian length, the payload. */
function frame(payload: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

/**
 * A gRPC call over a raw HTTP/2 client: sends `message` (none: half-closes at once) and resolves with
 * the status the server ended the call with.
 */
export async function rawGrpcCall(
  port: number,
  path: string,
  message: Buffer | null,
  headers: http2.OutgoingHttpHeaders = {},
): Promise<{ status: number; message: string }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    return await new Promise((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
      let status: { status: number; message: string } | undefined;
      const read = (h: http2.IncomingHttpHeaders) => {
        if (h['grpc-status'] !== undefined)
          status = { status: Number(h['grpc-status']), message: decodeURIComponent(String(h['grpc-message'] ?? '')) };
      };
      stream.on('response', read);
      stream.on('trailers', read);
      stream.on('data', () => {});
      stream.on('close', () => (status ? resolve(status) : reject(new Error(`no status (stream code ${stream.rstCode})`))));
      stream.on('error', () => {});
      stream.end(message ? frame(message) : undefined);
    });
  } finally {
    session.close();
  }
}
