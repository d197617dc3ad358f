/**
 * Recovery from non-finite steps (`nonFinite.*`): what a run carries across its rollbacks and, in checkpoints,
 * across resumes — the steps whose batch is skipped, the learning-rate scale — and the decision at each
 * non-finite step: stop with an error naming it, or roll back to the newest checkpoint.
 * @module
 */
import { TorchError } from "../errors.ts";
import type { TrainConfig } from "../config.ts";
import { checkpointStep } from "./checkpoint.ts";
import type { NonFiniteStep } from "./log_window.ts";

/** What a checkpoint records of the recovery (under `extra.recovery`; absent while nothing was skipped). */
export interface RecoveryState {
  skip: number[];
  lrFactor: number;
}

/** The recovery state of one invocation of `train`. */
export class Recovery {
  /** Steps whose batch is drawn and discarded (it made the loss non-finite). */
  readonly skip = new Set<number>();
  /** Product of nonFinite.lrScale over the rollbacks so far. */
  lrFactor = 1;
  /** Rollbacks in this invocation. */
  rollbacks = 0;
  /** metrics.jsonl records to write once the file has been cut back to the checkpoint's step. */
  readonly pending: Record<string, unknown>[] = [];
  readonly #injected = new Set<number>(); // debug.nanAtSteps already injected (each once)

  constructor(readonly cfg: TrainConfig) {}

  /** Whether step `step`'s loss is to be made NaN (`debug.nanAtSteps`, once each, on `debug.nanRank`). */
  injectAt(step: number, rank: number): boolean {
    const d = this.cfg.debug;
    if (!d.nanAtSteps.includes(step) || this.#injected.has(step)) return false;
    if (d.nanRank !== undefined && d.nanRank !== rank) return false;
    this.#injected.add(step);
    return true;
  }

  /** What a checkpoint records (nothing while no batch was skipped). */
  checkpointState(): { recovery?: RecoveryState } {
    return this.skip.size ? { recovery: { skip: [...this.skip], lrFactor: this.lrFactor } } : {};
  }

  /** Restores what a checkpoint recorded: a resumed process keeps skipping those batches, at that scale. */
  restore(saved: Partial<RecoveryState> | undefined): void {
    for (const s of saved?.skip ?? []) this.skip.add(s);
    if (this.rollbacks === 0 && typeof saved?.lrFactor === "number") this.lrFactor = saved.lrFactor;
  }

  /**
   * After the non-finite step `e`, with `newest` the newest checkpoint (null: none): under `stop`, or past
   * `maxRollbacks`, a TorchError naming the step; else the next rollback is recorded (its batch skipped, the lr
   * scaled, a metrics record pending) and a warning for it returned.
   */
  rollBack(e: NonFiniteStep, newest: string | null): string {
    const nf = this.cfg.nonFinite, where = `newest: ${newest ?? "none"}`;
    if (nf.policy === "stop") {
      throw new TorchError(
        "train",
        `${e.message}; the checkpoints were written before it and are intact (${where}); ` +
          "--set nonFinite.policy=rollback recovers from the newest one automatically",
      );
    }
    if (this.rollbacks >= nf.maxRollbacks) {
      throw new TorchError(
        "train",
        `${e.message}, after ${this.rollbacks} rollback(s) (nonFinite.maxRollbacks); the checkpoints are intact ` +
          `(${where})`,
      );
    }
    this.rollbacks++;
    this.skip.add(e.step);
    this.lrFactor *= nf.lrScale;
    this.pending.push({
      event: "rollback",
      step: newest ? checkpointStep(newest) : 0,
      badStep: e.step,
      what: e.what,
      from: newest,
      rollbacks: this.rollbacks,
      lrFactor: this.lrFactor,
      skip: [...this.skip],
    });
    return `${e.message}: rolling back to ${newest ?? "the start"} (rollback ${this.rollbacks} of at most ` +
      `${nf.maxRollbacks}); the batch of step ${e.step} will be skipped` +
      (this.lrFactor !== 1 ? `, lr × ${this.lrFactor}` : "");
  }
}
