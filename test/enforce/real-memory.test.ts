/** Memory caps and peak measurement on this machine's real cgroups. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, test } from 'node:test';
import { cleanupAndAssertEmpty, skipReason, start, testEnforcer } from './real-cgroups.js';

const MiB = 1024 * 1024;
const skip = skipReason(['memory']);
const e = skip ? null : testEnforcer('mem');
after(async () => {
  if (e) await cleanupAndAssertEmpty(e);
});

/** Allocates and touches 8 MiB at a time, forever. */
const ALLOC_FOREVER =
  'const keep = []; for (;;) { const b = Buffer.allocUnsafe(8 << 20); b.fill(1); keep.push(b); }';

test('unbounded allocation under a 256Mi limit is OOM-killed; the host is untouched', { skip }, async () => {
  assert.ok(e);
  const slot = await e.create('oom', {
    mode: 'hard',
    requests: { memory: 128 * MiB, cpu: 500 },
    limits: { memory: 256 * MiB },
  });
  try {
    const r = await start(slot.wrap([process.execPath, '-e', ALLOC_FOREVER]), 30_000).exited;
    const u = slot.measure();
    console.log(
      `OOM child: signal=${r.signal} oomKills=${u.oomKills} peak=${u.peakMemoryBytes} (${((u.peakMemoryBytes ?? 0) / MiB).toFixed(1)} MiB)`,
    );
    assert.equal(r.signal, 'SIGKILL');
    assert.ok((u.oomKills ?? 0) >= 1, `oomKills = ${u.oomKills}`);
    assert.ok(u.peakMemoryBytes !== null);
    // charged memory never went past the cap, and did reach it
    assert.ok(u.peakMemoryBytes <= 256 * MiB, `peak ${u.peakMemoryBytes} > 256Mi`);
    assert.ok(u.peakMemoryBytes >= 0.95 * 256 * MiB, `peak ${u.peakMemoryBytes} well below 256Mi`);
  } finally {
    await slot.destroy();
  }
});

const TIME = '/usr/bin/time';
const hasTime = fs.existsSync(TIME);

/** Allocates and touches `MiB` mebibytes, holds briefly, exits 0. */
const allocExactly = (mib: number): string =>
  `const keep = []; for (let i = 0; i < ${mib / 8}; i++) { const b = Buffer.allocUnsafe(8 << 20); b.fill(1); keep.push(b); } setTimeout(() => {}, 100);`;

test(
  'peak memory of a known allocation matches /usr/bin/time -v max RSS within 10%',
  { skip: skip || (!hasTime && `${TIME} missing (Debian package "time"); not installed by this test`) },
  async () => {
    assert.ok(e);
    const slot = await e.create('rss', { mode: 'soft', requests: { memory: 512 * MiB } });
    try {
      const r = await start(slot.wrap([TIME, '-v', process.execPath, '-e', allocExactly(512)]), 30_000)
        .exited;
      assert.equal(r.code, 0, r.stderr);
      const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
      assert.ok(m, `no max RSS in /usr/bin/time output:\n${r.stderr}`);
      const rss = Number(m[1]) * 1024;
      const peak = slot.measure().peakMemoryBytes;
      assert.ok(peak !== null);
      const diff = (peak - rss) / rss;
      console.log(
        `peak vs /usr/bin/time: cgroup peak ${(peak / MiB).toFixed(1)} MiB, max RSS ${(rss / MiB).toFixed(1)} MiB, ` +
          `difference ${(diff * 100).toFixed(1)}%`,
      );
      assert.ok(Math.abs(diff) <= 0.1, `cgroup peak ${peak} vs RSS ${rss}: ${(diff * 100).toFixed(1)}%`);
    } finally {
      await slot.destroy();
    }
  },
);
