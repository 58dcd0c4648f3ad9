/** The waiting line: live on a terminal, a plain line every few seconds otherwise. */
import type { WaitStatus } from '../admission/schedule.js';
import { describeShortfall } from '../client/acquire.js';
import type { Io } from './output.js';

export function describeWait(s: WaitStatus, now: number): string {
  const parts = [`position ${s.position} of ${s.queueLength}`];
  if (s.shortfall.length) parts.push(`short: ${describeShortfall(s.shortfall)}`);
  if (s.position > 1)
    parts.push(`behind ${s.position === 2 ? s.ahead[0] : `${s.position - 1} waiters, first ${s.ahead[0]}`}`);
  if (s.victims.length) parts.push(`preempting ${s.victims.join(', ')}`);
  if (s.estimatedStart !== undefined)
    parts.push(`estimated start in ${Math.max(0, Math.round((s.estimatedStart - now) / 1000))}s`);
  return `waiting: ${parts.join('; ')}`;
}

export class WaitReporter {
  private lastLine = '';
  private lastPrinted = 0;
  private live = false;

  constructor(
    private readonly io: Io,
    private readonly id: string,
    private readonly everyMs = 5_000,
  ) {}

  update(status: WaitStatus): void {
    const now = Date.now();
    const line = `rrm: ${this.id} ${describeWait(status, now)}`;
    if (this.io.isTTY) {
      if (line !== this.lastLine) this.io.err(`\r\x1b[K${line}`);
      this.live = true;
    } else if (line !== this.lastLine || now - this.lastPrinted >= this.everyMs) {
      if (now - this.lastPrinted >= this.everyMs || this.lastLine === '') {
        this.io.err(`${line}\n`);
        this.lastPrinted = now;
      }
    }
    this.lastLine = line;
  }

  done(): void {
    if (this.live) this.io.err('\r\x1b[K');
    this.live = false;
  }
}
