/**
 * `npm run bench` runs every scenario; `--quick` is a short smoke run (under 2 minutes) for CI.
 * Each scenario writes bench/results/<scenario>.json; docs/benchmarks.md (tables, with SVG plots
 * stored beside the results) is regenerated from whatever results are present, so `--only` keeps
 * the other scenarios' last results. A quick run writes to bench/results/quick/ and its own doc
 * there, so a CI smoke run never overwrites the published numbers (unless --results/--doc say so).
 *
 * Options: --quick, --only a,b, --rrm <cli, default dist/bin/rrm.js>, --dir <scratch base>, --results <dir>,
 *          --doc <file>, --list, --docs-only (re-render from stored results, measure nothing).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultCli, fsTypeOf, machine, ROOT } from './lib/env.js';
import { prettify, renderDoc } from './lib/doc.js';
import { Skip, type Scenario, type ScenarioResult } from './lib/scenario.js';
import { agentScenario } from './scenarios/agent.js';
import { decisionCore } from './scenarios/decision-core.js';
import { embeddedLedger } from './scenarios/embedded-ledger.js';
import { installStorm } from './scenarios/install-storm.js';
import { overhead } from './scenarios/overhead.js';
import { fleet } from './scenarios/fleet.js';
import { placement } from './scenarios/placement.js';

/** Registered scenarios, in the order they run and appear in the doc. */
export const SCENARIOS: readonly Scenario[] = [
  decisionCore as Scenario,
  embeddedLedger as Scenario,
  installStorm as Scenario,
  overhead as Scenario,
  agentScenario as Scenario,
  fleet as Scenario,
  placement as Scenario,
];

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      rrm: { type: 'string' },
      dir: { type: 'string' },
      results: { type: 'string' },
      doc: { type: 'string' },
      list: { type: 'boolean', default: false },
      'docs-only': { type: 'boolean', default: false },
      'keep-work': { type: 'boolean', default: false },
    },
  });
  if (values.list) {
    for (const s of SCENARIOS) process.stdout.write(`${s.name}\t${s.title}\n`);
    return 0;
  }
  const quick = values.quick ?? false;
  const resultsDir = resolve(values.results ?? join(ROOT, 'bench', 'results', ...(quick ? ['quick'] : [])));
  const docPath = resolve(
    values.doc ?? (quick ? join(resultsDir, 'benchmarks.md') : join(ROOT, 'docs', 'benchmarks.md')),
  );
  const only = values.only
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = only?.filter((n) => !SCENARIOS.some((s) => s.name === n)) ?? [];
  if (unknown.length) {
    process.stderr.write(`bench: unknown scenario(s) ${unknown.join(', ')}; see --list\n`);
    return 64;
  }
  const chosen = SCENARIOS.filter((s) => !only || only.includes(s.name));
  const cli = resolve(values.rrm ?? defaultCli());
  // Scratch on a real disk: /var/tmp (fsync means something there; /tmp may be tmpfs).
  const base = resolve(values.dir ?? (existsSync('/var/tmp') ? '/var/tmp' : '/tmp'));
  mkdirSync(resultsDir, { recursive: true });
  const t0 = Date.now();
  let failed = 0;
  if (!values['docs-only']) {
    for (const s of chosen) {
      const workDir = mkdtempSync(join(base, `rrm-bench-${s.name}-`));
      const started = Date.now();
      const log = (msg: string): void =>
        void process.stderr.write(`[${s.name} ${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);
      log(`start${quick ? ' (quick)' : ''}; scratch ${workDir} (${fsTypeOf(workDir)})`);
      let result: ScenarioResult;
      const common = {
        scenario: s.name,
        title: s.title,
        quick,
        startedAt: new Date(started).toISOString(),
        machine: machine(),
        workFs: fsTypeOf(workDir),
      };
      try {
        const m = await s.run({ quick, cli, workDir, log });
        result = { ...common, ...m, durationS: (Date.now() - started) / 1000 };
      } catch (e) {
        if (e instanceof Skip) {
          log(`skipped: ${e.message}`);
          result = { ...common, data: null, durationS: (Date.now() - started) / 1000, skipped: e.message };
          writeFileSync(join(resultsDir, `${s.name}.json`), `${JSON.stringify(result, null, 2)}\n`);
          rmSync(workDir, { recursive: true, force: true });
          continue;
        }
        failed++;
        const error = e instanceof Error ? (e.stack ?? e.message) : String(e);
        log(`FAILED: ${error}`);
        result = { ...common, data: null, durationS: (Date.now() - started) / 1000, error };
      }
      writeFileSync(join(resultsDir, `${s.name}.json`), `${JSON.stringify(result, null, 2)}\n`);
      if (!values['keep-work']) rmSync(workDir, { recursive: true, force: true });
      log(`done in ${result.durationS.toFixed(1)} s`);
    }
  }
  const command = quick ? 'npm run bench -- --quick' : 'npm run bench';
  const md = await prettify(renderDoc(SCENARIOS, resultsDir, docPath, command), docPath);
  writeFileSync(docPath, md);
  process.stderr.write(
    `bench: ${chosen.length} scenario(s) in ${((Date.now() - t0) / 1000).toFixed(1)} s; results in ${resultsDir}; doc ${docPath}\n`,
  );
  return failed ? 1 : 0;
}

process.exitCode = await main();
