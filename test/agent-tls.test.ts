/**
 * The agent's TCP listener over TLS, for real: certificates made by openssl, an HTTPS listener on
 * loopback, clients as the CLI and SDK build them from RRM_AGENT_CA / RRM_AGENT_CERT / RRM_AGENT_KEY.
 * With a client CA the handshake admits only certificates it signed, and the certificate's common
 * name is the caller's identity (policy and holder checks as for tokens).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient, parseAgentUrl } from '../src/client/agent-client.js';
import { isRrmError } from '../src/model/errors.js';
import { makeCa, type Issued } from './support/certs.js';
import { rrm } from './support/cli.js';
import { request } from './support/core-fixtures.js';
import { startTestAgent, TOKENS, type TestAgent } from './support/agent.js';

let dir: string;
let ca: ReturnType<typeof makeCa>;
let server: Issued;
let ops: Issued;
let alice: Issued;
let stranger: Issued;
const agents: TestAgent[] = [];

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'rrm-agent-tls-'));
  ca = makeCa(dir);
  server = ca.issue('agent', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  ops = ca.issue('ops', 'extendedKeyUsage=clientAuth\n');
  alice = ca.issue('alice', 'extendedKeyUsage=clientAuth\n');
  // Same name as an admin, signed by a CA the agent does not trust.
  stranger = makeCa(dir, 'other').issue('ops', 'extendedKeyUsage=clientAuth\n');
});

after(async () => {
  for (const a of agents) await a.agent.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function tlsAgent(tls: Record<string, string>): Promise<{ url: string; instance: string }> {
  const a = await startTestAgent({ tls, policy: { admins: ['root', 'ops'] } });
  agents.push(a);
  const instance = (await a.agent.ledger.instances())[0]!.id;
  return { url: `https://127.0.0.1:${a.agent.tcpAddress!.port}`, instance };
}

const clientEnv = (who?: Issued, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  RRM_AGENT_CA: ca.cert,
  ...(who ? { RRM_AGENT_CERT: who.cert, RRM_AGENT_KEY: who.key } : {}),
  ...extra,
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return isRrmError(e) ? e.code : String(e);
  }
}

test('mutual TLS: the client certificate is the identity; no certificate, a foreign one or plain HTTP gets nowhere', async (t) => {
  const { url, instance } = await tlsAgent({ cert: server.cert, key: server.key, clientCa: ca.cert });
  const as = (env: NodeJS.ProcessEnv): AgentClient => new AgentClient(parseAgentUrl(url, env));
  const holder = { host: 'tls-test', pid: process.pid, startTime: 0, owner: 'ignored' };

  const critical = await as(clientEnv(ops)).reserve(
    request({ target: instance, requests: { cpu: 100 }, priority: 1000, holder }),
  );
  assert.equal(critical.outcome.kind, 'granted');
  assert.equal(critical.outcome.reservation.holder.owner, 'ops', 'the certificate names the owner');

  const asAlice = as(clientEnv(alice));
  assert.equal(
    await code(
      asAlice.reserve(request({ target: instance, requests: { cpu: 100 }, priority: 1000, holder })),
    ),
    'RRM_ERR_FORBIDDEN',
    'alice is no admin: no critical',
  );
  const mine = await asAlice.reserve(request({ target: instance, requests: { cpu: 100 }, holder }));
  assert.equal(mine.outcome.reservation.holder.owner, 'alice');
  assert.equal(
    await code(asAlice.release(critical.outcome.reservation.id, { token: 'not-the-token' })),
    'RRM_ERR_NOT_HOLDER',
  );

  // No certificate: with a token the handshake still refuses; without either the client refuses to start.
  assert.equal(
    await code(as(clientEnv(undefined, { RRM_AGENT_TOKEN: TOKENS.admin })).instances()),
    'RRM_ERR_AGENT_UNAVAILABLE',
  );
  assert.equal(
    await code(Promise.resolve().then(() => parseAgentUrl(url, clientEnv()))),
    'RRM_ERR_UNAUTHENTICATED',
  );
  assert.equal(await code(as(clientEnv(stranger)).instances()), 'RRM_ERR_AGENT_UNAVAILABLE', 'foreign CA');
  // The agent's certificate is checked too: not trusted without the CA.
  assert.equal(
    await code(as({ RRM_AGENT_CERT: ops.cert, RRM_AGENT_KEY: ops.key }).instances()),
    'RRM_ERR_AGENT_UNAVAILABLE',
  );
  const plain = new AgentClient(
    parseAgentUrl(url.replace('https', 'http'), { RRM_AGENT_TOKEN: TOKENS.admin }),
  );
  assert.notEqual(await code(plain.instances()), 'ok', 'plain HTTP to the TLS port');

  // Only what was granted through TLS is in the ledger.
  const active = await as(clientEnv(ops)).list({ states: ['granted', 'queued'] });
  assert.deepEqual(active.map((r) => r.holder.owner).sort(), ['alice', 'ops']);

  // The CLI, as an operator runs it.
  const cli = await rrm(mkdtempSync(join(dir, 'cli-')), ['--agent', url, 'list', '--json'], clientEnv(ops));
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal((JSON.parse(cli.stdout) as { granted: unknown[] }).granted.length, 2);
  const bad = await rrm(dir, ['--agent', url, 'list'], clientEnv(undefined, { RRM_AGENT_CERT: ops.cert }));
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /RRM_AGENT_CERT and RRM_AGENT_KEY go together/);
  t.diagnostic(
    'critical by certificate CN=ops granted; CN=alice refused critical; no/foreign certificate refused',
  );
});

test('TLS without client certificates: bearer tokens over HTTPS', async () => {
  const { url, instance } = await tlsAgent({ cert: server.cert, key: server.key });
  const withToken = new AgentClient(
    parseAgentUrl(url, clientEnv(undefined, { RRM_AGENT_TOKEN: TOKENS.bob })),
  );
  const got = await withToken.reserve(
    request({
      target: instance,
      requests: { cpu: 100 },
      holder: { host: 'h', pid: 1, startTime: 0, owner: 'x' },
    }),
  );
  assert.equal(got.outcome.reservation.holder.owner, 'bob');
  const noToken = new AgentClient({
    ...parseAgentUrl(url, clientEnv(undefined, { RRM_AGENT_TOKEN: TOKENS.bob })),
    token: undefined,
  });
  assert.equal(await code(noToken.instances()), 'RRM_ERR_UNAUTHENTICATED');
});
