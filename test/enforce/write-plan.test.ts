import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  blkioWeightV1,
  cfsQuotaUs,
  cpuMaxValue,
  cpuSharesFromMillicores,
  cpuWeightFromMillicores,
  ioWeightV2,
} from '../../src/enforce/value-mapping.js';
import { planV1, planV2, type PlannedWrite } from '../../src/enforce/write-plan.js';

const MiB = 1024 * 1024;
const pairs = (ws: readonly PlannedWrite[]): string[] =>
  ws.map((w) => `${w.file}=${w.value}${w.optional ? '?' : ''}`);

test('cpu proportion: 1000m is the kernel default in both versions, 3:1 stays 3:1', () => {
  assert.equal(cpuSharesFromMillicores(1000), 1024);
  assert.equal(cpuWeightFromMillicores(1000), 100);
  assert.equal(cpuSharesFromMillicores(1500) / cpuSharesFromMillicores(500), 3);
  assert.equal(cpuWeightFromMillicores(1500) / cpuWeightFromMillicores(500), 3);
  assert.equal(cpuSharesFromMillicores(0), 2);
  assert.equal(cpuSharesFromMillicores(undefined), 2);
  assert.equal(cpuWeightFromMillicores(0), 1);
  assert.equal(cpuSharesFromMillicores(1e9), 262144);
  assert.equal(cpuWeightFromMillicores(1e9), 10000);
  assert.throws(() => cpuWeightFromMillicores(-5), RangeError);
});

test('cpu caps: quota per 100ms period, at least 1ms', () => {
  assert.equal(cfsQuotaUs(500), 50000);
  assert.equal(cfsQuotaUs(2500), 250000);
  assert.equal(cfsQuotaUs(1), 1000);
  assert.equal(cpuMaxValue(500), '50000 100000');
  assert.equal(cpuMaxValue(undefined), 'max 100000');
});

test('io weights: 1 MiB/s per unit, clamped', () => {
  assert.equal(ioWeightV2(100 * MiB), 100);
  assert.equal(ioWeightV2(0), 1);
  assert.equal(ioWeightV2(1e12), 10000);
  assert.equal(blkioWeightV1(0), 10);
  assert.equal(blkioWeightV1(5000 * MiB), 1000);
});

test('v2 plan, hard with caps', () => {
  const p = planV2({
    mode: 'hard',
    requests: { cpu: 1500, memory: 512 * MiB, diskIo: 20 * MiB },
    limits: { cpu: 1875, memory: 640 * MiB, diskIo: 40 * MiB },
    ioDevice: '8:0',
  });
  assert.deepEqual(pairs(p.writes), [
    'cpu.weight=150',
    'cpu.max=187500 100000',
    `memory.min=${512 * MiB}`,
    `memory.max=${640 * MiB}`,
    'memory.swap.max=0?',
    'memory.oom.group=1?',
    'io.weight=default 20?',
    `io.max=8:0 rbps=${40 * MiB} wbps=${40 * MiB}`,
  ]);
  assert.deepEqual(p.notes, []);
});

test('v2 plan, soft without caps; diskIo cap without device is a note', () => {
  const p = planV2({ mode: 'soft', requests: { cpu: 500, memory: MiB }, limits: { diskIo: MiB } });
  assert.deepEqual(pairs(p.writes), [
    'cpu.weight=50',
    'cpu.max=max 100000',
    `memory.low=${MiB}`,
    'memory.max=max',
    'memory.oom.group=1?',
    'io.weight=default 1?',
  ]);
  assert.match(p.notes.join(), /diskIo limit not enforced/);
});

test('v1 plan, hard with caps and soft without', () => {
  const hard = planV1({
    mode: 'hard',
    requests: { cpu: 1500, memory: 256 * MiB },
    limits: { cpu: 500, memory: 256 * MiB, diskIo: 1000 },
    ioDevice: '254:0',
  });
  assert.deepEqual(pairs(hard.writes), [
    'cpu.shares=1536',
    'cpu.cfs_period_us=100000',
    'cpu.cfs_quota_us=50000',
    `memory.soft_limit_in_bytes=${256 * MiB}`,
    `memory.limit_in_bytes=${256 * MiB}`,
    `memory.memsw.limit_in_bytes=${256 * MiB}?`,
    'blkio.weight=10?',
    'blkio.throttle.read_bps_device=254:0 1000',
    'blkio.throttle.write_bps_device=254:0 1000',
  ]);
  assert.deepEqual(hard.writes.find((w) => w.file === 'blkio.weight')?.alternatives, ['blkio.bfq.weight']);
  const soft = planV1({ mode: 'soft', requests: { cpu: 500 }, limits: {} });
  assert.deepEqual(pairs(soft.writes), [
    'cpu.shares=512',
    'cpu.cfs_period_us=100000',
    'cpu.cfs_quota_us=-1',
    'memory.soft_limit_in_bytes=0',
    'memory.limit_in_bytes=-1',
    'memory.memsw.limit_in_bytes=-1?',
    'blkio.weight=10?',
  ]);
});

test('v1 plan puts a never-throttling rule on other disks so their I/O is counted', () => {
  const p = planV1({
    mode: 'soft',
    requests: {},
    limits: { diskIo: 1000 },
    ioDevice: '254:0',
    accountDevices: ['254:0', '8:16'],
  });
  assert.deepEqual(
    pairs(p.writes).filter((x) => x.startsWith('blkio.throttle')),
    [
      'blkio.throttle.read_bps_device=254:0 1000',
      'blkio.throttle.write_bps_device=254:0 1000',
      'blkio.throttle.read_bps_device=8:16 18446744073709551614?',
      'blkio.throttle.write_bps_device=8:16 18446744073709551614?',
    ],
  );
});
