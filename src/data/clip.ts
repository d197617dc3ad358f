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
import { tensor } from "../torch/creation.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";

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

/** Checks that a batch's sizes agree with its data and labels; throws a RangeError naming the mismatch. */
export function checkBatch(b: ClipBatch): void {
  const n = b.batch * b.frames * b.height * b.width * 3;
  for (const [k, v] of [["batch", b.batch], ["frames", b.frames], ["height", b.height], ["width", b.width]]) {
    if (!Number.isInteger(v) || (v as number) < 1) {
      throw new RangeError(`ClipBatch: ${k} must be ≥ 1, got ${v}`);
    }
  }
  if (b.data.length !== n) {
    throw new RangeError(
      `ClipBatch: data holds ${b.data.length} bytes, expected B·T·H·W·3 = ${b.batch}·${b.frames}·${b.height}·` +
        `${b.width}·3 = ${n}`,
    );
  }
  if (b.labels !== null && (b.labels.shape.length !== b.batch || b.labels.direction.length !== b.batch)) {
    throw new RangeError(`ClipBatch: labels must have one entry per clip (${b.batch})`);
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
  const { mean, std } = norm ?? b.norm ?? { mean: IMAGENET_MEAN, std: IMAGENET_STD };
  if (std.some((s) => !(s > 0))) {
    throw new RangeError(`batchToTensor: std must be > 0, got [${std.join(", ")}]`);
  }
  return scope(() => {
    const u8 = tensor(b.data, { shape: [b.batch, b.frames, b.height, b.width, 3], device });
    // [B, T, H, W, C] -> [B, C, T, H, W]; made contiguous while still 1 byte per element.
    const x = u8.permute([0, 4, 1, 2, 3]).contiguous().float();
    // (x/255 - mean)/std = x·(1/(255·std)) + (−mean/std), one multiply and one add per element.
    const scale = tensor(new Float32Array(std.map((s) => 1 / (255 * s))), {
      shape: [1, 3, 1, 1, 1],
      device,
    });
    const shift = tensor(new Float32Array(mean.map((m, i) => -m / std[i])), {
      shape: [1, 3, 1, 1, 1],
      device,
    });
    return x.mul(scale).add(shift);
  });
}
