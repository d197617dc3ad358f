/**
 * A folder probe, from start to report (`deno task probe`, src/cli/probe.ts, is its command line): the encoders
 * and their configuration (`src/eval/probe_encoders.ts`), the user's labelled splits (`src/eval/probe_splits.ts`),
 * their frozen features from the cache or extracted (`src/eval/probe_features.ts`), the linear and attentive
 * probes with their settings chosen on val and scored once on test (`probeSplits`, `src/eval/folder_probe.ts`),
 * and OUT/report.json and OUT/report.md (`src/eval/probe_report.ts`). Progress goes to the caller's callbacks.
 * @module
 */
import type { TrainConfig } from "../config.ts";
import { ConfigError, IoError } from "../errors.ts";
import type { Device } from "../torch/dtype.ts";
import { setNumThreads } from "../torch/runtime.ts";
import { resolveDevice } from "../train/device.ts";
import { type CachedSplitFeatures, loadCachedFeatures } from "./feature_cache.ts";
import { type EncoderOutcome, type FolderProbeName, type ProbeGrid, probeSplits } from "./folder_probe.ts";
import {
  chooseProbeEncoders,
  probeDepth,
  type ProbeEncoderChoice,
  type ProbeEncoderSpec,
} from "./probe_encoders.ts";
import { type PreparedFeatures, prepareProbeFeatures } from "./probe_features.ts";
import {
  buildProbeReport,
  clipTiming,
  folderProbeMarkdown,
  type FolderProbeReport,
  type SplitInfo,
} from "./probe_report.ts";
import {
  type LabelledSplit,
  type ProbeDataSource,
  type ProbeSplitName,
  readProbeData,
} from "./probe_splits.ts";

/** Where a folder probe reports its progress; each callback receives one line. */
export interface ProbeProgress {
  /** A step of the work (`probing the checkpoint (step 7) encoder`). */
  step(line: string): void;
  /** A detail of the current step (extraction progress, one grid point of a probe). */
  detail(line: string): void;
  /** Something to look into (held-out videos that are training videos too). */
  warn(line: string): void;
}

/** Options of `runFolderProbe`: the encoders, the data, the probes, where the report goes. */
export interface FolderProbeRunOptions extends ProbeEncoderChoice {
  /** libtorch's CPU threads (default: libtorch's own choice). */
  threads?: number;
  /** The root of the videos. */
  dataPath?: string;
  /** How the splits are listed under it. */
  data: ProbeDataSource;
  /** Evaluation clips per video (spread over the video, centre crop). */
  clipsPerVideo: number;
  /** Encoder blocks to run (default all, with the final norm). */
  depth?: number;
  /** Or a fraction of the blocks (rounded as in 4DS). */
  depthFraction?: number;
  /** The probes to run, each with its grid. */
  probes: Partial<Record<FolderProbeName, ProbeGrid>>;
  /** Probe seeds: every grid point is trained once per seed. */
  seeds: number[];
  /** Clips per forward pass when extracting features. */
  batchSize: number;
  /** Extract the features again even when they are cached. */
  refresh?: boolean;
  /** The output folder (default runs/NAME/probe, runs/probe-<file> for a checkpoint file, …). */
  out?: string;
  /** Progress (default: none). */
  progress?: ProbeProgress;
}

/** What `runFolderProbe` did. */
export interface FolderProbeRun {
  /** The output folder (report.json, report.md, cache/). */
  out: string;
  /** report.json's content. */
  report: FolderProbeReport;
}

const SILENT: ProbeProgress = { step: () => {}, detail: () => {}, warn: () => {} };

/** The output folder when none is given: beside the run (named, or holding the checkpoint), else under runs/. */
function defaultOut(run: string | undefined, ckpt: string | null, untrainedOnly: boolean): string {
  const ckptRun = ckpt?.match(/(?:^|\/)runs\/([^/]+)\/checkpoints\/[^/]+$/)?.[1];
  const name = run ?? ckptRun;
  if (name) return `runs/${name}/${untrainedOnly ? "probe-untrained" : "probe"}`;
  return ckpt && !untrainedOnly
    ? `runs/probe-${ckpt.split("/").pop()!.replace(/\.safetensors$/, "")}`
    : "runs/probe-untrained";
}

/** Creates OUT/cache; a ConfigError when it cannot be made (the task may write under runs/ only). */
function makeCacheDir(out: string): string {
  const cacheDir = `${out}/cache`;
  try {
    Deno.mkdirSync(cacheDir, { recursive: true });
  } catch (e) {
    throw new ConfigError(
      cacheDir,
      `cannot create ${cacheDir}: ${(e as Error).message} (the task may write under runs/ only)`,
      { cause: e },
    );
  }
  return cacheDir;
}

async function writeText(path: string, text: string): Promise<void> {
  try {
    await Deno.writeTextFile(path, text);
  } catch (e) {
    throw new IoError(path, `cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** The opening line: the encoders, the depth, the clips, the classes, the splits' videos, the device. */
function openingLine(
  encoders: ProbeEncoderSpec[],
  depth: { depth: number; total: number },
  d: TrainConfig["data"],
  classes: number,
  splits: LabelledSplit[],
  device: Device,
): string {
  return `${encoders.map((e) => e.label).join(" + ")}, depth ${depth.depth}/${depth.total}, clips ` +
    `${d.frames}×${d.size}×${d.size} (${clipTiming(d)}), ${classes} classes, ${
      splits.map((s) => `${s.name} ${s.entries.length}`).join(", ")
    } videos, device ${device}`;
}

/**
 * Probes one encoder after the other, each with its features of every split read from the cache (and freed
 * after its probes). Returns the outcomes and what the first encoder's features record per split.
 */
function probeEncoders(
  encoders: ProbeEncoderSpec[],
  splits: LabelledSplit[],
  features: PreparedFeatures,
  o: { probes: FolderProbeRunOptions["probes"]; seeds: number[]; numClasses: number; device: Device },
  progress: ProbeProgress,
): { outcomes: EncoderOutcome[]; splitInfo: Partial<Record<ProbeSplitName, SplitInfo>> } {
  const tokens = o.probes.attentive !== undefined;
  const outcomes: EncoderOutcome[] = [];
  const splitInfo: Partial<Record<ProbeSplitName, SplitInfo>> = {};
  encoders.forEach((e, k) => {
    const f: Partial<Record<ProbeSplitName, CachedSplitFeatures>> = {};
    try {
      for (const s of splits) f[s.name] = loadCachedFeatures(features.cacheFiles[k][s.name]!.file, tokens);
      if (k === 0) {
        for (const s of splits) {
          const { pooled: _p, tokens: _t, ...info } = f[s.name]!;
          splitInfo[s.name] = info;
        }
      }
      progress.step(`probing the ${e.label} encoder`);
      const grid = { probes: o.probes, seeds: o.seeds, numClasses: o.numClasses };
      const probes = probeSplits(f.train!, f.val!, f.test ?? null, grid, o.device, progress.detail);
      outcomes.push({ label: e.label, probes });
    } finally {
      for (const x of Object.values(f)) {
        x.pooled.dispose();
        x.tokens?.dispose();
      }
    }
  });
  return { outcomes, splitInfo };
}

/**
 * Runs a folder probe: chooses the encoders and reads their configuration, reads and checks the splits, makes
 * sure of every split's features (cached under OUT/cache/, keyed by everything they depend on), probes each
 * encoder (settings chosen on val, scored once on test), and writes OUT/report.json and OUT/report.md. Usage
 * mistakes (options, the user's lists and folders, a checkpoint that does not load) are ConfigErrors.
 */
export async function runFolderProbe(o: FolderProbeRunOptions): Promise<FolderProbeRun> {
  const t0 = performance.now();
  const progress = o.progress ?? SILENT;
  const { cfg, checkpoint, encoders } = chooseProbeEncoders(o);
  if (o.threads !== undefined && o.threads > 0) setNumThreads(o.threads);
  const depth = probeDepth(cfg, o);
  const tokens = o.probes.attentive !== undefined;
  const data = await readProbeData(o.dataPath, o.data);
  for (const note of data.overlaps) progress.warn(note);
  const out = o.out?.replace(/\/+$/, "") ?? defaultOut(o.run, checkpoint, o.untrained === true);
  const cacheDir = makeCacheDir(out);
  const device = resolveDevice(cfg);
  const nClasses = Object.keys(data.classes).length;
  progress.step(openingLine(encoders, depth, cfg.data, nClasses, data.splits, device));
  const features = await prepareProbeFeatures({
    splits: data.splits,
    classes: data.classes,
    encoders,
    cfg,
    depth: depth.depth,
    tokens,
    clipsPerVideo: o.clipsPerVideo,
    batchSize: o.batchSize,
    device,
    cacheDir,
    refresh: o.refresh === true,
    step: progress.step,
    detail: progress.detail,
  });
  const tp = performance.now();
  const { outcomes, splitInfo } = probeEncoders(encoders, data.splits, features, {
    probes: o.probes,
    seeds: o.seeds,
    numClasses: data.numClasses,
    device,
  }, progress);
  const probeSeconds = (performance.now() - tp) / 1000;
  const report = buildProbeReport({
    run: o.run ?? null,
    cfg,
    ...depth,
    data,
    encoders,
    cacheFiles: features.cacheFiles,
    outcomes,
    splitInfo,
    clipsPerVideo: o.clipsPerVideo,
    probes: o.probes,
    seeds: o.seeds,
    seconds: {
      extract: features.extractSeconds,
      probe: probeSeconds,
      total: (performance.now() - t0) / 1000,
    },
  });
  await writeText(`${out}/report.json`, JSON.stringify(report, null, 2) + "\n");
  await writeText(`${out}/report.md`, folderProbeMarkdown(report));
  return { out, report };
}
