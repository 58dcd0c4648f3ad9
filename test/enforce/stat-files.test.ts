import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  parseBlkioServiceBytes,
  parseFlatKeyed,
  parseIoStat,
  parseProcs,
  parseSingleValue,
} from '../../src/enforce/stat-files.js';

test('flat keyed: cpu.stat, memory.events, memory.oom_control', () => {
  assert.deepEqual(parseFlatKeyed('usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n'), {
    usage_usec: 1234,
    user_usec: 1000,
    system_usec: 234,
  });
  assert.equal(parseFlatKeyed('low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n').oom_kill, 1);
  assert.deepEqual(parseFlatKeyed('oom_kill_disable 0\nunder_oom 0\noom_kill 2\n'), {
    oom_kill_disable: 0,
    under_oom: 0,
    oom_kill: 2,
  });
  assert.deepEqual(parseFlatKeyed('populated 1\nfrozen 0'), { populated: 1, frozen: 0 });
  assert.deepEqual(parseFlatKeyed('weird line here\nx notanumber\n\n'), {});
});

test('io.stat sums every key over devices', () => {
  const s = parseIoStat(
    '8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n' +
      '8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 dios=3021\n',
  );
  assert.equal(s.rbytes, 1459200 + 90430464);
  assert.equal(s.wbytes, 314773504 + 299008000);
  assert.equal(s.dios, 3021);
  assert.deepEqual(parseIoStat(''), {});
});

test('blkio service bytes: Read and Write over devices, Total ignored', () => {
  const t =
    '254:0 Read 4096\n254:0 Write 8192\n254:0 Sync 12288\n254:0 Async 0\n254:0 Discard 0\n254:0 Total 12288\n' +
    '7:0 Read 100\n7:0 Write 1\nTotal 12389\n';
  assert.deepEqual(parseBlkioServiceBytes(t), { read: 4196, write: 8193 });
  assert.deepEqual(parseBlkioServiceBytes('Total 0\n'), { read: 0, write: 0 });
});

test('single values and procs', () => {
  assert.equal(parseSingleValue('268435456\n'), 268435456);
  assert.equal(parseSingleValue('max\n'), Infinity);
  assert.equal(parseSingleValue('-1'), Infinity);
  assert.throws(() => parseSingleValue(''), /not a number/);
  assert.deepEqual(parseProcs('12\n345\n\n'), [12, 345]);
  assert.deepEqual(parseProcs(''), []);
});
