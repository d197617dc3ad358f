/**
 * A convergence-triggered freezing schedule (beyond the paper; `layerlock.trigger: "convergence"`). The paper
 * observes that layers converge in depth order and freezes them at fixed steps; this trigger uses the
 * observation to decide: from `pixelSteps` on, every `convergenceEvery` steps it computes the output of the next
 * block to freeze on fixed held-out clips, and freezes it once the linear CKA between that output and the
 * same block's output at the previous check reaches `convergenceCka` (its representation has stopped changing).
 * The steps at which stages began are the trigger's whole state (checkpointed; `scheduleFrom` maps them to the
 * schedule at any step).
 * @module
 */
import { noGrad } from "../torch/autograd.ts";
import { scope } from "../torch/scope.ts";
import { zeros } from "../torch/creation.ts";
import { Module } from "../nn/module.ts";
import type { Tensor } from "../torch/tensor.ts";
import type { VideoMAE } from "../models/video_mae.ts";
import { TorchError } from "../errors.ts";
import { type ResolvedSchedule, stageCount } from "./schedule.ts";

/** Linear centred kernel alignment of two feature matrices [M, D1] and [M, D2] with rows in correspondence. */
export function linearCka(x: Tensor, y: Tensor): number {
  if (x.shape[0] !== y.shape[0]) {
    throw new TorchError("linearCka", `row counts differ: ${x.shape[0]} vs ${y.shape[0]}`);
  }
  return noGrad(() =>
    scope(() => {
      const xc = x.double().sub(x.double().mean(0, true)), yc = y.double().sub(y.double().mean(0, true));
      const cross = yc.transpose(0, 1).matmul(xc).square().sum().item();
      const xx = xc.transpose(0, 1).matmul(xc).square().sum().sqrt().item();
      const yy = yc.transpose(0, 1).matmul(yc).square().sum().sqrt().item();
      return xx > 0 && yy > 0 ? cross / (xx * yy) : 0;
    })
  );
}

/** The tokens after encoder block `block` (1-based) of every clip, flattened to [B·N, D], in eval mode, no grad. */
export function blockOutput(model: VideoMAE, clips: Tensor, block: number): Tensor {
  const enc = model.encoder;
  const modes = enc.blocks.items.map((b) => b.training);
  enc.eval();
  try {
    return scope(() => enc.hiddenStates(clips, [block])[0].flatten(0, 1));
  } finally {
    enc.blocks.items.forEach((b, i) => b.train(modes[i]));
  }
}

/** The trigger's decisions for one run. A module: its one buffer, the previous check's block output, is saved in
 * checkpoints with the model, so a resumed run decides exactly as an uninterrupted one. */
export class ConvergenceTrigger extends Module {
  /** The block whose output `previous` holds (0: none yet). */
  previousBlock = 0;
  /** The CKA measured at the last check (null before the second check of a block). */
  lastCka: number | null = null;

  /**
   * A trigger over `clips` ([M, C, T, H, W], owned by the caller) of a model with `tokens` tokens per clip of
   * width `dim`, for the resolved schedule, checking every `every` steps and freezing at a CKA of `threshold`;
   * `stageStarts` (ascending) are the stages begun so far, and grow as the trigger begins stages.
   */
  constructor(
    readonly schedule: ResolvedSchedule,
    readonly clips: Tensor,
    tokens: number,
    dim: number,
    readonly every: number,
    readonly threshold: number,
    readonly stageStarts: number[] = [],
  ) {
    super();
    this.buffer("previous", zeros([clips.shape[0] * tokens, dim], { device: clips.device }));
  }

  /** Whether `step` is a check: from pixelSteps on, every `every` steps, while stages remain. */
  due(step: number): boolean {
    const s = this.schedule;
    return step >= s.pixelSteps && (step - s.pixelSteps) % this.every === 0 &&
      this.stageStarts.length < stageCount(s);
  }

  /**
   * Checks at `step` (call when `due`): compares the next block's output with the previous check's and, when
   * it has converged, begins the next stage at `step`. Returns whether a stage began.
   */
  check(model: VideoMAE, step: number): boolean {
    const s = this.schedule;
    const block = Math.min((this.stageStarts.length + 1) * s.layersPerStage, s.maxFrozen);
    return scope(() => {
      const out = blockOutput(model, this.clips, block);
      const previous = this.own("previous");
      this.lastCka = this.previousBlock === block ? linearCka(previous, out) : null;
      if (this.lastCka !== null && this.lastCka >= this.threshold) {
        this.stageStarts.push(step);
        this.previousBlock = 0;
        return true;
      }
      noGrad(() => previous.copy_(out));
      this.previousBlock = block;
      return false;
    });
  }

  /** What a checkpoint records besides the buffer. */
  state(): { previousBlock: number; lastCka: number | null } {
    return { previousBlock: this.previousBlock, lastCka: this.lastCka };
  }

  /** Restores `state()`. */
  restore(st: { previousBlock: number; lastCka: number | null }): void {
    this.previousBlock = st.previousBlock;
    this.lastCka = st.lastCka;
  }
}
