/**
 * Just enough semver to walk an npm dependency tree: parse versions, test ranges (`^`, `~`, x-ranges,
 * comparators, hyphen ranges, `||`), pick the highest match. Pure. Prereleases match only ranges
 * that mention a prerelease of the same major.minor.patch, as npm's semver does.
 */

export interface SemVer {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  readonly pre: readonly (string | number)[];
}

const VERSION = /^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;

export function parseVersion(text: string): SemVer | null {
  const m = VERSION.exec(text.trim());
  if (!m) return null;
  const pre = m[4] ? m[4].split('.').map((p) => (/^\d+$/.test(p) ? Number(p) : p)) : [];
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), pre };
}

export function compare(a: SemVer, b: SemVer): number {
  if (a.major !== b.major) return a.major - b.major;
  if (a.minor !== b.minor) return a.minor - b.minor;
  if (a.patch !== b.patch) return a.patch - b.patch;
  if (a.pre.length === 0 || b.pre.length === 0) return b.pre.length - a.pre.length;
  for (let i = 0; i < Math.max(a.pre.length, b.pre.length); i++) {
    const x = a.pre[i];
    const y = b.pre[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    if (typeof x === 'number') return -1;
    if (typeof y === 'number') return 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

type Op = '<' | '<=' | '>' | '>=' | '=';
interface Comparator {
  readonly op: Op;
  readonly v: SemVer;
}

/** A partial version `1`, `1.2`, `1.x`, `*` → the number parts given (undefined = wildcard). */
function partial(text: string): { parts: (number | undefined)[]; pre: (string | number)[] } | null {
  const t = text.trim().replace(/^v/, '').replace(/^=/, '');
  if (t === '' || t === '*' || t === 'x' || t === 'X') return { parts: [], pre: [] };
  const m =
    /^(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/.exec(t);
  if (!m) return null;
  const num = (s: string | undefined): number | undefined =>
    s === undefined || /^[xX*]$/.test(s) ? undefined : Number(s);
  const parts = [num(m[1]), num(m[2]), num(m[3])];
  // Anything after a wildcard is a wildcard.
  const firstWild = parts.findIndex((p) => p === undefined);
  const given = firstWild < 0 ? 3 : firstWild;
  const pre = m[4] ? m[4].split('.').map((p) => (/^\d+$/.test(p) ? Number(p) : p)) : [];
  return { parts: parts.slice(0, given), pre };
}

function v(major: number, minor = 0, patch = 0, pre: readonly (string | number)[] = []): SemVer {
  return { major, minor, patch, pre };
}

/** One space-separated comparator set → comparators; null when it cannot be parsed. */
function parseSet(text: string): Comparator[] | null {
  const hyphen = /^\s*(\S+)\s+-\s+(\S+)\s*$/.exec(text);
  if (hyphen) {
    const lo = partial(hyphen[1] as string);
    const hi = partial(hyphen[2] as string);
    if (!lo || !hi) return null;
    const out: Comparator[] = [];
    if (lo.parts.length)
      out.push({ op: '>=', v: v(lo.parts[0]!, lo.parts[1] ?? 0, lo.parts[2] ?? 0, lo.pre) });
    if (hi.parts.length === 3) out.push({ op: '<=', v: v(hi.parts[0]!, hi.parts[1]!, hi.parts[2]!, hi.pre) });
    else if (hi.parts.length === 2) out.push({ op: '<', v: v(hi.parts[0]!, hi.parts[1]! + 1, 0, [0]) });
    else if (hi.parts.length === 1) out.push({ op: '<', v: v(hi.parts[0]! + 1, 0, 0, [0]) });
    return out;
  }
  const tokens = text
    .trim()
    .replace(/(<=|>=|<|>|=|\^|~>?)\s+/g, '$1')
    .split(/\s+/)
    .filter(Boolean);
  const out: Comparator[] = [];
  for (const tok of tokens) {
    const m = /^(<=|>=|<|>|=|\^|~>?)?(.*)$/.exec(tok);
    if (!m) return null;
    const op = m[1] ?? '';
    const p = partial(m[2] as string);
    if (!p) return null;
    const [a, b, c] = p.parts;
    const n = p.parts.length;
    if (op === '^') {
      if (n === 0) continue;
      out.push({ op: '>=', v: v(a!, b ?? 0, c ?? 0, p.pre) });
      if (a! > 0 || n === 1) out.push({ op: '<', v: v(a! + 1, 0, 0, [0]) });
      else if (b! > 0 || n === 2) out.push({ op: '<', v: v(0, b! + 1, 0, [0]) });
      else out.push({ op: '<', v: v(0, 0, c! + 1, [0]) });
    } else if (op === '~' || op === '~>') {
      if (n === 0) continue;
      out.push({ op: '>=', v: v(a!, b ?? 0, c ?? 0, p.pre) });
      if (n === 1) out.push({ op: '<', v: v(a! + 1, 0, 0, [0]) });
      else out.push({ op: '<', v: v(a!, b! + 1, 0, [0]) });
    } else if (op === '' || op === '=') {
      if (n === 0) continue;
      if (n === 3) out.push({ op: '=', v: v(a!, b!, c!, p.pre) });
      else if (n === 2) {
        out.push({ op: '>=', v: v(a!, b!, 0) });
        out.push({ op: '<', v: v(a!, b! + 1, 0, [0]) });
      } else {
        out.push({ op: '>=', v: v(a!, 0, 0) });
        out.push({ op: '<', v: v(a! + 1, 0, 0, [0]) });
      }
    } else {
      if (n === 0) {
        if (op === '<' || op === '>') out.push({ op: '<', v: v(0, 0, 0, [0]) }); // matches nothing
        continue;
      }
      if (n === 3) out.push({ op: op as Op, v: v(a!, b!, c!, p.pre) });
      else if (op === '>') out.push({ op: '>=', v: n === 2 ? v(a!, b! + 1, 0) : v(a! + 1, 0, 0) });
      else if (op === '>=') out.push({ op: '>=', v: v(a!, b ?? 0, 0) });
      else if (op === '<') out.push({ op: '<', v: v(a!, b ?? 0, 0, [0]) });
      else out.push({ op: '<', v: n === 2 ? v(a!, b! + 1, 0, [0]) : v(a! + 1, 0, 0, [0]) });
    }
  }
  return out;
}

function test(c: Comparator, x: SemVer): boolean {
  const d = compare(x, c.v);
  switch (c.op) {
    case '<':
      return d < 0;
    case '<=':
      return d <= 0;
    case '>':
      return d > 0;
    case '>=':
      return d >= 0;
    case '=':
      return d === 0;
  }
}

export type Range = readonly (readonly Comparator[])[];

/** Parses a range; null when it is not a semver range (a tag, a URL, garbage). */
export function parseRange(text: string): Range | null {
  const sets = text.split('||').map((s) => parseSet(s));
  if (sets.some((s) => s === null)) return null;
  return sets as Comparator[][];
}

export function satisfies(version: string | SemVer, range: string | Range): boolean {
  const x = typeof version === 'string' ? parseVersion(version) : version;
  const r = typeof range === 'string' ? parseRange(range) : range;
  if (!x || !r) return false;
  return r.some((set) => {
    if (!set.every((c) => test(c, x))) return false;
    if (x.pre.length === 0) return true;
    // A prerelease matches only when a comparator names a prerelease of the same tuple.
    return set.some(
      (c) =>
        c.v.pre.length > 0 &&
        !(c.v.pre.length === 1 && c.v.pre[0] === 0) &&
        c.v.major === x.major &&
        c.v.minor === x.minor &&
        c.v.patch === x.patch,
    );
  });
}

/** The highest of versions that satisfies range, or undefined. */
export function maxSatisfying(versions: Iterable<string>, range: string): string | undefined {
  const r = parseRange(range);
  if (!r) return undefined;
  let best: { text: string; v: SemVer } | undefined;
  for (const text of versions) {
    const x = parseVersion(text);
    if (!x || !satisfies(x, r)) continue;
    if (!best || compare(x, best.v) > 0) best = { text, v: x };
  }
  return best?.text;
}
