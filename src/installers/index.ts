/**
 * The adapter registry: which adapter an argv belongs to, and its install intent. Wrappers that
 * only change how a command runs (`sudo`, `env A=B`, `nice`, `ionice`, `time`) are looked through;
 * the argv that runs is still exactly the one given.
 */
import { execFile } from 'node:child_process';
import { aptAdapter } from './apt.js';
import { programName } from './argv.js';
import { npmAdapter, pnpmAdapter, yarnAdapter } from './npm.js';
import { pipAdapter } from './pip.js';
import type { Exec, InstallerAdapter, InstallIntent } from './types.js';

export type {
  InstallerAdapter,
  InstallIntent,
  MetadataContext,
  MetadataResult,
  PackageSpec,
} from './types.js';

export const ADAPTERS: readonly InstallerAdapter[] = Object.freeze([
  npmAdapter,
  pnpmAdapter,
  yarnAdapter,
  aptAdapter,
  pipAdapter,
]);

/** Programs `rrm <program> ...` may run as a shortcut for `rrm run -- <program> ...`. */
export const SHORTCUT_MANAGERS: readonly string[] = Object.freeze([
  'npm',
  'pnpm',
  'yarn',
  'apt-get',
  'apt',
  'dpkg',
  'pip',
  'pip3',
]);

/** Options of the wrappers that take a value. */
const WRAPPER_VALUE_OPTIONS: Readonly<Record<string, ReadonlySet<string>>> = Object.freeze({
  sudo: new Set([
    '-u',
    '--user',
    '-g',
    '--group',
    '-C',
    '--close-from',
    '-D',
    '--chdir',
    '-h',
    '--host',
    '-p',
    '--prompt',
    '-r',
    '--role',
    '-t',
    '--type',
    '-T',
    '--command-timeout',
    '-U',
    '--other-user',
  ]),
  env: new Set(['-u', '--unset', '-C', '--chdir', '-S', '--split-string']),
  nice: new Set(['-n', '--adjustment']),
  ionice: new Set(['-c', '--class', '-n', '--classdata', '-p', '--pid', '-P', '--pgid', '-u', '--uid']),
  time: new Set(['-f', '--format', '-o', '--output']),
  chrt: new Set([]),
});

/** The argv with leading wrappers removed; the same array when there are none. */
export function unwrap(argv: readonly string[]): readonly string[] {
  let cur = argv;
  for (let depth = 0; depth < 5; depth++) {
    const prog = programName(cur[0]);
    const valued = WRAPPER_VALUE_OPTIONS[prog];
    if (!valued) return cur;
    if (prog === 'env' && cur.some((a) => a === '-S' || a.startsWith('--split-string'))) return cur;
    let i = 1;
    while (i < cur.length) {
      const a = cur[i] as string;
      if (a === '--') {
        i++;
        break;
      }
      if (prog === 'env' && /^[A-Za-z_][A-Za-z0-9_]*=/.test(a)) {
        i++;
        continue;
      }
      if (prog === 'nice' && /^-\d+$/.test(a)) {
        i++;
        continue;
      }
      if (!a.startsWith('-')) break;
      i += valued.has(a) ? 2 : 1;
    }
    cur = cur.slice(i);
  }
  return cur;
}

export function adapterFor(argv: readonly string[]): InstallerAdapter | undefined {
  const inner = unwrap(argv);
  return ADAPTERS.find((a) => a.matches(inner));
}

/**
 * The install argv performs, or null when it is not an install (`npm run build`, `apt-get source`,
 * `pip download`): such commands pass through untouched and unreserved by the profile.
 * The intent's argv is the argv given, wrappers included.
 */
export function parseInstall(
  argv: readonly string[],
): { adapter: InstallerAdapter; intent: InstallIntent } | null {
  const inner = unwrap(argv);
  const adapter = ADAPTERS.find((a) => a.matches(inner));
  if (!adapter) return null;
  const intent = adapter.parse(inner);
  return intent ? { adapter, intent: { ...intent, argv } } : null;
}

/** execFile with a timeout and no shell; output capped at 16 MiB. Never throws for a non-zero exit. */
export const execArgv: Exec = (argv, opts) =>
  new Promise((res) => {
    const [file, ...args] = argv;
    execFile(
      file as string,
      args,
      {
        timeout: opts.timeoutMs,
        maxBuffer: 16 * 2 ** 20,
        env: { ...process.env, ...(opts.env ?? {}) },
        shell: false,
        windowsHide: true,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        res({
          code,
          stdout: String(stdout),
          stderr: String(stderr) || (error && code === null ? error.message : ''),
        });
      },
    );
  });
