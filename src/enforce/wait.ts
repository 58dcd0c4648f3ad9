/** Polling until the kernel reports a state change (frozen, empty). */
import { setTimeout as sleep } from 'node:timers/promises';

export const POLL_MS = 10;
export const DEFAULT_TIMEOUT_MS = 5_000;

/** Resolves when `done()` is true; calls `nudge()` before each re-check; rejects after timeoutMs. */
export async function waitUntil(
  done: () => boolean,
  what: string,
  opts: { timeoutMs?: number; nudge?: () => void } = {},
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  for (;;) {
    if (done()) return;
    if (Date.now() >= deadline)
      throw new Error(`timed out after ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms: ${what}`);
    await sleep(POLL_MS);
    opts.nudge?.();
  }
}
