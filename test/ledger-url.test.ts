import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLedgerUrl, type EtcdLedgerSpec } from '../src/ledger/ledger-url.js';
import { RrmError } from '../src/model/errors.js';

const DEFAULT = '/state/ledger.db';

function etcd(text: string, env: NodeJS.ProcessEnv = {}): EtcdLedgerSpec {
  const spec = parseLedgerUrl(text, DEFAULT, env);
  assert.equal(spec.kind, 'etcd', text);
  return spec as EtcdLedgerSpec;
}

function usage(text: string | undefined, env: NodeJS.ProcessEnv, why: RegExp) {
  assert.throws(
    () => parseLedgerUrl(text, DEFAULT, env),
    (e: unknown) => {
      assert.ok(e instanceof RrmError, `${text}: ${String(e)}`);
      assert.equal(e.code, 'RRM_ERR_USAGE', `${text}`);
      assert.match(e.message, why, `${text}`);
      return true;
    },
  );
}

test('sqlite is the default: unset, empty or the bare word', () => {
  for (const text of [undefined, '', 'sqlite']) {
    assert.deepEqual(parseLedgerUrl(text, DEFAULT), { kind: 'sqlite', path: DEFAULT });
  }
});

test('sqlite:///abs names an explicit file; a relative path is refused', () => {
  assert.deepEqual(parseLedgerUrl('sqlite:///var/lib/rrm/ledger.db', DEFAULT), {
    kind: 'sqlite',
    path: '/var/lib/rrm/ledger.db',
  });
  usage('sqlite://ledger.db', {}, /absolute path/);
  usage('sqlite://', {}, /absolute path/);
});

test('etcd:// hosts get http and the default port; the default prefix is /rrm/', () => {
  assert.deepEqual(parseLedgerUrl('etcd://a:1,b', DEFAULT), {
    kind: 'etcd',
    hosts: ['http://a:1', 'http://b:2379'],
    prefix: '/rrm/',
  });
  assert.deepEqual(etcd('etcd://10.0.0.1:2379,etcd-2.example.com:12379').hosts, [
    'http://10.0.0.1:2379',
    'http://etcd-2.example.com:12379',
  ]);
  assert.deepEqual(etcd('etcd://[::1]:2380').hosts, ['http://[::1]:2380']);
  assert.deepEqual(etcd('etcd://[::1]').hosts, ['http://[::1]:2379']);
  assert.deepEqual(etcd('etcd://a:65535').hosts, ['http://a:65535']);
});

test('a path sets the key prefix, always ending in /', () => {
  assert.equal(etcd('etcd://a/').prefix, '/rrm/');
  assert.equal(etcd('etcd://a/x').prefix, '/x/');
  assert.equal(etcd('etcd://a:1,b/x/').prefix, '/x/');
  assert.equal(etcd('etcd://a/team/rrm').prefix, '/team/rrm/');
});

test('etcds:// uses https and reads the TLS files from the environment', () => {
  const env = { RRM_ETCD_CA: '/pki/ca.pem', RRM_ETCD_CERT: '/pki/c.pem', RRM_ETCD_KEY: '/pki/k.pem' };
  const spec = etcd('etcds://a:1,b', env);
  assert.deepEqual(spec.hosts, ['https://a:1', 'https://b:2379']);
  assert.equal(spec.prefix, '/rrm/');
  assert.deepEqual(
    { ca: spec.tls?.ca, cert: spec.tls?.cert, key: spec.tls?.key },
    { ca: '/pki/ca.pem', cert: '/pki/c.pem', key: '/pki/k.pem' },
  );
  assert.equal(spec.auth, undefined);
  // CA only (server-authenticated TLS), and no files at all (system trust store)
  const caOnly = etcd('etcds://a', { RRM_ETCD_CA: '/pki/ca.pem' });
  assert.equal(caOnly.tls?.ca, '/pki/ca.pem');
  assert.equal(caOnly.tls?.cert, undefined);
  assert.equal(caOnly.tls?.key, undefined);
  const bare = etcd('etcds://a');
  assert.ok(bare.tls, 'etcds always carries a tls block');
  assert.equal(bare.tls.ca, undefined);
  // plain etcd carries no tls block
  assert.equal('tls' in etcd('etcd://a'), false);
});

test('user:password@ in the URL authenticates, percent-decoded, and wins over the environment', () => {
  const spec = etcd('etcd://root:s%40cret%2F1@a:1,b/x');
  assert.deepEqual(spec.auth, { username: 'root', password: 's@cret/1' });
  assert.deepEqual(spec.hosts, ['http://a:1', 'http://b:2379']);
  assert.equal(spec.prefix, '/x/');
  const env = { RRM_ETCD_USER: 'envuser', RRM_ETCD_PASSWORD: 'envpass' };
  assert.deepEqual(etcd('etcd://root:pw@a', env).auth, { username: 'root', password: 'pw' });
  assert.deepEqual(etcd('etcds://u:p@a').auth, { username: 'u', password: 'p' });
});

test('RRM_ETCD_USER and RRM_ETCD_PASSWORD authenticate when the URL has no user', () => {
  const spec = etcd('etcd://a', { RRM_ETCD_USER: 'svc', RRM_ETCD_PASSWORD: 'pw' });
  assert.deepEqual(spec.auth, { username: 'svc', password: 'pw' });
  assert.equal('auth' in etcd('etcd://a'), false);
});

test('RRM_ETCD_RETENTION sets how long ended reservations are kept; 0 keeps them; bad values are refused', () => {
  assert.equal('retentionMs' in etcd('etcd://a'), false, 'unset: the store default');
  assert.equal(etcd('etcd://a', { RRM_ETCD_RETENTION: '2h' }).retentionMs, 7_200_000);
  assert.equal(etcd('etcd://a', { RRM_ETCD_RETENTION: '0' }).retentionMs, 0);
  for (const bad of ['abc', '-5s', '1x'])
    assert.throws(
      () => parseLedgerUrl('etcd://a', '/x', { RRM_ETCD_RETENTION: bad }),
      (e: unknown) =>
        e instanceof RrmError && e.code === 'RRM_ERR_BAD_DURATION' && /RRM_ETCD_RETENTION/.test(e.message),
    );
});

test('TLS files with plain etcd:// and half a client certificate are usage errors', () => {
  usage('etcd://a', { RRM_ETCD_CA: '/pki/ca.pem' }, /etcds:\/\//);
  usage('etcd://a', { RRM_ETCD_CERT: '/c', RRM_ETCD_KEY: '/k' }, /etcds:\/\//);
  usage('etcds://a', { RRM_ETCD_CERT: '/pki/c.pem' }, /RRM_ETCD_CERT and RRM_ETCD_KEY/);
  usage('etcds://a', { RRM_ETCD_CA: '/ca', RRM_ETCD_KEY: '/pki/k.pem' }, /RRM_ETCD_CERT and RRM_ETCD_KEY/);
});

test('a user without a password (or the reverse) is a usage error', () => {
  usage('etcd://a', { RRM_ETCD_USER: 'svc' }, /both a user and a password/);
  usage('etcd://a', { RRM_ETCD_PASSWORD: 'pw' }, /both a user and a password/);
  usage('etcd://svc@a', {}, /not host or host:port/);
});

test('bad ports and malformed hosts are usage errors naming the host', () => {
  usage('etcd://a:0', {}, /"a:0" is not host or host:port/);
  usage('etcd://a:65536', {}, /"a:65536"/);
  usage('etcd://a:123456', {}, /"a:123456"/);
  usage('etcd://a:x', {}, /"a:x"/);
  usage('etcd://a:', {}, /"a:"/);
  usage('etcd://a,,b', {}, /"" is not host/);
  usage('etcd://a,', {}, /not host or host:port/);
  usage('etcd://a b', {}, /not host or host:port/);
  usage('etcd://a_b', {}, /not host or host:port/);
});

test('anything else is a usage error listing the accepted forms', () => {
  for (const text of ['garbage', 'sqlite:', 'http://a:2379', 'etcd://', 'etcd:///x', 'etcd:/a', 'ETCD://a']) {
    usage(text, {}, /use sqlite, sqlite:\/\/\/path, etcd:\/\//);
  }
});

test('the environment is read only from the argument, not from process.env', () => {
  const saved = process.env.RRM_ETCD_CA;
  process.env.RRM_ETCD_CA = '/pki/ca.pem';
  try {
    assert.equal('tls' in etcd('etcd://a'), false);
  } finally {
    if (saved === undefined) delete process.env.RRM_ETCD_CA;
    else process.env.RRM_ETCD_CA = saved;
  }
});
