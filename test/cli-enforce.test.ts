/**
 * rrm run inside real cgroups (as root on this host's v1 + cgroup2 hybrid): limits hold, usage is
 * measured and recorded, pause freezes, and no rrm cgroup outlives its reservation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { JOB, ROOT, readLog, rrm, rrmJson, start, stateDir, waitFor } from './support/cli.js';
import { testCgroups } from './support/cgroups-left.js';

const TICKER = join(ROOT, 'test/fixtures/ticker.mjs');
const enforcer = testCgroups();
const enforced = enforcer.report.driver !== 'none';
const skip = enforced ? false : `needs writable cgroups (driver is none: ${enforcer.report.reason})`;

/** The ticker writes `tick|done <name> <time>`: the first three fields of the job log format. */
const ticks = readLog;

function assertNoCgroups(ids: readonly string[]): void {
  const left = enforcer.list().filter((id) => ids.includes(id));
  assert.deepEqual(left, [], 'no rrm cgroup outlives its reservation');
}

interface HistoryRow {
  id: string;
  state: string;
  reason?: string;
  usage?: Record<string, number>;
}

test(
  'an install over its memory limit is OOM-killed in its own cgroup and reported as such',
  { skip },
  async () => {
    const dir = stateDir();
    const hog = 'const a = []; for (;;) a.push(Buffer.alloc(16 << 20, 1));';
    const r = await rrm(dir, [
      'run',
      '--memory',
      '128Mi',
      '--memory-limit',
      '256Mi',
      '--',
      process.execPath,
      '-e',
      hog,
    ]);
    assert.equal(r.code, 120, r.stderr);
    assert.match(r.stderr, /exceeded its memory limit of 256Mi; peak 256Mi/);
    const [h] = await rrmJson<HistoryRow[]>(dir, ['history']);
    assert.ok((h?.usage?.oomKills ?? 0) >= 1, JSON.stringify(h));
    assert.match(h?.reason ?? '', /exceeded its memory limit/);
    assertNoCgroups([h!.id]);
    const fine = await rrm(dir, [
      'run',
      '--memory',
      '64Mi',
      '--',
      process.execPath,
      '-e',
      'Buffer.alloc(8 << 20, 1)',
    ]);
    assert.equal(fine.code, 0, 'the next run is untouched');
  },
);

test('usage is measured from the cgroup and shown in the summary and in history', { skip }, async () => {
  const dir = stateDir();
  const script =
    'const b = Buffer.alloc(100 << 20, 1); let x = 0; for (let i = 0; i < 2e8; i++) x += i; console.log(b[0] + x > 0);';
  const r = await rrm(dir, ['run', '--cpu', '1', '--memory', '300Mi', '--', process.execPath, '-e', script]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /peak memory [\d.]+Mi, cpu [\d.]+/);
  const [h] = await rrmJson<HistoryRow[]>(dir, ['history']);
  const peak = h?.usage?.peakMemoryBytes ?? 0;
  assert.ok(peak > 100 * 2 ** 20 && peak < 300 * 2 ** 20, `peak ${peak}`);
  assert.ok((h?.usage?.cpuUsageUsec ?? 0) > 50_000, 'CPU time was counted');
  assertNoCgroups([h!.id]);
});

test(
  'a paused batch install is frozen while a critical one runs, then thawed; paused time does not count against its limit',
  { skip },
  async () => {
    const dir = stateDir();
    const log = join(dir, 'ticks.log');
    assert.equal((await rrm(dir, ['capacity', 'set', '--cpu', '1'])).code, 0);
    const batch = start(dir, [
      'run',
      '--cpu',
      '1',
      '--priority',
      'batch',
      '--on-preempt',
      'pause',
      '--time-limit',
      '4s',
      '--',
      process.execPath,
      TICKER,
      log,
      'batch',
      '2500',
    ]);
    await waitFor('batch ticking', () => (ticks(log).length > 3 ? true : undefined));
    const critical = await rrm(dir, [
      'run',
      '--cpu',
      '1',
      '--priority',
      'critical',
      '--',
      process.execPath,
      TICKER,
      log,
      'critical',
      '2000',
    ]);
    assert.equal(critical.code, 0, critical.stderr);
    const b = await batch.done;
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /paused \(frozen\)/);
    assert.match(b.stderr, /resumed after/);
    const all = ticks(log);
    const crit = all.filter((t) => t.name === 'critical');
    const during = all.filter((t) => t.name === 'batch' && t.at > crit[0]!.at && t.at < crit.at(-1)!.at);
    assert.deepEqual(during, [], 'the batch install made no progress while frozen');
    assert.ok(
      all.some((t) => t.what === 'done' && t.name === 'batch'),
      'the batch install finished after thaw',
    );
    const history = await rrmJson<HistoryRow[]>(dir, ['history']);
    const bh = history.find((h) => h.state === 'released' && (h.usage?.pausedMs ?? 0) > 0);
    assert.ok(bh, JSON.stringify(history));
    const events = await rrmJson<Array<{ type: string }>>(dir, ['history', bh.id]);
    assert.deepEqual(
      events.map((e) => e.type).filter((t) => t !== 'process-started'),
      ['queued', 'granted', 'preempt-requested', 'paused', 'resumed', 'released'],
    );
    assertNoCgroups(history.map((h) => h.id));
  },
);

test(
  'a paused install that a later request needs the memory of is evicted, requeued and completes',
  { skip },
  async () => {
    const dir = stateDir();
    const log = join(dir, 'ticks.log');
    assert.equal((await rrm(dir, ['capacity', 'set', '--cpu', '2', '--memory', '1Gi'])).code, 0);
    const run = (name: string, args: string[], ms: string): string[] => [
      'run',
      ...args,
      '--',
      process.execPath,
      TICKER,
      log,
      name,
      ms,
    ];
    const batch = start(
      dir,
      run(
        'batch',
        ['--cpu', '2', '--memory', '600Mi', '--priority', 'batch', '--on-preempt', 'pause'],
        '1500',
      ),
    );
    await waitFor('batch ticking', () => (ticks(log).length > 3 ? true : undefined));
    // Needs CPU only: pausing the batch install is enough.
    const cpuOnly = start(
      dir,
      run('cpu', ['--cpu', '1', '--memory', '100Mi', '--priority', 'critical'], '2500'),
    );
    await waitFor('cpu ticking', () => (ticks(log).some((t) => t.name === 'cpu') ? true : undefined));
    // Needs memory the paused install keeps: only eviction frees it.
    const memory = await rrm(
      dir,
      run('memory', ['--cpu', '1', '--memory', '600Mi', '--priority', 'critical'], '300'),
    );
    assert.equal(memory.code, 0, memory.stderr);
    assert.equal((await cpuOnly.done).code, 0);
    const b = await batch.done;
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /paused \(frozen\)/);
    assert.match(b.stderr, /preempted .* queued again/);
    const all = ticks(log);
    const memoryDone = all.find((t) => t.what === 'done' && t.name === 'memory');
    const batchDone = all.filter((t) => t.what === 'done' && t.name === 'batch');
    assert.ok(memoryDone, 'the memory-hungry install ran');
    assert.equal(batchDone.length, 1, 'the evicted install finished once, on its second attempt');
    assert.ok(batchDone[0]!.at > memoryDone.at, 'after the install that evicted it');
    const history = await rrmJson<Array<{ id: string; state: string; attempt: number }>>(dir, ['history']);
    const evicted = history.find((h) => h.state === 'preempted');
    assert.ok(evicted, JSON.stringify(history));
    const events = await rrmJson<Array<{ type: string }>>(dir, ['history', evicted.id]);
    const types = events.map((e) => e.type).filter((t) => t !== 'process-started');
    assert.deepEqual(types.slice(0, 4), ['queued', 'granted', 'preempt-requested', 'paused']);
    assert.ok(types.lastIndexOf('preempt-requested') > types.indexOf('paused'), types.join(' '));
    assert.equal(types.at(-1), 'preempted');
    assertNoCgroups(history.map((h) => h.id));
  },
);

test(
  'kill -9 of the holder: its cgroup is killed and removed when the grant is reclaimed',
  { skip },
  async () => {
    const dir = stateDir();
    const log = join(dir, 'jobs.log');
    const holder = start(dir, ['run', '--cpu', '100m', '--', process.execPath, JOB, log, 'orphan', '60000']);
    const started = await waitFor('start', () => readLog(log).find((l) => l.what === 'start'));
    assert.ok(enforcer.list().includes(started.reservation), 'runs inside its own cgroup');
    // The orphaned job keeps rrm's stdout open, so wait for rrm's exit, not for its pipes to close.
    const exited = new Promise((resolve) => holder.once('exit', resolve));
    holder.kill('SIGKILL');
    await exited;
    const r = await rrm(dir, ['list']);
    assert.equal(r.code, 0);
    assertNoCgroups([started.reservation]);
    await holder.done; // the pipes close once the reclaim killed the job
  },
);

test(
  'rrm doctor reports the driver, removes the cgroup of an ended reservation, leaves unknown ones alone',
  { skip },
  async () => {
    const dir = stateDir();
    const ran = await rrm(dir, ['run', '--cpu', '100m', '--', 'true']);
    assert.equal(ran.code, 0, ran.stderr);
    const [ended] = await rrmJson<HistoryRow[]>(dir, ['history']);
    // What a crash between the end and the cleanup leaves behind: the ended reservation's cgroup.
    const slot = await enforcer.create(ended!.id, { mode: 'soft', requests: { cpu: 100 } });
    // A cgroup this ledger never heard of: another state directory's, sharing the parent.
    const stranger = await enforcer.create('rsv_doctor-foreign', { mode: 'soft', requests: { cpu: 100 } });
    try {
      type Report = {
        enforcement: { driver: string };
        leftovers: string[];
        removed: string[];
        foreign: string[];
      };
      const dry = await rrmJson<Report>(dir, ['doctor', '--dry-run']);
      assert.deepEqual([dry.leftovers, dry.removed, dry.foreign], [[slot.id], [], [stranger.id]]);
      const report = await rrmJson<Report>(dir, ['doctor']);
      assert.equal(report.enforcement.driver, enforcer.report.driver);
      assert.deepEqual([report.removed, report.foreign], [[slot.id], [stranger.id]]);
      assertNoCgroups([slot.id]);
      assert.ok(enforcer.list().includes(stranger.id), 'the unknown cgroup is left alone');
    } finally {
      await stranger.destroy();
    }
  },
);
