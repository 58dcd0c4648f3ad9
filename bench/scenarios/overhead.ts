/**
 * What `rrm run` adds to a command: `rrm run -- true` versus `true` (and versus `node -e 0`, the
 * floor for any Node CLI; and with enforcement off), and `rrm npm install <pkg>` versus
 * `npm install <pkg>` of a package already in npm's cache, into a fresh temporary prefix each time.
 * All variants alternate within each round.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { MemoryCgroup } from '../lib/cgroup.js';
import { which } from '../lib/env.js';
import { timed } from '../lib/proc.js';
import { mdTable, type Aim, type Scenario } from '../lib/scenario.js';
import { fmt, round, summarize, type Summary } from '../lib/stats.js';
import { barChart } from '../lib/svg.js';

const PACKAGE = 'is-number';
const CGROUP_PARENT = 'rrm-bench-overhead';

interface Variant {
  readonly name: string;
  readonly label: string;
  readonly ms: Summary;
  readonly failures: number;
}

export interface OverheadData {
  readonly rounds: number;
  readonly npmRounds: number;
  readonly package: string;
  readonly enforcement: string;
  readonly trueRuns: Variant[];
  readonly npmRuns: Variant[];
  readonly npmSkipped?: string;
}

function roundSummary(s: Summary): Summary {
  return {
    n: s.n,
    p50: round(s.p50, 1),
    p90: round(s.p90, 1),
    p99: round(s.p99, 1),
    max: round(s.max, 1),
    mean: round(s.mean, 1),
  };
}

async function alternate(
  variants: ReadonlyArray<{ name: string; label: string; argv: () => string[]; env: NodeJS.ProcessEnv }>,
  rounds: number,
  log: (m: string) => void,
  logDir: string,
): Promise<Variant[]> {
  const ms: Record<string, number[]> = {};
  const failures: Record<string, number> = {};
  for (const v of variants) {
    await timed(v.argv(), { env: v.env, logFile: join(logDir, `${v.name}.log`) }); // warm: page cache, first-run set-up
    ms[v.name] = [];
    failures[v.name] = 0;
  }
  for (let r = 0; r < rounds; r++) {
    for (const v of variants) {
      const t = await timed(v.argv(), { env: v.env, logFile: join(logDir, `${v.name}.log`) });
      if (t.code !== 0) failures[v.name]!++;
      ms[v.name]!.push(t.ms);
    }
  }
  const out = variants.map((v) => ({
    name: v.name,
    label: v.label,
    ms: roundSummary(summarize(ms[v.name]!)),
    failures: failures[v.name]!,
  }));
  for (const v of out)
    log(
      `${v.name}: p50 ${fmt(v.ms.p50)} ms, p90 ${fmt(v.ms.p90)} ms${v.failures ? `, ${v.failures} failed` : ''}`,
    );
  return out;
}

export const overhead: Scenario<OverheadData> = {
  name: 'overhead',
  title: 'Overhead of `rrm run`',

  async run(ctx) {
    if (!existsSync(ctx.cli)) throw new Error(`rrm CLI not found at ${ctx.cli} (build first, or pass --rrm)`);
    const rounds = ctx.quick ? 4 : 25;
    const npmRounds = ctx.quick ? 2 : 10;
    const base: NodeJS.ProcessEnv = {
      ...process.env,
      RRM_STATE_DIR: join(ctx.workDir, 'rrm-state'),
      RRM_CGROUP_PARENT: CGROUP_PARENT,
    };
    delete base.RRM_AGENT;
    const rrm = [process.execPath, ctx.cli, 'run', '--quiet', '--'];
    const trueBin = which('true') ?? '/bin/true';
    // The same build before bundling (dist/bin/rrm.js ← dist/src/cli/main.js): what the bundle saves.
    const unbundled = join(dirname(ctx.cli), '..', 'src', 'cli', 'main.js');
    try {
      const trueRuns = await alternate(
        [
          { name: 'true', label: '`true`', argv: () => [trueBin], env: base },
          {
            name: 'node',
            label: '`node -e 0` (any Node CLI)',
            argv: () => [process.execPath, '-e', '0'],
            env: base,
          },
          {
            name: 'rrm-help',
            label: '`rrm --help` (start-up: Node + imports)',
            argv: () => [process.execPath, ctx.cli, '--help'],
            env: base,
          },
          { name: 'rrm', label: '`rrm run -- true`', argv: () => [...rrm, trueBin], env: base },
          {
            name: 'rrm-advisory',
            label: '`rrm run -- true`, RRM_ENFORCE=none',
            argv: () => [...rrm, trueBin],
            env: { ...base, RRM_ENFORCE: 'none' },
          },
          ...(existsSync(unbundled)
            ? [
                {
                  name: 'rrm-unbundled',
                  label: '`rrm run -- true`, tsc output unbundled (dist/src/cli/main.js)',
                  argv: () => [process.execPath, unbundled, 'run', '--quiet', '--', trueBin],
                  env: base,
                },
              ]
            : []),
        ],
        rounds,
        ctx.log,
        ctx.workDir,
      );

      let npmRuns: Variant[] = [];
      let npmSkipped: string | undefined;
      const npm = which('npm');
      if (!npm) npmSkipped = 'npm is not on PATH';
      else {
        const npmArgs = (): string[] => [
          npm,
          'install',
          PACKAGE,
          '--prefix',
          mkdtempSync(join(ctx.workDir, 'prefix-')),
          '--prefer-offline',
          '--no-audit',
          '--no-fund',
        ];
        // Make sure the package is in npm's cache (this one may use the registry).
        const warm = await timed(npmArgs(), { env: base, logFile: join(ctx.workDir, 'npm-warm.log') });
        if (warm.code !== 0) npmSkipped = `npm install ${PACKAGE} failed (exit ${warm.code}); see the log`;
        else
          npmRuns = await alternate(
            [
              { name: 'npm', label: `\`npm install ${PACKAGE}\``, argv: npmArgs, env: base },
              {
                name: 'rrm-npm',
                // The shortcut, as a user types it: rrm npm install … is rrm run -- npm install ….
                label: `\`rrm npm install ${PACKAGE}\``,
                argv: () => [process.execPath, ctx.cli, 'npm', ...npmArgs().slice(1)],
                env: base,
              },
            ],
            npmRounds,
            ctx.log,
            ctx.workDir,
          );
      }
      const enforcement = MemoryCgroup.unavailable() ? 'advisory (no cgroups here)' : 'cgroups (enforced)';
      const p50 = (vs: Variant[], n: string): number => vs.find((v) => v.name === n)?.ms.p50 ?? NaN;
      const addTrue = p50(trueRuns, 'rrm') - p50(trueRuns, 'true');
      const addNpm = p50(npmRuns, 'rrm-npm') - p50(npmRuns, 'npm');
      const aims: Aim[] = [
        {
          aim: '`rrm run -- true` adds (median)',
          target: '< 80 ms',
          measured: `${fmt(addTrue)} ms`,
          met: addTrue < 80,
        },
        {
          aim: `\`rrm npm install ${PACKAGE}\` adds (median)`,
          target: '< 80 ms',
          measured: npmRuns.length ? `${fmt(addNpm)} ms` : (npmSkipped ?? 'not run'),
          met: npmRuns.length ? addNpm < 80 : null,
        },
      ];
      return {
        data: {
          rounds,
          npmRounds,
          package: PACKAGE,
          enforcement,
          trueRuns,
          npmRuns,
          ...(npmSkipped ? { npmSkipped } : {}),
        },
        aims,
        notes: [
          'Wall time from spawn to exit of the whole command, measured by the bench; variants alternate within each round, after one unmeasured warm-up run each. `--quiet` keeps rrm from printing.',
          `rrm uses a fresh embedded ledger (RRM_STATE_DIR in the scratch directory) with this machine's capacity, enforcement as configured by default (${enforcement}; cgroups under ${CGROUP_PARENT}), and resolves its profile as it would for a user: for \`npm install ${PACKAGE}\` that includes rrm's own registry metadata lookup.`,
          'The `rrm` CLI is the esbuild bundle (dist/bin/rrm.js, the package bin); the unbundled row runs the same build from its tsc output, one ES module per source file, so the difference is what bundling saves at start-up.',
          `npm runs install into a fresh \`--prefix\` each time with \`--prefer-offline --no-audit --no-fund\`, after one install that fills npm's cache.`,
        ],
      };
    } finally {
      await (await MemoryCgroup.create(CGROUP_PARENT, 2 ** 40).catch(() => undefined))?.remove();
    }
  },

  render(r, svg) {
    const d = r.data;
    const p50 = (vs: Variant[], n: string): number => vs.find((v) => v.name === n)?.ms.p50 ?? NaN;
    const rows = (vs: Variant[], base: string): string[][] =>
      vs.map((v) => [
        v.label,
        fmt(v.ms.p50),
        fmt(v.ms.p90),
        fmt(v.ms.max),
        v.name === base ? '–' : `+${fmt(v.ms.p50 - p50(vs, base))}`,
        String(v.failures),
      ]);
    const plot = svg(
      'overhead',
      barChart({
        title: 'Overhead of rrm run: median wall time',
        unit: 'milliseconds',
        bars: [...d.trueRuns, ...d.npmRuns].map((v, i) => ({
          label: v.label.replace(/`/g, ''),
          value: v.ms.p50,
          note: `${fmt(v.ms.p50)} ms`,
          color: v.name.startsWith('rrm') ? '#1f77b4' : i < d.trueRuns.length ? '#7f7f7f' : '#d62728',
        })),
      }),
    );
    const head = ['command', 'p50 ms', 'p90 ms', 'max ms', 'added (p50)', 'failed'];
    return [
      `${d.rounds} rounds for \`true\`, ${d.npmRounds} for npm; enforcement: ${d.enforcement}.`,
      '',
      `![overhead](${plot})`,
      '',
      mdTable(head, rows(d.trueRuns, 'true')),
      '',
      d.npmRuns.length ? mdTable(head, rows(d.npmRuns, 'npm')) : `npm part skipped: ${d.npmSkipped ?? '?'}`,
    ].join('\n');
  },
};
