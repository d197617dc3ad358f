/**
 * LayerLock's schedule, as a pure function from the training step to what is frozen and what is predicted.
 *
 * Train with pixel targets for `pixelSteps`; then every `interval` steps freeze the next `layersPerStage`
 * encoder blocks (shallow to deep) until `maxFrozen` blocks are frozen. In `layerlock` mode the prediction
 * target switches to the output of the most recently frozen block (`target: "last"`) or of every frozen block
 * (`"all"`); at each switch the learning rate is ramped up again over `miniWarmupSteps` ("mini-warmup").
 *
 * What the paper states and what it leaves open (defaults marked *open* are this project's choices):
 * - stated: progressive freezing from the input side; one layer per stage is best (freezing many at once hurts);
 *   the target is the most recently frozen layer's output, and predicting all frozen layers does about as well;
 *   a mini-warmup at each switch helps (about +1% on SSv2); the ViT-G run froze up to 2/3 of the depth
 *   (32 of 48 layers), after pixel training for about 1/3 of its steps (160K), then 1 layer every 10K steps.
 * - open: whether the patch embedding freezes with the first layer (default: yes); whether the pixel loss is
 *   kept after the switch, or faded out (default: no) and the loss weights (default 1); normalisation of latent
 *   targets (default: a LayerNorm without affine parameters); the mini-warmup length (default: 1/5 of an
 *   interval); where the latent head starts at a switch (default: where it is); when `pixelSteps`/`interval` are not
 *   given they are derived from the run length: pixels for 1/3 of the steps, then `maxFrozen` stages spread
 *   evenly over the remaining 2/3 (the ViT-G proportions).
 * @module
 */
import { z } from "zod";
import { TorchError } from "../errors.ts";

/** The training modes, sharing all code. */
export const MODES = ["mae", "mae-freeze", "layerlock", "latent-unfrozen"] as const;
/** A training mode: plain MAE; MAE with progressive freezing; LayerLock; the collapse baseline. */
export type Mode = (typeof MODES)[number];

/** The schema of the `layerlock` section of the training configuration. */
export const LayerLockConfigSchema = z.object({
  /** What is trained: `layerlock` (default), `mae`, `mae-freeze`, or the `latent-unfrozen` collapse baseline. */
  mode: z.enum(MODES).default("layerlock"),
  /** Steps of pixel training before the first freeze (default: 1/3 of optim.steps). */
  pixelSteps: z.number().int().nonnegative().optional(),
  /** Steps between freezes (default: the rest of the run divided evenly among the stages). */
  interval: z.number().int().positive().optional(),
  /** Blocks frozen at each stage (the paper's best: 1). */
  layersPerStage: z.number().int().positive().default(1),
  /** The most blocks ever frozen: a count (>= 1) or a fraction of the depth (< 1). Default 2/3 of the depth. */
  maxFrozen: z.number().finite().positive().default(2 / 3),
  /** The patch (and position) embedding: frozen with the first block, or never frozen. */
  embedding: z.enum(["with-first", "never"]).default("with-first"),
  /** Latent target: the most recently frozen block's output, or every frozen block's. */
  target: z.enum(["last", "all"]).default("last"),
  /** Keep the pixel loss beside the latent loss after the switch. */
  keepPixelLoss: z.boolean().default(false),
  /**
   * A blend from pixels to latents: after each switch the pixel loss is kept, its weight falling linearly from
   * `pixelWeight` to 0 over this many steps (0: none; with `keepPixelLoss` it is kept at full weight instead).
   */
  pixelFade: z.number().int().nonnegative().default(0),
  /** Weight of the pixel loss (when it is kept, or at the start of a fade). */
  pixelWeight: z.number().finite().nonnegative().default(1),
  /** Weight of the latent loss. */
  latentWeight: z.number().finite().nonnegative().default(1),
  /** Normalisation of latent targets: LayerNorm without affine parameters, or none. */
  latentNorm: z.enum(["layernorm", "none"]).default("layernorm"),
  /** Where the latent loss is taken: masked tokens only, or all tokens. */
  latentLossOn: z.enum(["masked", "all"]).default("masked"),
  /** Steps of the learning-rate ramp after each switch (default: 1/5 of the interval; 0: none). */
  miniWarmupSteps: z.number().int().nonnegative().optional(),
  /**
   * CUDA: queue the latent target pass on a second stream before the encoder's forward, so the two overlap (they
   * are independent until the loss). No effect on the CPU. Off until its gain is measured on a GPU.
   */
  targetStream: z.boolean().default(false),
  /**
   * Where a latent head starts when its target changes at a switch: `continue` from where it is (the previous
   * stage's head; at the first switch a new head); `reinit`, a freshly initialised head; `ridge`, the best
   * linear predictor of the new target from the decoder's features, fitted in closed form (ridge regression)
   * on the held-out clips the floors use, so the latent loss starts near what a linear head can reach.
   */
  headInit: z.enum(["continue", "reinit", "ridge"]).default("continue"),
  /** `headInit: "ridge"`: the ridge strength, relative to the mean variance of the decoder's features. */
  ridgeLambda: z.number().finite().positive().default(1),
  /** latent-unfrozen: the block (1-based) whose own output is the target (default: half the depth). */
  unfrozenLayer: z.number().int().positive().optional(),
  /** latent-unfrozen: the latent loss weight is constant, or ramps up along a half cosine over the run. */
  unfrozenWeight: z.enum(["constant", "cosine"]).default("constant"),
  /**
   * When the next block freezes: `fixed`, every `interval` steps after `pixelSteps` (the paper's schedule); or
   * `convergence` (beyond the paper): from `pixelSteps` on, every `convergenceEvery` steps the output of the next
   * block on fixed held-out clips is compared with its output at the previous check, and the block freezes
   * once the linear CKA between the two reaches `convergenceCka` — when its representation has stopped changing.
   */
  trigger: z.enum(["fixed", "convergence"]).default("fixed"),
  /** convergence trigger: steps between checks. */
  convergenceEvery: z.number().int().positive().default(50),
  /** convergence trigger: the CKA between a block's outputs at two successive checks at which it freezes. */
  convergenceCka: z.number().finite().gt(0).max(1).default(0.99),
  /** convergence trigger: held-out clips the block outputs are computed on. */
  convergenceClips: z.number().int().positive().default(16),
}).strict();

/** The `layerlock` section as written before `headInit` replaced `reinitHead` (a boolean): still accepted. */
function upgradeLegacy(v: unknown): unknown {
  if (typeof v !== "object" || v === null || !("reinitHead" in v)) return v;
  const { reinitHead, ...rest } = v as Record<string, unknown>;
  return typeof reinitHead === "boolean" && !("headInit" in rest)
    ? { ...rest, headInit: reinitHead ? "reinit" : "continue" }
    : v; // anything else is left for the schema to refuse
}
/** The `layerlock` section, legacy spellings upgraded. */
export const LayerLockSectionSchema = z.preprocess(upgradeLegacy, LayerLockConfigSchema);

/** The `layerlock` section of a training configuration. */
export type LayerLockConfig = z.infer<typeof LayerLockConfigSchema>;

/** A schedule with every number resolved. */
export interface ResolvedSchedule {
  /** The mode. */
  mode: Mode;
  /** Encoder depth. */
  depth: number;
  /** Total training steps. */
  steps: number;
  /** Steps before the first freeze. */
  pixelSteps: number;
  /** Steps between freezes. */
  interval: number;
  /** Blocks per stage. */
  layersPerStage: number;
  /** The most blocks frozen. */
  maxFrozen: number;
  /** Mini-warmup length after each switch. */
  miniWarmupSteps: number;
  /** Target kind. */
  target: "last" | "all";
  /** The pixel loss's weight in latent stages, kept (`keepPixelLoss`) or at the start of a fade. */
  pixelWeight: number;
  /** Whether the pixel loss is kept at full weight in latent stages. */
  keepPixelLoss: boolean;
  /** Steps over which the pixel loss fades out after each switch (0: none). */
  pixelFade: number;
}

/** What the schedule says at one step. */
export interface ScheduleState {
  /** Stage: 0 before the first freeze, k after the k-th. */
  stage: number;
  /** Frozen encoder blocks (the first `frozenDepth`). */
  frozenDepth: number;
  /** Blocks (1-based) whose outputs are the latent targets; empty: pixel targets. */
  targetLayers: number[];
  /** Multiplier of the scheduled learning rate (the mini-warmup). */
  lrFactor: number;
  /**
   * The pixel loss's weight: 1 where pixels are the target, `pixelWeight` for latent-unfrozen and where the
   * pixel loss is kept, falling during a fade, 0 where only latents are predicted (the pixel loss is not computed).
   */
  pixelWeight: number;
  /** The step at which the current stage began (0 in stage 0). */
  stageStart: number;
}

/** Resolves counts, fractions and derived defaults for a run of `steps` steps on an encoder of `depth` blocks. */
export function resolveSchedule(c: LayerLockConfig, depth: number, steps: number): ResolvedSchedule {
  const maxFrozen = c.maxFrozen < 1 ? Math.floor(c.maxFrozen * depth) : Math.floor(c.maxFrozen);
  if (maxFrozen < 1 || maxFrozen > depth) {
    throw new TorchError(
      "layerlock",
      `layerlock.maxFrozen: ${c.maxFrozen} gives ${maxFrozen} frozen blocks; it must be between 1 and the depth ${depth}`,
    );
  }
  const stages = Math.ceil(maxFrozen / c.layersPerStage);
  const pixelSteps = c.pixelSteps ?? Math.round(steps / 3);
  const interval = c.interval ?? Math.max(1, Math.floor((steps - pixelSteps) / stages));
  return {
    mode: c.mode,
    depth,
    steps,
    pixelSteps,
    interval,
    layersPerStage: c.layersPerStage,
    maxFrozen,
    miniWarmupSteps: c.miniWarmupSteps ?? Math.floor(interval / 5),
    target: c.target,
    pixelWeight: c.pixelWeight,
    keepPixelLoss: c.keepPixelLoss,
    pixelFade: c.pixelFade,
  };
}

/** Whether a mode freezes blocks at all. */
export function freezes(mode: Mode): boolean {
  return mode === "mae-freeze" || mode === "layerlock";
}

/** The number of stages (freezes) of a schedule. */
export function stageCount(s: ResolvedSchedule): number {
  return Math.ceil(s.maxFrozen / s.layersPerStage);
}

/** The step at which each stage of the fixed schedule begins: pixelSteps, pixelSteps + interval, ... */
export function fixedStageStarts(s: ResolvedSchedule): number[] {
  if (!freezes(s.mode)) return [];
  return Array.from({ length: stageCount(s) }, (_, i) => s.pixelSteps + i * s.interval);
}

/** The schedule at `step` (0-based: the step about to run) under the fixed schedule. Pure. */
export function scheduleAt(s: ResolvedSchedule, step: number): ScheduleState {
  return scheduleFrom(s, step, fixedStageStarts(s));
}

/**
 * The schedule at `step` given the steps at which the stages began (ascending; the fixed schedule's
 * `fixedStageStarts`, or the steps a convergence trigger froze at). Pure.
 */
export function scheduleFrom(
  s: ResolvedSchedule,
  step: number,
  stageStarts: readonly number[],
): ScheduleState {
  const stage = Math.min(stageStarts.filter((t) => t <= step).length, stageCount(s));
  if (!freezes(s.mode) || stage === 0) {
    const pixelWeight = s.mode === "latent-unfrozen" ? s.pixelWeight : 1;
    return { stage: 0, frozenDepth: 0, targetLayers: [], lrFactor: 1, pixelWeight, stageStart: 0 };
  }
  const frozenDepth = Math.min(stage * s.layersPerStage, s.maxFrozen);
  const stageStart = stageStarts[stage - 1];
  const latent = s.mode === "layerlock";
  const targetLayers = !latent
    ? []
    : s.target === "last"
    ? [frozenDepth]
    : Array.from({ length: frozenDepth }, (_, i) => i + 1);
  const since = step - stageStart;
  const lrFactor = latent && s.miniWarmupSteps > 0 && since < s.miniWarmupSteps
    ? (since + 1) / s.miniWarmupSteps
    : 1;
  const pixelWeight = !latent
    ? 1
    : s.keepPixelLoss
    ? s.pixelWeight
    : since < s.pixelFade
    ? s.pixelWeight * (1 - since / s.pixelFade)
    : 0;
  return { stage, frozenDepth, targetLayers, lrFactor, pixelWeight, stageStart };
}
