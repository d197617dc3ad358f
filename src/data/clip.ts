/**
 * `ClipBatch`, the batch of video clips handed to training: plain host data (a Uint8Array, generated or decoded
 * in pure TypeScript, possibly in a worker) with its labels, its checks, and the per-channel normalisation it is
 * uploaded with. Pure: imports no native module (the upload to tensors is clip_tensor.ts), so the data generators
 * and the prefetch worker may import it.
 * @module
 */
import { ConfigError, DataError } from "../errors.ts";

/** A batch of RGB video clips on the host, with optional per-clip labels. */
export interface ClipBatch {
  /** Pixels, uint8, laid out [B, T, H, W, C] with C = 3 (RGB), row-major. */
  data: Uint8Array;
  /** B: clips in the batch. */
  batch: number;
  /** T: frames per clip. */
  frames: number;
  /** H: frame height in pixels. */
  height: number;
  /** W: frame width in pixels. */
  width: number;
  /**
   * Per-clip labels, task name → class id of each clip (the dataset's `labelTasks` names the classes): moving
   * shapes' `shape` and `direction`, Moving Fashion-MNIST's `garment` and `direction`, a labelled video folder's
   * `class`; null for unlabelled video.
   */
  labels: BatchLabels | null;
  /** Files found unreadable while making this batch (their clips were replaced by others); absent: none. */
  skipped?: string[];
  /** Per-channel (RGB) mean and std of pixels in [0, 1] for `batchToTensor`; absent: ImageNet's. */
  norm?: Normalization;
}

/** A batch's labels: task name → the class id of each clip (one entry per clip). */
export type BatchLabels = Record<string, Int32Array>;

/** Per-channel (RGB) normalisation of pixels scaled to [0, 1]: (x − mean) / std. */
export interface Normalization {
  /** Mean of each channel. */
  mean: readonly [number, number, number];
  /** Standard deviation of each channel (> 0). */
  std: readonly [number, number, number];
}

/** ImageNet per-channel mean (RGB), applied to pixels scaled to [0, 1]. */
export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
/** ImageNet per-channel standard deviation (RGB), applied to pixels scaled to [0, 1]. */
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

/** Checks that a batch's sizes agree with its data and labels (every task's); throws a DataError naming the mismatch. */
export function checkBatch(b: ClipBatch): void {
  const n = b.batch * b.frames * b.height * b.width * 3;
  for (const [k, v] of [["batch", b.batch], ["frames", b.frames], ["height", b.height], ["width", b.width]]) {
    if (!Number.isInteger(v) || (v as number) < 1) {
      throw new DataError("ClipBatch", `ClipBatch: ${k} must be ≥ 1, got ${v}`);
    }
  }
  if (b.data.length !== n) {
    throw new DataError(
      "ClipBatch",
      `ClipBatch: data holds ${b.data.length} bytes, expected B·T·H·W·3 = ${b.batch}·${b.frames}·${b.height}·` +
        `${b.width}·3 = ${n}`,
    );
  }
  if (b.labels !== null && Object.values(b.labels).some((ids) => ids.length !== b.batch)) {
    throw new DataError("ClipBatch", `ClipBatch: labels must have one entry per clip (${b.batch})`);
  }
}

/** The normalisation a batch is uploaded with: `norm`, else the batch's own, else ImageNet's (std checked > 0). */
export function batchNormalization(b: ClipBatch, norm?: Normalization): Normalization {
  const n = norm ?? b.norm ?? { mean: IMAGENET_MEAN, std: IMAGENET_STD };
  if (n.std.some((s) => !(s > 0))) {
    throw new ConfigError("batchToTensor", `batchToTensor: std must be > 0, got [${n.std.join(", ")}]`);
  }
  return n;
}
