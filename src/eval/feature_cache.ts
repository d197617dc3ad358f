/**
 * The feature cache of a folder probe (`src/eval/probe_run.ts`): one safetensors file per split and encoder in
 * the cache folder, `<split>-<encoder kind>-<key hash>.safetensors`, holding `pooled` [N, D], `tokens` [N, T, D]
 * (when the attentive probe wants them) and `classes` [N], with the cache key and the skipped files in its
 * metadata. The key names everything the features depend on: the encoder (a checkpoint's path, size and
 * modification time, or the untrained model's configuration and seed), the split's folder, list text and files
 * (path, label, size, modification time of each), the class mapping, the depth and the clip geometry. A file is
 * used only when its key is exactly the one asked for.
 * @module
 */
import type { TrainConfig } from "../config.ts";
import type { Annotation } from "../data/annotations.ts";
import type { Normalization } from "../data/clip.ts";
import { tensor } from "../torch/creation.ts";
import { loadSafetensors, readSafetensorsMetadata, saveSafetensors } from "../torch/safetensors.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import type { ClipFeatures, SplitFeatures } from "./folder_probe.ts";
import { sha256Hex } from "./paths.ts";
import type { LabelledSplit } from "./probe_splits.ts";

/** The cache files' format tag; bump it when what a cache file holds changes. */
export const FEATURE_CACHE_FORMAT = "layerlock-probe-features-1";

/** What the features of one split and encoder depend on. */
export interface FeatureCacheInput {
  /** What identifies the encoder (a checkpoint's path, size and time; or the untrained model and its seed). */
  encoder: Record<string, unknown>;
  /** `checkpoint` or `untrained` (part of the file name). */
  encoderKind: string;
  /** The split. */
  split: LabelledSplit;
  /** Label name → class id. */
  classes: Record<string, number>;
  /** Encoder blocks run. */
  depth: number;
  /** Whether the tokens are kept. */
  tokens: boolean;
  /** The clip geometry and normalisation (the checkpoint's data configuration). */
  data: TrainConfig["data"];
  /** Evaluation clips per video. */
  clipsPerVideo: number;
}

/** A cache file and the key it must hold. */
export interface FeatureCacheEntry {
  /** The key (JSON). */
  key: string;
  /** The file, in the cache folder. */
  file: string;
}

/** What a cache file records besides the features. */
export interface CachedSplitInfo {
  /** Files that failed to decode (their clips were replaced by other videos' clips). */
  skipped: string[];
  /** Listed files ffprobe could not read (left out). */
  unreadable: string[];
  /** Videos used. */
  videos: number;
}

/** A split's features read back from the cache, with what its file records. */
export interface CachedSplitFeatures extends SplitFeatures, CachedSplitInfo {}

/** A fingerprint of a split's files: path, label, size and modification time of each. */
async function filesFingerprint(entries: Annotation[]): Promise<string> {
  const lines = entries.map((e) => {
    const st = Deno.statSync(e.path);
    return `${e.path}\t${e.label}\t${st.size}\t${st.mtime?.getTime() ?? 0}`;
  });
  return await sha256Hex(lines.join("\n"));
}

/** The cache key of a split's features and the file in `cacheDir` that holds them. */
export async function featureCacheEntry(cacheDir: string, o: FeatureCacheInput): Promise<FeatureCacheEntry> {
  const d = o.data, s = o.split;
  const norm: Normalization = { mean: d.mean, std: d.std };
  const key = JSON.stringify({
    format: FEATURE_CACHE_FORMAT,
    encoder: o.encoder,
    split: s.name,
    dir: Deno.realPathSync(s.dir),
    list: s.list,
    listHash: s.listHash,
    files: await filesFingerprint(s.entries),
    classes: o.classes,
    depth: o.depth,
    tokens: o.tokens,
    frames: d.frames,
    size: d.size,
    stride: d.frameStride,
    fps: d.fps ?? null,
    segments: d.segments,
    norm,
    clipsPerVideo: o.clipsPerVideo,
    sampling: "eval",
  });
  const hash = (await sha256Hex(key)).slice(0, 16);
  return { key, file: `${cacheDir}/${s.name}-${o.encoderKind}-${hash}.safetensors` };
}

/** Whether `entry.file` exists and holds features cached under exactly `entry.key`. */
export function featureCacheHit(entry: FeatureCacheEntry): boolean {
  try {
    const m = readSafetensorsMetadata(entry.file);
    return m.format === FEATURE_CACHE_FORMAT && m.key === entry.key;
  } catch {
    return false;
  }
}

/** Writes one split's features of one encoder (and the clips' class ids) to its cache file, keyed. */
export function writeCachedFeatures(
  entry: FeatureCacheEntry,
  features: ClipFeatures,
  classes: Int32Array,
  info: CachedSplitInfo,
): void {
  scope(() => {
    const t: Record<string, Tensor> = { pooled: features.pooled, classes: tensor(classes) };
    if (features.tokens) t.tokens = features.tokens;
    saveSafetensors(entry.file, t, {
      format: FEATURE_CACHE_FORMAT,
      key: entry.key,
      skipped: JSON.stringify(info.skipped),
      unreadable: JSON.stringify(info.unreadable),
      videos: String(info.videos),
    });
  });
}

/** Reads a cache file back (its tokens only when `tokens`); the tensors are owned by the caller. */
export function loadCachedFeatures(file: string, tokens: boolean): CachedSplitFeatures {
  const { tensors, metadata } = loadSafetensors(file);
  const classes = tensors.classes.toArray() as Int32Array;
  tensors.classes.dispose();
  if (!tokens) tensors.tokens?.dispose();
  return {
    pooled: tensors.pooled,
    tokens: tokens ? tensors.tokens : null,
    classes,
    skipped: JSON.parse(metadata.skipped ?? "[]"),
    unreadable: JSON.parse(metadata.unreadable ?? "[]"),
    videos: Number(metadata.videos),
  };
}
