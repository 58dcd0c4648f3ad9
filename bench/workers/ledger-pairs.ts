/**
 * One contender for the embedded ledger: reserve + release pairs on a shared SQLite ledger, as fast
 * as it can for `durationMs` after "go". Prints {ready}, then {pairs, errors, lat} (lat: ms per pair).
 * argv[2]: {"path": ledger file, "synchronous": "normal"|"full", "durationMs": n}
 */
import { benchRequest, openBenchLedger, selfHolder } from '../lib/bench-ledger.js';
import { nowMs } from '../lib/stats.js';
import { commands, ioCounters, Reservoir, say } from './protocol.js';

const args = JSON.parse(process.argv[2] ?? '{}') as {
  path: string;
  synchronous: 'normal' | 'full';
  durationMs: number;
};
const ledger = openBenchLedger(args.path, { synchronous: args.synchronous });
const request = benchRequest({ cpu: 10, memory: 2 ** 20 }, selfHolder());

async function pair(): Promise<void> {
  const { outcome, token } = await ledger.reserve(request);
  if (outcome.kind !== 'granted') throw new Error(`not granted: ${outcome.kind}`);
  await ledger.release(outcome.reservation.id, { token });
}

await pair(); // warm: statements prepared, JIT
say({ ready: true });
await commands(async (line) => {
  if (line !== 'go') return;
  const lat = new Reservoir();
  let pairs = 0;
  let errors = 0;
  let lastError = '';
  const io0 = ioCounters();
  const start = nowMs();
  const end = start + args.durationMs;
  for (let t = start; t < end;) {
    try {
      await pair();
      pairs++;
    } catch (e) {
      errors++;
      lastError = e instanceof Error ? e.message : String(e);
    }
    const t2 = nowMs();
    lat.add(t2 - t);
    t = t2;
  }
  const io1 = ioCounters();
  say({
    pairs,
    errors,
    lastError,
    elapsedMs: nowMs() - start,
    writtenBytes: io1.wchar - io0.wchar,
    writeCalls: io1.syscw - io0.syscw,
    lat: lat.values.map((x) => Math.round(x * 1000) / 1000),
  });
});
await ledger.close();
