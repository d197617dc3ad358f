/**
 * The batch source the trainer consumes, made from a training configuration: the embedded moving-shapes videos,
 * Moving Fashion-MNIST (training split) or a folder of video files, read ahead in a worker when `data.prefetch`
 * > 0. Its `state()` is that of the next batch to be consumed, so a checkpoint resumes the exact sequence.
 * @module
 */
import type { TrainConfig } from "../config.ts";
import type { ClipBatch } from "./clip.ts";
import { type ClipLoader, createLoader } from "./prefetch.ts";
import { makeDataset } from "./registry.ts";
import type { Shard } from "./sampler.ts";
import type { ClipDataset } from "./dataset.ts";

/** Added to the run's seed for the dataset the loss floors are estimated from (see `floorClips`). */
export const FLOOR_SEED_OFFSET = 0x5eed;

/**
 * `n` clips of the configured training data that the training stream does not show: the same dataset built with
 * the seed `seed + FLOOR_SEED_OFFSET` (other clips of the generated datasets; other offsets and picks of a video
 * folder), indices 0..n−1 (wrapping around a shorter dataset). The trainer estimates the loss floors from them.
 */
export async function floorClips(cfg: TrainConfig, n: number): Promise<ClipBatch> {
  const ds = await makeDataset({ ...cfg, seed: cfg.seed + FLOOR_SEED_OFFSET });
  return await ds.batch(Array.from({ length: n }, (_, i) => i % ds.length));
}

/**
 * Makes the configured loader, restored to `state` (a loader's `state()` from a checkpoint) when given; in
 * data-parallel training, `shard` is this rank's share of each global batch (`optim.batchSize` clips per rank).
 */
export async function makeBatchSource(
  cfg: TrainConfig,
  state: unknown | null,
  shard?: Shard,
  onDataset?: (ds: ClipDataset) => void,
): Promise<ClipLoader> {
  const ds = await makeDataset(cfg);
  onDataset?.(ds);
  return createLoader(ds, {
    batchSize: cfg.optim.batchSize,
    seed: cfg.seed,
    prefetch: cfg.data.prefetch,
    state: state === null ? undefined : state as number[],
    shard,
  });
}
