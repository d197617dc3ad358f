/**
 * Frozen features of a video encoder for evaluation: every token of every clip (no masking), taken after the
 * first `depth` blocks, and their mean over tokens.
 * @module
 */
import { TorchError } from "../errors.ts";
import { noGrad } from "../torch/autograd.ts";
import { cat } from "../torch/functional.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import type { VideoMAEEncoder } from "../models/video_mae.ts";

/** Options of `extractFeatures`. */
export interface ExtractOptions {
  /**
   * How many blocks to run (0 to the encoder's depth; default all). At full depth the encoder's final norm is
   * applied too, so the tokens are exactly `encoder.forward(clips, null)`; at a smaller depth they are the raw
   * residual stream after block `depth` (`runBlocks(embed(clips), 0, depth)`), as the next block sees it.
   */
  depth?: number;
  /**
   * Clips per forward pass (default: all at once). Smaller chunks bound the activation memory; the results
   * are the same up to floating-point reassociation.
   */
  batchSize?: number;
}

/** The features of a batch of clips. */
export interface Features {
  /** The tokens averaged over tokens: [B, D]. */
  pooled: Tensor;
  /** Every token: [B, N, D]. */
  tokens: Tensor;
}

/**
 * Encodes clips [B, C, T, H, W] with every token visible (keep = null), without autograd and in eval mode
 * (the encoder's previous mode is restored afterwards), and returns the tokens after `depth` blocks and their
 * mean. The two tensors are owned by the caller (or the current scope); nothing else is left alive.
 */
export function extractFeatures(
  encoder: VideoMAEEncoder,
  clips: Tensor,
  opts: ExtractOptions = {},
): Features {
  const total = encoder.blocks.length;
  const depth = opts.depth ?? total;
  if (!Number.isInteger(depth) || depth < 0 || depth > total) {
    throw new TorchError("extractFeatures", `depth must be an integer in 0..${total}, got ${depth}`);
  }
  const s = clips.shape;
  if (s.length !== 5) {
    throw new TorchError("extractFeatures", `expected clips [B, C, T, H, W], got [${s.join(", ")}]`);
  }
  const b = s[0];
  const chunk = opts.batchSize ?? b;
  if (!Number.isInteger(chunk) || chunk < 1) {
    throw new TorchError("extractFeatures", `batchSize must be a positive integer, got ${chunk}`);
  }
  const wasTraining = encoder.training;
  encoder.eval();
  try {
    return noGrad(() =>
      scope(() => {
        const encode = (x: Tensor): Tensor =>
          scope(() => {
            const h = encoder.runBlocks(encoder.embed(x), 0, depth);
            return depth === total ? encoder.norm.forward(h) : h;
          });
        const parts: Tensor[] = [];
        for (let i = 0; i < b; i += chunk) {
          parts.push(chunk >= b ? encode(clips) : encode(clips.narrow(0, i, Math.min(chunk, b - i))));
        }
        const tokens = parts.length === 1 ? parts[0] : cat(parts, 0);
        return { pooled: tokens.mean(1), tokens };
      })
    );
  } finally {
    encoder.train(wasTraining);
  }
}

/**
 * The number of blocks at a relative depth: `round(fraction × depth)`, e.g. 0.5 of 12 blocks is 6 (0 is the
 * patch embedding alone, 1 the full encoder).
 */
export function depthFromFraction(fraction: number, depth: number): number {
  if (!Number.isInteger(depth) || depth < 0) {
    throw new TorchError("depthFromFraction", `depth must be a non-negative integer, got ${depth}`);
  }
  if (!(Number.isFinite(fraction) && fraction >= 0 && fraction <= 1)) {
    throw new TorchError("depthFromFraction", `fraction must be in [0, 1], got ${fraction}`);
  }
  // The small offset rounds products that should be exactly .5 but fall just below it in binary
  // (0.58 × 25 = 14.499999999999998) up, as the exact product would be.
  return Math.min(depth, Math.round(fraction * depth + 1e-9));
}
