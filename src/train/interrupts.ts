/**
 * Stopping a run cleanly: Ctrl-C (SIGINT) and SIGTERM (what torchrun sends its workers when stopped, and what
 * clusters send before a kill) ask the loop to stop after the step in progress, with a checkpoint; a second
 * Ctrl-C exits at once (earlier checkpoints are intact). Also the testing aid `debug.holdAt`: the run waits after
 * a chosen step until a signal comes, so tests interrupt it at a known step, whatever the machine's speed.
 * @module
 */

/** The stop requests of one run, from the moment `install` is called until `remove`. */
export class Interrupts {
  #requested = false;
  #lastYield = performance.now();
  #signal: "SIGINT" | "SIGTERM" | null = null;
  readonly #onSigint = () => {
    if (this.#requested) Deno.exit(130); // a second Ctrl-C: stop now
    this.#requested = true;
    this.#signal ??= "SIGINT";
  };
  // a SIGTERM stops the run like a first Ctrl-C, never like a second
  readonly #onSigterm = () => {
    this.#requested = true;
    this.#signal ??= "SIGTERM";
  };

  /** Listens for SIGINT and SIGTERM. */
  install(): void {
    Deno.addSignalListener("SIGINT", this.#onSigint);
    Deno.addSignalListener("SIGTERM", this.#onSigterm);
  }

  /** Stops listening. */
  remove(): void {
    Deno.removeSignalListener("SIGINT", this.#onSigint);
    Deno.removeSignalListener("SIGTERM", this.#onSigterm);
  }

  /**
   * Returns to the event loop at most every 100 ms, where signals are delivered: a loop whose batches come from
   * already-resolved promises would otherwise never hear them.
   */
  async poll(): Promise<void> {
    if (performance.now() - this.#lastYield < 100) return;
    await new Promise((r) => setTimeout(r, 0));
    this.#lastYield = performance.now();
  }

  /** Whether a stop was asked for (set by a signal, between any two awaits). */
  get requested(): boolean {
    return this.#requested;
  }

  /** The first signal that asked (null: none). */
  get signal(): "SIGINT" | "SIGTERM" | null {
    return this.#signal;
  }

  /**
   * `debug.holdAt`: announces on stderr (`holding after step N until a signal`, prefixed with the rank when data
   * parallel) and waits until a signal asks the run to stop (or ends the process).
   */
  async hold(step: number, rank: number | null): Promise<void> {
    console.error(
      `${rank !== null ? `rank ${rank}: ` : ""}holding after step ${step} until a signal (debug.holdAt)`,
    );
    while (!this.#requested) await new Promise((r) => setTimeout(r, 5));
  }
}
