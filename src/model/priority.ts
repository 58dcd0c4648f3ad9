/** Priority: an integer, with named classes. Higher wins. */
import { RrmError } from './errors.js';

export const PRIORITY_CLASSES = Object.freeze({ critical: 1000, system: 800, normal: 500, batch: 100 });
export type PriorityClass = keyof typeof PRIORITY_CLASSES;
export const DEFAULT_PRIORITY = PRIORITY_CLASSES.normal;
const MAX = 1_000_000_000;

export function parsePriority(text: string): number {
  const s = String(text).trim();
  if (Object.hasOwn(PRIORITY_CLASSES, s)) return PRIORITY_CLASSES[s as PriorityClass];
  if (/^-?\d+$/.test(s)) {
    const n = Number(s);
    if (Math.abs(n) <= MAX) return n;
  }
  throw new RrmError(
    'RRM_ERR_BAD_PRIORITY',
    `--priority: ${JSON.stringify(text)} is not a priority: use critical, system, normal, batch or an integer (|n| ≤ ${MAX})`,
    { value: text },
  );
}

/** The class a number belongs to: the highest class whose value it reaches, else `batch`. */
export function priorityClassOf(priority: number): PriorityClass {
  const ordered = (Object.entries(PRIORITY_CLASSES) as [PriorityClass, number][]).sort((a, b) => b[1] - a[1]);
  for (const [name, value] of ordered) if (priority >= value) return name;
  return 'batch';
}

export function formatPriority(priority: number): string {
  const exact = (Object.entries(PRIORITY_CLASSES) as [PriorityClass, number][]).find(
    ([, v]) => v === priority,
  );
  return exact ? exact[0] : String(priority);
}
