/**
 * The one registry of datasets: for each `data.source` of the configuration, how to open it from a training
 * configuration, the `kind` of its serialisable description, and how to rebuild it from that description (in the
 * prefetch worker). Pure TypeScript: the worker imports it, so it must not reach the FFI shim.
 * @module
 */
import type { TrainConfig } from "../config.ts";
import { DataError } from "../errors.ts";
import type { ClipDataset, DatasetSpec } from "./dataset.ts";
import { MovingFashionMnist } from "./moving_fashion_mnist.ts";
import { MovingShapes } from "./moving_shapes.ts";
import { hash32 } from "./rng.ts";
import { VideoFolder } from "./video_folder.ts";

/** One dataset source: its configuration name, its description's kind, and its two constructors. */
interface Source<K extends DatasetSpec["kind"]> {
  /** The `kind` of the descriptions its datasets give (`spec()`). */
  kind: K;
  /** Opens the dataset a training configuration names (the training split, seeded by the run's seed). */
  open(cfg: TrainConfig): ClipDataset | Promise<ClipDataset>;
  /** Rebuilds a dataset from its description. */
  fromSpec(spec: Extract<DatasetSpec, { kind: K }>): ClipDataset;
}

/** The sources by their `data.source` name. */
export const SOURCES: {
  shapes: Source<"moving_shapes">;
  fashion: Source<"moving_fashion_mnist">;
  folder: Source<"video_folder">;
} = {
  shapes: {
    kind: "moving_shapes",
    open: (cfg) => new MovingShapes({ frames: cfg.data.frames, size: cfg.data.size, seed: cfg.seed }),
    fromSpec: (spec) => new MovingShapes(spec.options),
  },
  fashion: {
    kind: "moving_fashion_mnist",
    open: (cfg) =>
      MovingFashionMnist.open({
        frames: cfg.data.frames,
        size: cfg.data.size,
        seed: cfg.seed,
        split: "train",
      }),
    fromSpec: (spec) => new MovingFashionMnist(spec.options),
  },
  folder: {
    kind: "video_folder",
    open: (cfg) =>
      VideoFolder.open(cfg.data.path!, {
        frames: cfg.data.frames,
        size: cfg.data.size,
        stride: cfg.data.frameStride,
        fps: cfg.data.fps,
        segments: cfg.data.segments,
        augment: cfg.data.augment,
        scales: cfg.data.scales,
        flip: cfg.data.flip,
        norm: { mean: cfg.data.mean, std: cfg.data.std },
        clipsPerVideo: cfg.data.clipsPerVideo,
        workers: cfg.data.workers || undefined,
        decoder: cfg.data.decoder,
        index: cfg.data.index ?? defaultIndex(cfg.data.path!),
        seed: cfg.seed,
        list: cfg.data.list,
        classFolders: cfg.data.classFolders,
        labelMap: cfg.data.labelMap ? readLabelMap(cfg.data.labelMap) : undefined,
      }),
    fromSpec: (spec) => VideoFolder.fromSpec(spec.spec),
  },
};

/** The default probe index of a video folder: runs/.video_index/<hash of its absolute path>.json. */
export function defaultIndex(folder: string): string {
  const abs = folder.startsWith("/") ? folder : `${Deno.cwd()}/${folder}`;
  const key = [...abs].reduce((h, c) => hash32(h, c.codePointAt(0)!), 0).toString(16).padStart(8, "0");
  return `runs/.video_index/${key}.json`;
}

/** A label → class id file (`labels.json` of a training run); a DataError naming it when unusable. */
function readLabelMap(path: string): Record<string, number> {
  let m: unknown;
  try {
    m = JSON.parse(Deno.readTextFileSync(path));
  } catch (e) {
    throw new DataError(path, `cannot read the label map ${path}: ${(e as Error).message}`);
  }
  if (
    typeof m !== "object" || m === null || Array.isArray(m) ||
    !Object.values(m).every((v) => Number.isInteger(v) && (v as number) >= 0)
  ) {
    throw new DataError(path, `${path} must be a JSON object of label → non-negative integer class id`);
  }
  return m as Record<string, number>;
}

/** The dataset a configuration names. */
export async function makeDataset(cfg: TrainConfig): Promise<ClipDataset> {
  return await SOURCES[cfg.data.source].open(cfg);
}

/** Rebuilds a dataset from its description (e.g. in the prefetch worker). */
export function datasetFromSpec(spec: DatasetSpec): ClipDataset {
  for (const s of Object.values(SOURCES)) {
    if (s.kind === spec.kind) return (s.fromSpec as (d: DatasetSpec) => ClipDataset)(spec);
  }
  throw new DataError("dataset", `unknown dataset kind '${(spec as { kind: string }).kind}'`);
}
