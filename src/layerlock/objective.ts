/**
 * The training objective of every mode, for one batch: the encoder pass over the visible tokens (its frozen
 * prefix under no-grad, so backward never enters it), the pixel and/or latent losses, and their weights.
 *
 * Latent targets come from a second, separate pass: the frozen prefix over the full, unmasked token sequence,
 * in inference mode. The encoder's own input cannot reuse that pass: attention over all tokens would leak the
 * masked content into the visible tokens' features.
 * @module
 */
import { inferenceMode, noGrad } from "../torch/autograd.ts";
import { cat, layerNorm, mseLoss } from "../torch/functional.ts";
import { gatherTokens, type Mask } from "../models/masking.ts";
import { floorLoss, maskedMse } from "../models/targets.ts";
import type { VideoMAE } from "../models/video_mae.ts";
import type { Tensor } from "../torch/tensor.ts";
import type { LatentHeads } from "./heads.ts";
import type { LayerLockConfig, ScheduleState } from "./schedule.ts";

/** The loss of one batch and its terms (each a 0-d tensor; `total` carries the graph). */
export interface Losses {
  /** The weighted sum that is backpropagated. */
  total: Tensor;
  /** Pixel reconstruction loss on masked tokens, when computed. */
  pixel: Tensor | null;
  /** Latent prediction loss (mean over target layers), when computed. */
  latent: Tensor | null;
  /** The weight the latent loss had. */
  latentWeight: number;
  /** The pixel loss's trivial floor on the same tokens (when the pixel loss and a mean are given). */
  pixelFloor: Tensor | null;
  /** The latent loss's trivial floor on the same tokens (when the latent loss and its means are given). */
  latentFloor: Tensor | null;
}

/**
 * The frozen prefix's outputs at the requested blocks (1-based), over the full token sequence, in inference mode
 * (no autograd, no version counters): inference tensors, which the loss reads through a gather (a normal tensor)
 * and never saves for backward.
 */
export function latentTargets(
  model: VideoMAE,
  x: Tensor,
  layers: readonly number[],
  norm: "layernorm" | "none",
): Tensor[] {
  return inferenceMode(() => {
    const states = model.encoder.hiddenStates(x, layers);
    if (norm === "none") return states;
    return states.map((h) => layerNorm(h, [h.shape[2]], null, null, 1e-6));
  });
}

/** The encoder over the visible tokens, its first `frozenDepth` blocks under no-grad unless the embedding trains. */
export function encodeVisible(
  model: VideoMAE,
  x: Tensor,
  keep: Tensor,
  frozenDepth: number,
  embedding: "with-first" | "never",
): Tensor {
  return model.encoder.forwardFrozen(x, keep, frozenDepth, embedding === "with-first");
}

/** Everything `computeLosses` needs besides the model. */
export interface ObjectiveContext {
  /** The layerlock section of the configuration. */
  cfg: LayerLockConfig;
  /** Pixel targets of all tokens [B, N, P] (computed by the caller, under no-grad). */
  pixelTargets: Tensor;
  /** The latent heads (layerlock and latent-unfrozen modes). */
  heads: LatentHeads | null;
  /** The schedule at this step. */
  state: ScheduleState;
  /** latent-unfrozen: the block whose own output is the target, and the loss weight at this step. */
  unfrozen?: { layer: number; weight: number };
  /**
   * The mean targets the trivial floors are computed from (src/layerlock/floor.ts): pixels [N, P], and one [N, D]
   * per target layer, in the order of the target layers. Each floor is left null when its mean is not given.
   */
  floor?: { pixel: Tensor | null; latent: Tensor[] | null };
  /**
   * A second stream for the target pass (a `CudaStream`): the pass is queued there first and overlaps the
   * encoder and decoder; the loss waits for it. Null or absent: the pass runs in order on the current stream.
   */
  targetStream?: { run<T>(fn: () => T): T; wait(): void } | null;
}

/** Computes the losses of one batch. */
export function computeLosses(model: VideoMAE, x: Tensor, mask: Mask, ctx: ObjectiveContext): Losses {
  const { cfg, state } = ctx;
  const latentLayers = cfg.mode === "latent-unfrozen" ? [ctx.unfrozen!.layer] : state.targetLayers;
  const latent = latentLayers.length > 0;
  // with a second stream, the target pass is queued first and runs beside the encoder and decoder
  const stream = latent ? ctx.targetStream ?? null : null;
  const early = stream ? stream.run(() => latentTargets(model, x, latentLayers, cfg.latentNorm)) : null;
  const encoded = encodeVisible(model, x, mask.keep, state.frozenDepth, cfg.embedding);
  const pixel = !latent || state.pixelWeight > 0;
  const nm = mask.masked.shape[1];
  const allTokens = latent && cfg.latentLossOn === "all";
  const feats = model.decoderFeatures(
    encoded,
    mask.keep,
    mask.masked,
    allTokens ? mask.keep.shape[1] + nm : nm,
  );
  const maskedFeats = allTokens ? feats.narrow(1, feats.shape[1] - nm, nm) : feats;

  const pixelLoss = pixel
    ? maskedMse(model.decoder.head.forward(maskedFeats).float(), ctx.pixelTargets, mask.masked)
    : null;
  const floorMeans = ctx.floor;
  const pixelFloor = pixel && floorMeans?.pixel
    ? noGrad(() => floorLoss(floorMeans.pixel!, ctx.pixelTargets, mask.masked))
    : null;
  let latentLoss: Tensor | null = null, latentFloor: Tensor | null = null;
  let latentWeight = 0;
  if (latent) {
    stream?.wait();
    const targets = early ?? latentTargets(model, x, latentLayers, cfg.latentNorm);
    const ids = allTokens ? cat([mask.keep, mask.masked], 1) : mask.masked;
    const terms = latentLayers.map((layer, i) =>
      mseLoss(ctx.heads!.head(layer).forward(feats).float(), gatherTokens(targets[i], ids).float())
    );
    const meanOf = (ts: Tensor[]) => ts.length === 1 ? ts[0] : ts.reduce((a, b) => a.add(b)).div(ts.length);
    latentLoss = meanOf(terms);
    latentWeight = cfg.mode === "latent-unfrozen" ? ctx.unfrozen!.weight : cfg.latentWeight;
    const means = floorMeans?.latent;
    if (means && means.length === targets.length) {
      latentFloor = noGrad(() => meanOf(targets.map((t, i) => floorLoss(means[i], t, ids))));
    }
  }
  const weightedPixel = pixelLoss === null ? null : pixelLoss.mul(latent ? state.pixelWeight : 1);
  const weightedLatent = latentLoss === null ? null : latentLoss.mul(latentWeight);
  const total = weightedPixel && weightedLatent
    ? weightedPixel.add(weightedLatent)
    : (weightedPixel ?? weightedLatent)!;
  return { total, pixel: pixelLoss, latent: latentLoss, latentWeight, pixelFloor, latentFloor };
}
