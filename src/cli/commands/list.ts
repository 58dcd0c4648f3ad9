/** `rrm list`: grants and the queue (queue in the order it will be served). */
import { inQueueOrder } from '../../admission/queue-order.js';
import { flag, parseOptions, positiveInt, str } from '../args.js';
import { COMMON_OPTIONS, type Context } from '../context.js';
import { printJson, RESERVATION_HEADER, reservationRow, table } from '../output.js';

export const LIST_HELP = `Usage: rrm list [--all] [--limit N] [--json]

Lists granted reservations, then the queue in the order it will be served. With --all, also the
reservations that have ended (newest first).

Options: --state-dir DIR, --json, -h/--help
`;

export async function listCommand(ctx: Context, args: readonly string[]): Promise<number> {
  const { values } = parseOptions(args, {
    ...COMMON_OPTIONS,
    all: { type: 'boolean' },
    limit: { type: 'string' },
  });
  if (flag(values, 'help')) {
    ctx.io.out(LIST_HELP);
    return 0;
  }
  const limit = positiveInt(str(values, 'limit'), 'limit', 100);
  const config = ctx.config(values);
  const ledger = await ctx.ledger(config, undefined, values);
  try {
    await ledger.sweep(config.instanceId);
    const active = await ledger.list({ states: ['granted', 'queued'] });
    const granted = active
      .filter((r) => r.state === 'granted')
      .sort((a, b) => (a.grantSeq ?? 0) - (b.grantSeq ?? 0));
    const queue = inQueueOrder(active.filter((r) => r.state === 'queued'));
    const ended = flag(values, 'all')
      ? await ledger.list({
          states: ['released', 'expired', 'preempted', 'timed-out', 'rejected', 'cancelled'],
          limit,
        })
      : [];
    if (flag(values, 'json')) {
      printJson(ctx.io, { granted, queued: queue, ...(flag(values, 'all') ? { ended } : {}) });
      return 0;
    }
    const now = Date.now();
    const rows = [RESERVATION_HEADER, ...[...granted, ...queue, ...ended].map((r) => reservationRow(r, now))];
    if (rows.length === 1) ctx.io.out('no reservations\n');
    else ctx.io.out(table(rows));
    return 0;
  } finally {
    await ledger.close();
  }
}
