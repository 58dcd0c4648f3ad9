/** Human-readable rendering of an EnforcerReport (for `rrm doctor` and logs). Pure. */
import type { EnforcerReport } from './enforcer.js';
import { ROLES } from './host-layout.js';

export function describeReport(r: EnforcerReport): string {
  const lines: string[] = [];
  if (r.driver === 'none') {
    lines.push('!!! rrm enforcement: NONE — ADVISORY MODE: reservations are NOT enforced !!!');
    lines.push(
      '!!! installs run unconfined; CPU, memory and disk usage are neither limited nor measured !!!',
    );
  } else {
    lines.push(`rrm enforcement: ${r.driver}`);
  }
  lines.push(`  why: ${r.reason}`);
  lines.push(`  controllers: ${ROLES.map((c) => `${c}=${r.controllers[c]}`).join(' ')}; kill: ${r.kill}`);
  lines.push(
    `  memory guarantee: ${r.memoryGuarantee ? 'yes (memory.min)' : 'no (requests are best effort; only caps hold)'}`,
  );
  if (r.parentDirs.length > 0) lines.push(`  cgroups under: ${r.parentDirs.join(', ')}`);
  if (r.notes.length > 0) {
    lines.push('  notes:');
    for (const n of r.notes) lines.push(`    - ${n}`);
  }
  return lines.join('\n');
}
