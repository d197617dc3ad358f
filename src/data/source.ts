/**
 * The batch source the trainer consumes, made from a training configuration: the embedded moving-shapes videos,
 * Moving Fashion-MNIST (training split) or a folder of video files, read ahead in a worker when `data.prefetch`
 * > 0. Its `state()` is that of the next batch to be consumed, so a checkpoint resumes the exact sequence.
 * @module
 */
import type { TrainConfig } from "../cli/config.ts";
import type { ClipDataset } from "./dataset.ts";
import { MovingFashionMnist } from "./moving_fashion_mnist.ts";
import { MovingShapes } from "./moving_shapes.ts";
import { type ClipLoader, createLoader } from "./prefetch.ts";
import { VideoFolder } from "./video_folder.ts";

/** The dataset a configuration names. */
export async function makeDataset(cfg: TrainConfig): Promise<ClipDataset> {
  const d = cfg.data;
  if (d.source === "folder") {
    return await VideoFolder.open(d.path!, {
      frames: d.frames,
      size: d.size,
      stride: d.frameStride,
      seed: cfg.seed,
    });
  }
  if (d.source === "fashion") {
    return await MovingFashionMnist.open({ frames: d.frames, size: d.size, seed: cfg.seed, split: "train" });
  }
  return new MovingShapes({ frames: d.frames, size: d.size, seed: cfg.seed });
}

/** Makes the configured loader, restored to `state` (a loader's `state()` from a checkpoint) when given. */
export async function makeBatchSource(cfg: TrainConfig, state: unknown | null): Promise<ClipLoader> {
  return createLoader(await makeDataset(cfg), {
    batchSize: cfg.optim.batchSize,
    seed: cfg.seed,
    prefetch: cfg.data.prefetch,
    state: state === null ? undefined : state as number[],
  });
}
