/**
 * Pixel targets of the video MAE and the masked reconstruction loss.
 *
 * A clip [B, C, T, H, W] is cut into tubelets in the patch embedding's (t, h, w) token order; each tubelet's
 * pixels are laid out as (pt, ph, pw, c) — VideoMAE's `b (t h w) (p0 p1 p2 c)` — and, by default, normalised
 * per tubelet and channel: (x - mean) / (std + 1e-6), with the unbiased std over the tubelet's pixels.
 * (VideoMAE first undoes the ImageNet normalisation of the input; per-tubelet normalisation is invariant to
 * that per-channel affine map, up to the 1e-6.)
 * @module
 */
import { TorchError } from "../errors.ts";
import { mseLoss } from "../torch/functional.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import { gatherTokens } from "./masking.ts";

/** Cuts [B, C, T, H, W] into tubelets: [B, N, pt·ph·pw, C]. */
export function patchify(x: Tensor, tubelet: number, patch: number): Tensor {
  const [b, c, t, h, w] = x.shape;
  if (t % tubelet || h % patch || w % patch) {
    throw new TorchError(
      "patchify",
      `clip ${t}x${h}x${w} is not divisible by tubelet ${tubelet} and patch ${patch}`,
    );
  }
  const tt = t / tubelet, hh = h / patch, ww = w / patch;
  return scope(() =>
    x.reshape([b, c, tt, tubelet, hh, patch, ww, patch])
      .permute([0, 2, 4, 6, 3, 5, 7, 1])
      .reshape([b, tt * hh * ww, tubelet * patch * patch, c])
  );
}

/** The pixel target of every token: [B, N, pt·ph·pw·C], per-tubelet normalised unless `normalize` is false. */
export function pixelTargets(x: Tensor, tubelet: number, patch: number, normalize = true): Tensor {
  return scope(() => {
    const p = patchify(x, tubelet, patch);
    const [b, n, k, c] = p.shape;
    const y = normalize ? p.sub(p.mean(2, true)).div(p.var(2, { keepdim: true }).sqrt().add(1e-6)) : p;
    return y.reshape([b, n, k * c]);
  });
}

/** Mean squared error between predictions for the masked tokens [B, Nm, P] and the targets [B, N, P] there. */
export function maskedMse(pred: Tensor, targets: Tensor, masked: Tensor): Tensor {
  return scope(() => mseLoss(pred, gatherTokens(targets, masked)));
}

/**
 * The floor of an MSE loss on the tokens `ids` [B, K]: the MSE between the per-position mean `mean` [N, P] and
 * the targets `targets` [B, N, P] at those tokens — the loss of predicting the mean there. A 0-d tensor.
 */
export function floorLoss(mean: Tensor, targets: Tensor, ids: Tensor): Tensor {
  return scope(() => {
    const [b] = targets.shape;
    const expanded = mean.unsqueeze(0).expand([b, -1, -1]);
    return mseLoss(gatherTokens(expanded, ids), gatherTokens(targets, ids).float());
  });
}
