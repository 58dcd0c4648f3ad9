/**
 * The fleet ledger over TLS and with etcd authentication, for real: a one-member etcd started
 * here with certificates made by openssl (a CA, a server certificate for 127.0.0.1, a client
 * certificate), mutual TLS required; then etcd's own authentication switched on. The ledger is
 * opened exactly as the CLI and the agent open it, from RRM_LEDGER and RRM_ETCD_* variables.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { compileConfig } from '../../src/config.js';
import { localEnforcer } from '../../src/host/local-enforcer.js';
import type { CoreLedger } from '../../src/ledger/core-ledger.js';
import { openLedger } from '../../src/ledger/open.js';
import { isRrmError } from '../../src/model/errors.js';
import { request } from '../support/core-fixtures.js';
import { makeCa, type Issued } from '../support/certs.js';
import { findEtcdBinary } from '../support/etcd-cluster.js';

let dir: string;
let server: Issued;
let client: Issued;
let etcd: ChildProcess | undefined;
let port: number;
let log = '';
const pem = (name: string): string => join(dir, name);

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rrm-etcd-tls-'));
  const ca = makeCa(dir);
  server = ca.issue('server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  client = ca.issue('client', 'extendedKeyUsage=clientAuth\n');
  port = await freePort();
  const peer = await freePort();
  etcd = spawn(
    findEtcdBinary(),
    [
      '--name=tls0',
      `--data-dir=${join(dir, 'data')}`,
      `--listen-client-urls=https://127.0.0.1:${port}`,
      `--advertise-client-urls=https://127.0.0.1:${port}`,
      `--listen-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-cluster=tls0=http://127.0.0.1:${peer}`,
      `--cert-file=${server.cert}`,
      `--key-file=${server.key}`,
      `--trusted-ca-file=${pem('ca.pem')}`,
      '--client-cert-auth',
      '--log-level=warn',
      '--logger=zap',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  etcd.stderr?.on('data', (d) => (log = (log + d).slice(-4000)));
});

after(() => {
  etcd?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const tlsEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  RRM_STATE_DIR: join(dir, 'state'),
  RRM_ENFORCE: 'none',
  RRM_INSTANCE: 'tls-node',
  RRM_ETCD_CA: pem('ca.pem'),
  RRM_ETCD_CERT: client.cert,
  RRM_ETCD_KEY: client.key,
  ...extra,
});

async function open(env: NodeJS.ProcessEnv): Promise<CoreLedger> {
  const config = compileConfig(env);
  return openLedger(config, localEnforcer(config), { createInstance: true });
}

async function pair(ledger: CoreLedger): Promise<string> {
  const holder = { host: 'tls-test', pid: process.pid, startTime: 0, owner: 'tls' };
  const { outcome, token } = await ledger.reserve(
    request({ target: 'tls-node', requests: { cpu: 100 }, holder }),
  );
  assert.equal(outcome.kind, 'granted');
  return (await ledger.release(outcome.reservation.id, { token })).state;
}

test('etcds:// with mutual TLS: the ledger works; without a client certificate it fails with a clear error', async () => {
  const url = `etcds://127.0.0.1:${port}/tls/`;
  let ledger: CoreLedger | undefined;
  const until = Date.now() + 20_000;
  while (!ledger) {
    try {
      ledger = await open(tlsEnv({ RRM_LEDGER: url }));
    } catch (e) {
      if (Date.now() > until) throw new Error(`etcd with TLS did not come up: ${String(e)}\n${log}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    assert.equal(await pair(ledger), 'released');
    assert.deepEqual(
      (await ledger.instanceStatus()).map((s) => s.instance.id),
      ['tls-node'],
    );
  } finally {
    await ledger.close();
  }
  // Trusting the CA is not enough: the server wants a client certificate.
  const started = Date.now();
  await assert.rejects(
    open(tlsEnv({ RRM_LEDGER: url, RRM_ETCD_CERT: '', RRM_ETCD_KEY: '' })),
    (e: unknown) => isRrmError(e) && e.code === 'RRM_ERR_LEDGER' && e.message.includes(`127.0.0.1:${port}`),
  );
  assert.ok(Date.now() - started < 15_000, 'the failure is reported within the call budget');
  // A CA file that is not there is a usage error before anything is tried.
  await assert.rejects(
    open(tlsEnv({ RRM_LEDGER: url, RRM_ETCD_CA: join(dir, 'missing.pem') })),
    (e: unknown) => isRrmError(e) && e.code === 'RRM_ERR_USAGE' && /cannot read the etcd CA/.test(e.message),
  );
});

test('etcd authentication: user and password from the URL or the environment; a wrong password is refused', async () => {
  const admin = new Etcd3({
    hosts: [`https://127.0.0.1:${port}`],
    credentials: {
      rootCertificate: readFileSync(pem('ca.pem')),
      certChain: readFileSync(client.cert),
      privateKey: readFileSync(client.key),
    },
  });
  try {
    await admin.role('root').create();
    await admin.user('root').create('s3cret-pass');
    await admin.user('root').addRole('root');
    await admin.auth.authEnable();
  } finally {
    admin.close();
  }
  const good = await open(tlsEnv({ RRM_LEDGER: `etcds://root:s3cret-pass@127.0.0.1:${port}/auth/` }));
  try {
    assert.equal(await pair(good), 'released');
  } finally {
    await good.close();
  }
  const fromEnv = await open(
    tlsEnv({
      RRM_LEDGER: `etcds://127.0.0.1:${port}/auth/`,
      RRM_ETCD_USER: 'root',
      RRM_ETCD_PASSWORD: 's3cret-pass',
    }),
  );
  try {
    assert.equal(await pair(fromEnv), 'released');
  } finally {
    await fromEnv.close();
  }
  await assert.rejects(
    open(tlsEnv({ RRM_LEDGER: `etcds://root:wrong@127.0.0.1:${port}/auth/` })),
    (e: unknown) => {
      assert.ok(isRrmError(e), String(e));
      assert.equal(e.code, 'RRM_ERR_LEDGER');
      assert.doesNotMatch(e.message, /wrong/, 'the password is never echoed');
      assert.match(e.message, /auth|password|credential/i);
      return true;
    },
  );
});
