/**
 * Batch assembly shared by the generated datasets. Pure TypeScript (the prefetch worker imports it; it must not
 * reach the FFI shim).
 * @module
 */
import type { BatchLabels, ClipBatch } from "./clip.ts";

/**
 * Generates the clips at `indices` into one labelled batch of `frames` frames of `size`×`size`: `draw(index,
 * out, offset)` writes clip `index` at `out[offset…]` and returns what it drew, from which `tasks` (task name →
 * the clip's class id) read the batch's labels (the generated datasets share this).
 */
export function labelledBatch<C>(
  indices: readonly number[],
  frames: number,
  size: number,
  draw: (index: number, out: Uint8Array, offset: number) => C,
  tasks: Readonly<Record<string, (clip: C) => number>>,
): ClipBatch {
  const n = frames * size * size * 3;
  const data = new Uint8Array(indices.length * n);
  const entries = Object.entries(tasks);
  const labels: BatchLabels = Object.fromEntries(entries.map(([k]) => [k, new Int32Array(indices.length)]));
  for (let i = 0; i < indices.length; i++) {
    const c = draw(indices[i], data, i * n);
    for (const [k, id] of entries) labels[k][i] = id(c);
  }
  return { data, batch: indices.length, frames, height: size, width: size, labels };
}
