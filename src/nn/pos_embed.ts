/**
 * Fixed 3-d sine-cosine position embeddings for a (T', H', W') token grid.
 *
 * The width D is split into three even parts for time, height and width: height and width get
 * 2·floor(D/6) each, time the rest. Each part embeds its coordinate with half sines and half cosines at
 * frequencies 1/10000^(i/(d/2)), as the 1-d table of "Attention is all you need"; the three parts are
 * concatenated per token. Tokens are ordered (t, h, w), as the patch embedding produces them.
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
