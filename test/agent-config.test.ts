import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { advertisedEndpoint, compileAgentConfig } from '../src/agent/agent-config.js';
import { checkPriority, checkQuota } from '../src/agent/policy.js';
import { ROOT } from './support/cli.js';

test('the example config in deploy/ compiles; values are parsed once and frozen', () => {
  const c = compileAgentConfig({}, { config: join(ROOT, 'deploy/agent.example.json') }, '/var/lib/rrm');
  assert.deepEqual(c.listen, { host: '0.0.0.0', port: 7411 });
  assert.equal(c.policy.maxPriority['ci-runner'], 500);
  assert.deepEqual(c.policy.quotas['ci-runner'], { cpu: 4000, memory: 8 * 2 ** 30 });
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.policy));
  assert.equal(c.bodyLimit, 65536);
});

test('the registered endpoint: advertise wins, else the bound listener, a wildcard by host name', () => {
  const c = compileAgentConfig(
    { RRM_AGENT_ADVERTISE: 'http://node-7.internal:7411/' },
    { config: join(ROOT, 'deploy/agent.example.json') },
    '/var/lib/rrm',
  );
  assert.equal(c.advertise, 'http://node-7.internal:7411');
  const bound = { host: '0.0.0.0', port: 7411 };
  assert.equal(advertisedEndpoint(c.advertise, bound, 'h'), 'http://node-7.internal:7411');
  assert.equal(advertisedEndpoint(null, bound, 'node-7'), 'http://node-7:7411');
  assert.equal(advertisedEndpoint(null, { host: '127.0.0.1', port: 40123 }, 'h'), 'http://127.0.0.1:40123');
  assert.equal(advertisedEndpoint(null, { host: '::1', port: 1 }, 'h'), 'http://[::1]:1');
  assert.equal(advertisedEndpoint(null, undefined, 'h'), undefined);
});

test('bad configs fail at start with the field named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rrm-cfg-'));
  const cases: Array<[unknown, RegExp]> = [
    [{ listen: 'nope' }, /listen: "nope" is not host:port/],
    [{ lissen: '1:2' }, /lissen: unknown field/],
    [{ policy: { quotas: { x: { cpu: '-1' } } } }, /policy.quotas.x.cpu/],
    [{ tokens: { x: { token: 'short' } } }, /tokens.x.token: must be at least 16/],
    [{ maxWait: 'forever' }, /maxWait/],
    [{ advertise: 'host:7411' }, /advertise: "host:7411" is not http:\/\/host:port/],
    [{ advertise: 'http://h:7411/path' }, /advertise/],
    [
      { listen: '127.0.0.1:0', tls: { cert: '/nonexistent.pem', key: '/nonexistent.key' } },
      /tls.cert: cannot read \/nonexistent.pem: ENOENT/,
    ],
    [{ listen: '127.0.0.1:0', tls: { cert: '/etc/hostname' } }, /tls: needs both cert and key/],
    [
      { listen: '127.0.0.1:0', tls: { cert: '/etc/hostname', key: '/etc/hostname', ca: 'x' } },
      /tls.ca: unknown field/,
    ],
    [{ tls: { cert: '/etc/hostname', key: '/etc/hostname' } }, /tls: applies to the TCP listener/],
  ];
  for (const [body, message] of cases) {
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify(body));
    assert.throws(() => compileAgentConfig({}, { config: file }, dir), message);
  }
  writeFileSync(join(dir, 'broken.json'), '{');
  assert.throws(() => compileAgentConfig({}, { config: join(dir, 'broken.json') }, dir), /cannot read/);
});

test('policy: non-admins get at most their class; quotas count granted and queued', () => {
  const policy = compileAgentConfig({}, { config: join(ROOT, 'deploy/agent.example.json') }, '/x').policy;
  assert.throws(() => checkPriority({ name: 'ci-runner', admin: false }, 800, policy), {
    code: 'RRM_ERR_FORBIDDEN',
  });
  checkPriority({ name: 'ci-runner', admin: false }, 500, policy);
  checkPriority({ name: 'root', admin: true }, 1000, policy);
  const held = (state: 'granted' | 'queued', cpu: number) =>
    ({ state, requests: { cpu }, holder: { owner: 'ci-runner' } }) as never;
  checkQuota([held('granted', 2000), held('queued', 1000)], 'ci-runner', { cpu: 1000 }, policy);
  assert.throws(
    () => checkQuota([held('granted', 2000), held('queued', 1000)], 'ci-runner', { cpu: 1001 }, policy),
    { code: 'RRM_ERR_QUOTA' },
  );
});
