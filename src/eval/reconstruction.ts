/**
 * Reconstruction images for the report: a few clips' input, masked input and the model's reconstruction, as one
 * PNG grid (rows: clip × kind; columns: frames).
 * @module
 */
import { noGrad } from "../torch/autograd.ts";
import { tensor } from "../torch/creation.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import type { TrainConfig } from "../config.ts";
import { IMAGENET_MEAN, IMAGENET_STD } from "../data/clip.ts";
import { makeMask } from "../models/masking.ts";
import { patchify } from "../models/targets.ts";
import type { VideoMAE } from "../models/video_mae.ts";
import { modelConfig } from "../config.ts";
import { encodePng, imageGrid, type RgbImage, upscale } from "./png.ts";

/** Frames of clips [B, C, T, H, W] (ImageNet-normalised) as RGB images, one per (clip, frame index). */
function framesToImages(x: Tensor, frameIdx: number[]): RgbImage[] {
  const [b, , , h, w] = x.shape;
  const data = noGrad(() =>
    scope(() => {
      const mean = tensor(new Float32Array(IMAGENET_MEAN), { shape: [1, 3, 1, 1, 1], device: x.device });
      const std = tensor(new Float32Array(IMAGENET_STD), { shape: [1, 3, 1, 1, 1], device: x.device });
      return x.mul(std).add(mean).clamp(0, 1).mul(255).permute([0, 2, 3, 4, 1]).contiguous().to({
        dtype: "u8",
      })
        .toArray();
    })
  ) as Uint8Array;
  const t = x.shape[2];
  const out: RgbImage[] = [];
  for (let i = 0; i < b; i++) {
    for (const f of frameIdx) {
      const off = ((i * t) + f) * h * w * 3;
      out.push({ rgb: data.slice(off, off + h * w * 3), width: w, height: h });
    }
  }
  return out;
}

/** Input, masked input and reconstruction of a few clips, as one PNG grid (rows: clip × kind; columns: frames). */
export async function reconstructionGrid(model: VideoMAE, x: Tensor, cfg: TrainConfig): Promise<Uint8Array> {
  const m = modelConfig(cfg);
  const frames = [0, Math.floor(m.frames / 3), Math.floor((2 * m.frames) / 3), m.frames - 1];
  const rows = noGrad(() =>
    scope(() => {
      const [b, c, t, h, w] = x.shape;
      const mask = makeMask(cfg.mask.kind, b, model.encoder.grid, cfg.mask.ratio, x.device);
      const pred = model.forward(x, mask.keep, mask.masked);
      const patches = patchify(x, m.tubelet, m.patch); // [B, N, K, C]
      const [, n, k] = patches.shape;
      const flat = patches.reshape([b, n, k * c]);
      const idx = mask.masked.unsqueeze(-1).expand([b, mask.masked.shape[1], k * c]);
      const unpatch = (p: Tensor) =>
        p.reshape([b, t / m.tubelet, h / m.patch, w / m.patch, m.tubelet, m.patch, m.patch, c])
          .permute([0, 7, 1, 4, 2, 5, 3, 6]).reshape([b, c, t, h, w]);
      const masked = unpatch(flat.scatter(1, idx, flat.mul(0).gather(1, idx)));
      const recon = unpatch(flat.scatter(1, idx, pred.float()));
      return [x, masked, recon].map((v) => framesToImages(v, frames));
    })
  );
  const tiles: RgbImage[] = [];
  for (let i = 0; i < x.shape[0]; i++) for (const r of rows) tiles.push(...r.slice(i * 4, i * 4 + 4));
  const grid = upscale(imageGrid(tiles, 4), 2);
  return await encodePng(grid.rgb, grid.width, grid.height);
}
