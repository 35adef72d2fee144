// A self-signed serving certificate (EC P-256) for loopback and cluster-internal TLS: what GIE's
// endpoint picker makes at start when it is given no certificate, and what tests serve with.

import { generate } from 'selfsigned';

export interface KeyPair {
  cert: string;
  key: string;
}

export interface SelfSignedOptions {
  commonName: string;
  /** Validity from now, in days. */
  days: number;
}

/** A certificate for `commonName`, valid for localhost, 127.0.0.1 and ::1 too. */
export async function selfSignedCertificate(options: SelfSignedOptions): Promise<KeyPair> {
  const now = new Date();
  const pems = await generate([{ name: 'commonName', value: options.commonName }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: now,
    notAfterDate: new Date(now.getTime() + options.days * 24 * 3600 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}
