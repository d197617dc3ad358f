/**
 * Fixed position embeddings of a (T', H', W') token grid, of two kinds (`positionTable`):
 *
 * `sincos` (the default): a 3-d sine-cosine table.
 *
 * The width D is split into three even parts for time, height and width: height and width get
 * 2·floor(D/6) each, time the rest. Each part embeds its coordinate with half sines and half cosines at
 * frequencies 1/10000^(i/(d/2)), as the 1-d table of "Attention is all you need"; the three parts are
 * concatenated per token. Tokens are ordered (t, h, w), as the patch embedding produces them.
 *
 * `videomae`: VideoMAE's `get_sinusoid_encoding_table`, a 1-d table over the flattened token index, with
 * interleaved channels: channel j of token p is sin (j even) or cos (j odd) of p / 10000^(2·⌊j/2⌋ / D). A
 * checkpoint of a `videomae` run gives, loaded into VideoMAE's own encoder, the same features.
 * @module
 */
import { TorchError } from "../errors.ts";
import type { Device } from "../torch/dtype.ts";
import { tensor } from "../torch/creation.ts";
import type { Tensor } from "../torch/tensor.ts";

function axisTable(positions: number, d: number): Float64Array {
  const half = d / 2;
  const out = new Float64Array(positions * d);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const omega = 1 / Math.pow(10000, i / half);
      out[p * d + i] = Math.sin(p * omega);
      out[p * d + half + i] = Math.cos(p * omega);
    }
  }
  return out;
}

/** The widths given to (time, height, width) for a total width `dim`. */
export function sincosSplit(dim: number): [number, number, number] {
  const dh = 2 * Math.floor(dim / 6);
  const dt = dim - 2 * dh;
  if (dh < 2 || dt < 2 || dt % 2) {
    throw new TorchError("sincos3d", `width ${dim} is too small or odd for a 3-d table`);
  }
  return [dt, dh, dh];
}

/** The [T'·H'·W', dim] f32 table for a token grid. */
export function sincos3d(grid: [number, number, number], dim: number, device: Device = "cpu"): Tensor {
  const [t, h, w] = grid;
  const [dt, dh, dw] = sincosSplit(dim);
  const tt = axisTable(t, dt), th = axisTable(h, dh), tw = axisTable(w, dw);
  const out = new Float32Array(t * h * w * dim);
  let o = 0;
  for (let a = 0; a < t; a++) {
    for (let b = 0; b < h; b++) {
      for (let c = 0; c < w; c++) {
        for (let i = 0; i < dt; i++) out[o++] = tt[a * dt + i];
        for (let i = 0; i < dh; i++) out[o++] = th[b * dh + i];
        for (let i = 0; i < dw; i++) out[o++] = tw[c * dw + i];
      }
    }
  }
  return tensor(out, { shape: [t * h * w, dim], device });
}

/** The kinds of fixed table (see the module documentation). */
export type FixedPosEmbed = "sincos" | "videomae";

/** VideoMAE's `get_sinusoid_encoding_table(n, dim)`: the [n, dim] f32 table over token indices 0..n−1. */
export function sinusoidTable(n: number, dim: number, device: Device = "cpu"): Tensor {
  if (!(Number.isInteger(n) && n > 0 && Number.isInteger(dim) && dim > 0)) {
    throw new TorchError("sinusoidTable", `needs positive integer sizes, got ${n} × ${dim}`);
  }
  const out = new Float32Array(n * dim);
  for (let p = 0; p < n; p++) {
    for (let j = 0; j < dim; j++) {
      const angle = p / Math.pow(10000, (2 * Math.floor(j / 2)) / dim);
      out[p * dim + j] = j % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
    }
  }
  return tensor(out, { shape: [n, dim], device });
}

/** The [T'·H'·W', dim] table of a kind for a token grid. */
export function positionTable(
  kind: FixedPosEmbed,
  grid: [number, number, number],
  dim: number,
  device: Device = "cpu",
): Tensor {
  if (kind === "sincos") return sincos3d(grid, dim, device);
  if (kind === "videomae") return sinusoidTable(grid[0] * grid[1] * grid[2], dim, device);
  throw new TorchError("positionTable", `unknown position table '${kind}'; expected "sincos" or "videomae"`);
}
