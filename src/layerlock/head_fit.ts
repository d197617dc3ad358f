/**
 * Starting a latent head where its new target is (`layerlock.headInit: "ridge"`): at a switch, the decoder's
 * features and the new target are computed on held-out clips exactly as the loss sees them (the training mask's
 * kind and ratio, the frozen prefix, the loss's tokens), their sufficient statistics are summed on the device in
 * float64, and the head is set to the ridge fit (src/layerlock/ridge.ts). The latent loss then starts near the
 * best a linear head on the current features can do, instead of several times its floor.
 * @module
 */
import { noGrad } from "../torch/autograd.ts";
import { tensor } from "../torch/creation.ts";
import type { Device } from "../torch/dtype.ts";
import { cat, matmul } from "../torch/functional.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import type { ClipBatch } from "../data/clip.ts";
import { batchToTensor } from "../data/clip_tensor.ts";
import { disposeMask, gatherTokens, makeMask, type MaskKind } from "../models/masking.ts";
import type { VideoMAE } from "../models/video_mae.ts";
import type { LatentHeads } from "./heads.ts";
import { encodeVisible, latentTargets } from "./objective.ts";
import { ridgeFit, type RidgeStats } from "./ridge.ts";
import type { LayerLockConfig } from "./schedule.ts";

/** How the loss sees the tokens (the trainer's settings). */
export interface HeadFitSettings {
  /** The training mask. */
  maskKind: MaskKind;
  maskRatio: number;
  /** Clips per forward pass. */
  chunk: number;
}

/**
 * The ridge statistics of each of `layers` (1-based frozen blocks, targets of the loss from now on): decoder
 * features → normalised block outputs on the loss's tokens of `clips`, with the first `frozenDepth` blocks
 * frozen. Draws one mask per chunk from torch's generator, as a training step does.
 */
export function ridgeStats(
  model: VideoMAE,
  clips: ClipBatch,
  layers: readonly number[],
  frozenDepth: number,
  cfg: LayerLockConfig,
  s: HeadFitSettings,
  device: Device,
): RidgeStats[] {
  const d = model.cfg.decoderDim, k = model.cfg.encoderDim;
  return noGrad(() =>
    scope(() => {
      const sums = layers.map(() => ({
        n: 0,
        x: null as Tensor | null,
        y: null as Tensor | null,
        xx: null as Tensor | null,
        xy: null as Tensor | null,
      }));
      const add = (a: Tensor | null, b: Tensor) => a === null ? b : a.add(b);
      const per = clips.frames * clips.height * clips.width * 3;
      for (let i = 0; i < clips.batch; i += s.chunk) {
        const m = Math.min(s.chunk, clips.batch - i);
        const part: ClipBatch = {
          ...clips,
          batch: m,
          data: clips.data.subarray(i * per, (i + m) * per),
          labels: null,
        };
        const x = batchToTensor(part, device);
        const mask = makeMask(s.maskKind, m, model.encoder.grid, s.maskRatio, device);
        try {
          const allTokens = cfg.latentLossOn === "all";
          const nm = mask.masked.shape[1];
          const encoded = encodeVisible(model, x, mask.keep, frozenDepth, cfg.embedding);
          const feats = model.decoderFeatures(
            encoded,
            mask.keep,
            mask.masked,
            allTokens ? mask.keep.shape[1] + nm : nm,
          );
          const targets = latentTargets(model, x, layers, cfg.latentNorm);
          const ids = allTokens ? cat([mask.keep, mask.masked], 1) : mask.masked;
          const xs = feats.reshape([-1, d]).double();
          layers.forEach((_, j) => {
            const ys = gatherTokens(targets[j], ids).reshape([-1, k]).double();
            const t = sums[j], xsT = xs.transpose(0, 1);
            t.n += xs.shape[0];
            t.x = add(t.x, xs.sum([0]));
            t.y = add(t.y, ys.sum([0]));
            t.xx = add(t.xx, matmul(xsT, xs));
            t.xy = add(t.xy, matmul(xsT, ys));
          });
        } finally {
          disposeMask(mask);
        }
      }
      const host = (t: Tensor | null) => t!.toArray() as Float64Array;
      return sums.map((t) => ({
        n: t.n,
        d,
        k,
        sumX: host(t.x),
        sumY: host(t.y),
        xtx: host(t.xx),
        xty: host(t.xy),
      }));
    })
  );
}

/** Sets the heads of `layers` to their ridge fits on `clips` (see `ridgeStats`). */
export function fitHeads(
  model: VideoMAE,
  heads: LatentHeads,
  clips: ClipBatch,
  layers: readonly number[],
  frozenDepth: number,
  cfg: LayerLockConfig,
  s: HeadFitSettings,
  device: Device,
): void {
  const stats = ridgeStats(model, clips, layers, frozenDepth, cfg, s, device);
  layers.forEach((layer, j) => {
    const { weight, bias } = ridgeFit(stats[j], cfg.ridgeLambda);
    const h = heads.head(layer);
    noGrad(() =>
      scope(() => {
        h.weight.copy_(tensor(Float32Array.from(weight), { shape: [stats[j].k, stats[j].d], device }));
        h.bias?.copy_(tensor(Float32Array.from(bias), { device }));
      })
    );
  });
}
