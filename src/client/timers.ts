/**
 * Named one-shot timers: setting a name replaces its pending timer, and every timer can
 * be cancelled at once (so a closed watcher leaves nothing scheduled).
 *
 * @module
 */

/** A set of named `setTimeout`s. */
export class Timers<Name extends string> {
  #pending = new Map<Name, ReturnType<typeof setTimeout>>();

  /** Runs `fn` after `ms` milliseconds, replacing the pending timer of `name`. */
  set(name: Name, ms: number, fn: () => void): void {
    this.clear(name);
    this.#pending.set(
      name,
      setTimeout(() => {
        this.#pending.delete(name);
        fn();
      }, ms),
    );
  }

  /** Cancels the pending timer of `name`, if any. */
  clear(name: Name): void {
    const timer = this.#pending.get(name);
    if (timer !== undefined) clearTimeout(timer);
    this.#pending.delete(name);
  }

  /** Cancels every pending timer. */
  clearAll(): void {
    for (const timer of this.#pending.values()) clearTimeout(timer);
    this.#pending.clear();
  }
}
