/** The cgroup2 driver against a temp directory laid out like cgroupfs: exact values written. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { probeEnforcer, type Enforcer } from '../../src/enforce/enforcer.js';
import { makeFakeCgroup2, readFake, type FakeCgroup2 } from './fake-cgroupfs.js';

const MiB = 1024 * 1024;

function setup(kernelRelease = '6.8.0-generic'): { fake: FakeCgroup2; e: Enforcer } {
  const fake = makeFakeCgroup2();
  const e = probeEnforcer({
    root: fake.root,
    mountsFile: fake.mountsFile,
    parent: 'rrm',
    kernelRelease,
    fs: fake.fs,
  });
  return { fake, e };
}

/** Writes into one reservation's cgroup, as [file, value]. */
function writesTo(fake: FakeCgroup2, id: string): Array<[string, string]> {
  return fake.writes.filter(([p]) => path.dirname(p) === `rrm/${id}`).map(([p, v]) => [path.basename(p), v]);
}

test('probe of a pure cgroup2 fake picks cgroup2 with a memory guarantee', (t) => {
  const { fake, e } = setup();
  t.after(fake.cleanup);
  assert.equal(e.report.driver, 'cgroup2');
  assert.deepEqual(e.report.controllers, { cpu: 'v2', cpuacct: 'v2', memory: 'v2', io: 'v2', freezer: 'v2' });
  assert.equal(e.report.kill, 'cgroup.kill');
  assert.equal(e.report.memoryGuarantee, true);
  assert.deepEqual(e.report.parentDirs, [path.join(fake.root, 'rrm')]);
  assert.match(e.describe(), /rrm enforcement: cgroup2/);
});

test('hard reservation without limits: weight, margin caps, memory.min, oom.group, parent setup', async (t) => {
  const { fake, e } = setup();
  t.after(fake.cleanup);
  const slot = await e.create('r-hard', {
    mode: 'hard',
    requests: { cpu: 1500, memory: 512 * MiB, diskIo: 50 * MiB },
  });
  assert.deepEqual(
    fake.writes.filter(([p]) => p.endsWith('cgroup.subtree_control')),
    [
      ['cgroup.subtree_control', '+cpu'],
      ['cgroup.subtree_control', '+memory'],
      ['cgroup.subtree_control', '+io'],
      ['rrm/cgroup.subtree_control', '+cpu'],
      ['rrm/cgroup.subtree_control', '+memory'],
      ['rrm/cgroup.subtree_control', '+io'],
    ],
  );
  assert.equal(readFake(fake, 'rrm/cgroup.subtree_control'), 'cpu memory io');
  assert.deepEqual(writesTo(fake, 'r-hard'), [
    ['cpu.weight', '150'],
    ['cpu.max', '187500 100000'], // 1500m × 1.25
    ['memory.min', String(512 * MiB)],
    ['memory.max', String(640 * MiB)], // 512Mi × 1.25
    ['memory.swap.max', '0'],
    ['memory.oom.group', '1'],
    ['io.weight', 'default 50'],
  ]);
  assert.equal(readFake(fake, 'rrm/r-hard/memory.low'), '0');
  // the parent carries its children's sums
  assert.equal(readFake(fake, 'rrm/cpu.weight'), '150');
  assert.equal(readFake(fake, 'rrm/memory.min'), String(512 * MiB));
  assert.equal(readFake(fake, 'rrm/memory.low'), '0');
  assert.deepEqual(slot.cgroupDirs, [path.join(fake.root, 'rrm/r-hard')]);
  assert.deepEqual(slot.notes, []);
  await slot.destroy();
});

test('hard reservation with explicit limits uses them verbatim', async (t) => {
  const { fake, e } = setup();
  t.after(fake.cleanup);
  const slot = await e.create('r-hard-lim', {
    mode: 'hard',
    requests: { cpu: 1000, memory: 256 * MiB },
    limits: { cpu: 2000, memory: 1024 * MiB },
  });
  assert.deepEqual(writesTo(fake, 'r-hard-lim'), [
    ['cpu.weight', '100'],
    ['cpu.max', '200000 100000'],
    ['memory.min', String(256 * MiB)],
    ['memory.max', String(1024 * MiB)],
    ['memory.swap.max', '0'],
    ['memory.oom.group', '1'],
    ['io.weight', 'default 1'],
  ]);
  await slot.destroy();
});

test('soft reservation without limits: memory.low, no caps, no swap change', async (t) => {
  const { fake, e } = setup();
  t.after(fake.cleanup);
  const slot = await e.create('r-soft', { mode: 'soft', requests: { cpu: 500, memory: 256 * MiB } });
  assert.deepEqual(writesTo(fake, 'r-soft'), [
    ['cpu.weight', '50'],
    ['cpu.max', 'max 100000'],
    ['memory.low', String(256 * MiB)],
    ['memory.max', 'max'],
    ['memory.oom.group', '1'],
    ['io.weight', 'default 1'],
  ]);
  assert.equal(readFake(fake, 'rrm/r-soft/memory.min'), '0');
  assert.equal(readFake(fake, 'rrm/r-soft/memory.swap.max'), 'max');
  await slot.destroy();
});

test('soft reservation with a memory limit caps memory only', async (t) => {
  const { fake, e } = setup();
  t.after(fake.cleanup);
  const slot = await e.create('r-soft-lim', {
    mode: 'soft',
    requests: { cpu: 250, memory: 100 * MiB },
    limits: { memory: 300 * MiB },
  });
  assert.deepEqual(writesTo(fake, 'r-soft-lim'), [
    ['cpu.weight', '25'],
    ['cpu.max', 'max 100000'],
    ['memory.low', String(100 * MiB)],
    ['memory.max', String(300 * MiB)],
    ['memory.swap.max', '0'],
    ['memory.oom.group', '1'],
    ['io.weight', 'default 1'],
  ]);
  await slot.destroy();
});

test('io.max only with a known device; a note otherwise', async (t) => {
  const fake = makeFakeCgroup2();
  t.after(fake.cleanup);
  const spec = { mode: 'hard' as const, requests: { diskIo: 5 * MiB }, limits: { diskIo: 10 * MiB } };
  const withDev = probeEnforcer({
    root: fake.root,
    mountsFile: fake.mountsFile,
    kernelRelease: '6.8.0',
    fs: fake.fs,
    ioDevice: '254:0',
  });
  const a = await withDev.create('io-dev', spec);
  assert.deepEqual(
    writesTo(fake, 'io-dev').filter(([f]) => f.startsWith('io.')),
    [
      ['io.weight', 'default 5'],
      ['io.max', '254:0 rbps=10485760 wbps=10485760'],
    ],
  );
  const noDev = probeEnforcer({
    root: fake.root,
    mountsFile: fake.mountsFile,
    kernelRelease: '6.8.0',
    fs: fake.fs,
  });
  const b = await noDev.create('io-nodev', spec);
  assert.equal(
    writesTo(fake, 'io-nodev').some(([f]) => f === 'io.max'),
    false,
  );
  assert.match(b.notes.join('\n'), /diskIo limit not enforced/);
  await a.destroy();
  await b.destroy();
});

test('parent aggregates follow children through create and destroy', async (t) => {
  const { fake, e } = setup();
  t.after(fake.cleanup);
  const a = await e.create('a', { mode: 'hard', requests: { cpu: 1500, memory: 512 * MiB } });
  const b = await e.create('b', { mode: 'soft', requests: { cpu: 500, memory: 256 * MiB } });
  assert.equal(readFake(fake, 'rrm/cpu.weight'), '200');
  assert.equal(readFake(fake, 'rrm/memory.min'), String(512 * MiB));
  assert.equal(readFake(fake, 'rrm/memory.low'), String(256 * MiB));
  assert.deepEqual(e.list(), ['a', 'b']);
  await a.destroy();
  assert.equal(readFake(fake, 'rrm/cpu.weight'), '50');
  assert.equal(readFake(fake, 'rrm/memory.min'), '0');
  await b.destroy();
  assert.equal(readFake(fake, 'rrm/cpu.weight'), '100');
  assert.equal(readFake(fake, 'rrm/memory.low'), '0');
  assert.deepEqual(e.list(), []);
  assert.equal(e.removeParentIfEmpty(), true);
  assert.equal(fs.existsSync(path.join(fake.root, 'rrm')), false);
});

test('freeze, thaw and kill write cgroup.freeze / cgroup.kill', async (t) => {
  const { fake, e } = setup();
  t.after(fake.cleanup);
  const slot = await e.create('fz', { mode: 'soft', requests: { cpu: 100 } });
  fake.writes.length = 0;
  await slot.freeze();
  assert.deepEqual(fake.writes, [['rrm/fz/cgroup.freeze', '1']]);
  assert.match(readFake(fake, 'rrm/fz/cgroup.events'), /frozen 1/);
  await slot.thaw();
  assert.deepEqual(fake.writes.at(-1), ['rrm/fz/cgroup.freeze', '0']);
  fs.writeFileSync(path.join(fake.root, 'rrm/fz/cgroup.procs'), '2147483646\n'); // "a process" (fake pid)
  fake.writes.length = 0;
  await slot.kill();
  assert.deepEqual(fake.writes, [
    ['rrm/fz/cgroup.kill', '1'],
    ['rrm/fz/cgroup.freeze', '0'],
  ]);
  assert.equal(readFake(fake, 'rrm/fz/cgroup.procs'), '');
  await slot.destroy();
  await slot.destroy(); // idempotent
  assert.equal(fs.existsSync(path.join(fake.root, 'rrm/fz')), false);
  assert.equal(e.open('fz'), null);
});

test('without cgroup.kill (kernel 5.10) kill freezes and signals instead', async (t) => {
  const { fake, e } = setup('5.10.0');
  t.after(fake.cleanup);
  assert.equal(e.report.kill, 'signal-loop');
  const slot = await e.create('old', { mode: 'soft', requests: {} });
  fake.writes.length = 0;
  await slot.kill(); // empty cgroup: freeze, nothing to signal, thaw
  assert.deepEqual(fake.writes, [
    ['rrm/old/cgroup.freeze', '1'],
    ['rrm/old/cgroup.freeze', '0'],
  ]);
  await slot.destroy();
});

test('measure reads memory.peak, cpu.stat, io.stat, memory.events; samples memory.current without memory.peak', async (t) => {
  const { fake, e } = setup();
  t.after(fake.cleanup);
  const slot = await e.create('m', { mode: 'hard', requests: { memory: MiB } });
  const put = (f: string, s: string): void => fs.writeFileSync(path.join(fake.root, 'rrm/m', f), s);
  put('memory.peak', '123456789\n');
  put('cpu.stat', 'usage_usec 4242\nuser_usec 4000\nsystem_usec 242\n');
  put('io.stat', '254:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n8:0 rbytes=1 wbytes=2\n');
  put('memory.events', 'low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\n');
  assert.deepEqual(slot.measure(), {
    peakMemoryBytes: 123456789,
    cpuUsageUsec: 4242,
    readBytes: 101,
    writeBytes: 202,
    oomKills: 2,
  });
  fs.rmSync(path.join(fake.root, 'rrm/m/memory.peak'));
  put('memory.current', '5000\n');
  assert.equal(slot.measure().peakMemoryBytes, 5000);
  put('memory.current', '3000\n');
  assert.equal(slot.measure().peakMemoryBytes, 5000);
  await slot.destroy();
  // after destroy, measure() returns what destroy captured
  assert.equal(slot.measure().cpuUsageUsec, 4242);
  assert.equal(slot.measure().peakMemoryBytes, 5000);
});

test('create refuses an existing cgroup, bad ids, and limits below requests; open finds existing', async (t) => {
  const { fake, e } = setup();
  t.after(fake.cleanup);
  const slot = await e.create('dup', { mode: 'soft', requests: {} });
  await assert.rejects(e.create('dup', { mode: 'soft', requests: {} }), /already exists/);
  for (const bad of ['', '..', '.', 'a/b', '../x', '-x', 'x'.repeat(129), 'a b']) {
    await assert.rejects(e.create(bad, { mode: 'soft', requests: {} }), /invalid reservation id/, bad);
  }
  await assert.rejects(
    e.create('low', { mode: 'hard', requests: { memory: 100 }, limits: { memory: 50 } }),
    /below requests/,
  );
  assert.equal(fs.existsSync(path.join(fake.root, 'rrm/low')), false);
  const again = e.open('dup');
  assert.ok(again);
  await again.destroy();
  await slot.destroy(); // already gone: still fine
  assert.deepEqual(e.list(), []);
});

test('a failing write rolls the cgroup back', async (t) => {
  const { fake, e } = setup();
  t.after(fake.cleanup);
  const realWrite = fake.fs.write;
  fake.fs.write = (p, v) => {
    if (p.endsWith('/memory.max')) throw Object.assign(new Error('EINVAL'), { code: 'EINVAL' });
    realWrite(p, v);
  };
  await assert.rejects(
    e.create('rb', { mode: 'hard', requests: { memory: MiB } }),
    /cannot write .*\/memory\.max/,
  );
  assert.equal(fs.existsSync(path.join(fake.root, 'rrm/rb')), false);
  assert.equal(readFake(fake, 'rrm/memory.min'), '0');
});
