/**
 * The interface the loaders see (`ClipDataset`) and serialisable dataset descriptions (`DatasetSpec`), from
 * which `datasetFromSpec` rebuilds a dataset in another thread (the prefetch worker). Pure TypeScript.
 * @module
 */
import type { ClipBatch } from "./clip.ts";
import { MovingFashionMnist, type MovingFashionMnistOptions } from "./moving_fashion_mnist.ts";
import { MovingShapes, type MovingShapesOptions } from "./moving_shapes.ts";
import type { BatchSampler } from "./sampler.ts";
import { VideoFolder, type VideoFolderSpec } from "./video_folder.ts";

/** A serialisable description of a dataset (structured-clone safe). */
export type DatasetSpec =
  | { kind: "moving_shapes"; options: MovingShapesOptions }
  | { kind: "moving_fashion_mnist"; options: MovingFashionMnistOptions }
  | { kind: "video_folder"; spec: VideoFolderSpec };

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
  /** The clips at `indices`, as one batch. */
  batch(indices: readonly number[]): ClipBatch | Promise<ClipBatch>;
  /** The deterministic infinite sequence of index batches for training, optionally resumed from `state`. */
  sampler(batchSize: number, seed?: number, state?: readonly number[]): BatchSampler;
  /** A description from which `datasetFromSpec` rebuilds this dataset. */
  spec(): DatasetSpec;
}

/** Rebuilds a dataset from its description. */
export function datasetFromSpec(spec: DatasetSpec): ClipDataset {
  switch (spec.kind) {
    case "moving_shapes":
      return new MovingShapes(spec.options);
    case "moving_fashion_mnist":
      return new MovingFashionMnist(spec.options);
    case "video_folder":
      return VideoFolder.fromSpec(spec.spec);
    default:
      throw new TypeError(`unknown dataset kind '${(spec as { kind: string }).kind}'`);
  }
}
