/** How the CLI speaks: tables and lines for people, one JSON document for programs. */
import { formatDuration } from '../model/duration.js';
import { formatPriority } from '../model/priority.js';
import { formatVector } from '../model/quantity.js';
import type { Reservation } from '../model/reservation.js';

export interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly isTTY: boolean;
}

export const processIo: Io = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  isTTY: process.stderr.isTTY === true,
};

export function printJson(io: Io, value: unknown): void {
  io.out(`${JSON.stringify(value, null, 2)}\n`);
}

export function table(rows: readonly (readonly string[])[]): string {
  if (rows.length === 0) return '';
  const widths = (rows[0] as readonly string[]).map((_, i) =>
    Math.max(...rows.map((r) => (r[i] ?? '').length)),
  );
  return (
    rows
      .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '))
      .join('\n') + '\n'
  );
}

export function age(from: number | undefined, now: number): string {
  return from === undefined ? '-' : formatDuration(now - from);
}

export function describeCommand(r: Reservation): string {
  if (r.command && r.command.length) return r.command.join(' ');
  return r.packages.map((p) => `${p.manager}:${p.name}`).join(' ') || '-';
}

export function reservationRow(r: Reservation, now: number): string[] {
  return [
    r.id,
    r.state + (r.preemptRequestedAt !== undefined && r.state === 'granted' ? '(stopping)' : ''),
    formatPriority(r.priority),
    r.mode,
    formatVector(r.requests),
    age(r.state === 'granted' ? r.grantedAt : r.createdAt, now),
    String(r.holder.pid),
    describeCommand(r),
  ];
}

export const RESERVATION_HEADER = ['ID', 'STATE', 'PRIORITY', 'MODE', 'REQUESTS', 'AGE', 'PID', 'COMMAND'];
