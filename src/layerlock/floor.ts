/**
 * The trivial floor of the training losses: the loss of a predictor that ignores its input and always outputs
 * the training set's mean target at each token position. A model whose loss sits at this floor has learned the
 * mean image (or the mean latent), not the clip in front of it.
 *
 * The means are estimated once from `clips`, a sample of the training distribution kept out of the training
 * stream: per token position and target element for pixel targets ([N, P]), and, for a latent target (the
 * output of a frozen block), per token position and feature dimension ([N, D]) — computed when the block is
 * first a target, and valid from then on because a frozen block never changes. The floor of a batch is then
 * the loss function applied to those means on the very tokens the loss sees (see `computeLosses`), so it is
 * logged beside the loss step by step, under the same mask.
 *
 * (A latent-unfrozen target moves with the network, so it has no fixed mean and no floor here.)
 * @module
 */
import { autocast, noGrad } from "../torch/autograd.ts";
import type { ClipBatch } from "../data/clip.ts";
import { batchToTensor } from "../data/clip_tensor.ts";
import { pixelTargets } from "../models/targets.ts";
import type { VideoMAE } from "../models/video_mae.ts";
import { keep, scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import { latentTargets } from "./objective.ts";
import { TorchError } from "../errors.ts";

/** How the targets are made (the trainer's settings). */
export interface FloorSettings {
  /** Tubelet (time) size. */
  tubelet: number;
  /** Patch (space) size. */
  patch: number;
  /** Per-tubelet normalised pixel targets. */
  normalize: boolean;
  /** Normalisation of latent targets. */
  latentNorm: "layernorm" | "none";
  /** Clips per forward pass when estimating a mean. */
  chunk: number;
  /** Run the latent passes under bf16 autocast (as the training step does on CUDA). */
  amp: boolean;
}

/**
 * The mean of `targetsOf(chunk)` ([b, N, K]) over every clip of `clips`, uploaded `chunk` clips at a time: [N, K]
 * (float32, on `device`).
 */
export function meanTarget(
  clips: ClipBatch,
  chunk: number,
  device: string,
  targetsOf: (x: Tensor) => Tensor,
): Tensor {
  if (clips.batch < 1) throw new TorchError("floor", "no clips to estimate the mean target from");
  return noGrad(() =>
    scope(() => {
      const per = clips.frames * clips.height * clips.width * 3;
      let sum: Tensor | null = null;
      for (let i = 0; i < clips.batch; i += chunk) {
        const m = Math.min(chunk, clips.batch - i);
        const part: ClipBatch = {
          ...clips,
          batch: m,
          data: clips.data.subarray(i * per, (i + m) * per),
          labels: null,
        };
        const s = scope(() => targetsOf(batchToTensor(part, device as "cpu")).float().sum(0));
        sum = sum === null ? s : sum.add(s);
      }
      return sum!.div(clips.batch);
    })
  );
}

/** The means the floors are computed from, for one run; owns its tensors. */
export class TargetFloor {
  readonly #latent = new Map<number, Tensor>();
  #pixel: Tensor | null = null;

  /** A floor whose means come from `clips` (kept on the host; each mean is computed on the model's device). */
  constructor(readonly clips: ClipBatch, readonly settings: FloorSettings, readonly device: string) {}

  /** The mean pixel target per token position [N, P], computed on first use. */
  get pixelMean(): Tensor {
    const s = this.settings;
    return this.#pixel ??= keep(meanTarget(
      this.clips,
      s.chunk,
      this.device,
      (x) => pixelTargets(x, s.tubelet, s.patch, s.normalize),
    ));
  }

  /**
   * The mean latent target of each of `layers` (1-based blocks, which must be frozen from now on) per token
   * position [N, D], computed on first request with `model`'s frozen prefix, as `latentTargets` makes them.
   */
  latentMeans(model: VideoMAE, layers: readonly number[]): Tensor[] {
    const s = this.settings;
    for (const l of layers) {
      if (this.#latent.has(l)) continue;
      const pass = (x: Tensor) => latentTargets(model, x, [l], s.latentNorm)[0];
      const targetsOf = s.amp ? (x: Tensor) => autocast("bf16", () => pass(x)) : pass;
      this.#latent.set(l, keep(meanTarget(this.clips, s.chunk, this.device, targetsOf)));
    }
    return layers.map((l) => this.#latent.get(l)!);
  }

  /** Frees the means. */
  dispose(): void {
    this.#pixel?.dispose();
    this.#pixel = null;
    for (const t of this.#latent.values()) t.dispose();
    this.#latent.clear();
  }
}
