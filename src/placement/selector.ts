/**
 * Label selectors for `target: any`, written as kubectl writes equality selectors:
 * `os=debian,zone=a` (every label must equal) and `zone!=b` (must differ or be absent).
 * Stored as a map whose values start with `!` for inequality.
 */
import { RrmError } from '../model/errors.js';

const LABEL = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62}[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;

function bad(text: string, why: string): RrmError {
  return new RrmError('RRM_ERR_BAD_REQUEST', `target selector ${JSON.stringify(text)}: ${why}`);
}

/** Parses `k=v,k2!=v2` into `{k: 'v', k2: '!v2'}`. An empty string selects every instance. */
export function parseSelector(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (text.trim() === '') return out;
  for (const part of text.split(',')) {
    const m = /^\s*([^=!\s]+)\s*(!=|==|=)\s*([^\s]*)\s*$/.exec(part);
    if (!m) throw bad(text, `${JSON.stringify(part)} is not key=value or key!=value`);
    const [, key, op, value] = m as unknown as [string, string, string, string];
    if (!LABEL.test(key)) throw bad(text, `${JSON.stringify(key)} is not a valid label key`);
    if (!VALUE.test(value)) throw bad(text, `${JSON.stringify(value)} is not a valid label value`);
    if (Object.hasOwn(out, key)) throw bad(text, `label ${key} appears twice`);
    out[key] = op === '!=' ? `!${value}` : value;
  }
  return out;
}

/** Checks a selector given as a map (the API's form); returns it unchanged. */
export function checkSelector(sel: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  for (const [k, v] of Object.entries(sel)) {
    const value = v.startsWith('!') ? v.slice(1) : v;
    if (!LABEL.test(k) || !VALUE.test(value)) throw bad(`${k}=${v}`, 'not a valid label key or value');
  }
  return sel;
}

export function formatSelector(sel: Readonly<Record<string, string>>): string {
  return Object.entries(sel)
    .map(([k, v]) => (v.startsWith('!') ? `${k}!=${v.slice(1)}` : `${k}=${v}`))
    .join(',');
}

export function matchesSelector(
  labels: Readonly<Record<string, string>>,
  sel: Readonly<Record<string, string>>,
): boolean {
  for (const [k, v] of Object.entries(sel)) {
    if (v.startsWith('!')) {
      if (labels[k] === v.slice(1)) return false;
    } else if (labels[k] !== v) return false;
  }
  return true;
}
