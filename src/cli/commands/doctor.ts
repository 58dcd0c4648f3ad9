/** `rrm doctor`: which enforcement driver is in use and why, the ledger's state, and leftover cgroups (removed). */
import { localEnforcer } from '../../host/local-enforcer.js';
import { flag, parseOptions } from '../args.js';
import { COMMON_OPTIONS, type Context } from '../context.js';
import { printJson } from '../output.js';

export const DOCTOR_HELP = `Usage: rrm doctor [--dry-run] [--json]

Reports the enforcement driver in use (cgroup2, cgroup1, hybrid or none) and why, the ledger, and
the cgroups under the rrm parent: those of reservations this ledger knows have ended are leftovers,
killed and removed (with --dry-run only listed); those this ledger does not know at all may belong
to another ledger sharing the parent (RRM_CGROUP_PARENT), so they are listed and left alone.

Options: --state-dir DIR, --json, -h/--help
`;

export async function doctorCommand(ctx: Context, args: readonly string[]): Promise<number> {
  const { values } = parseOptions(args, { ...COMMON_OPTIONS, 'dry-run': { type: 'boolean' } });
  if (flag(values, 'help')) {
    ctx.io.out(DOCTOR_HELP);
    return 0;
  }
  const config = ctx.config(values);
  const enforcer = localEnforcer(config);
  const ledger = await ctx.ledger(config, enforcer, values);
  try {
    await ledger.sweep(config.instanceId);
    const active = await ledger.list({ states: ['granted', 'queued'] });
    const owned = new Set(active.filter((r) => r.state === 'granted').map((r) => r.id));
    const leftovers: string[] = [];
    const foreign: string[] = [];
    for (const id of enforcer.list().filter((x) => !owned.has(x))) {
      if (await ledger.get(id)) leftovers.push(id);
      else foreign.push(id);
    }
    const removed: string[] = [];
    if (!flag(values, 'dry-run')) {
      for (const id of leftovers) {
        const slot = enforcer.open(id);
        if (!slot) continue;
        await slot.kill().catch(() => undefined);
        await slot.destroy();
        removed.push(id);
      }
    }
    const report = {
      ledger: config.ledgerPath,
      granted: owned.size,
      queued: active.length - owned.size,
      enforcement: enforcer.report,
      leftovers,
      removed,
      foreign,
    };
    if (flag(values, 'json')) printJson(ctx.io, report);
    else {
      ctx.io.out(`${enforcer.describe()}\n`);
      ctx.io.out(`ledger: ${report.ledger} (${report.granted} granted, ${report.queued} queued)\n`);
      if (leftovers.length === 0) ctx.io.out('leftover cgroups: none\n');
      else
        ctx.io.out(
          `leftover cgroups: ${leftovers.join(', ')}${removed.length ? ` (removed ${removed.length})` : ' (not removed: --dry-run)'}\n`,
        );
      if (foreign.length)
        ctx.io.out(`cgroups this ledger does not know (left alone): ${foreign.join(', ')}\n`);
    }
    return 0;
  } finally {
    await ledger.close();
  }
}
