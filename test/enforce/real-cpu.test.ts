/** CPU proportion and caps on this machine's real cgroups (measured from the cgroups' own accounting). */
import assert from 'node:assert/strict';
import * as os from 'node:os';
import { after, test } from 'node:test';
import type { Slot } from '../../src/enforce/enforcer.js';
import { cleanupAndAssertEmpty, skipReason, sleep, spinners, start, testEnforcer } from './real-cgroups.js';

const skip = skipReason(['cpu', 'cpuacct']);
const e = skip ? null : testEnforcer('cpu');
after(async () => {
  if (e) await cleanupAndAssertEmpty(e);
});

const WINDOW_MS = 5_000;

function cpu(slot: Slot): number {
  const u = slot.measure().cpuUsageUsec;
  assert.ok(u !== null, 'cpu time not measurable');
  return u;
}

test('1500m vs 500m reserved (hard, no limit) contend ~3:1 on 2 cores', { skip }, async () => {
  assert.ok(e);
  const a = await e.create('cpu-a', { mode: 'hard', requests: { cpu: 1500 } });
  const b = await e.create('cpu-b', { mode: 'hard', requests: { cpu: 500 } });
  try {
    const ra = start(a.wrap(spinners(4)));
    const rb = start(b.wrap(spinners(4)));
    await sleep(500);
    const a0 = cpu(a);
    const b0 = cpu(b);
    await sleep(WINDOW_MS);
    const da = cpu(a) - a0;
    const db = cpu(b) - b0;
    await a.kill();
    await b.kill();
    assert.equal((await ra.exited).signal, 'SIGKILL');
    assert.equal((await rb.exited).signal, 'SIGKILL');
    const ratio = da / db;
    console.log(
      `CPU over ${WINDOW_MS / 1000}s on ${os.availableParallelism()} cpus: ` +
        `1500m got ${(da / 1e6).toFixed(2)}s (${(da / WINDOW_MS / 1000).toFixed(2)} cores), ` +
        `500m got ${(db / 1e6).toFixed(2)}s (${(db / WINDOW_MS / 1000).toFixed(2)} cores), ratio ${ratio.toFixed(2)}`,
    );
    assert.ok(Math.abs(ratio / 3 - 1) <= 0.15, `ratio ${ratio.toFixed(3)} not within 15% of 3`);
  } finally {
    await a.destroy();
    await b.destroy();
  }
});

test('a 500m CPU limit holds two spinning processes to ≤ 0.55 of a core', { skip }, async () => {
  assert.ok(e);
  const c = await e.create('cpu-cap', { mode: 'hard', requests: { cpu: 500 }, limits: { cpu: 500 } });
  try {
    const rc = start(c.wrap(spinners(2)));
    await sleep(300);
    const c0 = cpu(c);
    await sleep(WINDOW_MS);
    const dc = cpu(c) - c0;
    await c.kill();
    assert.equal((await rc.exited).signal, 'SIGKILL');
    const cores = dc / (WINDOW_MS * 1000);
    console.log(
      `CPU cap 500m: ${(dc / 1e6).toFixed(3)}s over ${WINDOW_MS / 1000}s = ${cores.toFixed(3)} of a core`,
    );
    assert.ok(cores <= 0.55, `${cores.toFixed(3)} cores > 0.55`);
    assert.ok(cores >= 0.3, `${cores.toFixed(3)} cores: the spinners barely ran, the test proves nothing`);
  } finally {
    await c.destroy();
  }
});
