/**
 * etcd and gRPC failures in rrm's terms: everything the cluster or the connection does wrong
 * becomes RRM_ERR_LEDGER with a message naming the endpoints; RrmErrors pass through unchanged.
 */
import { isRecoverableError } from 'etcd3';
import { RrmError, isRrmError } from '../../model/errors.js';

/** Thrown instead of calling a member that failed just before; the client then tries another. */
export class MemberSkippedError extends Error {
  override readonly name = 'MemberSkippedError';
}

/**
 * Whether trying again (on another member, or after an election) may succeed: the connection
 * failed, the deadline passed, the member has no leader, the leader changed. The request may or
 * may not have been applied.
 */
export function isTransient(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  if (e instanceof MemberSkippedError || isRecoverableError(e)) return true;
  return /no leader|leader changed|timed out|unavailable|deadline|circuit breaker is open|ECONNREFUSED|ECONNRESET|not capable|too many requests/i.test(
    e.message,
  );
}

export function describeEtcdError(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (/too many operations in txn request/i.test(msg))
    return `${msg} (one ledger transaction needs more operations than the cluster's --max-txn-ops allows; raise it)`;
  if (/request is too large/i.test(msg))
    return `${msg} (one ledger transaction is larger than the cluster's --max-request-bytes)`;
  if (/database space exceeded/i.test(msg))
    return `${msg} (etcd hit its backend quota: compact and defragment, or raise --quota-backend-bytes)`;
  return msg;
}

export function ledgerError(
  e: unknown,
  endpoints: readonly string[],
  what: string,
  extra: Record<string, unknown> = {},
): RrmError {
  if (isRrmError(e)) return e;
  const msg = describeEtcdError(e);
  return new RrmError('RRM_ERR_LEDGER', `etcd ledger at ${endpoints.join(', ')}: ${what}: ${msg}`, {
    cause: msg,
    endpoints: [...endpoints],
    ...extra,
  });
}
