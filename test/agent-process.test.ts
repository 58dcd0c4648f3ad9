/**
 * The agent as a real process: 200 concurrent clients with an auditor reading the ledger file while
 * the agent is killed with SIGKILL and restarted; remote installs over TCP; Prometheus scraping;
 * graceful shutdown; the CLI through the Unix socket.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync, watch } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { spawnAgent, TOKENS, type AgentProcess } from './support/agent.js';
import { JOB, readLog, rrm, start, waitFor } from './support/cli.js';
import { testCgroups } from './support/cgroups-left.js';

testCgroups();

const STRESS_SECONDS = Number(process.env.RRM_STRESS_SECONDS ?? 60);
const keepAlive = new Agent({ keepAlive: true, maxSockets: 256 });

function call(
  url: string,
  method: string,
  path: string,
  body?: unknown,
  token = TOKENS.alice,
  timeoutMs = 15_000,
): Promise<{ status: number; body: any }> {
  const u = new URL(url);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        method,
        path,
        agent: keepAlive,
        timeout: timeoutMs,
        headers: {
          authorization: `Bearer ${token}`,
          ...(payload ? { 'content-type': 'application/json' } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          // Not every server answers JSON (Prometheus says "Service Unavailable" while it starts).
          let parsed: unknown = undefined;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = { text };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function stop(a: AgentProcess, signal: NodeJS.Signals): Promise<number | null> {
  return new Promise((resolve) => {
    if (a.child.exitCode !== null) return resolve(a.child.exitCode);
    a.child.once('exit', (code) => resolve(code));
    a.child.kill(signal);
  });
}

test(`200 clients for ${STRESS_SECONDS} s with the agent killed and restarted: no invariant broken, nothing lost or granted twice`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rrm-stress-'));
  const port = await freePort();
  let agent = await spawnAgent(dir, port);
  const url = agent.url;
  assert.equal(
    (
      await call(
        url,
        'PUT',
        '/v1/instances/local/allocatable',
        { allocatable: { cpu: '4', memory: '8Gi' } },
        TOKENS.admin,
      )
    ).status,
    200,
  );

  // The auditor reads the ledger file itself after every commit and checks Σ grants ≤ allocatable.
  const db = new Database(join(dir, 'ledger.db'), { readonly: true, fileMustExist: true });
  const violations: string[] = [];
  let audits = 0;
  const audit = (): void => {
    try {
      const inst = db.prepare(`SELECT allocatable FROM instances WHERE id = 'local'`).get() as {
        allocatable: string;
      };
      const alloc = JSON.parse(inst.allocatable) as Record<string, number>;
      const rows = db
        .prepare(`SELECT record FROM reservations WHERE instance = 'local' AND state = 'granted'`)
        .all() as { record: string }[];
      const used: Record<string, number> = {};
      for (const { record } of rows) {
        const r = JSON.parse(record) as { requests: Record<string, number>; pausedAt?: number };
        for (const [d, n] of Object.entries(r.requests)) used[d] = (used[d] ?? 0) + n;
      }
      for (const [d, n] of Object.entries(used))
        if (n > (alloc[d] ?? 0)) violations.push(`${d}: ${n} > ${alloc[d]}`);
      audits++;
    } catch {
      // busy or mid-checkpoint: the next change audits again
    }
  };
  const watcher = watch(dir, (_e, name) => {
    if (name === 'ledger.db.notify') audit();
  });
  const auditTimer = setInterval(audit, 50);

  const created = new Set<string>();
  let stopAt = Date.now() + STRESS_SECONDS * 1000;
  let pairs = 0;
  let pairsAfterRestart = 0;
  let restarted = false;
  let errors = 0;
  const client = async (i: number): Promise<void> => {
    while (Date.now() < stopAt) {
      try {
        const cpu = 100 + ((i * 37) % 10) * 100;
        const c = await call(url, 'POST', '/v1/reservations', {
          requests: { cpu: `${cpu}m`, memory: '64Mi' },
          leaseMs: 5000,
          priority: i % 10 === 0 ? 'system' : 'normal',
        });
        if (c.status !== 201 && c.status !== 202) {
          errors++;
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        const id = c.body.reservation.id as string;
        created.add(id);
        let state = c.body.reservation.state as string;
        while (state === 'queued' && Date.now() < stopAt + 10_000) {
          const w = await call(url, 'GET', `/v1/reservations/${id}/wait?timeoutMs=3000`);
          state = w.body?.reservation?.state ?? state;
          if (state === 'queued')
            await call(url, 'POST', `/v1/reservations/${id}/renew`, { token: c.body.token });
        }
        if (state === 'granted') {
          await call(url, 'POST', `/v1/reservations/${id}/renew`, { token: c.body.token });
          await new Promise((r) => setTimeout(r, 5 + (i % 20)));
          pairs++;
          if (restarted) pairsAfterRestart++;
        }
        await call(url, 'POST', `/v1/reservations/${id}/release`, { token: c.body.token });
      } catch {
        errors++; // the agent is down: try again shortly
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };
  const clients = Array.from({ length: 200 }, (_, i) => client(i));

  // Midway: SIGKILL the agent, note the queue, restart it on the same port.
  await new Promise((r) => setTimeout(r, (STRESS_SECONDS * 1000) / 2));
  await stop(agent, 'SIGKILL');
  const queuedAtKill = (
    db.prepare(`SELECT id FROM reservations WHERE state = 'queued'`).all() as { id: string }[]
  ).map((r) => r.id);
  await new Promise((r) => setTimeout(r, 500));
  agent = await spawnAgent(dir, port);
  restarted = true;
  stopAt = Math.min(stopAt, Date.now() + (STRESS_SECONDS * 1000) / 2);
  await Promise.all(clients);
  // Leases of anything abandoned run out; then nothing may be held.
  await waitFor(
    'ledger drained',
    () => {
      const n = (
        db.prepare(`SELECT COUNT(*) AS n FROM reservations WHERE state IN ('granted','queued')`).get() as {
          n: number;
        }
      ).n;
      return n === 0 ? true : undefined;
    },
    30_000,
  );
  clearInterval(auditTimer);
  watcher.close();
  audit();

  const ids = new Set((db.prepare(`SELECT id FROM reservations`).all() as { id: string }[]).map((r) => r.id));
  for (const id of created)
    assert.ok(ids.has(id), `${id} was acknowledged to a client but is not in the ledger`);
  for (const id of queuedAtKill) assert.ok(ids.has(id), `${id} was queued at the crash and is gone`);
  const twice = db
    .prepare(
      `SELECT reservation, COUNT(*) AS n FROM events WHERE type = 'granted' GROUP BY reservation HAVING n > 1`,
    )
    .all();
  assert.deepEqual(twice, [], 'no reservation granted twice');
  const ended = db
    .prepare(
      `SELECT reservation, COUNT(*) AS n FROM events WHERE type IN ('released','expired','preempted','timed-out','cancelled') GROUP BY reservation HAVING n > 1`,
    )
    .all();
  assert.deepEqual(ended, [], 'no reservation ended twice');
  assert.deepEqual(violations, []);
  t.diagnostic(
    `stress: ${created.size} reservations, ${pairs} granted pairs (${pairsAfterRestart} after the restart), ${audits} audits, ${errors} client errors (agent down), ${queuedAtKill.length} queued at the kill`,
  );
  assert.ok(pairs > 1000, `work got done (${pairs} pairs)`);
  assert.ok(pairsAfterRestart > 100, `work went on after the restart (${pairsAfterRestart} pairs)`);
  assert.ok(audits > 100, `the auditor checked the ledger (${audits} audits)`);
  db.close();
  assert.equal(await stop(agent, 'SIGTERM'), 0);
});

test('a remote install over TCP of a real npm package streams its output back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rrm-remote-'));
  const agent = await spawnAgent(dir);
  try {
    const prefix = mkdtempSync(join(tmpdir(), 'rrm-remote-prefix-'));
    const r = await rrm(
      dir,
      [
        '--agent',
        agent.url,
        'run',
        '--cpu',
        '500m',
        '--memory',
        '256Mi',
        '--',
        'npm',
        'install',
        '--no-save',
        '--no-audit',
        '--no-fund',
        '--prefix',
        prefix,
        'is-number@7.0.0',
      ],
      {
        RRM_AGENT_TOKEN: TOKENS.admin,
        RRM_STATE_DIR: join(dir, 'client-state'),
      },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /added 1 package/);
    assert.match(r.stderr, /granted cpu=500m memory=256Mi/);
    assert.ok(existsSync(join(prefix, 'node_modules/is-number/package.json')));
    const list = await call(agent.url, 'GET', '/v1/reservations?state=released', undefined, TOKENS.admin);
    const mine = list.body.reservations.find((x: { command?: string[] }) =>
      x.command?.includes('is-number@7.0.0'),
    );
    assert.ok(mine?.usage?.wallMs > 0, 'the measured usage is recorded');
    const denied = await rrm(dir, ['--agent', agent.url, 'run', '--', 'true'], {
      RRM_AGENT_TOKEN: TOKENS.alice,
      RRM_STATE_DIR: join(dir, 'client-state'),
    });
    assert.equal(denied.code, 77, 'only admins run installs on the agent');
  } finally {
    await stop(agent, 'SIGTERM');
  }
});

test('promtool accepts /metrics, and a real Prometheus server scrapes the agent', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rrm-prom-'));
  const agent = await spawnAgent(dir);
  const prom = join(dir, 'prometheus');
  const promPort = await freePort();
  let server: ReturnType<typeof spawn> | undefined;
  try {
    for (let i = 0; i < 3; i++) {
      const c = await call(agent.url, 'POST', '/v1/reservations', { requests: { cpu: '100m' } });
      await call(agent.url, 'POST', `/v1/reservations/${c.body.reservation.id}/release`, {
        token: c.body.token,
      });
    }
    const held = await call(agent.url, 'POST', '/v1/reservations', {
      requests: { cpu: '1500m', memory: '256Mi' },
    });
    assert.equal(held.status, 201);
    const metrics = await new Promise<string>((resolve, reject) => {
      request(`${agent.url}/metrics`, (res) => {
        let s = '';
        res.on('data', (d) => (s += d));
        res.on('end', () => resolve(s));
      })
        .on('error', reject)
        .end();
    });
    assert.match(
      metrics,
      /rrm_reservations_total\{outcome="released",mode="hard",priority_class="normal"\} 3/,
    );
    // Base units with resource and unit labels: 1500m is 1.5 cores, 256Mi is 268435456 bytes.
    assert.match(metrics, /rrm_reserved\{instance="[^"]+",resource="cpu",unit="core"\} 1\.5\n/);
    assert.match(metrics, /rrm_reserved\{instance="[^"]+",resource="memory",unit="byte"\} 268435456\n/);
    assert.match(metrics, /rrm_allocatable\{instance="[^"]+",resource="cpu",unit="core"\} \d/);
    await call(agent.url, 'POST', `/v1/reservations/${held.body.reservation.id}/release`, {
      token: held.body.token,
    });
    const check = execFileSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
    t.diagnostic(`promtool: ${check.trim() || 'ok'}`);
    const port = new URL(agent.url).port;
    writeFileSync(
      join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rrm\n    static_configs:\n      - targets: ['127.0.0.1:${port}']\n`,
    );
    server = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${prom}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: 'ignore' },
    );
    const value = await waitFor(
      'prometheus query',
      async () => {
        try {
          const q = await call(
            `http://127.0.0.1:${promPort}`,
            'GET',
            `/api/v1/query?query=${encodeURIComponent('sum(rrm_reservations_total{outcome="released"})')}`,
          );
          const v = q.body?.data?.result?.[0]?.value?.[1];
          return v !== undefined ? Number(v) : undefined;
        } catch {
          return undefined;
        }
      },
      30_000,
    );
    assert.equal(value, 4, 'the three pairs and the held reservation, released after the scrape above');
  } finally {
    server?.kill('SIGTERM');
    await stop(agent, 'SIGTERM');
  }
});

test('SIGTERM stops the agent gracefully: a running remote install is stopped and released, the socket removed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rrm-graceful-'));
  const agent = await spawnAgent(dir);
  const log = join(dir, 'jobs.log');
  const install = rrm(
    dir,
    ['--agent', agent.url, 'run', '--cpu', '100m', '--', process.execPath, JOB, log, 'long', '60000'],
    { RRM_AGENT_TOKEN: TOKENS.admin, RRM_STATE_DIR: join(dir, 'client-state') },
  );
  await waitFor('install started', () => readLog(log).find((l) => l.what === 'start'));
  assert.equal(await stop(agent, 'SIGTERM'), 0);
  assert.ok(
    readLog(log).some((l) => l.what === 'term'),
    'the install was asked to stop',
  );
  const done = await install;
  assert.notEqual(done.code, 0);
  assert.equal(existsSync(agent.socket), false);
  const db = new Database(join(dir, 'ledger.db'), { readonly: true });
  const active = db
    .prepare(`SELECT COUNT(*) AS n FROM reservations WHERE state IN ('granted','queued')`)
    .get() as { n: number };
  db.close();
  assert.equal(active.n, 0);
});

test('the CLI goes through the agent’s Unix socket; a kill -9 of the client is reclaimed by the agent', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rrm-via-socket-'));
  const agent = await spawnAgent(dir);
  const log = join(dir, 'jobs.log');
  const env = { RRM_AGENT: agent.socket, RRM_STATE_DIR: join(dir, 'client-state') };
  try {
    const ok = await rrm(dir, ['run', '--cpu', '100m', '--', process.execPath, JOB, log, 'quick', '10'], env);
    assert.equal(ok.code, 0, ok.stderr);
    const holder = start(
      dir,
      ['run', '--cpu', '100m', '--', process.execPath, JOB, log, 'orphan', '60000'],
      env,
    );
    const started = await waitFor('orphan start', () =>
      readLog(log).find((l) => l.name === 'orphan' && l.what === 'start'),
    );
    holder.kill('SIGKILL');
    const r = await waitFor(
      'reclaimed by the agent',
      async () => {
        const x = await call(
          agent.url,
          'GET',
          `/v1/reservations/${started.reservation}`,
          undefined,
          TOKENS.admin,
        );
        return x.body.reservation.state !== 'granted' ? x.body.reservation : undefined;
      },
      10_000,
    );
    assert.equal(r.state, 'expired');
    assert.match(r.reason, /holder process is gone/);
  } finally {
    await stop(agent, 'SIGTERM');
  }
});

test('a remote install survives its client going away, and one interrupted by an agent SIGKILL is reported and run again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rrm-recover-'));
  const port = await freePort();
  let agent = await spawnAgent(dir, port);
  const log = join(dir, 'jobs.log');
  try {
    // The client disconnects at once; the install still runs to its end and is released.
    const u = new URL(agent.url);
    const body = JSON.stringify({
      command: [process.execPath, JOB, log, 'detached', '300'],
      requests: { cpu: '100m' },
    });
    await new Promise<void>((resolve) => {
      const req = request(
        {
          host: u.hostname,
          port: u.port,
          method: 'POST',
          path: '/v1/installs',
          headers: { authorization: `Bearer ${TOKENS.admin}`, 'content-type': 'application/json' },
        },
        (res) => {
          res.destroy();
          resolve();
        },
      );
      req.on('error', () => resolve());
      req.end(body);
    });
    await waitFor('detached install ended', () =>
      readLog(log).find((l) => l.name === 'detached' && l.what === 'end'),
    );
    const detached = readLog(log).find((l) => l.name === 'detached')!.reservation;
    await waitFor('released', async () =>
      (await call(agent.url, 'GET', `/v1/reservations/${detached}`, undefined, TOKENS.admin)).body.reservation
        .state === 'released'
        ? true
        : undefined,
    );

    // An install running when the agent is SIGKILLed is reclaimed and queued again after the restart.
    const install = rrm(
      dir,
      ['--agent', agent.url, 'run', '--cpu', '100m', '--', process.execPath, JOB, log, 'interrupted', '1500'],
      { RRM_AGENT_TOKEN: TOKENS.admin, RRM_STATE_DIR: join(dir, 'client-state') },
    );
    const first = await waitFor('interrupted start', () =>
      readLog(log).find((l) => l.name === 'interrupted' && l.what === 'start'),
    );
    await stop(agent, 'SIGKILL');
    await install;
    agent = await spawnAgent(dir, port);
    const rerun = await waitFor(
      'rerun finished',
      () =>
        readLog(log).find(
          (l) => l.name === 'interrupted' && l.what === 'end' && l.reservation !== first.reservation,
        ),
      20_000,
    );
    const old = (
      await call(agent.url, 'GET', `/v1/reservations/${first.reservation}`, undefined, TOKENS.admin)
    ).body.reservation;
    assert.equal(old.state, 'expired');
    const again = (
      await call(agent.url, 'GET', `/v1/reservations/${rerun.reservation}`, undefined, TOKENS.admin)
    ).body.reservation;
    assert.equal(again.retryOf, first.reservation);
    assert.equal(again.attempt, 2);
  } finally {
    await stop(agent, 'SIGTERM');
  }
});
