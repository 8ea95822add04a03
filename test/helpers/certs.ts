// Test certificates: self-signed or signed by a test CA, ECDSA P-256 or RSA 2048, with any
// names, serial and validity window (including expired and not-yet-valid ones). Made with
// @peculiar/x509 on WebCrypto: no openssl process, a few milliseconds each.

import { webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export type TestCert = {
  certPath: string;
  keyPath: string;
  /** PEM of the certificate (with the CA's appended when signed by one: a full chain). */
  cert: string;
  key: string;
  /** Upper-case hex, as node:tls reports it. */
  serial: string;
  notAfter: Date;
  /** For signing others (CAs). */
  keys: webcrypto.CryptoKeyPair;
  x509: x509.X509Certificate;
};

export type CertOptions = {
  names: string[];
  dir: string;
  /** File name stem; defaults to the first name. */
  stem?: string;
  keyType?: 'ec' | 'rsa';
  /** Validity window; defaults to [now - 1 h, now + 30 days]. */
  notBefore?: Date;
  notAfter?: Date;
  ca?: TestCert;
  isCA?: boolean;
};

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 } as const;

function toPem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

export async function makeCert(options: CertOptions): Promise<TestCert> {
  const alg = options.keyType === 'rsa' ? RSA : EC;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const serialBytes = webcrypto.getRandomValues(new Uint8Array(8));
  serialBytes[0]! &= 0x7f;
  serialBytes[0]! |= 0x10;
  const serial = Buffer.from(serialBytes).toString('hex').toUpperCase();
  const notBefore = options.notBefore ?? new Date(Date.now() - 3_600_000);
  const notAfter = options.notAfter ?? new Date(Date.now() + 30 * 86_400_000);
  const sans = options.names.map((n) => (/^[\d.]+$|:/.test(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }));
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(!!options.isCA, undefined, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  if (options.isCA) {
    extensions.push(new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true));
  } else {
    extensions.push(new x509.SubjectAlternativeNameExtension(sans));
    extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]));
    extensions.push(new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | (options.keyType === 'rsa' ? x509.KeyUsageFlags.keyEncipherment : 0)));
  }
  if (options.ca) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(options.ca.keys.publicKey));
  const subject = `CN=${options.names[0]}`;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject,
    issuer: options.ca ? options.ca.x509.subject : subject,
    notBefore,
    notAfter,
    signingAlgorithm: options.ca ? options.ca.keys.privateKey.algorithm : alg,
    publicKey: keys.publicKey,
    signingKey: options.ca ? options.ca.keys.privateKey : keys.privateKey,
    extensions,
  });
  const stem = options.stem ?? options.names[0]!.replace(/[^A-Za-z0-9.-]/g, '_');
  const keyPath = join(options.dir, `${stem}.key.pem`);
  const certPath = join(options.dir, `${stem}.cert.pem`);
  const certPem = cert.toString('pem') + '\n' + (options.ca ? options.ca.cert : '');
  const keyPem = toPem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  writeFileSync(certPath, certPem);
  writeFileSync(keyPath, keyPem, { mode: 0o600 });
  return { certPath, keyPath, cert: certPem, key: keyPem, serial, notAfter, keys, x509: cert };
}

/** A test CA (self-signed, CA:TRUE). Its `cert` is what clients pass as `ca`. */
export function makeCA(dir: string, name = 'opam-edge test CA'): Promise<TestCert> {
  return makeCert({ names: [name], dir, stem: 'ca', isCA: true, notAfter: new Date(Date.now() + 365 * 86_400_000) });
}
