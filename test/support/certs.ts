/** Certificates made by openssl for TLS tests: a CA, and certificates it signs (server or client). */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Issued {
  readonly cert: string;
  readonly key: string;
}

/** A fresh CA in `dir` (`<name>.pem`, `<name>.key`); `issue` signs a certificate with it. */
export function makeCa(dir: string, name = 'ca'): Issued & { issue(cn: string, ext: string): Issued } {
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=rrm-test-${name}`,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.pem`,
  );
  return {
    cert: join(dir, `${name}.pem`),
    key: join(dir, `${name}.key`),
    /** `ext`: openssl extensions, e.g. `subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n`. */
    issue(cn: string, ext: string): Issued {
      const base = `${name}-${cn}`;
      writeFileSync(join(dir, `${base}.ext`), ext);
      openssl(
        'req',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        `/CN=${cn}`,
        '-keyout',
        `${base}.key`,
        '-out',
        `${base}.csr`,
      );
      openssl(
        'x509',
        '-req',
        '-in',
        `${base}.csr`,
        '-CA',
        `${name}.pem`,
        '-CAkey',
        `${name}.key`,
        '-CAcreateserial',
        '-days',
        '2',
        '-extfile',
        `${base}.ext`,
        '-out',
        `${base}.pem`,
      );
      return { cert: join(dir, `${base}.pem`), key: join(dir, `${base}.key`) };
    },
  };
}
