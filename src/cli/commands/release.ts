/** `rrm release ID...`: ends reservations as an admin (the holder sees it and stops its command). */
import { userInfo } from 'node:os';
import { flag, parseOptions, usageError } from '../args.js';
import { COMMON_OPTIONS, type Context } from '../context.js';
import { printJson } from '../output.js';

export const RELEASE_HELP = `Usage: rrm release <ID>... [--json]

Releases reservations by id, whoever holds them: a queued one is cancelled, a granted one is
released and its holder stops its command. Releasing one that already ended changes nothing.
In embedded mode whoever can write the ledger is an admin.

Options: --state-dir DIR, --json, -h/--help
`;

export async function releaseCommand(ctx: Context, args: readonly string[]): Promise<number> {
  const { values, positionals } = parseOptions(args, COMMON_OPTIONS, true);
  if (flag(values, 'help')) {
    ctx.io.out(RELEASE_HELP);
    return 0;
  }
  if (positionals.length === 0) throw usageError('rrm release: give the id of a reservation (see rrm list)');
  for (const id of positionals)
    if (!/^rsv_[\w-]{4,64}$/.test(id))
      throw usageError(`rrm release: ${JSON.stringify(id)} is not a reservation id`);
  const config = ctx.config(values);
  const ledger = await ctx.ledger(config, undefined, values);
  try {
    const out = [];
    for (const id of positionals) {
      const r = await ledger.release(
        id,
        { admin: true, name: userInfo().username },
        { reason: `released by ${userInfo().username}` },
      );
      out.push({ id: r.id, state: r.state, reason: r.reason });
    }
    if (flag(values, 'json')) printJson(ctx.io, out);
    else for (const r of out) ctx.io.out(`${r.id}: ${r.state}${r.reason ? ` (${r.reason})` : ''}\n`);
    return 0;
  } finally {
    await ledger.close();
  }
}
