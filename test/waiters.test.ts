/** Waiting costs almost nothing and ends as soon as capacity frees: woken by the ledger's change feed. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readProcStat } from '../src/host/process-identity.js';
import { JOB, readLog, rrm, rrmJson, start, stateDir, waitFor } from './support/cli.js';
import { testCgroups } from './support/cgroups-left.js';
import { readFileSync } from 'node:fs';

testCgroups();

function cpuTicks(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

test('eight idle waiters together use under 5% of one core', async (t) => {
  const dir = stateDir();
  const log = join(dir, 'jobs.log');
  assert.equal((await rrm(dir, ['capacity', 'set', '--cpu', '1'])).code, 0);
  const holder = start(dir, ['run', '--cpu', '1', '--', process.execPath, JOB, log, 'hold', '60000']);
  await waitFor('holder start', () => readLog(log).find((l) => l.what === 'start'));
  const waiters = Array.from({ length: 8 }, (_, i) =>
    start(dir, ['run', '--cpu', '1', '--quiet', '--', process.execPath, JOB, log, `w${i}`, '1']),
  );
  await waitFor('8 queued', async () =>
    (await rrmJson<{ queued: unknown[] }>(dir, ['list'])).queued.length === 8 ? true : undefined,
  );
  await new Promise((r) => setTimeout(r, 500));
  const before = waiters.map((w) => cpuTicks(w.pid as number));
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, 4000));
  const ticks = waiters.reduce((s, w, i) => s + cpuTicks(w.pid as number) - (before[i] as number), 0);
  const seconds = (Date.now() - t0) / 1000;
  const share = ticks / 100 / seconds;
  t.diagnostic(`8 idle waiters: ${(share * 100).toFixed(2)}% of one core`);
  assert.ok(share < 0.05, `8 waiters used ${(share * 100).toFixed(1)}% of a core`);
  holder.kill('SIGTERM');
  for (const w of waiters) assert.equal((await w.done).code, 0);
  assert.equal(readLog(log).filter((l) => l.what === 'end').length, 8);
  assert.ok(readProcStat(process.pid));
});

test('a waiter is woken by the change feed, not by its slow poll', async (t) => {
  const dir = stateDir();
  const log = join(dir, 'jobs.log');
  assert.equal((await rrm(dir, ['capacity', 'set', '--cpu', '1'])).code, 0);
  const slowPoll = { RRM_POLL: '30s' };
  const holder = start(
    dir,
    ['run', '--cpu', '1', '--', process.execPath, JOB, log, 'hold', '1000'],
    slowPoll,
  );
  await waitFor('holder start', () => readLog(log).find((l) => l.what === 'start'));
  const waiter = start(dir, ['run', '--cpu', '1', '--', process.execPath, JOB, log, 'next', '1'], slowPoll);
  assert.equal((await holder.done).code, 0);
  assert.equal((await waiter.done).code, 0);
  const end = readLog(log).find((l) => l.name === 'hold' && l.what === 'end') as { at: number };
  const next = readLog(log).find((l) => l.name === 'next' && l.what === 'start') as { at: number };
  t.diagnostic(`next command started ${next.at - end.at} ms after the previous ended`);
  assert.ok(next.at - end.at < 5000, `woken after ${next.at - end.at} ms; the poll is 30 s`);
});
