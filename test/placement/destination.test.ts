import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isRrmError } from '../../src/model/errors.js';
import { chooseDestination, namedDestination } from '../../src/placement/destination.js';
import { instanceStatus, type InstanceStatus } from '../../src/placement/instance-status.js';
import type { AgentPresence } from '../../src/model/presence.js';
import type { Candidate, Fit, Ranking } from '../../src/placement/place.js';
import { emptySnapshot } from '../support/core-fixtures.js';

type Reach = 'endpoint' | 'socket-only' | 'down' | 'unmanaged';

function status(id: string, reach: Reach): InstanceStatus {
  const agent: AgentPresence = {
    host: `${id}.example`,
    pid: 1,
    since: 0,
    driver: 'none',
    ...(reach === 'endpoint' ? { endpoint: `http://${id}.example:7411` } : {}),
  };
  const snap = emptySnapshot({ cpu: 1000 }, id);
  return instanceStatus({
    ...snap,
    ...(reach === 'unmanaged' ? {} : { agent }),
    ...(reach === 'down' ? { down: true } : {}),
  });
}

const cand = (instance: string, fit: Fit): Candidate => ({
  instance,
  fit,
  score: 50,
  victims: [],
  ahead: 0,
  shortfall: [],
});

test('the first instance of the ranking that can be reached runs it; the ones passed over say why', () => {
  const ranking: Ranking = {
    candidates: [cand('a', 'grant'), cand('b', 'grant'), cand('c', 'grant'), cand('d', 'wait')],
    never: [],
    excluded: [{ instance: 'e', why: 'labels' }],
  };
  const statuses = [
    status('a', 'socket-only'),
    status('b', 'unmanaged'),
    status('c', 'endpoint'),
    status('d', 'endpoint'),
  ];
  const dest = chooseDestination(ranking, statuses, 'here', {});
  assert.equal(dest.instance, 'c');
  assert.equal(dest.endpoint, 'http://c.example:7411');
  assert.deepEqual(dest.passed, [
    'a (its agent listens on a local socket only)',
    'b (no agent registered it)',
  ]);
  // This host's own instance needs no agent.
  const local = chooseDestination(ranking, statuses, 'b', {});
  assert.deepEqual([local.instance, local.endpoint, local.passed.length], ['b', undefined, 1]);
});

test('nothing reachable: RRM_ERR_NO_INSTANCE naming every instance and why; an unsatisfiable one is still chosen', () => {
  const ranking: Ranking = {
    candidates: [cand('a', 'grant')],
    never: [],
    excluded: [{ instance: 'z', why: 'down' }],
  };
  assert.throws(
    () => chooseDestination(ranking, [status('a', 'socket-only')], 'here', { zone: 'a' }),
    (e: unknown) =>
      isRrmError(e) &&
      e.code === 'RRM_ERR_NO_INSTANCE' &&
      /labels zone=a/.test(e.message) &&
      /z \(down\)/.test(e.message) &&
      /a \(its agent listens on a local socket only\)/.test(e.message),
  );
  // It can never fit anywhere: it goes to the best such instance, whose admission rejects it with the shortfall.
  const never = chooseDestination(
    { candidates: [], never: [cand('big', 'never')], excluded: [] },
    [status('big', 'endpoint')],
    'here',
    {},
  );
  assert.equal(never.instance, 'big');
});

test('property: the destination is the first reachable candidate, and every one ahead of it is unreachable', () => {
  const reaches: Reach[] = ['endpoint', 'socket-only', 'down', 'unmanaged'];
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          reach: fc.constantFrom(...reaches),
          fit: fc.constantFrom<Fit>('grant', 'preempt', 'wait'),
        }),
        {
          maxLength: 8,
        },
      ),
      fc.array(fc.constantFrom(...reaches), { maxLength: 3 }),
      fc.option(fc.nat(10), { nil: undefined }),
      (cands, nevers, hereAt) => {
        const all = [
          ...cands.map((c, i) => ({ id: `c${i}`, reach: c.reach, fit: c.fit })),
          ...nevers.map((reach, i) => ({ id: `n${i}`, reach, fit: 'never' as Fit })),
        ];
        const here = hereAt !== undefined && hereAt < all.length ? all[hereAt]!.id : 'here';
        const ranking: Ranking = {
          candidates: all.filter((c) => c.fit !== 'never').map((c) => cand(c.id, c.fit)),
          never: all.filter((c) => c.fit === 'never').map((c) => cand(c.id, c.fit)),
          excluded: [],
        };
        const statuses = all.map((c) => status(c.id, c.reach));
        const ok = (c: (typeof all)[number]) => c.id === here || c.reach === 'endpoint';
        const want = all.findIndex(ok);
        if (want < 0) {
          assert.throws(
            () => chooseDestination(ranking, statuses, here, {}),
            /RRM_ERR_NO_INSTANCE|no instance/,
          );
          return;
        }
        const dest = chooseDestination(ranking, statuses, here, {});
        assert.equal(dest.instance, all[want]!.id);
        assert.equal(dest.endpoint === undefined, dest.instance === here);
        assert.equal(dest.passed.length, want);
      },
    ),
  );
});

test('a named instance: this host runs it; another needs a reachable agent, and a down one says so', () => {
  const statuses = [status('b', 'endpoint'), status('c', 'down'), status('d', 'socket-only')];
  assert.deepEqual(namedDestination('here', statuses, 'here'), { instance: 'here', passed: [] });
  assert.equal(namedDestination('b', statuses, 'here').endpoint, 'http://b.example:7411');
  const code = (id: string): string | undefined => {
    try {
      namedDestination(id, statuses, 'here');
      return undefined;
    } catch (e) {
      return isRrmError(e) ? e.code : String(e);
    }
  };
  assert.equal(code('c'), 'RRM_ERR_INSTANCE_DOWN');
  assert.equal(code('d'), 'RRM_ERR_NO_INSTANCE');
  assert.equal(code('nope'), 'RRM_ERR_NO_INSTANCE');
});
