/** `rrm history`: what happened, read from the ledger's events. */
import { formatDuration } from '../../model/duration.js';
import { RrmError } from '../../model/errors.js';
import { flag, parseOptions, positiveInt, str, usageError } from '../args.js';
import { COMMON_OPTIONS, type Context } from '../context.js';
import { describeCommand, printJson, table } from '../output.js';
import { formatPriority } from '../../model/priority.js';
import { formatDimension } from '../../model/quantity.js';
import { describeUsage } from '../../runner/run-install.js';

export const HISTORY_HELP = `Usage: rrm history [ID] [--limit N] [--json]

Without an id: the most recent reservations with how long they waited and ran, what the run
measured (peak memory, CPU time) and how they ended.
With an id: every event of that reservation (time, transition, reason, by whom), then everything
its run measured (peak memory, CPU time, bytes read and written, OOM kills, wall time).

Options: --state-dir DIR, --json, -h/--help
`;

export async function historyCommand(ctx: Context, args: readonly string[]): Promise<number> {
  const { values, positionals } = parseOptions(args, { ...COMMON_OPTIONS, limit: { type: 'string' } }, true);
  if (flag(values, 'help')) {
    ctx.io.out(HISTORY_HELP);
    return 0;
  }
  if (positionals.length > 1) throw usageError('rrm history: give at most one reservation id');
  const limit = positiveInt(str(values, 'limit'), 'limit', 20);
  const config = ctx.config(values);
  const ledger = await ctx.ledger(config, undefined, values);
  try {
    const id = positionals[0];
    if (id) {
      const events = await ledger.events({ reservation: id, limit: 10_000 });
      if (events.length === 0) throw new RrmError('RRM_ERR_NOT_FOUND', `no reservation ${id}`, { id });
      if (flag(values, 'json')) printJson(ctx.io, events);
      else {
        const rows = [['TIME', 'EVENT', 'FROM', 'TO', 'BY', 'REASON']];
        for (const e of events)
          rows.push([new Date(e.at).toISOString(), e.type, e.from ?? '-', e.to ?? '-', e.by, e.reason]);
        ctx.io.out(table(rows));
        const usage = (await ledger.get(id))?.usage;
        if (usage)
          ctx.io.out(`measured: ${describeUsage(usage)}; wall ${formatDuration(usage.wallMs ?? 0)}\n`);
      }
      return 0;
    }
    const items = await ledger.list({ limit });
    const summary = items.map((r) => ({
      id: r.id,
      state: r.state,
      priority: r.priority,
      mode: r.mode,
      requests: r.requests,
      attempt: r.attempt,
      createdAt: r.createdAt,
      waitedMs: r.grantedAt !== undefined ? r.grantedAt - r.createdAt : undefined,
      ranMs: r.grantedAt !== undefined && r.endedAt !== undefined ? r.endedAt - r.grantedAt : undefined,
      reason: r.reason,
      usage: r.usage,
      command: r.command,
    }));
    if (flag(values, 'json')) {
      printJson(ctx.io, summary);
      return 0;
    }
    const rows = [['ID', 'STATE', 'PRIORITY', 'WAITED', 'RAN', 'PEAK MEM', 'CPU', 'REASON', 'COMMAND']];
    for (const [i, s] of summary.entries()) {
      rows.push([
        s.id,
        s.state,
        formatPriority(s.priority),
        s.waitedMs !== undefined ? formatDuration(s.waitedMs) : '-',
        s.ranMs !== undefined ? formatDuration(s.ranMs) : '-',
        s.usage?.peakMemoryBytes !== undefined ? formatDimension('memory', s.usage.peakMemoryBytes) : '-',
        s.usage?.cpuUsageUsec !== undefined ? formatDuration(s.usage.cpuUsageUsec / 1000) : '-',
        s.reason ?? '-',
        describeCommand(items[i]!),
      ]);
    }
    ctx.io.out(rows.length > 1 ? table(rows) : 'no reservations yet\n');
    return 0;
  } finally {
    await ledger.close();
  }
}
