/** A `BroadcastChannel` that loses the messages `lose` picks, as Deno's has been seen to under load. */
export class LossyChannel extends BroadcastChannel {
  constructor(name: string, readonly lose: (wire: Record<string, unknown>) => boolean) {
    super(name);
  }
  override postMessage(wire: Record<string, unknown>): void {
    if (!this.lose(wire)) super.postMessage(wire);
  }
}
