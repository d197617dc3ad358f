/**
 * Masking for the video MAE, computed on the device from torch's generator (so `manualSeed` reproduces it):
 * tube masking (one spatial mask shared by every time step, VideoMAE) and random masking (4DS, LayerLock).
 * A mask is two sorted index tensors: the visible tokens and the masked ones.
 * @module
 */
import { TorchError } from "../errors.ts";
import type { Device } from "../torch/dtype.ts";
import { arange, rand } from "../torch/creation.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";

/** A mask of a batch: sorted token indices, i64 on the device. */
export interface Mask {
  /** Visible tokens [B, Nv]. */
  keep: Tensor;
  /** Masked tokens [B, Nm]. */
  masked: Tensor;
}

/** The kind of masking. */
export type MaskKind = "tube" | "random";

/** Selects tokens [B, N, D] at indices [B, K]: [B, K, D]. */
export function gatherTokens(x: Tensor, ids: Tensor): Tensor {
  const [b, k] = ids.shape;
  const d = x.shape[2];
  return scope(() => x.gather(1, ids.unsqueeze(-1).expand([b, k, d])));
}

function sorted(ids: Tensor): Tensor {
  return ids.gather(1, ids.argsort(1));
}

/** How many of n tokens are masked at a ratio (at least one stays visible and one is masked). */
export function maskedCount(n: number, ratio: number): number {
  if (!(ratio > 0 && ratio < 1)) throw new TorchError("mask", `mask ratio must be in (0, 1), got ${ratio}`);
  const m = Math.floor(ratio * n);
  if (m < 1 || m >= n) {
    throw new TorchError(
      "mask",
      `mask ratio ${ratio} of ${n} tokens leaves ${n - m} visible and ${m} masked`,
    );
  }
  return m;
}

/** Random masking: each sample masks floor(ratio·N) tokens chosen uniformly. */
export function randomMask(batch: number, numTokens: number, ratio: number, device: Device = "cpu"): Mask {
  const nm = maskedCount(numTokens, ratio);
  return scope(() => {
    const perm = rand([batch, numTokens], { device }).argsort(1);
    const nv = numTokens - nm;
    return { keep: sorted(perm.narrow(1, 0, nv)), masked: sorted(perm.narrow(1, nv, nm)) };
  });
}

/** Tube masking: each sample masks floor(ratio·H'W') spatial positions in every one of the T' time steps. */
export function tubeMask(
  batch: number,
  grid: [number, number, number],
  ratio: number,
  device: Device = "cpu",
): Mask {
  const [t, h, w] = grid;
  const hw = h * w;
  const nm = maskedCount(hw, ratio);
  const nv = hw - nm;
  return scope(() => {
    const perm = rand([batch, hw], { device }).argsort(1);
    const offsets = arange(0, t * hw, hw, { device }).reshape([1, t, 1]);
    const expand = (s: Tensor, k: number) => s.unsqueeze(1).add(offsets).reshape([batch, t * k]);
    // Sorted spatial indices plus t·H'W' offsets are already sorted in (t, h, w) token order.
    return {
      keep: expand(sorted(perm.narrow(1, 0, nv)), nv),
      masked: expand(sorted(perm.narrow(1, nv, nm)), nm),
    };
  });
}

/** A mask of the given kind for a token grid. */
export function makeMask(
  kind: MaskKind,
  batch: number,
  grid: [number, number, number],
  ratio: number,
  device: Device = "cpu",
): Mask {
  if (kind === "tube") return tubeMask(batch, grid, ratio, device);
  if (kind === "random") return randomMask(batch, grid[0] * grid[1] * grid[2], ratio, device);
  throw new TorchError("mask", `unknown mask kind '${kind}'; expected "tube" or "random"`);
}

/** Frees both index tensors of a mask. */
export function disposeMask(m: Mask): void {
  m.keep.dispose();
  m.masked.dispose();
}
