/** The enforcer for this host, and how a reclaimed grant's leftover work is stopped with it. */
import type { Config } from '../config.js';
import type { Reclaimed } from '../admission/transitions.js';
import { probeEnforcer, type Enforcer } from '../enforce/enforcer.js';
import { killProcessGroup } from './process-identity.js';

export function localEnforcer(config: Config): Enforcer {
  return config.enforce === 'none'
    ? probeEnforcer({
        parent: config.cgroupParent,
        disabled:
          'enforcement turned off (RRM_ENFORCE=none): reservations are accounted but nothing is enforced or measured',
      })
    : probeEnforcer({
        parent: config.cgroupParent,
        marginFraction: config.limitMargin,
        ioDevice: config.ioDevice,
      });
}

/** Kills a reclaimed grant's process group and cgroup tree, then removes the cgroup. */
export function reclaimWith(enforcer: Enforcer): (c: Reclaimed) => Promise<void> {
  return async (c) => {
    if (c.pgid !== undefined) killProcessGroup(c.pgid, 'SIGKILL');
    const slot = enforcer.open(c.reservation.id);
    if (slot) {
      await slot.kill().catch(() => undefined);
      await slot.destroy().catch(() => undefined);
    }
  };
}
