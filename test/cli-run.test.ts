/** End-to-end: the real rrm executable, real processes, a real SQLite ledger file. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { JOB, fileHash, groupAlive, readLog, rrm, rrmJson, start, stateDir, waitFor } from './support/cli.js';
import { testCgroups } from './support/cgroups-left.js';

testCgroups();

interface ListJson {
  granted: Array<{ id: string; pgid?: number; holder: { pid: number } }>;
  queued: Array<{ id: string; priority: number }>;
}

async function setCapacity(dir: string, ...flags: string[]): Promise<void> {
  const r = await rrm(dir, ['capacity', 'set', ...flags]);
  assert.equal(r.code, 0, r.stderr);
}

/**
 * A batch command holding the only CPU, then a critical one for that CPU: the critical run has
 * ended when this returns; `batch` is the preempted `rrm run`, still to be awaited.
 */
async function criticalPreemptsBatch(
  batchFlags: readonly string[],
  batchMs: string,
  criticalMs: string,
): Promise<{
  dir: string;
  log: string;
  batch: ReturnType<typeof start>;
  critical: Awaited<ReturnType<typeof rrm>>;
}> {
  const dir = stateDir();
  const log = join(dir, 'jobs.log');
  await setCapacity(dir, '--cpu', '1');
  const run = ['run', '--cpu', '1', '--priority'];
  const batch = start(dir, [
    ...run,
    'batch',
    ...batchFlags,
    '--',
    process.execPath,
    JOB,
    log,
    'batch',
    batchMs,
  ]);
  await waitFor('batch start', () => readLog(log).find((l) => l.what === 'start'));
  const critical = await rrm(dir, [
    ...run,
    'critical',
    '--',
    process.execPath,
    JOB,
    log,
    'critical',
    criticalMs,
  ]);
  return { dir, log, batch, critical };
}

/** Max number of [start, end] intervals that overlap, from the job log. */
function maxOverlap(log: ReturnType<typeof readLog>): number {
  const points = log
    .filter((l) => l.what === 'start' || l.what === 'end' || l.what === 'term')
    .map((l) => [l.at, l.what === 'start' ? 1 : -1] as const)
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0;
  let max = 0;
  for (const [, d] of points) max = Math.max(max, (cur += d));
  return max;
}

test('eight concurrent runs of 1 CPU on 2 allocatable CPUs: at most two at a time, all finish, nothing left granted', async () => {
  const dir = stateDir();
  const log = join(dir, 'jobs.log');
  await setCapacity(dir, '--cpu', '2', '--memory', '4Gi');
  const runs = Array.from({ length: 8 }, (_, i) =>
    rrm(dir, ['run', '--cpu', '1', '--memory', '100Mi', '--', process.execPath, JOB, log, `job${i}`, '300']),
  );
  const results = await Promise.all(runs);
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  const lines = readLog(log);
  assert.equal(lines.filter((l) => l.what === 'end').length, 8);
  assert.ok(maxOverlap(lines) <= 2, `overlap ${maxOverlap(lines)}`);
  assert.equal(maxOverlap(lines), 2, 'two at a time were admitted');
  const list = await rrmJson<ListJson>(dir, ['list']);
  assert.deepEqual([list.granted.length, list.queued.length], [0, 0]);
});

test('exit codes pass through, the handle is in the environment, and failure still releases', async () => {
  const dir = stateDir();
  const log = join(dir, 'jobs.log');
  const r = await rrm(dir, ['run', '--cpu', '100m', '--', process.execPath, JOB, log, 'x', '10', '7']);
  assert.equal(r.code, 7);
  const [line] = readLog(log);
  assert.match(line?.reservation ?? '', /^rsv_/);
  const history = await rrmJson<Array<{ id: string; state: string }>>(dir, ['history']);
  assert.deepEqual(
    history.map((h) => [h.id, h.state]),
    [[line?.reservation, 'released']],
  );
  const missing = await rrm(dir, ['run', '--', '/nonexistent/installer']);
  assert.equal(missing.code, 127);
  assert.match(missing.stderr, /command not found; nothing was reserved/);
});

test('kill -9 of rrm run: its command group is killed and the next waiter is granted within 2 s', async (t) => {
  const dir = stateDir();
  const log = join(dir, 'jobs.log');
  await setCapacity(dir, '--cpu', '1');
  const holder = start(dir, ['run', '--cpu', '1', '--', process.execPath, JOB, log, 'victim', '60000']);
  const started = await waitFor('victim start', () => readLog(log).find((l) => l.what === 'start'));
  const waiter = start(dir, ['run', '--cpu', '1', '--', process.execPath, JOB, log, 'next', '10']);
  await waitFor('waiter queued', async () =>
    (await rrmJson<ListJson>(dir, ['list'])).queued.length === 1 ? true : undefined,
  );
  const killedAt = Date.now();
  holder.kill('SIGKILL');
  const next = await waitFor('next start', () =>
    readLog(log).find((l) => l.name === 'next' && l.what === 'start'),
  );
  t.diagnostic(`next command started ${next.at - killedAt} ms after the kill`);
  assert.ok(next.at - killedAt < 2000, `granted ${next.at - killedAt} ms after the kill`);
  assert.equal(groupAlive(started.pid), false, 'the orphaned command group is gone');
  assert.ok(!readLog(log).some((l) => l.name === 'victim' && l.what === 'end'));
  assert.equal((await waiter.done).code, 0);
  const events = await rrmJson<Array<{ type: string; reason: string }>>(dir, [
    'history',
    started.reservation,
  ]);
  assert.ok(
    events.some((e) => e.type === 'expired' && /holder process is gone/.test(e.reason)),
    JSON.stringify(events),
  );
});

test('a critical request queued behind five batch waiters starts first', async () => {
  const dir = stateDir();
  const log = join(dir, 'jobs.log');
  await setCapacity(dir, '--cpu', '1');
  const first = start(dir, [
    'run',
    '--cpu',
    '1',
    '--non-preemptible',
    '--',
    process.execPath,
    JOB,
    log,
    'first',
    '60000',
  ]);
  await waitFor('first start', () => readLog(log).find((l) => l.what === 'start'));
  const batch = [];
  for (let i = 0; i < 5; i++) {
    batch.push(
      start(dir, [
        'run',
        '--cpu',
        '1',
        '--priority',
        'batch',
        '--',
        process.execPath,
        JOB,
        log,
        `batch${i}`,
        '50',
      ]),
    );
    await waitFor(`batch${i} queued`, async () =>
      (await rrmJson<ListJson>(dir, ['list'])).queued.length === i + 1 ? true : undefined,
    );
  }
  const critical = start(dir, [
    'run',
    '--cpu',
    '1',
    '--priority',
    'critical',
    '--',
    process.execPath,
    JOB,
    log,
    'critical',
    '50',
  ]);
  await waitFor('critical queued', async () =>
    (await rrmJson<ListJson>(dir, ['list'])).queued[0]?.priority === 1000 ? true : undefined,
  );
  first.kill('SIGTERM');
  assert.equal((await first.done).code, 143);
  for (const p of [...batch, critical]) assert.equal((await p.done).code, 0);
  const order = readLog(log)
    .filter((l) => l.what === 'start')
    .map((l) => l.name);
  assert.deepEqual(order.slice(0, 2), ['first', 'critical']);
  assert.deepEqual(order.slice(2).sort(), ['batch0', 'batch1', 'batch2', 'batch3', 'batch4']);
});

test('a hard critical request preempts a running batch command, which is stopped, requeued and completes later', async () => {
  const { dir, log, batch, critical } = await criticalPreemptsBatch([], '3000', '200');
  assert.equal(critical.code, 0, critical.stderr);
  const b = await batch.done;
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stderr, /preempted .* queued again/);
  const seq = readLog(log).map((l) => `${l.what}:${l.name}`);
  assert.deepEqual(seq, [
    'start:batch',
    'term:batch',
    'start:critical',
    'end:critical',
    'start:batch',
    'end:batch',
  ]);
  const history = await rrmJson<Array<{ state: string; attempt: number }>>(dir, ['history']);
  assert.deepEqual(history.map((h) => `${h.state}/${h.attempt}`).sort(), [
    'preempted/1',
    'released/1',
    'released/2',
  ]);
});

test('--no-wait fails with 75 and the shortfall; a wait limit times out with 75', async () => {
  const dir = stateDir();
  const log = join(dir, 'jobs.log');
  await setCapacity(dir, '--cpu', '1');
  const holder = start(dir, ['run', '--cpu', '1', '--', process.execPath, JOB, log, 'hold', '3000']);
  await waitFor('hold start', () => readLog(log).find((l) => l.what === 'start'));
  const fast = await rrm(dir, ['run', '--cpu', '500m', '--no-wait', '--', 'true']);
  assert.equal(fast.code, 75);
  assert.match(fast.stderr, /cpu 500m \(free 0, short 500m\).*RRM_ERR_CAPACITY_SHORT/);
  const timed = await rrm(dir, ['run', '--cpu', '500m', '--wait', '300ms', '--', 'true']);
  assert.equal(timed.code, 75);
  assert.match(timed.stderr, /RRM_ERR_WAIT_TIMEOUT/);
  holder.kill('SIGTERM');
  assert.equal((await holder.done).code, 143);
});

test('SIGTERM to rrm run is forwarded to the command, and the reservation is released', async () => {
  const dir = stateDir();
  const log = join(dir, 'jobs.log');
  const p = start(dir, ['run', '--cpu', '100m', '--', process.execPath, JOB, log, 'sig', '60000']);
  await waitFor('start', () => readLog(log).find((l) => l.what === 'start'));
  p.kill('SIGTERM');
  const d = await p.done;
  assert.equal(d.code, 143);
  assert.ok(
    readLog(log).some((l) => l.what === 'term'),
    'the command saw SIGTERM',
  );
  const list = await rrmJson<ListJson>(dir, ['list']);
  assert.equal(list.granted.length, 0);
});

test('SIGINT while waiting: exit 130, nothing ran, the queue entry is cancelled; the waiting line says why it waits', async () => {
  const dir = stateDir();
  const log = join(dir, 'jobs.log');
  await setCapacity(dir, '--cpu', '1');
  const holder = start(dir, ['run', '--cpu', '1', '--', process.execPath, JOB, log, 'hold', '60000']);
  await waitFor('hold start', () => readLog(log).find((l) => l.what === 'start'));
  const waiter = start(dir, ['run', '--cpu', '600m', '--', process.execPath, JOB, log, 'never', '10']);
  let stderr = '';
  waiter.stderr?.on('data', (d) => (stderr += d));
  await waitFor('waiting line', () => /waiting: position 1 of 1; short: cpu 600m/.test(stderr) || undefined);
  waiter.kill('SIGINT');
  const w = await waiter.done;
  assert.equal(w.code, 130, w.stderr);
  assert.match(w.stderr, /stopped waiting \(SIGINT\); nothing was run/);
  assert.ok(!readLog(log).some((l) => l.name === 'never'), 'the command never ran');
  const list = await rrmJson<ListJson>(dir, ['list']);
  assert.equal(list.queued.length, 0, 'the queue entry is gone');
  const history = await rrmJson<Array<{ state: string }>>(dir, ['history']);
  assert.ok(
    history.some((h) => h.state === 'cancelled'),
    JSON.stringify(history),
  );
  holder.kill('SIGTERM');
  assert.equal((await holder.done).code, 143);
});

test('--on-preempt fail: the preempted command is stopped and rrm exits 75 without running it again', async () => {
  const { log, batch, critical } = await criticalPreemptsBatch(['--on-preempt', 'fail'], '60000', '100');
  assert.equal(critical.code, 0, critical.stderr);
  const b = await batch.done;
  assert.equal(b.code, 75, b.stderr);
  assert.match(b.stderr, /preempted .*not retried \(--on-preempt fail\).*RRM_ERR_PREEMPTED/);
  assert.deepEqual(
    readLog(log).map((l) => `${l.what}:${l.name}`),
    ['start:batch', 'term:batch', 'start:critical', 'end:critical'],
  );
});

test('--dry-run says what the reservation would do now (grant, queue at a position, preempt) and changes nothing', async () => {
  const dir = stateDir();
  const log = join(dir, 'jobs.log');
  await setCapacity(dir, '--cpu', '1');
  const holder = start(dir, [
    'run',
    '--cpu',
    '1',
    '--priority',
    'batch',
    '--',
    process.execPath,
    JOB,
    log,
    'hold',
    '60000',
  ]);
  await waitFor('hold start', () => readLog(log).find((l) => l.what === 'start'));
  type Dry = { prediction: { would: string; position?: number; victims?: string[] } };
  const dry = (...flags: string[]): Promise<Dry> =>
    rrm(dir, ['run', '--dry-run', '--json', ...flags, '--', process.execPath, JOB, log, 'dry', '10']).then(
      (r) => {
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout) as Dry;
      },
    );
  const ledgerFiles = (): string[] => ['ledger.db', 'ledger.db-wal'].map((f) => fileHash(join(dir, f)));
  const before = ledgerFiles();
  assert.equal((await dry('--cpu', '100m', '--priority', 'batch')).prediction.would, 'queue at position 1');
  const holderId = (await rrmJson<ListJson>(dir, ['list'])).granted[0]?.id;
  const crit = await dry('--cpu', '1', '--priority', 'critical');
  assert.deepEqual([crit.prediction.would, crit.prediction.victims], [`preempt ${holderId}`, [holderId]]);
  assert.match((await dry('--cpu', '2')).prediction.would, /^reject: can never fit/);
  assert.deepEqual(ledgerFiles(), before, 'a dry run writes nothing');
  assert.ok(!readLog(log).some((l) => l.name === 'dry'), 'nothing ran');
  holder.kill('SIGTERM');
  await holder.done;
  assert.equal((await dry('--cpu', '1')).prediction.would, 'grant now');
});

test('rrm npm install is rrm run with a profile from the registry; rrm npm --version passes through unreserved', async () => {
  const dir = stateDir();
  const prefix = join(dir, 'prefix');
  const r = await rrm(dir, [
    'npm',
    'install',
    '--no-save',
    '--no-audit',
    '--no-fund',
    '--prefix',
    prefix,
    'is-number@7.0.0',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /granted cpu=/);
  assert.ok(existsSync(join(prefix, 'node_modules/is-number/package.json')), 'installed');
  const history = await rrmJson<Array<{ command: string[]; state: string }>>(dir, ['history']);
  assert.deepEqual(
    history.map((h) => [h.command.slice(0, 2).join(' '), h.state]),
    [['npm install', 'released']],
  );
  const v = await rrm(dir, ['npm', '--version']);
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, /^\d+\.\d+\.\d+/);
  assert.doesNotMatch(v.stderr, /granted/);
  assert.equal((await rrmJson<unknown[]>(dir, ['history'])).length, 1, 'no reservation for a non-install');
});

test('a time limit stops the command with exit 124', async () => {
  const dir = stateDir();
  const log = join(dir, 'jobs.log');
  const r = await rrm(dir, [
    'run',
    '--cpu',
    '100m',
    '--time-limit',
    '300ms',
    '--',
    process.execPath,
    JOB,
    log,
    'slow',
    '60000',
  ]);
  assert.equal(r.code, 124);
  assert.match(r.stderr, /time limit of 300ms/);
  const [h] = await rrmJson<Array<{ state: string }>>(dir, ['history']);
  assert.equal(h?.state, 'timed-out');
});

test('--target any on the embedded ledger runs here; an instance the ledger does not hold is refused', async () => {
  const dir = stateDir();
  await setCapacity(dir, '--cpu', '2');
  const r = await rrm(dir, [
    'run',
    '--json',
    '--target-selector',
    'zone!=b',
    '--cpu',
    '1',
    '--',
    'sh',
    '-c',
    'exit 3',
  ]);
  assert.equal(r.code, 3, r.stderr);
  const placed = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { event: string; instance?: string; fit?: string })
    .find((e) => e.event === 'placed');
  assert.deepEqual([placed?.instance, placed?.fit], ['local', 'grant']);
  const [h] = await rrmJson<Array<{ state: string }>>(dir, ['history']);
  assert.equal(h?.state, 'released');
  const elsewhere = await rrm(dir, ['run', '--target', 'node-9', '--', 'true']);
  assert.equal(elsewhere.code, 75, elsewhere.stderr);
  assert.match(elsewhere.stderr, /--target node-9: cannot run the command there: not in the ledger/);
  const none = await rrm(dir, ['run', '--target-selector', 'zone=a', '--', 'true']);
  assert.equal(none.code, 75, none.stderr);
  assert.match(none.stderr, /no instance with labels zone=a can run this command: local \(labels differ\)/);
  assert.equal((await rrmJson<unknown[]>(dir, ['history'])).length, 1, 'nothing else was reserved');
});

test('bad input exits 64 naming the bad value and leaves the ledger file unchanged', async () => {
  const dir = stateDir();
  await setCapacity(dir, '--cpu', '2');
  const ledger = join(dir, 'ledger.db');
  const before = fileHash(ledger);
  const cases: Array<[string[], RegExp]> = [
    [['run', '--cpu', 'abc', '--', 'true'], /"abc"/],
    [['run', '--memory', '-1', '--', 'true'], /"-1" is negative/],
    [['run', '--priority', 'urgent', '--', 'true'], /"urgent"/],
    [['run', '--frobnicate', '--', 'true'], /frobnicate/],
    [['run', '--cpu', '1'], /missing the command/],
    [['run', '--memory', '1Zi', '--', 'true'], /unknown unit "Zi"/],
    [['run', '--cpu', '99999999999999999999', '--', 'true'], /too large/],
    [['run', '--resource', '=1', '--', 'true'], /resource name ""/],
    [['run', '--time-limit', 'soon', '--', 'true'], /"soon"/],
    [
      ['run', '--memory', '200Mi', '--memory-limit', '100Mi', '--', 'true'],
      /--memory-limit 100Mi is below --memory 200Mi/,
    ],
    [['run', '--disk-io-limit', 'fast', '--', 'true'], /--disk-io-limit: "fast"/],
    [['run', '--target', 'b', '--target-selector', 'zone=a', '--', 'true'], /cannot be used with --target b/],
    [['run', '--target-selector', 'zone', '--', 'true'], /"zone" is not key=value/],
    [['run', '--target', 'any', '--strategy', 'random', '--', 'true'], /"random" is not one of/],
    [['run', '--strategy', 'balanced', '--', 'true'], /--target any only/],
    [['capacity', 'set', '--cpu', 'NaN'], /"NaN"/],
    [['release', 'not-an-id'], /not-an-id/],
    [['frob'], /unknown command "frob"/],
  ];
  for (const [args, message] of cases) {
    const r = await rrm(dir, args);
    assert.equal(r.code, 64, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
  }
  assert.equal(fileHash(ledger), before);
  const fresh = stateDir();
  assert.equal((await rrm(fresh, ['run', '--cpu', 'abc', '--', 'true'])).code, 64);
  assert.equal(fileHash(join(fresh, 'ledger.db')), 'absent', 'bad input does not even create a ledger');
});
