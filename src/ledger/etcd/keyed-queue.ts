/**
 * Runs async tasks one at a time per key, in arrival order. The etcd store funnels its own
 * transactions on one instance through this, so a process competes with other processes for an
 * instance's revision but never with itself (optimistic retries only cost across processes).
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    return prev.then(task).finally(() => {
      done();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
  }
}
