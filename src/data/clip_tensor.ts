/**
 * The upload of a `ClipBatch` (clip.ts, pure host data) to a device: `batchToTensor` makes the normalised float
 * tensor [B, 3, T, H, W] training and evaluation read; `uploadClips`, `normalizationTensors` and `normalizeClips`
 * are its steps, for the CUDA-graph step that uploads into a static buffer and normalises on the device.
 * @module
 */
import type { Device } from "../torch/dtype.ts";
import { empty, tensor } from "../torch/creation.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import { batchNormalization, checkBatch, type ClipBatch, type Normalization } from "./clip.ts";

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
