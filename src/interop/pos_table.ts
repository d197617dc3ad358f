/**
 * Position tables of imported weights at another clip geometry. A fixed table (VideoMAE's 1-d sinusoid,
 * `model.posEmbed: "videomae"`, or our 3-d `sincos`) is a function of the token grid and is simply rebuilt by
 * the model for the new grid: exact, as VideoMAE's own code builds its table for whatever clip it is given. A
 * learned table ([1, T'·H'·W', D]) is resized over (T', H', W') by trilinear interpolation with
 * `align_corners=False` (what `torch.nn.functional.interpolate(mode="trilinear")` computes), in the manner of
 * VideoMAEv2's fine-tuning code, which resizes a learned table to the fine-tuning clip (bicubically, over
 * height and width only). Host arithmetic on small tables; pure but for the tensors made at the boundary.
 * @module
 */
import { DataError } from "../errors.ts";
import { sinusoidTable } from "../nn/pos_embed.ts";
import { tensor } from "../torch/creation.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";

/** A token grid (T', H', W'). */
export type Grid = [number, number, number];

/**
 * Linear resampling weights of PyTorch's `align_corners=False` for an axis of `from` positions resized to
 * `to`: for each output position, the two source positions and their weights.
 */
function axisWeights(from: number, to: number): { i0: number; i1: number; w0: number; w1: number }[] {
  const scale = from / to;
  return Array.from({ length: to }, (_, o) => {
    const src = Math.max(0, (o + 0.5) * scale - 0.5);
    const i0 = Math.min(Math.floor(src), from - 1);
    const i1 = Math.min(i0 + 1, from - 1);
    const w1 = src - i0;
    return { i0, i1, w0: 1 - w1, w1 };
  });
}

/** Resamples one axis of a row-major [a, n, b] array (n → m positions along the middle axis). */
function resampleAxis(x: Float64Array, a: number, n: number, b: number, m: number): Float64Array {
  if (n === m) return x;
  const w = axisWeights(n, m);
  const out = new Float64Array(a * m * b);
  for (let i = 0; i < a; i++) {
    for (let o = 0; o < m; o++) {
      const { i0, i1, w0, w1 } = w[o];
      const dst = (i * m + o) * b, s0 = (i * n + i0) * b, s1 = (i * n + i1) * b;
      for (let k = 0; k < b; k++) out[dst + k] = w0 * x[s0 + k] + w1 * x[s1 + k];
    }
  }
  return out;
}

/**
 * A [T'·H'·W', D] table (tokens in (t, h, w) order, as the patch embedding makes them) resized from grid
 * `from` to grid `to`: trilinear, `align_corners=False`, separably along time, height and width.
 */
export function resizeTable(table: Float32Array, from: Grid, to: Grid, dim: number): Float32Array {
  const [t, h, w] = from, [t2, h2, w2] = to;
  if (table.length !== t * h * w * dim) {
    throw new DataError(
      "resizeTable",
      `a table of ${table.length} values is not ${t}×${h}×${w} tokens of width ${dim}`,
    );
  }
  let x: Float64Array = Float64Array.from(table);
  x = resampleAxis(x, 1, t, h * w * dim, t2);
  x = resampleAxis(x, t2, h, w * dim, h2);
  x = resampleAxis(x, t2 * h2, w, dim, w2);
  return Float32Array.from(x);
}

/** A learned position table [1, N, D] resized from grid `from` to grid `to` (see {@link resizeTable}). */
export function resizePosEmbed(posEmbed: Tensor, from: Grid, to: Grid): Tensor {
  const dim = posEmbed.shape[posEmbed.shape.length - 1];
  const values = scope(() => posEmbed.float().contiguous().toArray() as Float32Array);
  const out = resizeTable(values, from, to, dim);
  return tensor(out, { shape: [1, to[0] * to[1] * to[2], dim] });
}

/**
 * Whether a stored table [1, N, D] (or [N, D]) is VideoMAE's fixed sinusoid table for N tokens (within 1e-5):
 * some code saves the fixed table with the weights; it is then no learned table, and is rebuilt like any fixed
 * one.
 */
export function isSinusoidTable(posEmbed: Tensor): boolean {
  const s = posEmbed.shape;
  const [n, d] = [s[s.length - 2], s[s.length - 1]];
  if (s.length < 2 || s.length > 3 || (s.length === 3 && s[0] !== 1)) return false;
  const [a, b] = scope(() => [
    sinusoidTable(n, d).toArray() as Float32Array,
    posEmbed.float().contiguous().toArray() as Float32Array,
  ]);
  for (let i = 0; i < a.length; i++) if (!(Math.abs(a[i] - b[i]) <= 1e-5)) return false;
  return true;
}

/**
 * The token grid of a learned table of `n` tokens for square frames, with `tPrime` time positions: (T', s, s)
 * with s² = n / T', or null when n does not split so.
 */
export function squareGrid(n: number, tPrime: number): Grid | null {
  if (!(tPrime > 0) || n % tPrime) return null;
  const s = Math.round(Math.sqrt(n / tPrime));
  return s * s * tPrime === n ? [tPrime, s, s] : null;
}
