/**
 * The interface the loaders see (`ClipDataset`) and serialisable dataset descriptions (`DatasetSpec`), from
 * which `datasetFromSpec` (registry.ts) rebuilds a dataset in another thread (the prefetch worker). Types only.
 * @module
 */
import type { ClipBatch } from "./clip.ts";
import type { MovingFashionMnistOptions } from "./moving_fashion_mnist.ts";
import type { MovingShapesOptions } from "./moving_shapes.ts";
import type { BatchSampler, Shard } from "./sampler.ts";
import type { VideoFolderSpec } from "./video_folder.ts";

/** A serialisable description of a dataset (structured-clone safe). */
export type DatasetSpec =
  | { kind: "moving_shapes"; options: MovingShapesOptions }
  | { kind: "moving_fashion_mnist"; options: MovingFashionMnistOptions }
  | { kind: "video_folder"; spec: VideoFolderSpec };

/**
 * A dataset's labelled tasks: task name → the class names by class id (`names[id]`; "" for an id no class has).
 * Its batches' `labels` hold the class id of each clip for each of these tasks; unlabelled: {}.
 */
export type LabelTasks = Readonly<Record<string, readonly string[]>>;

/** What a loader needs of a dataset: batches by index, a sampler, and a description to rebuild it. */
export interface ClipDataset {
  /** Number of distinct items the sampler draws from. */
  readonly length: number;
  /** Frames per clip. */
  readonly frames: number;
  /** Frame height in pixels. */
  readonly height: number;
  /** Frame width in pixels. */
  readonly width: number;
  /** The tasks its batches are labelled with, and their class names ({} for unlabelled data). */
  readonly labelTasks: LabelTasks;
  /**
   * The clips at `indices`, as one batch; `epochs` (default all 0) are the sampler epochs they were drawn in, for
   * datasets whose clips are augmented anew each epoch.
   */
  batch(indices: readonly number[], epochs?: readonly number[]): ClipBatch | Promise<ClipBatch>;
  /**
   * The deterministic infinite sequence of index batches for training, optionally resumed from `state`; with a
   * `shard`, this rank's share of each global batch (see `BatchSampler`).
   */
  sampler(batchSize: number, seed?: number, state?: readonly number[], shard?: Shard): BatchSampler;
  /** A description from which `datasetFromSpec` rebuilds this dataset. */
  spec(): DatasetSpec;
}
