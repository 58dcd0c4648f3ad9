/** What a benchmark scenario is: a small module that measures, and renders its own doc section. */
import type { Machine } from './env.js';

export interface RunContext {
  readonly quick: boolean;
  /** The rrm CLI (dist/bin/rrm.js) used by the end-to-end scenarios. */
  readonly cli: string;
  /** A fresh directory for this scenario, on a real disk (not tmpfs): ledgers, logs, fixtures' reports. */
  readonly workDir: string;
  readonly log: (msg: string) => void;
}

/** One of the project's stated aims, and whether this run met it. */
export interface Aim {
  readonly aim: string;
  readonly target: string;
  readonly measured: string;
  /** null when it could not be judged in this run. */
  readonly met: boolean | null;
}

export interface Measured<D> {
  readonly data: D;
  readonly aims?: readonly Aim[];
  readonly notes?: readonly string[];
}

/** Thrown by a scenario that cannot run on this machine (not root, no cgroups…): reported, not failed. */
export class Skip extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'Skip';
  }
}

export interface ScenarioResult<D = unknown> extends Measured<D> {
  readonly scenario: string;
  readonly title: string;
  readonly quick: boolean;
  readonly startedAt: string;
  readonly durationS: number;
  readonly machine: Machine;
  readonly workFs: string;
  readonly error?: string;
  readonly skipped?: string;
}

/** Writes an SVG next to the results and returns the link to use from the doc. */
export type SvgWriter = (name: string, svg: string) => string;

export interface Scenario<D = unknown> {
  readonly name: string;
  readonly title: string;
  run(ctx: RunContext): Promise<Measured<D>>;
  /** Markdown for docs/benchmarks.md (without the section heading), from a stored result. */
  render(result: ScenarioResult<D>, svg: SvgWriter): string;
}

/** Markdown table; cells are escaped for pipes. */
export function mdTable(head: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const cell = (s: string): string => s.replace(/\|/g, '\\|');
  return [
    `| ${head.map(cell).join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
}
