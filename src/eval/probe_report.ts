/**
 * The report of a folder probe (`src/eval/probe_run.ts`): the content of report.json — the encoders and their
 * probes' outcomes, the model, the clips, the data (per split: videos listed and used, clips per class), the
 * chance levels, the skipped files and the notes — and report.md rendered from it (`probeReportMarkdown`).
 * @module
 */
import { modelConfig, type TrainConfig } from "../config.ts";
import type { VideoMAEConfig } from "../models/video_mae.ts";
import { torchVersion } from "../torch/runtime.ts";
import type { CachedSplitInfo } from "./feature_cache.ts";
import {
  type ChanceLevel,
  chanceLevel,
  type EncoderOutcome,
  type FolderProbeName,
  type ProbeGrid,
  type ProbeOutcome,
  probeReportMarkdown,
} from "./folder_probe.ts";
import type { SplitCacheFile } from "./probe_features.ts";
import type { ProbeEncoderSpec } from "./probe_encoders.ts";
import type { ProbeData, ProbeSplitName } from "./probe_splits.ts";

/** The report's format tag. */
export const PROBE_REPORT_FORMAT = "layerlock-probe-report-1";

/** What a split's features record: the clips' class ids, and the files left out or replaced. */
export interface SplitInfo extends CachedSplitInfo {
  /** Class id of each clip. */
  classes: Int32Array;
}

/** One encoder of the report. */
export interface ProbeReportEncoder {
  /** `checkpoint` or `untrained`. */
  kind: ProbeEncoderSpec["kind"];
  /** Its name in the report. */
  label: string;
  /** The checkpoint file, or null. */
  checkpoint: string | null;
  /** The checkpoint's step, or null. */
  step: number | null;
  /** The untrained encoder's seed, or null. */
  initSeed: number | null;
  /** Per split: its features' cache file, and whether it was read from the cache. */
  cache: Partial<Record<ProbeSplitName, SplitCacheFile>>;
  /** The probes' outcomes. */
  probes: Partial<Record<FolderProbeName, ProbeOutcome>>;
}

/** One split of the report. */
export interface ProbeReportSplit {
  /** train, val or test. */
  name: ProbeSplitName;
  /** The annotation list, or null (class folders). */
  list: string | null;
  /** SHA-256 of the list's text, or null. */
  listSha256: string | null;
  /** The folder its videos were read from. */
  folder: string;
  /** Videos listed (or found in the class folders). */
  videosListed: number;
  /** Videos ffprobe could read. */
  videosUsed: number;
  /** Clips. */
  clips: number;
  /** Clips per class name. */
  clipsPerClass: Record<string, number>;
}

/** report.json. */
export interface FolderProbeReport {
  /** `layerlock-probe-report-1`. */
  format: string;
  /** When it was written (ISO 8601). */
  date: string;
  /** libtorch's version. */
  torch: string;
  /** The probed encoders, the checkpoint's first. */
  encoders: ProbeReportEncoder[];
  /** The run named, or null. */
  run: string | null;
  /** The model's configuration, the depth probed and its number of blocks. */
  model: VideoMAEConfig & { depth: number; blocks: number };
  /** The clips' geometry, normalisation and sampling. */
  clips: {
    frames: number;
    size: number;
    frameStride: number;
    fps: number | null;
    segments: boolean;
    mean: number[];
    std: number[];
    clipsPerVideo: number;
    sampling: string;
  };
  /** The data root, how the splits were read, and each split. */
  data: { root: string; mode: ProbeData["mode"]; splits: ProbeReportSplit[] };
  /** Label name → class id. */
  classes: Record<string, number>;
  /** 1 + the largest class id. */
  numClasses: number;
  /** The probes' grids, the seeds, and which split chose the settings and which is reported. */
  probeSettings: {
    probes: Partial<Record<FolderProbeName, ProbeGrid>>;
    seeds: number[];
    selectedOn: "val";
    reported: "test" | "val";
  };
  /** Chance levels of val and (when there is one) test. */
  chance: { val: ChanceLevel; test: ChanceLevel | null };
  /** Per split: files ffprobe could not read, and files that failed to decode. */
  skipped: Record<string, { unreadable: string[]; failedToDecode: string[] }>;
  /** Notes (overlapping splits, skipped files), one line each. */
  notes: string[];
  /** Seconds spent extracting, probing, and in all. */
  seconds: { extract: number; probe: number; total: number };
}

/** What `buildProbeReport` puts together. */
export interface ProbeReportInput {
  /** The run named, or null. */
  run: string | null;
  /** The encoders' configuration. */
  cfg: TrainConfig;
  /** Blocks run, of `total`. */
  depth: number;
  /** The encoder's blocks. */
  total: number;
  /** The splits and classes. */
  data: ProbeData;
  /** The encoders, with their cache files and outcomes (same order). */
  encoders: ProbeEncoderSpec[];
  /** Per encoder, per split: the cache file. */
  cacheFiles: Partial<Record<ProbeSplitName, SplitCacheFile>>[];
  /** Per encoder: the probes' outcomes. */
  outcomes: EncoderOutcome[];
  /** Per split: what its features record. */
  splitInfo: Partial<Record<ProbeSplitName, SplitInfo>>;
  /** Evaluation clips per video. */
  clipsPerVideo: number;
  /** The probes' grids. */
  probes: Partial<Record<FolderProbeName, ProbeGrid>>;
  /** Probe seeds. */
  seeds: number[];
  /** Seconds spent. */
  seconds: { extract: number; probe: number; total: number };
}

/** How the clips are timed, in words: `one frame per segment`, `8 fps` or `frame stride 2`. */
export function clipTiming(d: { segments: boolean; fps?: number | null; frameStride: number }): string {
  return d.segments ? "one frame per segment" : d.fps ? `${d.fps} fps` : `frame stride ${d.frameStride}`;
}

const shown = (files: string[]) => `${files.slice(0, 3).join(", ")}${files.length > 3 ? ", …" : ""}`;

/** The report's splits, and the notes and skipped files of each. */
function summariseSplits(i: ProbeReportInput, notes: string[]) {
  const names = Object.fromEntries(Object.entries(i.data.classes).map(([n, id]) => [id, n]));
  const counts = (c: Int32Array) => {
    const r: Record<string, number> = {};
    for (const id of c) r[names[id]] = (r[names[id]] ?? 0) + 1;
    return r;
  };
  const skipped: FolderProbeReport["skipped"] = {};
  const splits = i.data.splits.map((s): ProbeReportSplit => {
    const f = i.splitInfo[s.name]!;
    const listed = s.entries.length;
    if (f.unreadable.length) {
      notes.push(
        `${s.name}: ${f.unreadable.length} of ${listed} files could not be read (ffprobe) and were left out ` +
          `(${shown(f.unreadable)})`,
      );
    }
    if (f.skipped.length) {
      notes.push(
        `${s.name}: ${f.skipped.length} file(s) failed to decode; their clips were replaced by other videos' clips ` +
          `(${shown(f.skipped)})`,
      );
    }
    skipped[s.name] = { unreadable: f.unreadable, failedToDecode: f.skipped };
    return {
      name: s.name,
      list: s.list,
      listSha256: s.listHash,
      folder: s.dir,
      videosListed: listed,
      videosUsed: f.videos,
      clips: f.classes.length,
      clipsPerClass: counts(f.classes),
    };
  });
  return { splits, skipped };
}

/** report.json's content, from the run's parts; its notes are the data's overlaps, then the skipped files. */
export function buildProbeReport(i: ProbeReportInput): FolderProbeReport {
  const d = i.cfg.data, hasTest = i.splitInfo.test !== undefined, trainClasses = i.splitInfo.train!.classes;
  const notes = [...i.data.overlaps];
  const { splits, skipped } = summariseSplits(i, notes);
  return {
    format: PROBE_REPORT_FORMAT,
    date: new Date().toISOString(),
    torch: torchVersion(),
    encoders: i.encoders.map((e, k) => ({
      kind: e.kind,
      label: e.label,
      checkpoint: e.checkpoint,
      step: e.step,
      initSeed: e.initSeed,
      cache: Object.fromEntries(i.data.splits.map((s) => [s.name, i.cacheFiles[k][s.name]])),
      probes: i.outcomes[k].probes,
    })),
    run: i.run,
    model: { ...modelConfig(i.cfg), depth: i.depth, blocks: i.total },
    clips: {
      frames: d.frames,
      size: d.size,
      frameStride: d.frameStride,
      fps: d.fps ?? null,
      segments: d.segments,
      mean: d.mean,
      std: d.std,
      clipsPerVideo: i.clipsPerVideo,
      sampling: "eval (augment: false)",
    },
    data: { root: i.data.root, mode: i.data.mode, splits },
    classes: i.data.classes,
    numClasses: i.data.numClasses,
    probeSettings: {
      probes: i.probes,
      seeds: i.seeds,
      selectedOn: "val",
      reported: hasTest ? "test" : "val",
    },
    chance: {
      val: chanceLevel(trainClasses, i.splitInfo.val!.classes, i.data.numClasses),
      test: hasTest ? chanceLevel(trainClasses, i.splitInfo.test!.classes, i.data.numClasses) : null,
    },
    skipped,
    notes,
    seconds: i.seconds,
  };
}

/** report.md, rendered from report.json's content (`probeReportMarkdown`). */
export function folderProbeMarkdown(r: FolderProbeReport): string {
  const c = r.clips, splits = r.data.splits;
  return probeReportMarkdown({
    header: [
      `encoder${r.encoders.length > 1 ? "s" : ""}: ${
        r.encoders.map((e) => e.checkpoint ?? e.label).join(", ")
      }; depth ${r.model.depth}/${r.model.blocks}`,
      `data: ${r.data.root} (${
        splits.map((p) =>
          `${p.name}: ${p.clips} clips of ${p.videosUsed} videos${p.list ? `, ${p.list}` : ""}`
        )
          .join("; ")
      })`,
      `clips: ${c.frames} frames of ${c.size}×${c.size}, ${clipTiming(c)}, ${c.clipsPerVideo} per video, ` +
      `centre crop; mean [${c.mean.join(", ")}], std [${c.std.join(", ")}]`,
      `probe seeds: ${r.probeSettings.seeds.join(", ")}`,
    ],
    encoders: r.encoders.map((e) => ({ label: e.label, probes: e.probes })),
    classes: Object.entries(r.classes).map(([name, id]) => ({
      name,
      id,
      counts: Object.fromEntries(splits.map((p) => [p.name, p.clipsPerClass[name] ?? 0])),
    })),
    chance: r.chance,
    notes: r.notes,
  });
}
