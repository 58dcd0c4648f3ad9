/**
 * The argv that moves a process into cgroups *before* it execs the user's command.
 *
 * Node cannot run code between fork and exec, so the child is `/bin/sh -c SCRIPT` where SCRIPT is
 * the constant JOIN_SCRIPT below. Everything variable is a positional parameter, never part of the
 * script text: `$0` = `rrm-join`, then one `cgroup.procs` path per hierarchy, then `--`, then the
 * user's argv. The shell writes its own pid (`$$`) to each path, and on reaching `--` shifts it
 * away and `exec "$@"`, so the user's program replaces the shell with the same pid, already inside
 * every cgroup; its descendants inherit them. A failed join exits 125 without running the command.
 * The user's argv is only ever expanded as "$@" (quoted), so no word splitting, globbing or command
 * substitution applies to it. Pure.
 */

export const JOIN_SHELL = '/bin/sh';
export const JOIN_ARG0 = 'rrm-join';
export const JOIN_EXIT_CODE = 125;

export const JOIN_SCRIPT =
  'while [ "$#" -gt 0 ]; do ' +
  'if [ "$1" = "--" ]; then shift; exec "$@"; fi; ' +
  'echo "$$" > "$1" || { echo "rrm-join: cannot join cgroup via $1" >&2; exit 125; }; ' +
  'shift; ' +
  'done; ' +
  'echo "rrm-join: internal error: no -- separator" >&2; exit 125';

export function buildJoinArgv(procsFiles: readonly string[], argv: readonly string[]): string[] {
  if (argv.length === 0 || argv[0] === '') throw new TypeError('wrap: argv must name a program');
  for (const f of procsFiles) {
    if (!f.startsWith('/') || f === '--')
      throw new TypeError(`wrap: cgroup.procs path must be absolute: ${f}`);
  }
  return [JOIN_SHELL, '-c', JOIN_SCRIPT, JOIN_ARG0, ...procsFiles, '--', ...argv];
}
