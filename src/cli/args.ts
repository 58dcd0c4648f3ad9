/**
 * Command-line parsing on node:util parseArgs (strict): unknown options and missing values are
 * usage errors (exit 64) that name what was wrong. Nothing here touches the ledger.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { RrmError } from '../model/errors.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | string[] | undefined>;

export function usageError(message: string): RrmError {
  return new RrmError('RRM_ERR_USAGE', message);
}

export function parseOptions(
  args: readonly string[],
  options: OptionSpec,
  allowPositionals = false,
): { values: Values; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: attachNegatives(args, options),
      options,
      strict: true,
      allowPositionals,
    });
    return { values: values as Values, positionals };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw usageError(
      msg.replace(/\. To specify a positional argument.*$/s, '').replace(/^Unknown option/, 'unknown option'),
    );
  }
}

/** `--memory -1` → `--memory=-1`, so a negative value is reported as negative, not as a missing one. */
function attachNegatives(args: readonly string[], options: OptionSpec): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    const next = args[i + 1];
    if (
      a.startsWith('--') &&
      options[a.slice(2)]?.type === 'string' &&
      next !== undefined &&
      /^-[\d.]/.test(next)
    ) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/**
 * Splits `[options] [--] command...`: options end at `--` or at the first word that is not an
 * option or an option's value, so the command's own options stay the command's.
 */
export function splitCommand(
  args: readonly string[],
  options: OptionSpec,
): { own: string[]; command: string[] } {
  const own: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') return { own, command: args.slice(i + 1) };
    if (!a.startsWith('-') || a === '-') return { own, command: args.slice(i) };
    own.push(a);
    const name = a.startsWith('--') ? a.slice(2) : undefined;
    const spec = name !== undefined && !name.includes('=') ? options[name] : shortSpec(options, a);
    if (spec?.type === 'string' && !a.includes('=') && i + 1 < args.length) own.push(args[++i] as string);
  }
  return { own, command: [] };
}

function shortSpec(options: OptionSpec, arg: string): OptionSpec[string] | undefined {
  if (arg.startsWith('--') || arg.length !== 2) return undefined;
  return Object.values(options).find((o) => o.short === arg[1]);
}

export function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function list(values: Values, name: string): string[] {
  const v = values[name];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

export function flag(values: Values, name: string): boolean {
  return values[name] === true;
}

export function positiveInt(text: string | undefined, name: string, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < 1)
    throw usageError(`--${name}: ${JSON.stringify(text)} is not a positive whole number`);
  return Number(text);
}
