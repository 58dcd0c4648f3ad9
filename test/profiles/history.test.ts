/**
 * History: properties of the recommender (at least the chosen percentile plus margin, decay toward
 * recent runs, OOM-killed runs raise it) and the SQLite store (WAL, migrations, the fallbacks from
 * exact versions to major versions to per-package evidence).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HistoryStore, historyPart, instanceClassOf, sampleFromRun } from '../../src/profiles/history.js';
import {
  DEFAULT_RECOMMEND,
  recommend,
  weightedPercentile,
  type MeasuredSample,
} from '../../src/profiles/recommend.js';

const DAY = 86_400_000;
const NOW = 1_800_000_000_000;
const MiB = 2 ** 20;
const o = DEFAULT_RECOMMEND;
/** What the recommendation multiplies a measured value by (the safety margin). */
const M = 1 + o.margin;

/** Nearest-rank percentile of plain numbers. */
function nearestRank(values: number[], p: number): number {
  const xs = [...values].sort((a, b) => a - b);
  return xs[Math.max(0, Math.ceil(p * xs.length) - 1)] as number;
}

const sampleArb = (ageMax: number): fc.Arbitrary<MeasuredSample> =>
  fc.record({
    at: fc.integer({ min: 0, max: ageMax }).map((age) => NOW - age),
    peakMemoryBytes: fc.integer({ min: 1 * MiB, max: 4096 * MiB }),
    cpuUsageUsec: fc.integer({ min: 1000, max: 600_000_000 }),
    wallMs: fc.integer({ min: 100, max: 600_000 }),
    exitCode: fc.constant(0),
    oomKills: fc.constant(0),
  });

test('property: with samples of one age the recommendation is at least the chosen percentile plus margin', () => {
  fc.assert(
    fc.property(fc.array(sampleArb(0), { minLength: 3, maxLength: 40 }), (samples) => {
      const r = recommend(samples, NOW, o);
      assert.ok(r);
      const p = nearestRank(
        samples.map((s) => s.peakMemoryBytes as number),
        o.percentile,
      );
      assert.ok((r.requests.memory ?? 0) >= p, `${r.requests.memory} < p90 ${p}`);
      assert.ok((r.requests.memory ?? 0) >= Math.floor(p * (1 + o.margin)));
      const peak = Math.max(...samples.map((s) => s.peakMemoryBytes as number));
      assert.ok(
        (r.requests.memory ?? 0) <= Math.max(o.minMemory, peak * (1 + o.margin) + 1),
        'at most the largest peak plus margin, or the floor',
      );
      const cores = samples.map((s) => (s.cpuUsageUsec as number) / 1000 / s.wallMs);
      assert.ok(
        (r.requests.cpu ?? 0) >= nearestRank(cores, o.percentile) * 1000,
        'CPU: at least p90 of CPU time / wall time',
      );
      assert.ok((r.limits.memory ?? 0) >= (r.requests.memory ?? 0));
    }),
    { numRuns: 200 },
  );
});

test('property: with samples of any age it is at least the weighted percentile', () => {
  fc.assert(
    fc.property(fc.array(sampleArb(90 * DAY), { minLength: 3, maxLength: 40 }), (samples) => {
      const r = recommend(samples, NOW, o);
      assert.ok(r);
      const wp = weightedPercentile(
        samples.map((s) => ({
          v: s.peakMemoryBytes as number,
          w: Math.pow(2, -(NOW - s.at) / o.halfLifeMs),
        })),
        o.percentile,
      ) as number;
      assert.ok((r.requests.memory ?? 0) >= wp);
    }),
    { numRuns: 200 },
  );
});

test('property: decay — as old high runs age, the recommendation moves toward recent runs, never up', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 3, max: 10 }),
      fc.integer({ min: 3, max: 10 }),
      fc.integer({ min: 64, max: 512 }),
      fc.integer({ min: 2, max: 8 }),
      (nOld, nNew, low, factor) => {
        const make = (ageOld: number): MeasuredSample[] => [
          ...Array.from({ length: nOld }, (_, i) => ({
            at: NOW - ageOld - i,
            peakMemoryBytes: low * factor * MiB,
            wallMs: 1000,
            exitCode: 0,
          })),
          ...Array.from({ length: nNew }, (_, i) => ({
            at: NOW - i,
            peakMemoryBytes: low * MiB,
            wallMs: 1000,
            exitCode: 0,
          })),
        ];
        let last = Infinity;
        for (const age of [0, 7, 14, 30, 60, 120].map((d) => d * DAY)) {
          const m = recommend(make(age), NOW, o)?.requests.memory ?? 0;
          assert.ok(m <= last, `age ${age / DAY}d: ${m} > ${last}`);
          last = m;
        }
        assert.equal(last, Math.ceil(low * MiB * (1 + o.margin)), 'old enough, only the recent runs count');
      },
    ),
    { numRuns: 100 },
  );
});

test('property: an OOM-killed run never lowers the recommendation and counts as more than its limit', () => {
  fc.assert(
    fc.property(fc.array(sampleArb(30 * DAY), { minLength: 3, maxLength: 20 }), fc.nat(), (samples, pick) => {
      const before = recommend(samples, NOW, o)?.requests.memory ?? 0;
      const i = pick % samples.length;
      const s = samples[i] as MeasuredSample;
      const limit = s.peakMemoryBytes as number;
      const oomed = samples.map((x, j) =>
        j === i ? { ...x, oomKills: 1, exitCode: 137, memoryLimit: limit } : x,
      );
      const after = recommend(oomed, NOW, o)?.requests.memory ?? 0;
      assert.ok(after >= before, `${after} < ${before}`);
      const allOom = samples.map((x) => ({
        ...x,
        oomKills: 1,
        exitCode: 137,
        memoryLimit: 256 * MiB,
        peakMemoryBytes: 256 * MiB,
      }));
      const r = recommend(allOom, NOW, o);
      assert.ok((r?.requests.memory ?? 0) >= 256 * MiB * o.oomBump, 'every run needed more than its limit');
      assert.equal(r?.oomSamples, samples.length);
    }),
    { numRuns: 100 },
  );
});

test('fewer than 3 usable runs: no recommendation; failures other than OOM do not count', () => {
  const ok = (at: number): MeasuredSample => ({
    at,
    peakMemoryBytes: 100 * MiB,
    wallMs: 1000,
    cpuUsageUsec: 500_000,
    exitCode: 0,
  });
  assert.equal(recommend([ok(NOW), ok(NOW)], NOW), undefined);
  assert.equal(recommend([ok(NOW), ok(NOW), { ...ok(NOW), exitCode: 1 }], NOW), undefined);
  assert.equal(recommend([ok(NOW), ok(NOW), ok(NOW - 200 * DAY)], NOW), undefined, 'older than maxAge');
  const r = recommend([ok(NOW), ok(NOW), ok(NOW)], NOW);
  assert.equal(r?.requests.memory, Math.ceil(100 * MiB * M));
  assert.equal(r?.requests.cpu, Math.ceil(500 * M), 'CPU request from CPU time / wall time');
  assert.equal(r?.estimates.cpuMs, Math.ceil(500 * M));
});

test('the store: WAL, user_version migrations, exact → major → per-package evidence', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rrm-history-'));
  const store = HistoryStore.open(dir);
  const cls = instanceClassOf(2, 24 * 2 ** 30);
  assert.equal(cls, '2c-24Gi');
  const measured = (mem: number) => ({
    peakMemoryBytes: mem * MiB,
    cpuUsageUsec: 2_000_000,
    wallMs: 4000,
    readBytes: 0,
    writeBytes: 0,
    oomKills: 0,
    exitCode: 0,
  });
  const sharp = { manager: 'npm', name: 'sharp', version: '0.33.5' };
  const lodash = { manager: 'npm', name: 'lodash', version: '4.17.21' };
  for (const [i, mem] of [100, 120, 110].entries())
    store.record({
      packages: [sharp],
      requests: { cpu: 1000, memory: 512 * MiB },
      measured: measured(mem),
      instanceClass: cls,
      at: NOW - i * 1000,
    });
  assert.equal(store.recommend([sharp], cls, NOW)?.basis, 'exact');
  assert.equal(store.recommend([sharp], cls, NOW)?.requests.memory, Math.ceil(120 * MiB * M));
  assert.equal(
    store.recommend([{ ...sharp, version: '0.33.9' }], cls, NOW)?.basis,
    'major',
    'same major version',
  );
  assert.equal(
    store.recommend([{ ...sharp, version: '1.0.0' }], cls, NOW),
    undefined,
    'another major: no evidence',
  );
  assert.equal(
    store.recommend([sharp], 'other-class', NOW)?.basis,
    'major',
    'another class falls back to any class',
  );
  assert.equal(
    store.recommend([{ manager: 'npm', name: 'sharp' }], cls, NOW)?.basis,
    'any-version',
    'no version: any measured version',
  );
  assert.equal(store.recommend([sharp, lodash], cls, NOW), undefined, 'per-package needs evidence for each');
  for (const mem of [30, 40, 35])
    store.record({ packages: [lodash], requests: {}, measured: measured(mem), instanceClass: cls, at: NOW });
  const both = store.recommend([sharp, lodash], cls, NOW);
  assert.equal(both?.basis, 'per-package');
  assert.equal(both?.requests.memory, Math.ceil(120 * MiB * M), 'memory: the larger');
  assert.equal(both?.estimates.wallMs, 2 * Math.ceil(4000 * M), 'time: the sum');
  assert.equal(
    store.record({ packages: [], requests: {}, measured: measured(1) }),
    undefined,
    'nothing to key an empty run by',
  );
  const part = historyPart(store.recommend([sharp], cls, NOW)!);
  assert.equal(part.source.provenance, 'history');
  assert.match(part.source.note ?? '', /p90 of 3 measured run\(s\) \(same versions on 2c-24Gi\)/);
  store.close();
  const raw = new Database(join(dir, 'history.db'));
  assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(raw.pragma('user_version', { simple: true }), 1);
  raw.close();
  const again = HistoryStore.open(dir);
  assert.equal(again.count(), 6, 'reopening migrates nothing and keeps the samples');
  again.close();
});

test('the store: an OOM-killed run raises the next recommendation above its limit', () => {
  const store = HistoryStore.open(mkdtempSync(join(tmpdir(), 'rrm-history-')));
  const pkg = { manager: 'apt', name: 'foo-dkms', version: '1.0-1' };
  const run = (peak: number, oom: boolean) =>
    store.record({
      packages: [pkg],
      requests: { memory: 256 * MiB },
      limits: { memory: 320 * MiB },
      measured: {
        peakMemoryBytes: peak * MiB,
        cpuUsageUsec: 1e6,
        wallMs: 2000,
        oomKills: oom ? 1 : 0,
        exitCode: oom ? 137 : 0,
      },
      instanceClass: 'c',
      at: NOW,
    });
  run(200, false);
  run(210, false);
  run(220, false);
  const before = store.recommend([pkg], 'c', NOW)?.requests.memory ?? 0;
  run(320, true);
  const after = store.recommend([pkg], 'c', NOW);
  assert.ok((after?.requests.memory ?? 0) > before);
  assert.ok((after?.requests.memory ?? 0) >= 320 * MiB * 1.2, 'needed more than the 320Mi limit');
  assert.match(historyPart(after!).source.note ?? '', /1 OOM-killed run\(s\) counted as limit × 1.2/);
  store.close();
});

test('sampleFromRun: what rrm run records from a finished run (paused time excluded)', () => {
  const store = HistoryStore.open(mkdtempSync(join(tmpdir(), 'rrm-history-')));
  const pkg = { manager: 'npm', name: 'x', version: '1.0.0' };
  for (let i = 0; i < 3; i++)
    store.record(
      sampleFromRun(
        [pkg],
        {
          usage: {
            peakMemoryBytes: 50 * MiB,
            cpuUsageUsec: 3_000_000,
            readBytes: null,
            writeBytes: null,
            oomKills: 0,
          },
          wallMs: 5000,
          pausedMs: 2000,
          exitCode: 0,
        },
        { cpu: 1000, memory: 256 * MiB },
        { cpu: 1250, memory: 320 * MiB },
        `rsv_${i}`,
      ),
    );
  const r = store.recommend([pkg], 'any-class', Date.now());
  assert.equal(r?.requests.cpu, Math.ceil(1000 * M), '3 s of CPU over 3 s unpaused');
  assert.equal(r?.estimates.wallMs, Math.ceil(3000 * M));
  store.close();
});
