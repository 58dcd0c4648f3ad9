/** `rrm capacity` shows the local instance; `rrm capacity set` changes its allocatable. */
import { userInfo } from 'node:os';
import type { EnforcerReport } from '../../enforce/enforcer.js';
import { localEnforcer } from '../../host/local-enforcer.js';
import { localInstanceInit } from '../../host/local-instance.js';
import { formatDimension } from '../../model/quantity.js';
import { dimensionsOf, sub, sum } from '../../model/vector.js';
import { flag, parseOptions, usageError } from '../args.js';
import { COMMON_OPTIONS, type Context } from '../context.js';
import { printJson, table } from '../output.js';
import { hasAny, RESOURCE_OPTIONS, resourceFlags } from '../resource-flags.js';

export const CAPACITY_HELP = `Usage: rrm capacity [--json]
       rrm capacity set [--cpu Q] [--memory Q] [--disk Q] [--disk-io Q] [--network Q] [--resource NAME=N]... [--json]
       rrm capacity reset [--json]

Shows this machine's capacity, allocatable (capacity minus the system reserve), what is granted
and what is free, per dimension. 'set' changes allocatable for the dimensions given (the others
keep their value); it refuses to go below what is granted now. 'reset' goes back to what the
machine has minus the default reserve.

Options: --state-dir DIR, --json, -h/--help
`;

export async function capacityCommand(ctx: Context, args: readonly string[]): Promise<number> {
  const [sub0, ...rest] = args;
  const action = sub0 === 'set' || sub0 === 'reset' ? sub0 : 'show';
  const { values, positionals } = parseOptions(
    action === 'show' ? args : rest,
    action === 'set' ? { ...RESOURCE_OPTIONS, ...COMMON_OPTIONS } : COMMON_OPTIONS,
    true,
  );
  if (flag(values, 'help')) {
    ctx.io.out(CAPACITY_HELP);
    return 0;
  }
  if (positionals.length)
    throw usageError(`rrm capacity: unexpected ${JSON.stringify(positionals[0])} (use show, set or reset)`);
  const changes = action === 'set' ? resourceFlags(values) : {};
  if (action === 'set' && !hasAny(changes)) {
    throw usageError(
      'rrm capacity set: give at least one of --cpu, --memory, --disk, --disk-io, --network, --resource',
    );
  }
  const config = ctx.config(values);
  const ledger = await ctx.ledger(config, undefined, values);
  try {
    const by = userInfo().username;
    await ledger.sweep(config.instanceId); // also: no such instance (a fleet host without its agent)
    if (action !== 'show') {
      const current = (await ledger.instance(config.instanceId))!;
      const fresh = localInstanceInit(config.stateDir, config.instanceId, config.instanceLabels);
      const allocatable = action === 'set' ? { ...current.allocatable, ...changes } : fresh.allocatable;
      await ledger.setAllocatable(
        config.instanceId,
        allocatable,
        action === 'set' ? current.capacity : fresh.capacity,
        by,
      );
    }
    await ledger.sweep(config.instanceId);
    const inst = (await ledger.instance(config.instanceId))!;
    const active = await ledger.list({ instance: config.instanceId, states: ['granted', 'queued'] });
    const grantedSum = sum(active.filter((r) => r.state === 'granted').map((r) => r.requests));
    const free = sub(inst.allocatable, grantedSum);
    const queued = active.filter((r) => r.state === 'queued').length;
    const enforcement = enforcementSummary(localEnforcer(config).report);
    if (flag(values, 'json')) {
      printJson(ctx.io, {
        instance: inst.id,
        capacity: inst.capacity,
        allocatable: inst.allocatable,
        granted: grantedSum,
        free,
        queued,
        revision: inst.revision,
        enforcement,
      });
      return 0;
    }
    const rows = [['DIMENSION', 'CAPACITY', 'ALLOCATABLE', 'GRANTED', 'FREE']];
    for (const d of dimensionsOf(inst.capacity, inst.allocatable, grantedSum)) {
      const f = (v: Record<string, number>): string => formatDimension(d, v[d] ?? 0);
      rows.push([d, f(inst.capacity), f(inst.allocatable), f(grantedSum), f(free)]);
    }
    ctx.io.out(`instance ${inst.id}: ${active.length - queued} granted, ${queued} queued\n`);
    ctx.io.out(table(rows));
    ctx.io.out(
      `enforcement: ${enforcement.driver}${enforcement.advisory ? ' (ADVISORY: nothing is enforced or measured)' : ''}\n`,
    );
    for (const n of enforcement.notes) ctx.io.out(`  ${n}\n`);
    return 0;
  } finally {
    await ledger.close();
  }
}

/** What `rrm capacity` says about enforcement, including how hard reservations stay whole without a memory guarantee. */
export function enforcementSummary(r: EnforcerReport): {
  driver: string;
  advisory: boolean;
  memoryGuarantee: boolean;
  reason: string;
  notes: string[];
} {
  const notes: string[] = [r.reason];
  if (r.driver !== 'none' && !r.memoryGuarantee) {
    notes.push(
      'no kernel memory guarantee here (cgroup v1 has no memory.min): hard reservations stay whole because admission never grants more than allocatable and every rrm-run install is capped at its request plus a margin (memory.limit_in_bytes)',
    );
  }
  return {
    driver: r.driver,
    advisory: r.driver === 'none',
    memoryGuarantee: r.memoryGuarantee,
    reason: r.reason,
    notes,
  };
}
