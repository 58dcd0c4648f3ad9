/**
 * Fault handling handed to the etcd3 client. The store does its own retries (with deadlines, and
 * settling lost commits by their markers), so the client's global policy only passes calls
 * through: a Txn is never re-sent behind the store's back. Per member, a small circuit breaker
 * skips a member for a moment after it failed twice in a row, so that calls go to the members
 * that answer instead of waiting out a dead or leaderless one again and again.
 */
import type { IOptions } from 'etcd3';
import { MemberSkippedError, isTransient } from './etcd-errors.js';

type FaultHandling = NonNullable<IOptions['faultHandling']>;
type Policy = NonNullable<FaultHandling['global']>;
type Context = Parameters<Parameters<Policy['execute']>[0]>[0];

const never = new AbortController().signal;
const noEvent = () => ({ dispose: () => undefined });

function policy(
  run: <T>(fn: (ctx: Context) => PromiseLike<T> | T, signal: AbortSignal) => Promise<T>,
): Policy {
  return {
    _altReturn: undefined as never,
    onSuccess: noEvent,
    onFailure: noEvent,
    execute: (fn, signal) => run(fn, signal ?? never),
  };
}

export const passThrough: Policy = policy(async (fn, signal) => fn({ signal }));

export function memberBreaker(member: string, opts: { failures: number; openMs: number }): Policy {
  let consecutive = 0;
  let openUntil = 0;
  let last = '';
  return policy(async (fn, signal) => {
    if (Date.now() < openUntil) {
      throw new MemberSkippedError(
        `etcd member ${member} failed ${consecutive} times in a row (last: ${last}); it is skipped for a moment`,
      );
    }
    try {
      const value = await fn({ signal });
      consecutive = 0;
      return value;
    } catch (e) {
      if (isTransient(e)) {
        last = e instanceof Error ? e.message.split('\n')[0]!.slice(0, 200) : String(e);
        if (++consecutive >= opts.failures) openUntil = Date.now() + opts.openMs;
      }
      throw e;
    }
  });
}

export function faultHandling(opts: { failures: number; openMs: number }): FaultHandling {
  return { global: passThrough, host: (member) => memberBreaker(member, opts) };
}
