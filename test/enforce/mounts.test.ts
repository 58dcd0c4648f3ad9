import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMounts, unescapeMountField } from '../../src/enforce/mounts.js';

test('parses /proc/self/mounts lines, options split', () => {
  const m = parseMounts(
    'cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0\n' +
      'cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n\n',
  );
  assert.deepEqual(m, [
    {
      source: 'cgroup',
      mountpoint: '/sys/fs/cgroup/cpu,cpuacct',
      fstype: 'cgroup',
      options: ['rw', 'nosuid', 'nodev', 'noexec', 'relatime', 'cpu', 'cpuacct'],
    },
    {
      source: 'cgroup2',
      mountpoint: '/sys/fs/cgroup/unified',
      fstype: 'cgroup2',
      options: ['rw', 'relatime'],
    },
  ]);
});

test('decodes octal escapes and skips junk lines', () => {
  assert.equal(unescapeMountField('/mnt/a\\040b\\134c'), '/mnt/a b\\c');
  const m = parseMounts('# comment\nonlyone\n/dev/x /mnt/my\\040disk ext4 rw 0 0');
  assert.equal(m.length, 1);
  assert.equal(m[0]?.mountpoint, '/mnt/my disk');
});
