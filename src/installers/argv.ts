/**
 * Argv scanning shared by the adapters: which program runs, and a tolerant option scan that knows
 * which options take a value, so a value (`--prefix /x`) is never mistaken for a package and an
 * option (`--prefix=/`) is never mistaken for a package name. Nothing here runs anything.
 */

/** The program's base name: `/usr/bin/npm` → `npm`. */
export function programName(arg0: string | undefined): string {
  if (!arg0) return '';
  const slash = arg0.lastIndexOf('/');
  return slash >= 0 ? arg0.slice(slash + 1) : arg0;
}

export interface Scanned {
  /** Options by name as written (`--prefix`, `-C`), every value in order; `true` for flags. */
  readonly options: ReadonlyMap<string, readonly (string | true)[]>;
  /** Words that are not options nor option values, in order (after `--` too). */
  readonly positionals: readonly string[];
  /** Options not in either set: kept, reported. */
  readonly unknown: readonly string[];
}

export interface OptionTable {
  /** Options that take a value as the next word unless written `--opt=value` or `-oVALUE`. */
  readonly withValue: ReadonlySet<string>;
  /** Short options that are flags (so `-yq` splits into `-y -q`); others are reported unknown. */
  readonly flags?: ReadonlySet<string>;
}

/**
 * Scans args (after the subcommand). `--` ends options. Long options: `--name=value` or, for
 * value-taking ones, `--name value`. Short clusters: `-abc`; a value-taking short option takes the
 * rest of the cluster or the next word.
 */
export function scanArgs(args: readonly string[], table: OptionTable): Scanned {
  const options = new Map<string, (string | true)[]>();
  const positionals: string[] = [];
  const unknown: string[] = [];
  const put = (name: string, v: string | true): void => {
    const list = options.get(name) ?? [];
    list.push(v);
    options.set(name, list);
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq >= 0 ? a.slice(0, eq) : a;
      if (eq >= 0) put(name, a.slice(eq + 1));
      else if (table.withValue.has(name) && i + 1 < args.length) put(name, args[++i] as string);
      else put(name, true);
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const name = `-${a[j]}`;
        if (table.withValue.has(name)) {
          const rest = a.slice(j + 1);
          if (rest !== '') put(name, rest.startsWith('=') ? rest.slice(1) : rest);
          else if (i + 1 < args.length) put(name, args[++i] as string);
          else put(name, true);
          break;
        }
        if (table.flags && !table.flags.has(name)) unknown.push(name);
        put(name, true);
      }
      continue;
    }
    positionals.push(a);
  }
  return { options, positionals, unknown };
}

/** The last string value of any of the names, or undefined. */
export function lastValue(s: Scanned, ...names: string[]): string | undefined {
  let out: string | undefined;
  for (const n of names) {
    for (const v of s.options.get(n) ?? []) if (typeof v === 'string') out = v;
  }
  return out;
}

/** Every string value of any of the names, in order of the names. */
export function allValues(s: Scanned, ...names: string[]): string[] {
  const out: string[] = [];
  for (const n of names) for (const v of s.options.get(n) ?? []) if (typeof v === 'string') out.push(v);
  return out;
}

/** True when any of the names was given (as a flag or with a value other than `false`). */
export function has(s: Scanned, ...names: string[]): boolean {
  return names.some((n) => (s.options.get(n) ?? []).some((v) => v === true || (v !== 'false' && v !== '0')));
}
