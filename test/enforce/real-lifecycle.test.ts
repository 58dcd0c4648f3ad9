/** Joining, freezing, killing and destroying with this machine's real cgroups. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { cleanupAndAssertEmpty, skipReason, sleep, start, testEnforcer } from './real-cgroups.js';

const skip = skipReason(['cpuacct', 'freezer']);
const e = skip ? null : testEnforcer('life');
after(async () => {
  if (e) await cleanupAndAssertEmpty(e);
});

/** Running (a zombie awaiting its reaper, e.g. an orphan reparented to pid 1, counts as dead). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

test('the wrapped program runs inside every hierarchy; hostile argv stays literal', { skip }, async () => {
  assert.ok(e);
  const slot = await e.create('join', { mode: 'soft', requests: { cpu: 100 } });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rrm-join-real-'));
  try {
    const r = await start(slot.wrap(['cat', '/proc/self/cgroup'])).exited;
    assert.equal(r.code, 0, r.stderr);
    const joined = r.stdout.split('\n').filter((l) => l.endsWith(`/${e.report.parent}/join`));
    assert.equal(joined.length, slot.cgroupDirs.length, r.stdout);

    const pwned = path.join(tmp, 'pwned');
    const hostile = ['; rm -rf /', `$(touch ${pwned})`, `\`touch ${pwned}\``, '--', '"$@"', '*'];
    const h = await start(
      slot.wrap([
        process.execPath,
        '-e',
        'process.stdout.write(JSON.stringify(process.argv.slice(1)))',
        ...hostile,
      ]),
    ).exited;
    assert.equal(h.code, 0, h.stderr);
    assert.deepEqual(JSON.parse(h.stdout), hostile);
    assert.equal(fs.existsSync(pwned), false);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    await slot.destroy();
  }
});

test('a frozen child accrues no CPU time and finishes correctly after thaw', { skip }, async () => {
  assert.ok(e);
  const slot = await e.create('freeze', { mode: 'soft', requests: { cpu: 500 } });
  try {
    const n = 600_000;
    const run = start(
      slot.wrap(['/bin/sh', '-c', `i=0; while [ $i -lt ${n} ]; do i=$((i+1)); done; echo done $i`]),
    );
    let exited = false;
    void run.exited.then(
      () => (exited = true),
      () => undefined,
    );
    await sleep(300);
    await slot.freeze();
    const u1 = slot.measure().cpuUsageUsec ?? NaN;
    await sleep(1_000);
    const u2 = slot.measure().cpuUsageUsec ?? NaN;
    console.log(`frozen for 1s: cpu ${u1} → ${u2} µs (Δ ${u2 - u1})`);
    assert.ok(u1 > 0, 'child never ran before the freeze');
    assert.equal(u2 - u1, 0, 'CPU time advanced while frozen');
    assert.equal(exited, false, 'child finished while frozen');
    await slot.thaw();
    const r = await run.exited;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `done ${n}`);
  } finally {
    await slot.destroy();
  }
});

test('kill() SIGKILLs the whole tree, including orphans and frozen processes', { skip }, async () => {
  assert.ok(e);
  const slot = await e.create('kill', { mode: 'soft', requests: {} });
  try {
    // `(sleep &)` orphans a sleeper (reparented away from us): only the cgroup still knows it.
    const run = start(slot.wrap(['/bin/sh', '-c', '(sleep 300 &); sleep 300 & echo $!; wait']));
    await sleep(300);
    const dir = slot.cgroupDirs[0] as string;
    const pids = fs
      .readFileSync(path.join(dir, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(Number);
    assert.ok(pids.length >= 3, `expected ≥3 processes, got ${pids.join(',')}`);
    await slot.freeze();
    await slot.kill();
    const r = await run.exited;
    assert.equal(r.signal, 'SIGKILL');
    await sleep(50);
    assert.deepEqual(pids.filter(alive), [], 'processes survived kill()');
    for (const d of slot.cgroupDirs) assert.equal(fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8'), '');
    // the cgroup is usable again (not left frozen)
    const again = await start(slot.wrap(['true']), 5_000).exited;
    assert.equal(again.code, 0);
  } finally {
    await slot.destroy();
  }
});

test(
  'destroy() kills leftovers, removes every directory, is idempotent; open/list see it',
  { skip },
  async () => {
    assert.ok(e);
    const slot = await e.create('gone', { mode: 'hard', requests: { cpu: 200, memory: 64 << 20 } });
    const run = start(slot.wrap(['sleep', '300']));
    await sleep(100);
    assert.deepEqual(e.list(), ['gone']);
    const reopened = e.open('gone');
    assert.ok(reopened);
    assert.ok((reopened.measure().cpuUsageUsec ?? -1) >= 0);
    await assert.rejects(e.create('gone', { mode: 'soft', requests: {} }), /already exists/);
    await Promise.all([slot.destroy(), slot.destroy(), reopened.destroy()]);
    assert.equal((await run.exited).signal, 'SIGKILL');
    for (const d of slot.cgroupDirs) assert.equal(fs.existsSync(d), false, d);
    assert.equal(e.open('gone'), null);
    assert.deepEqual(e.list(), []);
    await slot.destroy();
    const u = slot.measure();
    assert.ok(u.cpuUsageUsec !== null && u.peakMemoryBytes !== null, 'usage captured at destroy');
    assert.throws(() => slot.wrap(['true']), /destroyed/);
  },
);

test(
  'the planned values land in the real v1 knob files, and the parent carries the sum',
  { skip },
  async (t) => {
    assert.ok(e);
    const { cpu, memory } = e.report.controllers;
    if (cpu !== 'v1' || memory !== 'v1')
      return t.skip('cpu/memory are not cgroup v1 here (the cgroup2 fake covers v2)');
    const MiB = 1024 * 1024;
    const a = await e.create('knobs-a', { mode: 'hard', requests: { cpu: 1500, memory: 100 * MiB } });
    const b = await e.create('knobs-b', { mode: 'soft', requests: { cpu: 500 }, limits: { cpu: 700 } });
    const c = await e.create('knobs-c', { mode: 'soft', requests: { cpu: 500, memory: 40 * MiB } });
    try {
      const dirOf = (slot: typeof a, hierarchy: string): string => {
        const d = slot.cgroupDirs.find((x) => x.includes(`/${hierarchy}/`));
        assert.ok(d, `${slot.id} not in ${hierarchy}`);
        return d;
      };
      const read = (f: string): string => fs.readFileSync(f, 'utf8').trim();
      const cpuA = dirOf(a, 'cpu');
      assert.equal(read(path.join(cpuA, 'cpu.shares')), '1536');
      assert.equal(read(path.join(cpuA, 'cpu.cfs_period_us')), '100000');
      assert.equal(read(path.join(cpuA, 'cpu.cfs_quota_us')), '187500');
      const memA = dirOf(a, 'memory');
      assert.equal(read(path.join(memA, 'memory.limit_in_bytes')), String(125 * MiB));
      assert.equal(read(path.join(memA, 'memory.soft_limit_in_bytes')), String(100 * MiB));
      if (fs.existsSync(path.join(memA, 'memory.memsw.limit_in_bytes'))) {
        assert.equal(read(path.join(memA, 'memory.memsw.limit_in_bytes')), String(125 * MiB));
      }
      const cpuB = dirOf(b, 'cpu');
      assert.equal(read(path.join(cpuB, 'cpu.shares')), '512');
      assert.equal(read(path.join(cpuB, 'cpu.cfs_quota_us')), '70000');
      assert.equal(Number(read(path.join(dirOf(b, 'memory'), 'memory.limit_in_bytes'))) > 2 ** 60, true);
      // v1 has no memory guarantee: a soft install without limits is capped too (request + margin).
      assert.deepEqual(c.limits, { memory: 50 * MiB });
      assert.equal(read(path.join(dirOf(c, 'memory'), 'memory.limit_in_bytes')), String(50 * MiB));
      assert.equal(Number(read(path.join(dirOf(c, 'cpu'), 'cpu.cfs_quota_us'))), -1, 'its CPU is not capped');
      assert.equal(read(path.join(path.dirname(cpuA), 'cpu.shares')), '2560');
    } finally {
      await a.destroy();
      await b.destroy();
      await c.destroy();
    }
    const parentCpu = e.report.parentDirs.find((d) => d.includes('/cpu/'));
    if (parentCpu) assert.equal(fs.readFileSync(path.join(parentCpu, 'cpu.shares'), 'utf8').trim(), '1024');
  },
);

test('direct I/O is counted in readBytes / writeBytes', { skip }, async (t) => {
  assert.ok(e);
  if (e.report.controllers.io === 'missing') return t.skip('no io/blkio controller here');
  const slot = await e.create('io', { mode: 'soft', requests: {} });
  const dir = fs.mkdtempSync(path.join('/var/tmp', 'rrm-io-'));
  try {
    const f = path.join(dir, 'blob');
    const r = await start(
      slot.wrap([
        '/bin/sh',
        '-c',
        'dd if=/dev/zero of="$1" bs=1M count=16 oflag=direct && dd if="$1" of=/dev/null bs=1M iflag=direct',
        'io-test',
        f,
      ]),
    ).exited;
    if (r.code !== 0 && /Invalid argument/.test(r.stderr))
      return t.skip(`O_DIRECT unsupported on /var/tmp: ${r.stderr}`);
    assert.equal(r.code, 0, r.stderr);
    const u = slot.measure();
    console.log(`direct I/O of 16 MiB each way: readBytes=${u.readBytes} writeBytes=${u.writeBytes}`);
    assert.ok((u.writeBytes ?? 0) >= 16 * 1024 * 1024, `writeBytes ${u.writeBytes}`);
    assert.ok((u.readBytes ?? 0) >= 16 * 1024 * 1024, `readBytes ${u.readBytes}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await slot.destroy();
  }
});
