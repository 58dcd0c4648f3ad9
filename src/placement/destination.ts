/**
 * Where `rrm run` runs a command that names another instance, `--target any` or a label selector.
 * Pure: it walks placement's ranking (src/placement/place.ts) and takes the first instance the
 * command can reach: this host's own instance (run here), or one whose agent registered a TCP
 * endpoint (the command is sent there as a remote install, and that agent reserves it on its
 * instance). Instances that fit but cannot be reached are named, so a user sees why they were passed.
 * When nothing could ever fit, the best of those is still chosen: it rejects the request there
 * with the shortfall, as any admission does.
 */
import { RrmError } from '../model/errors.js';
import type { Candidate, Ranking } from './place.js';
import type { InstanceStatus } from './instance-status.js';
import { formatSelector } from './selector.js';

export interface Destination {
  readonly instance: string;
  /** Undefined: run on this host. Otherwise the agent to send the install to. */
  readonly endpoint?: string;
  /** How placement ranked it (absent for an instance named with --target). */
  readonly candidate?: Candidate;
  /** Instances ranked ahead of it that could not be reached, with why. */
  readonly passed: readonly string[];
}

function reach(status: InstanceStatus | undefined): { endpoint: string } | { unreachable: string } {
  if (!status) return { unreachable: 'not in the ledger' };
  if (status.state === 'down') return { unreachable: 'its agent is down' };
  if (!status.agent) return { unreachable: 'no agent registered it' };
  if (!status.agent.endpoint) return { unreachable: 'its agent listens on a local socket only' };
  return { endpoint: status.agent.endpoint };
}

/** The first reachable instance of the ranking (grants, then preemption, then waits, then never). */
export function chooseDestination(
  ranking: Ranking,
  statuses: readonly InstanceStatus[],
  here: string,
  selector: Readonly<Record<string, string>>,
): Destination {
  const byId = new Map(statuses.map((s) => [s.instance.id, s]));
  const passed: string[] = [];
  for (const c of [...ranking.candidates, ...ranking.never]) {
    if (c.instance === here) return { instance: here, candidate: c, passed };
    const r = reach(byId.get(c.instance));
    if ('unreachable' in r) passed.push(`${c.instance} (${r.unreachable})`);
    else return { instance: c.instance, endpoint: r.endpoint, candidate: c, passed };
  }
  const sel = formatSelector(selector);
  const why = [
    ...ranking.excluded.map((x) => `${x.instance} (${x.why === 'down' ? 'down' : 'labels differ'})`),
    ...passed,
  ];
  throw new RrmError(
    'RRM_ERR_NO_INSTANCE',
    `no instance${sel ? ` with labels ${sel}` : ''} can run this command${why.length ? `: ${why.join(', ')}` : ''}`,
    { selector, excluded: ranking.excluded, passed },
  );
}

/** An instance named with `--target`: this host's, or one whose agent can be reached. */
export function namedDestination(
  instance: string,
  statuses: readonly InstanceStatus[],
  here: string,
): Destination {
  if (instance === here) return { instance, passed: [] };
  const status = statuses.find((s) => s.instance.id === instance);
  const r = reach(status);
  if ('unreachable' in r) {
    const code = status?.state === 'down' ? 'RRM_ERR_INSTANCE_DOWN' : 'RRM_ERR_NO_INSTANCE';
    throw new RrmError(code, `--target ${instance}: cannot run the command there: ${r.unreachable}`, {
      instance,
    });
  }
  return { instance, endpoint: r.endpoint, passed: [] };
}
