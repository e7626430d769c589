/**
 * A small typed event emitter: `on`, `off`, `once` and `emit`. A listener that throws
 * does not stop the others or the emitter's caller; its error is reported the way an
 * `EventTarget` reports one (`reportError` where the runtime has it).
 *
 * @module
 */

/** A listener of event `K` of the map `E`. */
export type Listener<E, K extends keyof E> = (payload: E[K]) => void;

/** Emits the events of the map `E` (event name → payload type). */
export class Emitter<E> {
  #listeners = new Map<keyof E, Set<Listener<E, keyof E>>>();

  /**
   * Adds a listener.
   *
   * @returns a function that removes it
   */
  on<K extends keyof E>(name: K, listener: Listener<E, K>): () => void {
    let set = this.#listeners.get(name);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(name, set);
    }
    set.add(listener as Listener<E, keyof E>);
    return () => this.off(name, listener);
  }

  /** Adds a listener called at most once. */
  once<K extends keyof E>(name: K, listener: Listener<E, K>): () => void {
    const off = this.on(name, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }

  /** Removes a listener added with {@link on}. */
  off<K extends keyof E>(name: K, listener: Listener<E, K>): void {
    this.#listeners.get(name)?.delete(listener as Listener<E, keyof E>);
  }

  /** Number of listeners of `name`. */
  listenerCount(name: keyof E): number {
    return this.#listeners.get(name)?.size ?? 0;
  }

  /** Calls every listener of `name` with `payload`, in the order they were added. */
  emit<K extends keyof E>(name: K, payload: E[K]): void {
    const set = this.#listeners.get(name);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<E, K>)(payload);
      } catch (error) {
        reportListenerError(error);
      }
    }
  }

  /** Removes every listener. */
  clear(): void {
    this.#listeners.clear();
  }
}

function reportListenerError(error: unknown): void {
  const report = (globalThis as { reportError?: (error: unknown) => void }).reportError;
  if (typeof report === "function") {
    report(error);
    return;
  }
  // Node has no reportError: rethrow outside the caller, as an EventTarget would.
  setTimeout(() => {
    throw error;
  }, 0);
}
