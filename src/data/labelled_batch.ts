/**
 * Batch assembly shared by the generated datasets. Pure TypeScript (the prefetch worker imports it; it must not
 * reach the FFI shim).
 * @module
 */
import type { ClipBatch } from "./clip.ts";

/**
 * Generates the clips at `indices` into one labelled batch of `frames` frames of `size`×`size`: `draw(index,
 * out, offset)` writes clip `index` at `out[offset…]` and returns its labels (the generated datasets share this).
 */
export function labelledBatch(
  indices: readonly number[],
  frames: number,
  size: number,
  draw: (index: number, out: Uint8Array, offset: number) => { shape: number; direction: number },
): ClipBatch {
  const n = frames * size * size * 3;
  const data = new Uint8Array(indices.length * n);
  const shape = new Int32Array(indices.length), direction = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const c = draw(indices[i], data, i * n);
    shape[i] = c.shape;
    direction[i] = c.direction;
  }
  return { data, batch: indices.length, frames, height: size, width: size, labels: { shape, direction } };
}
