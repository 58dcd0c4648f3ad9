/** The agent's HTTP API, in-process (app.inject) and over its real Unix socket and TCP listener. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { createReservationBody } from '../src/agent/schemas.js';
import { request as reservationRequest } from './support/core-fixtures.js';
import { startTestAgent, tokenFile, TOKENS, type TestAgent } from './support/agent.js';

let t: TestAgent;
before(async () => {
  t = await startTestAgent();
});
after(async () => {
  await t.agent.stop();
});

const auth = (token: string) => ({ authorization: `Bearer ${token}` });

async function post(url: string, body: unknown, token = TOKENS.alice) {
  const res = await t.agent.app.inject({
    method: 'POST',
    url,
    headers: auth(token),
    payload: body as object,
  });
  return { status: res.statusCode, body: res.json() as Record<string, any> };
}

async function ledgerState() {
  const reservations = await t.agent.ledger.list({ limit: 10_000 });
  const events = await t.agent.ledger.events({ limit: 10_000 });
  return { reservations: reservations.length, events: events.length };
}

test('create, wait (long poll), renew and release over the API', async () => {
  await t.agent.ledger.setAllocatable(
    'local',
    { cpu: 2000, memory: 4 * 2 ** 30 },
    { cpu: 2000, memory: 4 * 2 ** 30 },
    'test',
  );
  const a = await post('/v1/reservations', { requests: { cpu: '2', memory: '1Gi' } });
  assert.equal(a.status, 201);
  assert.equal(a.body.outcome, 'granted');
  assert.equal(a.body.reservation.tokenHash, undefined, 'the token hash is never shown');
  const b = await post('/v1/reservations', { requests: { cpu: 1000 } });
  assert.equal(b.status, 202);
  assert.equal(b.body.status.position, 1);
  const waiting = t.agent.app.inject({
    method: 'GET',
    url: `/v1/reservations/${b.body.reservation.id}/wait?timeoutMs=10000`,
    headers: auth(TOKENS.alice),
  });
  const renewed = await post(`/v1/reservations/${a.body.reservation.id}/renew`, { token: a.body.token });
  assert.equal(renewed.status, 200);
  const released = await post(`/v1/reservations/${a.body.reservation.id}/release`, { token: a.body.token });
  assert.equal(released.body.reservation.state, 'released');
  const again = await post(`/v1/reservations/${a.body.reservation.id}/release`, { token: a.body.token });
  assert.equal(again.body.reservation.state, 'released', 'release is idempotent');
  const woke = (await waiting).json() as { reservation: { state: string } };
  assert.equal(woke.reservation.state, 'granted');
  await post(`/v1/reservations/${b.body.reservation.id}/release`, { token: b.body.token });
});

test('identity and policy: 401 without a token, 403 for another identity’s release and for a non-admin critical request', async () => {
  const none = await t.agent.app.inject({ method: 'GET', url: '/v1/reservations' });
  assert.equal(none.statusCode, 401);
  assert.equal(none.json().error.code, 'RRM_ERR_UNAUTHENTICATED');
  const mine = await post('/v1/reservations', { requests: { cpu: '100m' } }, TOKENS.alice);
  const before = await ledgerState();
  const theirs = await post(`/v1/reservations/${mine.body.reservation.id}/release`, {}, TOKENS.bob);
  assert.equal(theirs.status, 403);
  assert.equal(theirs.body.error.code, 'RRM_ERR_NOT_HOLDER');
  const crit = await post(
    '/v1/reservations',
    { requests: { cpu: '100m' }, priority: 'critical' },
    TOKENS.alice,
  );
  assert.equal(crit.status, 403);
  assert.equal(crit.body.error.code, 'RRM_ERR_FORBIDDEN');
  const setAlloc = await t.agent.app.inject({
    method: 'PUT',
    url: '/v1/instances/local/allocatable',
    headers: auth(TOKENS.alice),
    payload: { allocatable: { cpu: 1 } },
  });
  assert.equal(setAlloc.statusCode, 403);
  const renewTheirs = await post(`/v1/reservations/${mine.body.reservation.id}/renew`, {}, TOKENS.bob);
  assert.equal(renewTheirs.status, 403);
  assert.equal(renewTheirs.body.error.code, 'RRM_ERR_NOT_HOLDER');
  const forged = await post(
    `/v1/reservations/${mine.body.reservation.id}/renew`,
    { token: 'forged-token-0000' },
    TOKENS.bob,
  );
  assert.equal(forged.status, 403);
  assert.deepEqual(await ledgerState(), before, 'refusals change nothing');
  await new Promise((r) => setTimeout(r, 5));
  const adminRenew = await post(`/v1/reservations/${mine.body.reservation.id}/renew`, {}, TOKENS.admin);
  assert.equal(adminRenew.status, 200, 'an admin may renew anyone’s lease');
  assert.ok(adminRenew.body.reservation.leaseExpiresAt > mine.body.reservation.leaseExpiresAt);
  const admin = await post(`/v1/reservations/${mine.body.reservation.id}/release`, {}, TOKENS.admin);
  assert.equal(admin.body.reservation.state, 'released', 'an admin may release anyone’s');
  const adminCrit = await post(
    '/v1/reservations',
    { requests: { cpu: '100m' }, priority: 'critical' },
    TOKENS.admin,
  );
  assert.equal(adminCrit.status, 201);
  await post(
    `/v1/reservations/${adminCrit.body.reservation.id}/release`,
    { token: adminCrit.body.token },
    TOKENS.admin,
  );
});

test('bad input gets a 4xx with its code and changes nothing', async () => {
  const before = await ledgerState();
  const cases: Array<[string | object, number, string]> = [
    ['{"requests":', 400, 'RRM_ERR_BAD_JSON'],
    [{ requests: { cpu: '-1' } }, 400, 'RRM_ERR_BAD_QUANTITY'],
    [{ requests: { cpu: -5 } }, 400, 'RRM_ERR_BAD_JSON'],
    [{ requests: { cpu: '1' }, surprise: true }, 400, 'RRM_ERR_BAD_JSON'],
    [{ requests: { 'Bad Name': 1 } }, 400, 'RRM_ERR_BAD_JSON'],
    [{ requests: { cpu: '1' }, priority: 'urgent' }, 400, 'RRM_ERR_BAD_PRIORITY'],
    [{ requests: { memory: '1Zi' } }, 400, 'RRM_ERR_BAD_QUANTITY'],
    [{}, 400, 'RRM_ERR_BAD_JSON'],
  ];
  for (const [payload, status, code] of cases) {
    const res = await t.agent.app.inject({
      method: 'POST',
      url: '/v1/reservations',
      headers: { ...auth(TOKENS.alice), 'content-type': 'application/json' },
      payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
    });
    assert.equal(res.statusCode, status, JSON.stringify(payload));
    assert.equal(res.json().error.code, code, JSON.stringify(payload));
  }
  assert.deepEqual(await ledgerState(), before);
});

test('a 100 MB body over the real socket is refused with 413 without reading it all', async () => {
  const before = await ledgerState();
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(
      {
        socketPath: join(t.dir, 'agent.sock'),
        method: 'POST',
        path: '/v1/reservations',
        headers: {
          ...auth(TOKENS.alice),
          'content-type': 'application/json',
          'content-length': 100 * 2 ** 20,
        },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    const chunk = Buffer.alloc(2 ** 20, 0x20);
    let sent = 0;
    const pump = (): void => {
      while (sent < 100 && req.write(chunk)) sent++;
      if (sent < 100) req.once('drain', pump);
      else req.end();
    };
    req.on('socket', (s) => s.on('error', () => undefined));
    pump();
  });
  assert.equal(status, 413);
  assert.deepEqual(await ledgerState(), before);
});

test('idempotency keys return the same reservation and token; quotas refuse with 403', async () => {
  const first = await post('/v1/reservations', { requests: { cpu: '100m' }, idempotencyKey: 'install-42' });
  const retry = await post('/v1/reservations', { requests: { cpu: '100m' }, idempotencyKey: 'install-42' });
  assert.equal(retry.body.reservation.id, first.body.reservation.id);
  assert.equal(retry.body.token, first.body.token);
  const otherUser = await post(
    '/v1/reservations',
    { requests: { cpu: '100m' }, idempotencyKey: 'install-42' },
    TOKENS.bob,
  );
  assert.notEqual(otherUser.body.reservation.id, first.body.reservation.id, 'keys are per identity');
  for (const r of [first, otherUser])
    await post(`/v1/reservations/${r.body.reservation.id}/release`, { token: r.body.token }, TOKENS.admin);
  const q1 = await post('/v1/reservations', { requests: { cpu: '1', memory: '512Mi' } }, TOKENS.quota);
  assert.equal(q1.status, 201);
  const q2 = await post('/v1/reservations', { requests: { cpu: '100m' } }, TOKENS.quota);
  assert.equal(q2.status, 403);
  assert.equal(q2.body.error.code, 'RRM_ERR_QUOTA');
  await post(`/v1/reservations/${q1.body.reservation.id}/release`, { token: q1.body.token }, TOKENS.quota);
});

test('the OpenAPI document is generated from the validating schemas', async () => {
  const doc = (await t.agent.app.inject({ method: 'GET', url: '/openapi.json' })).json();
  assert.equal(doc.openapi, '3.1.0');
  assert.deepEqual(
    doc.paths['/v1/reservations'].post.requestBody.content['application/json'].schema,
    JSON.parse(JSON.stringify(createReservationBody)),
  );
  for (const p of [
    '/v1/reservations/{id}/wait',
    '/v1/reservations/{id}/release',
    '/v1/instances/{id}/allocatable',
    '/v1/events',
    '/v1/installs',
  ])
    assert.ok(doc.paths[p], p);
  assert.equal(doc['x-error-codes'].RRM_ERR_QUOTA.status, 403);
});

test('local identities: the socket is not world-writable, and each user’s token file is readable only by that user', async () => {
  const sock = statSync(join(t.dir, 'agent.sock'));
  assert.equal(sock.mode & 0o002, 0, 'not world-writable');
  const file = statSync(join(t.dir, 'tokens', 'root'));
  assert.equal(file.mode & 0o777, 0o400);
  const root = tokenFile(t.dir, 'root');
  const res = await t.agent.app.inject({ method: 'GET', url: '/v1/instances', headers: auth(root) });
  assert.equal(res.statusCode, 200);
});

test('the event stream delivers transitions as they commit', async () => {
  const events: string[] = [];
  const done = new Promise<void>((resolve, reject) => {
    const req = request(
      {
        socketPath: join(t.dir, 'agent.sock'),
        path: '/v1/events',
        headers: { ...auth(TOKENS.alice), accept: 'text/event-stream' },
      },
      (res) => {
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          for (const m of d.matchAll(/^event: (\S+)$/gm)) events.push(m[1] as string);
          if (events.includes('released')) {
            req.destroy();
            resolve();
          }
        });
      },
    );
    req.on('error', (e) => (events.includes('released') ? resolve() : reject(e)));
    req.end();
  });
  await new Promise((r) => setTimeout(r, 200));
  const r = await post('/v1/reservations', { requests: { cpu: '100m' } });
  await post(`/v1/reservations/${r.body.reservation.id}/release`, { token: r.body.token });
  await done;
  assert.deepEqual(
    events.filter((e) => ['queued', 'granted', 'released'].includes(e)),
    ['queued', 'granted', 'released'],
  );
});

test('target any over the API: placed on an instance that matches, refused with a reason otherwise; the status of instances', async () => {
  const placed = await post('/v1/reservations', {
    requests: { cpu: 100 },
    target: 'any',
    selector: { host: '!nowhere' },
    strategy: 'most-allocated',
  });
  assert.equal(placed.status, 201, JSON.stringify(placed.body));
  assert.equal(placed.body.reservation.instance, 'local');
  assert.deepEqual(placed.body.reservation.placement, {
    selector: { host: '!nowhere' },
    strategy: 'most-allocated',
  });
  // Granted already: relocating it changes nothing.
  const same = await post(`/v1/reservations/${placed.body.reservation.id}/relocate`, {
    token: placed.body.token,
  });
  assert.equal(same.status, 200);
  assert.equal(same.body.reservation.id, placed.body.reservation.id);
  const stranger = await post(`/v1/reservations/${placed.body.reservation.id}/relocate`, {
    token: 'x'.repeat(20),
  });
  assert.equal(stranger.status, 403);

  const before = await ledgerState();
  const none = await post('/v1/reservations', {
    requests: { cpu: 100 },
    target: 'any',
    selector: { zone: 'mars' },
  });
  assert.equal(none.status, 503);
  assert.equal(none.body.error.code, 'RRM_ERR_NO_INSTANCE');
  assert.match(none.body.error.message, /zone=mars.*local \(labels differ\)/);
  const misplaced = await post('/v1/reservations', { requests: { cpu: 100 }, selector: { zone: 'a' } });
  assert.equal(misplaced.status, 400);
  assert.match(misplaced.body.error.message, /only with target "any"/);
  assert.deepEqual(await ledgerState(), before, 'refusals leave the ledger unchanged');

  const status = await t.agent.app.inject({
    method: 'GET',
    url: '/v1/instances/status',
    headers: auth(TOKENS.alice),
  });
  const [local] = status.json().instances as {
    instance: { id: string };
    state: string;
    grants: number;
    granted: { cpu?: number };
  }[];
  assert.equal(local?.instance.id, 'local');
  assert.equal(local?.state, 'unmanaged', 'the embedded ledger has no registration to lapse');
  assert.ok((local?.grants ?? 0) >= 1);
  assert.ok((local?.granted.cpu ?? 0) >= 100);
  await post(`/v1/reservations/${placed.body.reservation.id}/release`, { token: placed.body.token });
});

test('a handler that overruns handlerTimeout answers 503 RRM_ERR_HANDLER_TIMEOUT; long polls are exempt', async () => {
  const slow = await startTestAgent({ handlerTimeout: '150ms' });
  try {
    const ledger = slow.agent.ledger;
    const list = ledger.list.bind(ledger);
    ledger.list = async (filter) => {
      await new Promise((r) => setTimeout(r, 600));
      return list(filter);
    };
    const res = await slow.agent.app.inject({
      method: 'GET',
      url: '/v1/reservations',
      headers: auth(TOKENS.alice),
    });
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().error.code, 'RRM_ERR_HANDLER_TIMEOUT');
    ledger.list = list;
    assert.equal(
      (await slow.agent.app.inject({ method: 'GET', url: '/v1/reservations', headers: auth(TOKENS.alice) }))
        .statusCode,
      200,
    );
    // A long poll waits its own timeout (400 ms here), well past the handler timeout.
    await slow.agent.ledger.setAllocatable('local', { cpu: 1000 }, { cpu: 1000 }, 'test');
    const held = await slow.agent.app.inject({
      method: 'POST',
      url: '/v1/reservations',
      headers: auth(TOKENS.alice),
      payload: { requests: { cpu: 1000 } },
    });
    const queued = await slow.agent.app.inject({
      method: 'POST',
      url: '/v1/reservations',
      headers: auth(TOKENS.alice),
      payload: { requests: { cpu: 1000 } },
    });
    assert.equal(queued.statusCode, 202);
    const started = Date.now();
    const waited = await slow.agent.app.inject({
      method: 'GET',
      url: `/v1/reservations/${queued.json().reservation.id}/wait?timeoutMs=400`,
      headers: auth(TOKENS.alice),
    });
    assert.equal(waited.statusCode, 200, waited.body);
    assert.ok(Date.now() - started >= 380, 'the long poll ran to its own timeout');
    for (const r of [held, queued])
      await slow.agent.app.inject({
        method: 'POST',
        url: `/v1/reservations/${r.json().reservation.id}/release`,
        headers: auth(TOKENS.alice),
        payload: { token: r.json().token },
      });
  } finally {
    await slow.agent.stop();
  }
});

test('dry run over the API: what a create would do now, committing nothing; the CLI uses it through the agent', async () => {
  await t.agent.ledger.setAllocatable(
    'local',
    { cpu: 2000, memory: 2 ** 32 },
    { cpu: 2000, memory: 2 ** 32 },
    'test',
  );
  const held = await post('/v1/reservations', { requests: { cpu: '2' }, priority: 'batch' });
  assert.equal(held.status, 201);
  const before = await ledgerState();
  const dry = async (body: unknown, token = TOKENS.alice) => post('/v1/reservations/dry-run', body, token);
  const queue = await dry({ requests: { cpu: '1' }, priority: 'batch' });
  assert.equal(queue.status, 200);
  assert.equal(queue.body.prediction.would, 'queue at position 1');
  const preempt = await dry({ requests: { cpu: '1' }, priority: 'system' }, TOKENS.admin);
  assert.deepEqual(preempt.body.prediction.victims, [held.body.reservation.id]);
  assert.match((await dry({ requests: { cpu: '3' } })).body.prediction.would, /^reject: can never fit/);
  const critical = await dry({ requests: { cpu: '1' }, priority: 'critical' });
  assert.equal(critical.status, 403, 'the priority policy applies to a dry run too');
  assert.deepEqual(await ledgerState(), before, 'a dry run commits nothing');
  // The AgentClient (what rrm run --dry-run uses through an agent) answers the same.
  const viaClient = await t
    .client(TOKENS.alice)
    .predict(reservationRequest({ target: 'local', requests: { cpu: 1000 }, priority: 100 }));
  assert.equal(viaClient.would, 'queue at position 1');
  await post(`/v1/reservations/${held.body.reservation.id}/release`, { token: held.body.token });
});
