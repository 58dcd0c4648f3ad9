/** Durations such as `500ms`, `30s`, `5m`, `2h`, `1h30m`; compiled to milliseconds. */
import { RrmError } from './errors.js';

const UNIT_MS: Readonly<Record<string, number>> = Object.freeze({
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
});
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;

export function parseDuration(text: string, what = 'duration'): number {
  const s = String(text).trim();
  const bad = (why: string): RrmError =>
    new RrmError('RRM_ERR_BAD_DURATION', `${what}: ${JSON.stringify(text)} ${why}`, {
      value: text,
      field: what,
    });
  if (s === '') throw bad('is empty');
  if (s.startsWith('-')) throw bad('is negative');
  if (/^\d+$/.test(s)) return checked(Number(s) * 1000, bad);
  PART.lastIndex = 0;
  let total = 0;
  let matched = 0;
  while (PART.lastIndex < s.length) {
    const m = PART.exec(s);
    if (!m) throw bad('is not a duration (examples: 500ms, 30s, 5m, 1h30m)');
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    matched++;
  }
  if (matched === 0) throw bad('is not a duration');
  return checked(total, bad);
}

function checked(ms: number, bad: (why: string) => RrmError): number {
  const out = Math.round(ms);
  if (!Number.isSafeInteger(out)) throw bad('is too long');
  return out;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${Number(s.toFixed(1))}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${Math.round(s % 60)}s`;
  return `${Math.floor(m / 60)}h${m % 60}m`;
}
