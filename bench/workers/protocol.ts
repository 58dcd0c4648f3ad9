/** The worker side of the JSON-lines protocol (see lib/lines.ts). */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

export function say(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

/** Calls `onLine` for every command line; resolves when stdin closes. */
export function commands(onLine: (line: string) => Promise<void> | void): Promise<void> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin });
    let chain = Promise.resolve();
    rl.on('line', (line) => {
      chain = chain
        .then(() => onLine(line.trim()))
        .catch((e) => say({ error: e instanceof Error ? e.stack : String(e) }));
    });
    rl.on('close', () => void chain.then(() => resolve()));
  });
}

/** Keeps a bounded uniform sample of latencies (reservoir). */
export class Reservoir {
  readonly values: number[] = [];
  private seen = 0;
  constructor(private readonly size = 20_000) {}
  add(v: number): void {
    this.seen++;
    if (this.values.length < this.size) this.values.push(v);
    else {
      const j = Math.floor(Math.random() * this.seen);
      if (j < this.size) this.values[j] = v;
    }
  }
}

/** Bytes and calls written by this process so far (/proc/self/io: wchar, syscw); 0 when unreadable. */
export function ioCounters(): { wchar: number; syscw: number } {
  try {
    const text = readFileSync('/proc/self/io', 'utf8');
    const get = (k: string): number => Number(new RegExp(`^${k}: (\\d+)`, 'm').exec(text)?.[1] ?? 0);
    return { wchar: get('wchar'), syscw: get('syscw') };
  } catch {
    return { wchar: 0, syscw: 0 };
  }
}
