/**
 * The frozen features of a folder probe (`src/eval/probe_run.ts`), split by split: read from the feature cache
 * (`src/eval/feature_cache.ts`) when a file with the same key is there, else extracted — the split's videos
 * decoded once, as evaluation clips of the checkpoint's geometry (`augment: false`: clips spread over each
 * video, centre crop), for every encoder whose features are missing — and written to the cache. The probes then
 * read every split back from the cache.
 * @module
 */
import type { TrainConfig } from "../config.ts";
import type { Normalization } from "../data/clip.ts";
import { defaultIndex } from "../data/registry.ts";
import { VideoFolder } from "../data/video_folder.ts";
import { ConfigError, DataError } from "../errors.ts";
import type { VideoMAE } from "../models/video_mae.ts";
import type { Device } from "../torch/dtype.ts";
import {
  type FeatureCacheEntry,
  featureCacheEntry,
  featureCacheHit,
  writeCachedFeatures,
} from "./feature_cache.ts";
import { extractClipFeatures } from "./folder_probe.ts";
import { loadProbeEncoder, type ProbeEncoderSpec } from "./probe_encoders.ts";
import type { LabelledSplit, ProbeSplitName } from "./probe_splits.ts";

/** What `prepareProbeFeatures` needs. */
export interface ProbeFeatureJob {
  /** The splits (train, val, optional test). */
  splits: LabelledSplit[];
  /** Label name → class id. */
  classes: Record<string, number>;
  /** The encoders. */
  encoders: ProbeEncoderSpec[];
  /** Their training configuration (model, clip geometry, normalisation, decoder). */
  cfg: TrainConfig;
  /** Encoder blocks to run. */
  depth: number;
  /** Keep every token (the attentive probe needs them). */
  tokens: boolean;
  /** Evaluation clips per video. */
  clipsPerVideo: number;
  /** Clips per forward pass. */
  batchSize: number;
  /** Where the encoders run. */
  device: Device;
  /** The cache folder (it exists). */
  cacheDir: string;
  /** Extract again even when the features are cached. */
  refresh: boolean;
  /** A step of the work (`val features of the checkpoint encoder from the cache (…)`). */
  step: (line: string) => void;
  /** Extraction progress. */
  detail: (line: string) => void;
}

/** Where a split's features of an encoder are, and whether they were there before this run. */
export interface SplitCacheFile {
  /** The cache file. */
  file: string;
  /** Read from the cache (true) or extracted now (false). */
  cached: boolean;
}

/** The features `prepareProbeFeatures` made sure of. */
export interface PreparedFeatures {
  /** Per encoder (in order), per split: its cache file. */
  cacheFiles: Partial<Record<ProbeSplitName, SplitCacheFile>>[];
  /** Seconds spent decoding and encoding. */
  extractSeconds: number;
}

/** A split's videos as evaluation clips; a DataError of the video folder (no usable video, …) is a usage error. */
async function openSplit(
  s: LabelledSplit,
  classes: Record<string, number>,
  job: ProbeFeatureJob,
): Promise<VideoFolder> {
  const d = job.cfg.data;
  try {
    return await VideoFolder.open(s.dir, {
      ...(s.list ? { list: s.list } : { classFolders: true }),
      labelMap: classes,
      frames: d.frames,
      size: d.size,
      stride: d.frameStride,
      fps: d.fps,
      segments: d.segments,
      augment: false,
      norm: { mean: d.mean, std: d.std },
      clipsPerVideo: job.clipsPerVideo,
      workers: d.workers || undefined,
      decoder: d.decoder,
      index: defaultIndex(s.dir),
      seed: 0,
    });
  } catch (e) {
    if (e instanceof DataError) throw new ConfigError(e.where, e.message, { cause: e });
    throw e;
  }
}

/**
 * Decodes every clip of a split once, runs each encoder on it (`extractClipFeatures`) and writes one cache file
 * per encoder: `pooled`, `tokens` (when wanted) and `classes`, with the key and the skipped files.
 */
async function extractSplit(
  folder: VideoFolder,
  models: { model: VideoMAE; entry: FeatureCacheEntry }[],
  listed: string[],
  job: ProbeFeatureJob,
): Promise<void> {
  const usable = new Set(folder.videos.map((x) => x.path));
  const unreadable = listed.filter((p) => !usable.has(p));
  const d = job.cfg.data;
  const norm: Normalization = { mean: d.mean, std: d.std };
  const r = await extractClipFeatures(folder, models.map((m) => m.model.encoder), {
    norm,
    depth: job.depth,
    tokens: job.tokens,
    batchSize: job.batchSize,
    device: job.device,
    log: job.detail,
  });
  try {
    models.forEach(({ entry }, k) =>
      writeCachedFeatures(entry, r.features[k], r.classes, {
        skipped: r.skipped,
        unreadable,
        videos: folder.videos.length,
      })
    );
  } finally {
    for (const f of r.features) {
      f.pooled.dispose();
      f.tokens?.dispose();
    }
  }
}

/**
 * Makes sure every split's features of every encoder are in the cache: the ones whose key is there are used
 * (unless `refresh`), the others are extracted, each split decoded once for every encoder that needs it (each
 * encoder's model built once, when first needed, and freed at the end).
 */
export async function prepareProbeFeatures(job: ProbeFeatureJob): Promise<PreparedFeatures> {
  const models = new Map<ProbeEncoderSpec, VideoMAE>();
  const cacheFiles: Partial<Record<ProbeSplitName, SplitCacheFile>>[] = job.encoders.map(() => ({}));
  let extractSeconds = 0;
  try {
    for (const s of job.splits) {
      const entries = await Promise.all(job.encoders.map((e) =>
        featureCacheEntry(job.cacheDir, {
          encoder: e.identity,
          encoderKind: e.kind,
          split: s,
          classes: job.classes,
          depth: job.depth,
          tokens: job.tokens,
          data: job.cfg.data,
          clipsPerVideo: job.clipsPerVideo,
        })
      ));
      const missing = job.encoders.map((e, k) => ({ e, entry: entries[k] }))
        .filter((m) => job.refresh || !featureCacheHit(m.entry));
      job.encoders.forEach((e, k) => {
        const hit = !missing.some((m) => m.e === e);
        cacheFiles[k][s.name] = { file: entries[k].file, cached: hit };
        if (hit) job.step(`${s.name} features of the ${e.kind} encoder from the cache (${entries[k].file})`);
      });
      if (!missing.length) continue;
      const te = performance.now();
      const folder = await openSplit(s, job.classes, job);
      job.step(
        `extracting ${s.name} features (${folder.length} clips of ${folder.videos.length} videos) with the ` +
          `${missing.map((m) => m.e.kind).join(" and ")} encoder${missing.length > 1 ? "s" : ""}`,
      );
      const ms = missing.map((m) => {
        if (!models.has(m.e)) models.set(m.e, loadProbeEncoder(m.e, job.cfg, job.device));
        return { model: models.get(m.e)!, entry: m.entry };
      });
      await extractSplit(folder, ms, s.entries.map((x) => x.path), job);
      extractSeconds += (performance.now() - te) / 1000;
    }
  } finally {
    for (const m of models.values()) m.dispose();
  }
  return { cacheFiles, extractSeconds };
}
