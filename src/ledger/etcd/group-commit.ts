/**
 * Group commit. A process's transactions on one instance run one batch at a time (so a process
 * never competes with itself for an instance's revision); while a batch is in flight, new ones
 * wait, and the next batch takes up to `max` of them at once. A batch is decided on one snapshot,
 * each decision on the state the previous ones left, and committed as ONE etcd transaction:
 * eight waiting reservations cost one round trip, not eight.
 *
 * `compose` turns the members' decisions into one: a member whose decision throws gets its error
 * and the others go ahead. If the batch fails as a whole, each member runs alone (see EtcdStore).
 */
import { applyTransition, type InstanceSnapshot, type Transition } from '../../admission/snapshot.js';
import type { Decided } from '../ledger.js';

export type Decide<T> = (snap: InstanceSnapshot) => Decided<T>;

export type MemberOutcome =
  { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };

export interface Member {
  readonly decide: Decide<unknown>;
  /** When the caller's budget runs out. */
  readonly deadline: number;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

function isEmpty(t: Transition, snap: InstanceSnapshot): boolean {
  return t.upserts.length === 0 && t.events.length === 0 && t.instance === snap.instance;
}

/** The members' decisions in order, each on the state the ones before it left, as one. */
export function compose(decides: readonly Decide<unknown>[]): Decide<MemberOutcome[]> {
  return (snap) => {
    let state = snap;
    let instance = snap.instance;
    const upserts: Transition['upserts'][number][] = [];
    const events: Transition['events'][number][] = [];
    const outcomes: MemberOutcome[] = [];
    for (const decide of decides) {
      try {
        const { transition, result } = decide(state);
        outcomes.push({ ok: true, value: result });
        if (isEmpty(transition, state)) continue;
        state = applyTransition(state, transition);
        instance = transition.instance;
        upserts.push(...transition.upserts);
        events.push(...transition.events);
      } catch (error) {
        outcomes.push({ ok: false, error });
      }
    }
    return { transition: { instance, upserts, events }, result: outcomes };
  };
}

export class GroupCommitter {
  private readonly waiting = new Map<string, Member[]>();
  private readonly busy = new Set<string>();

  constructor(
    private readonly runBatch: (key: string, batch: readonly Member[]) => Promise<void>,
    private readonly max: number,
  ) {}

  submit<T>(key: string, decide: Decide<T>, deadline: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const list = this.waiting.get(key) ?? [];
      list.push({ decide, deadline, resolve: resolve as (v: unknown) => void, reject });
      this.waiting.set(key, list);
      if (!this.busy.has(key)) void this.drain(key);
    });
  }

  private async drain(key: string): Promise<void> {
    this.busy.add(key);
    try {
      for (;;) {
        const list = this.waiting.get(key);
        if (!list || list.length === 0) break;
        const batch = list.splice(0, this.max);
        await this.runBatch(key, batch).catch((e: unknown) => {
          for (const m of batch) m.reject(e);
        });
      }
    } finally {
      this.waiting.delete(key);
      this.busy.delete(key);
    }
  }
}
