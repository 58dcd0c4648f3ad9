/**
 * Wake latency, waiter side. "wait": queue for the whole instance with the real client (acquire:
 * change feed + poll), print {queued} when queued and {granted: t} (monotonic ms) once granted,
 * then release and print {released}. "watch": the floor, plain fs.watch on the directory; prints
 * {woke: t} at the first event for the file named in the command ("watch <name>").
 * argv[2]: {"path": ledger file, "pollMs": n}
 */
import { watch } from 'node:fs';
import { dirname } from 'node:path';
import { acquire } from '../../src/client/acquire.js';
import { benchRequest, openBenchLedger, selfHolder } from '../lib/bench-ledger.js';
import { nowMs } from '../lib/stats.js';
import { commands, say } from './protocol.js';

const args = JSON.parse(process.argv[2] ?? '{}') as { path: string; pollMs: number };
const ledger = openBenchLedger(args.path);
const request = benchRequest({ cpu: 1000 }, selfHolder());

say({ ready: true });
await commands(async (line) => {
  if (line === 'wait') {
    let told = false;
    const got = await acquire(ledger, request, {
      pollMs: args.pollMs,
      onWait: () => {
        if (!told) say({ queued: true });
        told = true;
      },
    });
    const t = nowMs();
    if (!told) say({ queued: false });
    say({ granted: t, id: got.handle.id });
    await ledger.release(got.handle.id, { token: got.handle.token });
    say({ released: true });
  } else if (line.startsWith('watch ')) {
    const name = line.slice(6);
    await new Promise<void>((resolve) => {
      const w = watch(dirname(args.path), { persistent: true }, (_type, file) => {
        if (String(file) !== name) return;
        const t = nowMs();
        w.close();
        say({ woke: t });
        resolve();
      });
      say({ watching: true });
    });
  }
});
await ledger.close();
