/**
 * One LayerLock training step, for every mode: the state that changes from step to step (the freezing schedule
 * or its convergence trigger, the frozen blocks, the latent heads and their reinitialisation at a stage change,
 * the trivial floors) and the loss of one batch with both kinds of target. The trainer's loop calls `begin`,
 * then `loss` inside a scope, then steps the optimiser with the schedule's `lrFactor`.
 * @module
 */
import { TorchError } from "../errors.ts";
import { autocast, noGrad } from "../torch/autograd.ts";
import type { Device } from "../torch/dtype.ts";
import { keep } from "../torch/scope.ts";
import { CudaStream } from "../torch/cuda_stream.ts";
import type { TrainConfig } from "../config.ts";
import type { ClipBatch } from "../data/clip.ts";
import { batchToTensor } from "../data/clip_tensor.ts";
import { disposeMask, makeMask, type Mask } from "../models/masking.ts";
import type { Shard } from "../data/sampler.ts";
import { pixelTargets } from "../models/targets.ts";
import type { VideoMAE } from "../models/video_mae.ts";
import type { Tensor } from "../torch/tensor.ts";
import type { Module } from "../nn/module.ts";
import type { NamedParam, ParamOptimizer } from "../optim/adamw.ts";
import { TargetFloor } from "./floor.ts";
import { Freezer } from "./freeze.ts";
import { LatentHeads } from "./heads.ts";
import { fitHeads } from "./head_fit.ts";
import { computeLosses, type Losses } from "./objective.ts";
import {
  fixedStageStarts,
  freezes,
  type ResolvedSchedule,
  resolveSchedule,
  scheduleFrom,
  type ScheduleState,
} from "./schedule.ts";
import { ConvergenceTrigger } from "./trigger.ts";

/** What `begin` reports about the step about to run. */
export interface StepStart {
  /** The schedule at this step. */
  state: ScheduleState;
  /** Whether a new stage (a new frozen depth or target) began at this step. */
  stageChanged: boolean;
}

/** What a checkpoint records of the step's state besides its modules. */
export interface StepCheckpoint {
  mode: string;
  frozenDepth: number;
  stageStarts: number[];
  trigger?: { previousBlock: number; lastCka: number | null };
}

/** Whether `cfg` freezes on the convergence trigger (a freezing mode with layerlock.trigger "convergence"). */
function usesTrigger(cfg: TrainConfig): boolean {
  return cfg.layerlock.trigger === "convergence" && freezes(cfg.layerlock.mode);
}

/** Whether `cfg` fits latent heads by ridge regression at its switches. */
function usesRidge(cfg: TrainConfig): boolean {
  return cfg.layerlock.headInit === "ridge" && cfg.layerlock.mode === "layerlock";
}

/** Held-out clips the ridge fit of a head reads (at least; it reads all there are, `log.floorClips` of them). */
export const RIDGE_CLIPS = 64;

/** The first `n` clips of a batch (all of them when it holds fewer). */
export function firstClips(b: ClipBatch, n: number): ClipBatch {
  const m = Math.min(n, b.batch), per = b.frames * b.height * b.width * 3;
  return {
    ...b,
    batch: m,
    data: b.data.subarray(0, m * per),
    labels: b.labels &&
      Object.fromEntries(Object.entries(b.labels).map(([k, ids]) => [k, ids.subarray(0, m)])),
  };
}

/** The LayerLock step of one run: owns the freezer, the latent heads, the trigger and the floors. */
export class LayerLockStep {
  /**
   * How many held-out clips the step of `cfg` needs (for the floors, the convergence trigger and the ridge fits
   * of the heads): the trainer fetches them before anything native is made.
   */
  static heldOutClips(cfg: TrainConfig): number {
    const ll = cfg.layerlock;
    return Math.max(
      cfg.log.floorClips,
      usesTrigger(cfg) ? ll.convergenceClips : 0,
      usesRidge(cfg) ? RIDGE_CLIPS : 0,
    );
  }

  /** The resolved freezing schedule. */
  readonly schedule: ResolvedSchedule;
  /** The latent prediction heads (layerlock and latent-unfrozen), trained with the model. */
  readonly heads: LatentHeads | null;
  /** The convergence trigger (layerlock.trigger "convergence"), checkpointed with the model. */
  readonly trigger: ConvergenceTrigger | null;
  /** The steps at which the freezing stages began: fixed by the schedule, or decided by the trigger. */
  readonly stageStarts: number[];
  /** The block whose own output latent-unfrozen predicts. */
  readonly unfrozenLayer: number;
  readonly #cfg: TrainConfig;
  readonly #model: VideoMAE;
  readonly #device: Device;
  readonly #amp: boolean;
  readonly #shard: Shard;
  readonly #floor: TargetFloor | null;
  readonly #targetStream: CudaStream | null;
  readonly #heldOut: ClipBatch | null;
  #freezer: Freezer | null = null;
  #stage: number | null = null;
  #state: ScheduleState | null = null; // the schedule at the step `begin` prepared
  #lastCka: number | null = null;

  /**
   * The step of `model` under `cfg` on `device`; `heldOut` are clips outside the training stream for the floors
   * (`log.floorClips` of them) and the convergence trigger (required when it is on).
   */
  constructor(
    cfg: TrainConfig,
    model: VideoMAE,
    device: Device,
    heldOut: ClipBatch | null,
    shard: Shard = { rank: 0, size: 1 },
  ) {
    const ll = cfg.layerlock, m = model.cfg;
    this.#shard = shard;
    this.#cfg = cfg;
    this.#model = model;
    this.#device = device;
    this.#amp = device !== "cpu" && cfg.amp === "bf16";
    this.schedule = resolveSchedule(ll, m.encoderDepth, cfg.optim.steps);
    this.unfrozenLayer = ll.unfrozenLayer ?? Math.max(1, Math.floor(m.encoderDepth / 2));
    if (this.unfrozenLayer > m.encoderDepth) {
      throw new TorchError(
        "train",
        `layerlock.unfrozenLayer ${this.unfrozenLayer} exceeds the depth ${m.encoderDepth}`,
      );
    }
    const convergence = usesTrigger(cfg);
    if (convergence && !heldOut) {
      throw new TorchError(
        "train",
        'layerlock.trigger "convergence" needs held-out clips (TrainOptions.floorClips)',
      );
    }
    this.#heldOut = heldOut;
    if (usesRidge(cfg) && !heldOut) {
      throw new TorchError(
        "train",
        'layerlock.headInit "ridge" needs held-out clips (TrainOptions.floorClips)',
      );
    }
    const latentMode = ll.mode === "layerlock" || ll.mode === "latent-unfrozen";
    this.heads = latentMode
      ? new LatentHeads(ll.target, m.decoderDim, m.encoderDim, m.encoderDepth, device)
      : null;
    this.trigger = convergence
      ? new ConvergenceTrigger(
        this.schedule,
        keep(batchToTensor(firstClips(heldOut!, ll.convergenceClips), device)),
        model.encoder.numTokens,
        m.encoderDim,
        ll.convergenceEvery,
        ll.convergenceCka,
      )
      : null;
    this.stageStarts = this.trigger ? this.trigger.stageStarts : fixedStageStarts(this.schedule);
    this.#targetStream = ll.targetStream && device !== "cpu" && latentMode ? CudaStream.create(device) : null;
    this.#floor = heldOut && cfg.log.floorClips > 0
      ? new TargetFloor(firstClips(heldOut, cfg.log.floorClips), {
        tubelet: m.tubelet,
        patch: m.patch,
        normalize: cfg.target.normalize,
        latentNorm: ll.latentNorm,
        chunk: cfg.optim.batchSize,
        amp: this.#amp,
      }, device)
      : null;
  }

  /** The modules a checkpoint saves beside the model (`heads`, `trigger`). */
  modules(): Record<string, Module> {
    const out: Record<string, Module> = {};
    if (this.heads) out.heads = this.heads;
    if (this.trigger) out.trigger = this.trigger;
    return out;
  }

  /** The parameters the optimiser trains besides the model's (the heads', named `heads.*`). */
  namedParameters(): NamedParam[] {
    return this.heads
      ? this.heads.namedParameters().map(([name, param]) => ({ name: `heads.${name}`, param }))
      : [];
  }

  /** Attaches the optimiser: freezing releases the frozen parameters' optimiser state. Call once. */
  attach(opt: ParamOptimizer): void {
    this.#freezer = new Freezer(this.#model, opt, this.#cfg.layerlock.embedding);
  }

  /** Blocks frozen now. */
  get frozenDepth(): number {
    return this.#freezer?.depth ?? 0;
  }

  /** The convergence trigger's last measured CKA (null before it measured one). */
  get lastCka(): number | null {
    return this.#lastCka;
  }

  /** What a checkpoint records of the step (see `restore`). */
  checkpoint(): StepCheckpoint {
    return {
      mode: this.#cfg.layerlock.mode,
      frozenDepth: this.frozenDepth,
      stageStarts: this.stageStarts,
      ...(this.trigger ? { trigger: this.trigger.state() } : {}),
    };
  }

  /**
   * Restores the state of a checkpoint taken at `step` (its `extra`), before its weights are loaded: the trigger's
   * stages, then the frozen set that is a function of them and of the step.
   */
  restore(extra: Partial<StepCheckpoint> | null, step: number, from: string): void {
    if (this.trigger) {
      if (!Array.isArray(extra?.stageStarts) || !extra.trigger) {
        throw new TorchError("train", `${from} does not record the convergence trigger's state`);
      }
      this.stageStarts.push(...extra.stageStarts);
      this.trigger.restore(extra.trigger);
    }
    this.#freezer!.freezeTo(scheduleFrom(this.schedule, step, this.stageStarts).frozenDepth);
    // the stage of the last step trained, so a switch at the very step the run resumes at is seen as one
    if (step > 0) {
      this.#state = scheduleFrom(this.schedule, step - 1, this.stageStarts);
      this.#stage = this.#state.stage;
    }
  }

  /** The schedule at `step` (for naming what a logged step trained on). */
  stateAt(step: number): ScheduleState {
    return scheduleFrom(this.schedule, step, this.stageStarts);
  }

  /** What the loss at `step` predicts: `pixels`, `h3`, `h1..h4`, or `pixels+h3` (latent-unfrozen; `h3` without pixels). */
  targetName(step: number): string {
    const t = this.stateAt(step).targetLayers;
    if (t.length === 0) {
      if (this.#cfg.layerlock.mode !== "latent-unfrozen") return "pixels";
      return this.#cfg.layerlock.pixelWeight > 0 ? `pixels+h${this.unfrozenLayer}` : `h${this.unfrozenLayer}`;
    }
    return t.length === 1 ? `h${t[0]}` : `h1..h${t[t.length - 1]}`;
  }

  /**
   * Prepares step `step`: runs a due convergence check, freezes the blocks the schedule has reached, and at a
   * stage change starts the heads whose target is new where `layerlock.headInit` says (releasing their
   * optimiser state unless they continue); a ridge head is also fitted when a fresh run starts in a latent stage.
   */
  begin(step: number, opt: ParamOptimizer): StepStart {
    if (this.trigger?.due(step)) {
      this.trigger.check(this.#model, step);
      if (this.trigger.lastCka !== null) this.#lastCka = this.trigger.lastCka;
    }
    const st = this.stateAt(step);
    if (st.frozenDepth > this.frozenDepth) this.#freezer!.freezeTo(st.frozenDepth);
    const stageChanged = this.#stage !== null && st.stage !== this.#stage;
    // a run that starts in a latent stage (pixelSteps 0, a warm start) fits its new heads before its first step
    const startsLatent = this.#stage === null && this.#cfg.layerlock.headInit === "ridge";
    if (stageChanged || startsLatent) this.#startHeads(st, this.#state?.targetLayers ?? [], opt);
    this.#stage = st.stage;
    this.#state = st;
    return { state: st, stageChanged };
  }

  /** At a switch: the heads whose target is new (the one head of `target: "last"`) start as `headInit` says. */
  #startHeads(st: ScheduleState, before: readonly number[], opt: ParamOptimizer): void {
    const how = this.#cfg.layerlock.headInit, heads = this.heads;
    if (how === "continue" || !heads || st.targetLayers.length === 0) return;
    const fresh = heads.target === "last"
      ? st.targetLayers
      : st.targetLayers.filter((l) => !before.includes(l));
    if (how === "reinit") { for (const l of fresh) heads.reinit(l); }
    else {
      const cfg = this.#cfg;
      fitHeads(this.#model, heads, this.#heldOut!, fresh, st.frozenDepth, cfg.layerlock, {
        maskKind: cfg.mask.kind,
        maskRatio: cfg.mask.ratio,
        chunk: cfg.optim.batchSize,
      }, this.#device);
    }
    for (const l of fresh) {
      opt.releaseState(
        heads.namedParameters().filter(([n]) => n.startsWith(heads.prefix(l))).map(([n]) => `heads.${n}`),
      );
    }
  }

  /**
   * The losses of the clips `x` [B, 3, T, H, W] (normalised, on the step's device; see `batchToTensor`) at `step`
   * (call inside a scope, after `begin(step)`): mask, pixel targets, the forward pass with its frozen prefix under
   * no-grad, latent targets from the frozen blocks, and the floors on the same tokens. Device work only, with no
   * host read: a CUDA graph can capture it (the host values it bakes in are those of the stage, and the loss
   * weights that change within one — latent-unfrozen's cosine ramp, a pixel fade — which `hostScalarsVary` reports).
   */
  loss(x: Tensor, step: number): Losses {
    const cfg = this.#cfg, ll = cfg.layerlock, m = this.#model.cfg, model = this.#model;
    const st = this.#state;
    if (st === null) throw new TorchError("train", "LayerLockStep.loss needs begin(step) first");
    // The floors' means live outside the step's scope (a latent mean is computed once, when its block is first
    // a target: a frozen block never changes). latent-unfrozen's target moves, so it has no floor.
    const floor = this.#floor
      ? {
        pixel: this.#floor.pixelMean,
        latent: ll.mode === "layerlock" && st.targetLayers.length
          ? this.#floor.latentMeans(model, st.targetLayers)
          : null,
      }
      : undefined;
    const unfrozen = {
      layer: this.unfrozenLayer,
      weight: ll.unfrozenWeight === "cosine"
        ? ll.latentWeight * (1 - Math.cos(Math.PI * step / cfg.optim.steps)) / 2
        : ll.latentWeight,
    };
    const mask = this.#mask(x.shape[0]);
    try {
      const targets = noGrad(() => pixelTargets(x, m.tubelet, m.patch, cfg.target.normalize));
      const ctx = {
        cfg: ll,
        pixelTargets: targets,
        heads: this.heads,
        state: st,
        unfrozen,
        floor,
        targetStream: this.#targetStream,
      };
      return this.#amp
        ? autocast("bf16", () => computeLosses(model, x, mask, ctx))
        : computeLosses(model, x, mask, ctx);
    } finally {
      disposeMask(mask);
    }
  }

  /**
   * The mask of this rank's `batch` clips. Data parallel: every rank draws the mask of the whole global batch from
   * the same generator (seeded alike, so the ranks stay in step) and keeps its own rows, so N ranks see exactly
   * the masks one process with the global batch would draw.
   */
  #mask(batch: number): Mask {
    const { rank, size } = this.#shard, cfg = this.#cfg, grid = this.#model.encoder.grid;
    if (size === 1) return makeMask(cfg.mask.kind, batch, grid, cfg.mask.ratio, this.#device);
    const all = makeMask(cfg.mask.kind, batch * size, grid, cfg.mask.ratio, this.#device);
    try {
      return {
        keep: all.keep.narrow(0, rank * batch, batch).contiguous(),
        masked: all.masked.narrow(0, rank * batch, batch).contiguous(),
      };
    } finally {
      disposeMask(all);
    }
  }

  /**
   * Whether `loss` bakes in a host number that changes from step to step within a stage (latent-unfrozen's cosine
   * latent weight, the pixel weight of a fade): such a step cannot be replayed from a CUDA graph.
   */
  get hostScalarsVary(): boolean {
    const ll = this.#cfg.layerlock;
    return (ll.mode === "latent-unfrozen" && ll.unfrozenWeight === "cosine") ||
      (ll.mode === "layerlock" && ll.pixelFade > 0 && !ll.keepPixelLoss);
  }

  /** Frees the heads, the trigger and its clips, and the floors' means. */
  dispose(): void {
    this.#targetStream?.dispose();
    this.#floor?.dispose();
    this.trigger?.clips.dispose();
    this.trigger?.dispose();
    this.heads?.dispose();
  }
}
