/** `rrm instances`: every instance in the ledger, whether its agent is up, what is granted and free. */
import { formatDimension } from '../../model/quantity.js';
import { parseSelector, matchesSelector } from '../../placement/selector.js';
import { flag, parseOptions, str, usageError } from '../args.js';
import { COMMON_OPTIONS, type Context } from '../context.js';
import { printJson, table } from '../output.js';

export const INSTANCES_HELP = `Usage: rrm instances [--selector k=v,k2!=v2] [--json]

Lists the instances of the ledger: up (its agent holds its registration), down (the agent's
lease lapsed: nothing is placed there and its reservations end) or unmanaged (no agent ever
registered it, as on the embedded ledger); labels; CPU and memory granted of allocatable; how
many grants and waiters. On a fleet this needs --ledger etcd://... (or RRM_LEDGER).

Options: --selector k=v,... (only matching instances), --state-dir DIR, --json, -h/--help
`;

export async function instancesCommand(ctx: Context, args: readonly string[]): Promise<number> {
  const { values, positionals } = parseOptions(args, { ...COMMON_OPTIONS, selector: { type: 'string' } });
  if (flag(values, 'help')) {
    ctx.io.out(INSTANCES_HELP);
    return 0;
  }
  if (positionals.length) throw usageError(`rrm instances: unexpected ${JSON.stringify(positionals[0])}`);
  const selector = parseSelector(str(values, 'selector') ?? '');
  const config = ctx.config(values);
  const ledger = await ctx.ledger(config, undefined, values);
  try {
    const all = (await ledger.instanceStatus()).filter((s) => matchesSelector(s.instance.labels, selector));
    if (flag(values, 'json')) {
      printJson(ctx.io, { instances: all });
      return 0;
    }
    if (all.length === 0) {
      ctx.io.out('no instances\n');
      return 0;
    }
    const share = (s: (typeof all)[number], d: string): string =>
      `${formatDimension(d, s.granted[d] ?? 0)}/${formatDimension(d, s.instance.allocatable[d] ?? 0)}`;
    const rows = [['INSTANCE', 'STATE', 'CPU', 'MEMORY', 'GRANTS', 'QUEUED', 'DRIVER', 'LABELS']];
    for (const s of all) {
      rows.push([
        s.instance.id,
        s.state,
        share(s, 'cpu'),
        share(s, 'memory'),
        String(s.grants),
        String(s.queued),
        s.agent?.driver ?? '-',
        Object.entries(s.instance.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(','),
      ]);
    }
    ctx.io.out(table(rows));
    return 0;
  } finally {
    await ledger.close();
  }
}
