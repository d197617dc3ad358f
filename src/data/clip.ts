/**
 * `ClipBatch`, the batch of video clips handed to training, and `batchToTensor`, which uploads one to a device as
 * a normalised float tensor. The batch is plain host data (a Uint8Array, generated or decoded in pure
 * TypeScript, possibly in a worker); tensors appear only in `batchToTensor`.
 *
 * Modules that must stay free of the FFI shim (the data generators, the prefetch worker) import this module
 * with `import type` only.
 * @module
 */
import type { Device } from "../torch/dtype.ts";
import { empty, tensor } from "../torch/creation.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
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
  /** Per-clip labels (moving shapes: shape class and motion direction), or null for unlabelled video. */
  labels: { shape: Int32Array; direction: Int32Array } | null;
  /** Files found unreadable while making this batch (their clips were replaced by others); absent: none. */
  skipped?: string[];
  /** Class ids of the clips, for a labelled video folder (an annotation list or class subfolders). */
  classes?: Int32Array;
  /** Per-channel (RGB) mean and std of pixels in [0, 1] for `batchToTensor`; absent: ImageNet's. */
  norm?: Normalization;
}

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

/** Checks that a batch's sizes agree with its data and labels; throws a DataError naming the mismatch. */
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
  if (b.labels !== null && (b.labels.shape.length !== b.batch || b.labels.direction.length !== b.batch)) {
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

/**
 * A normalisation as the affine map on 0–255 pixels it is, (x/255 − mean)/std = x·scale + shift, with `scale`
 * and `shift` [1, 3, 1, 1, 1] f32 tensors on `device` (owned by the caller).
 */
export function normalizationTensors(norm: Normalization, device: Device): { scale: Tensor; shift: Tensor } {
  const { mean, std } = norm;
  const scale = tensor(new Float32Array(std.map((s) => 1 / (255 * s))), { shape: [1, 3, 1, 1, 1], device });
  try {
    const shift = tensor(new Float32Array(mean.map((m, i) => -m / std[i])), {
      shape: [1, 3, 1, 1, 1],
      device,
    });
    return { scale, shift };
  } catch (e) {
    scale.dispose();
    throw e;
  }
}

/**
 * uint8 clips [B, T, H, W, 3] already on the device → normalised f32 [B, 3, T, H, W]: device work only (no
 * upload), so a captured CUDA graph can run it on a static input buffer. Made contiguous while still 1 byte per
 * element, then one multiply and one add per element.
 */
export function normalizeClips(u8: Tensor, affine: { scale: Tensor; shift: Tensor }): Tensor {
  return scope(() => u8.permute([0, 4, 1, 2, 3]).contiguous().float().mul(affine.scale).add(affine.shift));
}

/**
 * A batch's uint8 pixels [B, T, H, W, 3] on `device` (checked against its declared shape); on CUDA uploaded
 * through pinned memory without waiting for the work queued on the device (`Tensor.copyFromHost`).
 */
export function uploadClips(b: ClipBatch, device: Device = "cpu"): Tensor {
  checkBatch(b);
  const t = empty([b.batch, b.frames, b.height, b.width, 3], { dtype: "u8", device });
  try {
    return t.copyFromHost(b.data);
  } catch (e) {
    t.dispose();
    throw e;
  }
}

/**
 * Uploads a batch to `device` and returns a float32 tensor [B, 3, T, H, W] holding (x/255 − mean)/std per
 * channel, with `norm`, else the batch's own `norm`, else ImageNet's statistics. The uint8 pixels are uploaded
 * as they are (a quarter of the bytes of f32); the permutation, conversion and normalisation run on the device.
 * Only the result is left alive.
 */
export function batchToTensor(b: ClipBatch, device: Device = "cpu", norm?: Normalization): Tensor {
  checkBatch(b);
  const n = batchNormalization(b, norm);
  return scope(() => normalizeClips(uploadClips(b, device), normalizationTensors(n, device)));
}
