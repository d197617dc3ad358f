/**
 * Learning-rate schedules: linear warmup then cosine decay (MAE/VideoMAE), constant, or warmup–stable–decay;
 * and VideoMAE's linear scaling rule.
 * @module
 */
import { TorchError } from "../errors.ts";

/** Options of `warmupCosine`. */
export interface WarmupCosineOptions {
  /** Peak learning rate, reached at the end of warmup. */
  baseLr: number;
  /** Final learning rate, reached at `totalSteps` and held afterwards (default 1e-5). */
  minLr?: number;
  /** Length of the linear warmup, in steps (0: none). */
  warmupSteps: number;
  /** Total number of steps; must exceed `warmupSteps`. */
  totalSteps: number;
}

/**
 * A pure function from step (0-based; fractional steps are allowed) to learning rate, as MAE's
 * `adjust_learning_rate`:
 * - warmup, `step < warmupSteps`: `baseLr * step / warmupSteps` — linear from 0, so step 0 has lr 0;
 * - then `minLr + (baseLr - minLr) * (1 + cos(π (step - warmupSteps) / (totalSteps - warmupSteps))) / 2`,
 *   which is `baseLr` at `warmupSteps` and `minLr` at `totalSteps`;
 * - `minLr` from `totalSteps` on (and 0 for negative steps).
 */
export function warmupCosine(opts: WarmupCosineOptions): (step: number) => number {
  const { baseLr, warmupSteps, totalSteps } = opts;
  const minLr = opts.minLr ?? 1e-5;
  const bad = (what: string) => {
    throw new TorchError("warmupCosine", what);
  };
  if (!(Number.isFinite(baseLr) && baseLr >= 0)) bad(`baseLr must be a finite number >= 0, got ${baseLr}`);
  if (!(Number.isFinite(minLr) && minLr >= 0)) bad(`minLr must be a finite number >= 0, got ${minLr}`);
  if (!(Number.isInteger(warmupSteps) && warmupSteps >= 0)) {
    bad(`warmupSteps must be an integer >= 0, got ${warmupSteps}`);
  }
  if (!(Number.isInteger(totalSteps) && totalSteps > warmupSteps)) {
    bad(`totalSteps must be an integer > warmupSteps (${warmupSteps}), got ${totalSteps}`);
  }
  const decaySteps = totalSteps - warmupSteps;
  return (step: number): number => {
    if (Number.isNaN(step)) throw new TorchError("warmupCosine", "step is NaN");
    if (step < 0) return 0;
    if (step < warmupSteps) return baseLr * step / warmupSteps;
    if (step >= totalSteps) return minLr;
    return minLr + (baseLr - minLr) * 0.5 * (1 + Math.cos(Math.PI * (step - warmupSteps) / decaySteps));
  };
}

/** The shapes of `lrSchedule` after its warmup. */
export const LR_SCHEDULES = ["cosine", "constant", "wsd"] as const;
/** A schedule's shape: cosine decay, constant, or warmup–stable–decay. */
export type LrScheduleKind = (typeof LR_SCHEDULES)[number];

/** Options of `lrSchedule`: those of `warmupCosine`, its shape, and (wsd) the length of the final decay. */
export interface LrScheduleOptions extends WarmupCosineOptions {
  /** After the warmup: `cosine` (warmupCosine), `constant` (baseLr to the end), `wsd` (constant, then decay). */
  kind: LrScheduleKind;
  /** wsd: the last this-many steps decay linearly from baseLr to minLr (default a fifth of the steps). */
  decaySteps?: number;
}

/**
 * The learning rate at each step (0-based) under one of three shapes, all with the same linear warmup from 0:
 * - `cosine`: `warmupCosine`, decaying to `minLr` at `totalSteps`;
 * - `constant`: `baseLr` from the end of the warmup on (a schedule whose every stage trains at the same rate);
 * - `wsd` (warmup–stable–decay): `baseLr` until `totalSteps - decaySteps`, then linear to `minLr` at
 *   `totalSteps`, and `minLr` afterwards.
 */
export function lrSchedule(opts: LrScheduleOptions): (step: number) => number {
  const cosine = warmupCosine(opts); // validates the shared options
  if (opts.kind === "cosine") return cosine;
  const { baseLr, warmupSteps, totalSteps } = opts;
  const minLr = opts.minLr ?? 1e-5;
  const decaySteps = opts.decaySteps ?? Math.floor(totalSteps / 5);
  if (
    opts.kind === "wsd" &&
    !(Number.isInteger(decaySteps) && decaySteps > 0 && decaySteps <= totalSteps - warmupSteps)
  ) {
    throw new TorchError(
      "lrSchedule",
      `decaySteps must be an integer in 1..${
        totalSteps - warmupSteps
      } (the steps after warmup), got ${decaySteps}`,
    );
  }
  const decayStart = totalSteps - decaySteps;
  return (step: number): number => {
    if (Number.isNaN(step)) throw new TorchError("lrSchedule", "step is NaN");
    if (step < warmupSteps) return cosine(step); // the shared warmup (0 before step 0)
    if (opts.kind === "constant" || step < decayStart) return baseLr;
    if (step >= totalSteps) return minLr;
    return baseLr + (minLr - baseLr) * (step - decayStart) / decaySteps;
  };
}

/**
 * VideoMAE's linear scaling rule: `baseLr * batchSize / 256`, where `batchSize` is the total batch per
 * optimizer step (per-device batch × devices × gradient-accumulation steps).
 */
export function scaledLr(baseLr: number, batchSize: number): number {
  if (!(Number.isInteger(batchSize) && batchSize > 0)) {
    throw new TorchError("scaledLr", `batchSize must be a positive integer, got ${batchSize}`);
  }
  return baseLr * batchSize / 256;
}
