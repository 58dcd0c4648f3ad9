/**
 * Real `rrm agent` processes on one etcd ledger: each registers its instance under a kept-alive
 * lease. Killing one (SIGKILL) marks its instance down within the lease, its grants end, and a
 * waiter for `any` that was queued there is placed on an instance that is up. `rrm run --target any`
 * from a host outside the fleet runs its command on the chosen instance through that agent.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INSTANCE_DOWN_REASON } from '../../src/admission/transitions.js';
import { acquire } from '../../src/client/acquire.js';
import { CoreLedger } from '../../src/ledger/core-ledger.js';
import { EtcdStore } from '../../src/ledger/etcd/etcd-store.js';
import { ANY_INSTANCE, type Reservation } from '../../src/model/reservation.js';
import type { InstanceStatus } from '../../src/placement/instance-status.js';
import { spawnAgent, TOKENS, type AgentProcess } from '../support/agent.js';
import { rrm, waitFor } from '../support/cli.js';
import { request } from '../support/core-fixtures.js';
import { startEtcdCluster, uniquePrefix, type EtcdCluster } from '../support/etcd-cluster.js';

const TTL_MS = 2_000;
const holder = { host: 'fleet-agents-test', pid: process.pid, startTime: 0, owner: 'ops' };

let cluster: EtcdCluster;
const agents: AgentProcess[] = [];
let store: EtcdStore | undefined;

before(async () => {
  cluster = await startEtcdCluster();
});

after(async () => {
  for (const a of agents) if (a.child.exitCode === null) a.child.kill('SIGKILL');
  await store?.close();
  await cluster?.close();
});

test('killing an agent: its instance is down within its lease, its grants end, waiters for any are placed elsewhere', async (t) => {
  const prefix = uniquePrefix('agents');
  const ledgerUrl = `etcd://${cluster.endpoints.map((e) => e.replace('http://', '')).join(',')}${prefix}`;
  const fleetEnv = (instance: string, zone: string): NodeJS.ProcessEnv => ({
    RRM_LEDGER: ledgerUrl,
    RRM_INSTANCE: instance,
    RRM_INSTANCE_LABELS: `zone=${zone}`,
    RRM_INSTANCE_TTL: `${TTL_MS}ms`,
    RRM_ENFORCE: 'none',
  });
  for (const [instance, zone] of [
    ['node-a', 'a'],
    ['node-b', 'b'],
  ] as const) {
    const dir = mkdtempSync(join(tmpdir(), `rrm-fleet-${instance}-`));
    agents.push(await spawnAgent(dir, 0, { sweepInterval: '300ms' }, fleetEnv(instance, zone)));
  }
  const [agentA] = agents as [AgentProcess, AgentProcess];
  store = new EtcdStore({ hosts: cluster.endpoints, prefix });
  const ledger = new CoreLedger(store, {
    now: Date.now,
    hostname: holder.host,
    isHolderAlive: () => true,
    reclaimWork: async () => undefined,
    forceAfterMs: 60_000,
  });
  const states = async (): Promise<Record<string, string>> =>
    Object.fromEntries((await ledger.instanceStatus()).map((s) => [s.instance.id, s.state]));
  assert.deepEqual(await states(), { 'node-a': 'up', 'node-b': 'up' });
  for (const id of ['node-a', 'node-b']) {
    const inst = (await ledger.instance(id))!;
    assert.deepEqual(inst.labels.zone, id.slice(-1), 'registered with its labels');
    await ledger.setAllocatable(id, { ...inst.allocatable, cpu: 1000 }, inst.capacity, 'ops');
  }
  const grant = async (target: string, timeLimitMs?: number): Promise<Reservation> => {
    const { outcome } = await ledger.reserve(
      request({ target, requests: { cpu: 1000 }, holder, timeLimitMs }),
    );
    assert.equal(outcome.kind, 'granted');
    return outcome.reservation;
  };
  const onA = await grant('node-a', 60_000);
  const onB = await grant('node-b');
  const moves: string[] = [];
  const waiter = acquire(
    ledger,
    request({
      target: ANY_INSTANCE,
      placement: { selector: {}, strategy: 'least-allocated' },
      requests: { cpu: 1000 },
      holder,
    }),
    { pollMs: 250, onMove: (from, to) => moves.push(`${from.instance}->${to.instance}`) },
  );
  const queued = await waitFor(
    'the waiter queued',
    async () => (await ledger.list({ states: ['queued'] }))[0],
  );
  assert.equal(queued.instance, 'node-a', 'queued where a time limit promises the earlier start');

  const killedAt = Date.now();
  agentA.child.kill('SIGKILL');
  await waitFor(
    'node-a down',
    async () => ((await states())['node-a'] === 'down' ? true : undefined),
    15_000,
  );
  const downAfter = Date.now() - killedAt;
  assert.ok(downAfter <= TTL_MS + 3_000, `down ${downAfter} ms after the kill (lease ${TTL_MS} ms)`);
  const ended = await waitFor(
    'its grant ended',
    async () => {
      const r = await ledger.get(onA.id);
      return r?.state === 'expired' ? r : undefined;
    },
    10_000,
  );
  assert.equal(ended.reason, INSTANCE_DOWN_REASON);
  const endedAfter = Date.now() - killedAt;

  // Nothing new lands on node-a; the waiter moved to node-b and is granted when that frees.
  const moved = await waitFor('the waiter moved', async () =>
    moves.length ? (await ledger.list({ states: ['queued'] }))[0] : undefined,
  );
  assert.equal(moved.instance, 'node-b');
  await ledger.release(onB.id, { token: '', admin: true });
  const got = await waiter;
  assert.equal(got.handle.instance, 'node-b');
  assert.deepEqual(moves, ['node-a->node-b']);

  // The CLI sees the same fleet.
  const dir = mkdtempSync(join(tmpdir(), 'rrm-fleet-cli-'));
  const out = await rrm(dir, ['instances', '--json'], { RRM_LEDGER: ledgerUrl, RRM_ENFORCE: 'none' });
  assert.equal(out.code, 0, out.stderr);
  const listed = (JSON.parse(out.stdout) as { instances: InstanceStatus[] }).instances;
  assert.deepEqual(
    listed.map((s) => [s.instance.id, s.state, s.grants]),
    [
      ['node-a', 'down', 0],
      ['node-b', 'up', 1],
    ],
  );
  const table = await rrm(dir, ['instances', '--selector', 'zone=b'], { RRM_LEDGER: ledgerUrl });
  assert.match(table.stdout, /node-b\s+up/);
  assert.doesNotMatch(table.stdout, /node-a/);
  await ledger.release(got.handle.id, { token: got.handle.token });

  // rrm run from a host outside the fleet: placement picks node-b (node-a is down) and the command
  // runs there through node-b's agent, at the endpoint it registered; its exit code comes back.
  const runEnv = {
    RRM_LEDGER: ledgerUrl,
    RRM_ENFORCE: 'none',
    RRM_INSTANCE: 'cli-host',
    RRM_AGENT_TOKEN: TOKENS.admin,
  };
  const ran = await rrm(
    dir,
    [
      'run',
      '--json',
      '--target',
      'any',
      '--cpu',
      '1',
      '--',
      'sh',
      '-c',
      'echo "ran $RRM_RESERVATION_ID"; exit 5',
    ],
    runEnv,
  );
  assert.equal(ran.code, 5, ran.stderr);
  const placed = ran.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { event: string; instance?: string; endpoint?: string })
    .find((e) => e.event === 'placed');
  assert.deepEqual([placed?.instance, placed?.endpoint], ['node-b', agents[1]!.url]);
  const ranId = /ran (rsv_\S+)/.exec(ran.stdout)?.[1];
  assert.ok(ranId, ran.stdout);
  const ranR = await ledger.get(ranId);
  assert.deepEqual([ranR?.instance, ranR?.state, ranR?.requests.cpu], ['node-b', 'released', 1000]);
  const down = await rrm(dir, ['run', '--target-selector', 'zone=a', '--', 'true'], runEnv);
  assert.equal(down.code, 75, down.stderr);
  assert.match(down.stderr, /no instance with labels zone=a can run this command: node-a \(down\)/);
  const named = await rrm(dir, ['run', '--target', 'node-a', '--', 'true'], runEnv);
  assert.match(named.stderr, /--target node-a: cannot run the command there: its agent is down/);
  t.diagnostic(
    `node-a down ${downAfter} ms after SIGKILL (lease ${TTL_MS} ms); its grant ended after ${endedAfter} ms`,
  );
});
