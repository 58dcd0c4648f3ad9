/** Driver choice: fake mount tables over temp directories, and this machine. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { probeEnforcer } from '../../src/enforce/enforcer.js';
import { decideLayout, parseKernelRelease } from '../../src/enforce/host-layout.js';
import { parseMounts } from '../../src/enforce/mounts.js';

function tmpRoot(t: { after: (fn: () => void) => void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'rrm-probe-'));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

function fakeHost(
  t: { after: (fn: () => void) => void },
  mounts: Array<[fstype: string, rel: string, options: string]>,
  v2Controllers: Record<string, string> = {},
): { root: string; mountsFile: string } {
  const d = tmpRoot(t);
  const root = path.join(d, 'cgroup');
  fs.mkdirSync(root);
  const lines = ['proc /proc proc rw,nosuid 0 0', 'cgroup2 /somewhere/else cgroup2 rw 0 0'];
  for (const [fstype, rel, options] of mounts) {
    const mp = rel === '' ? root : path.join(root, rel);
    fs.mkdirSync(mp, { recursive: true });
    lines.push(`${fstype} ${mp} ${fstype} ${options} 0 0`);
  }
  for (const [rel, ctl] of Object.entries(v2Controllers)) {
    fs.writeFileSync(path.join(root, rel, 'cgroup.controllers'), ctl + '\n');
  }
  const mountsFile = path.join(d, 'mounts');
  fs.writeFileSync(mountsFile, lines.join('\n') + '\n');
  return { root, mountsFile };
}

test('pure cgroup2 mount table → cgroup2', (t) => {
  const h = fakeHost(t, [['cgroup2', '', 'rw,nosuid,nodev,noexec,relatime,nsdelegate']], {
    '': 'cpuset cpu io memory pids',
  });
  const e = probeEnforcer({ ...h, kernelRelease: '6.1.0-18-amd64' });
  assert.equal(e.report.driver, 'cgroup2');
  assert.equal(e.report.kill, 'cgroup.kill');
  assert.equal(e.report.memoryGuarantee, true);
});

test('v1-only mount table (cpu,cpuacct co-mounted) → cgroup1 with a signal-loop kill', (t) => {
  const h = fakeHost(t, [
    ['cgroup', 'systemd', 'rw,nosuid,xattr,name=systemd'],
    ['cgroup', 'cpu,cpuacct', 'rw,nosuid,nodev,noexec,relatime,cpu,cpuacct'],
    ['cgroup', 'memory', 'rw,nosuid,nodev,noexec,relatime,memory'],
    ['cgroup', 'blkio', 'rw,blkio'],
    ['cgroup', 'freezer', 'rw,freezer'],
    ['cgroup', 'pids', 'rw,pids'],
  ]);
  const e = probeEnforcer({ ...h, kernelRelease: '4.19.0' });
  assert.equal(e.report.driver, 'cgroup1');
  assert.deepEqual(e.report.controllers, { cpu: 'v1', cpuacct: 'v1', memory: 'v1', io: 'v1', freezer: 'v1' });
  assert.equal(e.report.kill, 'signal-loop');
  assert.equal(e.report.memoryGuarantee, false);
  assert.deepEqual(
    e.report.parentDirs.map((p) => path.relative(h.root, p)),
    ['cpu,cpuacct/rrm', 'memory/rrm', 'blkio/rrm', 'freezer/rrm'],
  );
});

test('v1 controllers plus an empty unified tree → hybrid (freeze/kill via cgroup2)', (t) => {
  const h = fakeHost(
    t,
    [
      ['cgroup', 'cpu', 'rw,cpu'],
      ['cgroup', 'cpuacct', 'rw,cpuacct'],
      ['cgroup', 'memory', 'rw,memory'],
      ['cgroup', 'freezer', 'rw,freezer'],
      ['cgroup2', 'unified', 'rw,relatime'],
    ],
    { unified: '' },
  );
  const e = probeEnforcer({ ...h, kernelRelease: '6.18.44' });
  assert.equal(e.report.driver, 'hybrid');
  assert.deepEqual(e.report.controllers, {
    cpu: 'v1',
    cpuacct: 'v1',
    memory: 'v1',
    io: 'missing',
    freezer: 'v2',
  });
  assert.equal(e.report.kill, 'cgroup.kill');
  // the same host with an old kernel has nothing to use cgroup2 for: plain cgroup1
  const old = probeEnforcer({ ...h, kernelRelease: '4.19.0' });
  assert.equal(old.report.driver, 'cgroup1');
  assert.equal(old.report.controllers.freezer, 'v1');
});

test('nothing mounted → none, loudly', (t) => {
  const h = fakeHost(t, []);
  const e = probeEnforcer({ ...h, kernelRelease: '6.1.0' });
  assert.equal(e.report.driver, 'none');
  assert.equal(e.report.kill, 'none');
  assert.match(e.describe(), /ADVISORY MODE/);
  assert.match(e.report.reason, /NOTHING is enforced/);
  assert.deepEqual(e.list(), []);
  assert.equal(e.open('x'), null);
});

test('advisory slot: argv unchanged, nothing measured, freeze/kill refuse', async (t) => {
  const h = fakeHost(t, []);
  const e = probeEnforcer({ ...h, mountsFile: path.join(h.root, 'no-such-file') });
  assert.equal(e.report.driver, 'none');
  assert.match(e.report.notes.join('\n'), /cannot read/);
  const s = await e.create('adv', { mode: 'hard', requests: { cpu: 100 } });
  assert.equal(s.enforced, false);
  assert.deepEqual(s.wrap(['echo', '$(x)']), ['echo', '$(x)']);
  assert.deepEqual(s.measure(), {
    peakMemoryBytes: null,
    cpuUsageUsec: null,
    readBytes: null,
    writeBytes: null,
    oomKills: null,
  });
  await assert.rejects(s.freeze(), { name: 'EnforcementUnavailableError' });
  await assert.rejects(s.kill(), { name: 'EnforcementUnavailableError' });
  await s.destroy();
});

test('a cgroup2 tree offering no cpu/memory and no v1 → none', () => {
  const layout = decideLayout({
    mounts: parseMounts('cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n'),
    root: '/sys/fs/cgroup',
    v2Controllers: () => ['pids'],
    writable: () => true,
    kernel: [6, 1],
  });
  assert.equal(layout.driver, 'none');
  assert.match(layout.reason, /no cpu or memory controller/);
});

test('non-writable hierarchies are ignored', () => {
  const layout = decideLayout({
    mounts: parseMounts('cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n'),
    root: '/sys/fs/cgroup',
    v2Controllers: () => ['cpu', 'memory'],
    writable: () => false,
    kernel: [6, 1],
  });
  assert.equal(layout.driver, 'none');
  assert.match(layout.notes.join(), /not writable/);
});

test('kernel release parsing', () => {
  assert.deepEqual(parseKernelRelease('6.18.44-fc-v1147'), [6, 18]);
  assert.deepEqual(parseKernelRelease('5.4.0-150-generic'), [5, 4]);
  assert.equal(parseKernelRelease('garbage'), null);
});

test('this machine', { skip: !fs.existsSync('/sys/fs/cgroup') && 'no /sys/fs/cgroup' }, () => {
  const e = probeEnforcer({ parent: `rrm-test-${process.pid}-probe` });
  // Printed so the run log shows what was detected; the assertion below is specific to the build host
  // (cgroup v1 controllers + an empty cgroup2 tree at /sys/fs/cgroup/unified).
  console.log(e.describe());
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8');
  const hybridHost =
    / \/sys\/fs\/cgroup\/memory cgroup /.test(mounts) && / \/sys\/fs\/cgroup\/unified cgroup2 /.test(mounts);
  if (hybridHost && process.getuid?.() === 0) assert.equal(e.report.driver, 'hybrid');
  assert.deepEqual(e.list(), []); // probing creates nothing
  assert.equal(fs.existsSync(`/sys/fs/cgroup/memory/rrm-test-${process.pid}-probe`), false);
});
