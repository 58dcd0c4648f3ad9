/** wrap()'s argv, run through a real /bin/sh with regular files standing in for cgroup.procs. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { buildJoinArgv, JOIN_EXIT_CODE, JOIN_SCRIPT } from '../../src/enforce/join-script.js';

const HOSTILE = [
  '; rm -rf /',
  '$(touch /tmp/pwned)',
  '$(touch PWNED)',
  '`touch PWNED`',
  '"',
  "'",
  '--',
  '$HOME',
  '*',
  'a\nb',
  '  spaced  ',
  '',
  '\\',
  '$@',
  '$1',
];

function tmp(t: { after: (fn: () => void) => void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'rrm-join-'));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

test('argv shape: fixed script, paths, --, then the user argv untouched', () => {
  const argv = buildJoinArgv(['/cg/a/cgroup.procs', '/cg/b/cgroup.procs'], ['make', '-j2', '$(x)']);
  assert.deepEqual(argv, [
    '/bin/sh',
    '-c',
    JOIN_SCRIPT,
    'rrm-join',
    '/cg/a/cgroup.procs',
    '/cg/b/cgroup.procs',
    '--',
    'make',
    '-j2',
    '$(x)',
  ]);
  assert.throws(() => buildJoinArgv([], []), /argv must name a program/);
  assert.throws(() => buildJoinArgv(['relative/cgroup.procs'], ['x']), /absolute/);
});

test('hostile arguments reach the program literally and nothing is executed', (t) => {
  const d = tmp(t);
  const procs = path.join(d, 'cgroup.procs');
  fs.writeFileSync(procs, '');
  const before = fs.statSync('/tmp/pwned', { throwIfNoEntry: false })?.mtimeMs;
  const [cmd, ...args] = buildJoinArgv(
    [procs],
    [process.execPath, '-e', 'process.stdout.write(JSON.stringify(process.argv.slice(1)))', ...HOSTILE],
  );
  const r = spawnSync(cmd as string, args, { cwd: d, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), HOSTILE);
  assert.equal(fs.existsSync(path.join(d, 'PWNED')), false);
  assert.equal(
    fs.statSync('/tmp/pwned', { throwIfNoEntry: false })?.mtimeMs,
    before,
    '/tmp/pwned was touched',
  );
});

test('the pid written to every cgroup.procs is the pid that runs the program (exec, no fork)', (t) => {
  const d = tmp(t);
  const files = ['a', 'b', 'c'].map((n) => path.join(d, n));
  for (const f of files) fs.writeFileSync(f, '');
  const [cmd, ...args] = buildJoinArgv(files, [
    process.execPath,
    '-e',
    'process.stdout.write(String(process.pid))',
  ]);
  const r = spawnSync(cmd as string, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(String(r.pid), r.stdout);
  for (const f of files) assert.equal(fs.readFileSync(f, 'utf8').trim(), r.stdout);
});

test('a failed join exits 125 and never runs the program', (t) => {
  const d = tmp(t);
  const marker = path.join(d, 'ran');
  const ok = path.join(d, 'ok.procs');
  fs.writeFileSync(ok, '');
  const [cmd, ...args] = buildJoinArgv([ok, path.join(d, 'missing-dir', 'cgroup.procs')], ['touch', marker]);
  const r = spawnSync(cmd as string, args, { encoding: 'utf8' });
  assert.equal(r.status, JOIN_EXIT_CODE);
  assert.match(r.stderr, /rrm-join: cannot join cgroup/);
  assert.equal(fs.existsSync(marker), false);
});
