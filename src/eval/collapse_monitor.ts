/**
 * Collapse metrics during training (`log.collapseEvery`): 64 fixed clips of the training data, kept on the
 * device, whose pooled encoder features are measured (src/eval/collapse.ts) at the steps the trainer asks.
 * @module
 */
import type { ClipDataset } from "../data/dataset.ts";
import { batchToTensor } from "../data/clip_tensor.ts";
import type { VideoMAE } from "../models/video_mae.ts";
import type { Device } from "../torch/dtype.ts";
import type { Tensor } from "../torch/tensor.ts";
import { keep } from "../torch/scope.ts";
import { collapseMetrics } from "./collapse.ts";
import { extractFeatures } from "./features.ts";

/** The collapse metrics of a model's pooled features on fixed clips; owns the clips. */
export interface CollapseMonitor {
  /** The metrics of `model` (call in eval mode, under no-grad, as the trainer's `evaluate` does). */
  measure(model: VideoMAE): Record<string, number>;
  /** Frees the clips. */
  [Symbol.dispose](): void;
}

/** A monitor on `n` clips of `ds` (the last indices: past any the sampler is likely to reach first), on `device`. */
export async function collapseEvaluation(ds: ClipDataset, device: Device, n = 64): Promise<CollapseMonitor> {
  const b = await ds.batch(Array.from({ length: Math.min(n, ds.length) }, (_, i) => ds.length - 1 - i));
  const clips: Tensor = keep(batchToTensor(b, device));
  return {
    measure: (model) => ({ ...collapseMetrics(extractFeatures(model.encoder, clips).pooled) }),
    [Symbol.dispose]: () => clips.dispose(),
  };
}
