/**
 * `deno task probe [flags]` (`./layerlock probe`): linear and attentive probes of a checkpoint's frozen encoder
 * on the user's labelled videos — the probes of the Fashion-MNIST experiment (`src/eval/probe.ts`), settings
 * chosen on the validation videos, the chosen settings scored once on the test videos — with a report.
 *
 *   --run NAME | --checkpoint FILE      the run's newest checkpoint, or a checkpoint file (config from its metadata)
 *   --untrained | --checkpoint none     probe the randomly initialised encoder of the same configuration instead
 *                                       (without a checkpoint: the config of --run NAME, or --config FILE.json)
 *   --baseline                          probe the untrained encoder too, beside the checkpoint, in one report
 *   --init-seed N                       seed of the untrained encoder (default: the config's seed, i.e. the
 *                                       run's own initialisation)
 *   --data-path DIR                     root of the videos
 *   --train-list F --val-list F [--test-list F]
 *                                       annotation lists (`path[,label]` per line; comma, tab or spaces; paths
 *                                       relative to --data-path); a list path is taken as given, else under DIR
 *   --class-folders [--train-dir D] [--val-dir D] [--test-dir D]
 *                                       instead of lists: DIR/train/<class>/<video>, DIR/val/…, DIR/test/…
 *                                       (defaults train, val, and test when that folder exists)
 *   --clips-per-video N                 evaluation clips per video (default 1; spread over the video, centre crop)
 *   --depth K | --depth-fraction F      encoder blocks to run (default all, with the final norm)
 *   --probes linear,attentive           which probes (default both; linear alone needs no tokens)
 *   --linear-epochs N  --linear-lr A,B,C  --linear-wd A,B     grid of the linear probe (lr × weight decay)
 *   --attentive-epochs N  --attentive-lr A,B,C  --attentive-wd A,B  --attentive-batch N
 *   --seeds 0,1,2                       probe seeds (every grid point is trained once per seed)
 *   --batch-size N                      clips per forward pass when extracting features (default 16)
 *   --refresh                           extract the features again even when they are cached
 *   --out DIR                           default runs/NAME/probe (runs/probe-<file> for a checkpoint file)
 *   --device auto|cpu|cuda              default auto
 *   --threads N                         libtorch's CPU threads (default: libtorch's own choice; 1 helps on a
 *                                       busy machine, where small probes otherwise wait on each other's threads)
 *
 * The clips follow the checkpoint's configuration (data.frames, size, frameStride or fps or segments, mean and
 * std, decoder) with evaluation sampling (`augment: false`: clips spread over each video, centre crop); the
 * files' probe results are kept in the folder's probe index (runs/.video_index/, as `train` does).
 * Features are cached in OUT/cache/ as safetensors, one file per split and encoder, keyed by the checkpoint
 * (path, size, modification time), the list's text, the listed files (size, modification time), the class
 * mapping, the depth and the clip geometry: a second run with the same inputs reads them and decodes nothing.
 * Writes OUT/report.json and OUT/report.md. Usage mistakes are one line on stderr and exit code 2. The protocol
 * itself (extraction, choice on val, report) is `src/eval/folder_probe.ts`.
 * @module
 */
import { parseArgs } from "node:util";
import * as torch from "../../mod.ts";
import { parseConfig, type TrainConfig } from "../config.ts";
import {
  type Annotation,
  annotationsFromFolders,
  checkFilesExist,
  labelMap,
  parseAnnotations,
} from "../data/annotations.ts";
import type { Normalization } from "../data/clip.ts";
import { defaultIndex } from "../data/registry.ts";
import { VIDEO_EXTENSIONS, VideoFolder } from "../data/video_folder.ts";
import { ConfigError, DataError, LayerlockError } from "../errors.ts";
import { ExperimentConfigSchema } from "../experiment/config.ts";
import { depthFromFraction } from "../eval/features.ts";
import {
  chanceLevel,
  type EncoderOutcome,
  extractClipFeatures,
  FOLDER_PROBES,
  type FolderProbeName,
  pctStats,
  type ProbeGrid,
  probeReportMarkdown,
  probeSplits,
  type SplitFeatures,
} from "../eval/folder_probe.ts";
import { VideoMAE } from "../models/video_mae.ts";
import { loadSafetensors, readSafetensorsMetadata, saveSafetensors } from "../torch/safetensors.ts";
import { listCheckpoints } from "../train/checkpoint.ts";
import { modelConfig } from "../config.ts";
import { resolveDevice } from "../train/device.ts";
import { runMain } from "./run.ts";

const USAGE = "usage: deno task probe (--run NAME | --checkpoint FILE|none) [--untrained] [--baseline] " +
  "--data-path DIR (--train-list F --val-list F [--test-list F] | --class-folders) [--clips-per-video N] " +
  "[--depth K | --depth-fraction F] [--probes linear,attentive] [--seeds 0,1,2] [--out DIR] [--device D] " +
  "(all flags: src/cli/probe.ts)";

/** The cache files' format tag; bump it when what a cache file holds changes. */
const CACHE_FORMAT = "layerlock-probe-features-1";

const SPLITS = ["train", "val", "test"] as const;
type SplitName = (typeof SPLITS)[number];

/** A split of the user's data: where its videos are and what they are. */
interface Split {
  name: SplitName;
  /** The folder VideoFolder.open scans (the root with a list; the split's subfolder with class folders). */
  dir: string;
  /** The annotation list, or null (class folders). */
  list: string | null;
  /** SHA-256 of the list's text, or null. */
  listHash: string | null;
  entries: Annotation[];
}

/** An encoder to probe: a checkpoint's, or the untrained one of the configuration. */
interface EncoderSpec {
  kind: "checkpoint" | "untrained";
  label: string;
  checkpoint: string | null;
  step: number | null;
  initSeed: number | null;
  /** What identifies its features (part of the cache key). */
  identity: Record<string, unknown>;
}

function fail(message: string): never {
  throw new ConfigError("probe", message);
}

/** A user mistake found by the data modules (a bad list line, a missing file, …) is a usage error (exit 2). */
function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof DataError) fail(e.message);
    throw e;
  }
}

function int(flag: string, text: string | undefined, dflt: number, min = 1): number {
  if (text === undefined) return dflt;
  const v = Number(text);
  if (!/^\s*-?\d+\s*$/.test(text) || !Number.isSafeInteger(v) || v < min) {
    fail(`--${flag}: expected an integer >= ${min}, got '${text}'`);
  }
  return v;
}

function numbers(flag: string, text: string | undefined, dflt: number[], min = 0, integer = false): number[] {
  if (text === undefined) return dflt;
  const vs = text.split(",").map((s) => s.trim());
  const out = vs.map((s) => Number(s));
  if (
    vs.length === 0 || vs.some((s) => s === "") ||
    out.some((v) => !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v)))
  ) {
    fail(
      `--${flag}: expected a comma-separated list of ${
        integer ? "integers" : "numbers"
      } >= ${min}, got '${text}'`,
    );
  }
  if (new Set(out).size !== out.length) fail(`--${flag}: values must be distinct, got '${text}'`);
  return out;
}

async function sha256(text: string | Uint8Array): Promise<string> {
  const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

function isDir(p: string): boolean {
  try {
    return Deno.statSync(p).isDirectory;
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
}

/** Reads a checkpoint's configuration from its metadata (no tensor is read). */
function checkpointConfig(path: string): { cfg: TrainConfig; step: number | null } {
  if (!isFile(path)) fail(`checkpoint ${path} does not exist`);
  let meta: Record<string, string>;
  try {
    meta = readSafetensorsMetadata(path);
  } catch (e) {
    fail(`${path} is not a readable checkpoint: ${(e as Error).message.split("\n")[0]}`);
  }
  if (!meta.config) fail(`${path} has no configuration in its metadata (is it a layerlock checkpoint?)`);
  const cfg = parseConfig(JSON.parse(meta.config), `${path} metadata`);
  const step = meta.step !== undefined && /^\d+$/.test(meta.step) ? Number(meta.step) : null;
  return { cfg, step };
}

function readConfigFile(path: string): TrainConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(Deno.readTextFileSync(path));
  } catch (e) {
    fail(`cannot read --config ${path}: ${(e as Error).message}`);
  }
  return parseConfig(raw, path);
}

/** Resolves a list flag: the path as given, or relative to the data root (lists often ship inside it). */
function listPath(flag: string, given: string, root: string): string {
  if (isFile(given)) return given;
  const under = `${root}/${given}`;
  if (!given.startsWith("/") && isFile(under)) return under;
  fail(
    `--${flag} ${given}: no such file (looked at ${given}${given.startsWith("/") ? "" : ` and ${under}`})`,
  );
}

async function readSplit(
  name: SplitName,
  root: string,
  v: Record<string, string | boolean | undefined>,
): Promise<Split | null> {
  if (v["class-folders"]) {
    const sub = v[`${name}-dir`] as string | undefined;
    const rel = sub ?? name;
    const dir = rel.startsWith("/") ? rel : `${root}/${rel}`;
    if (!isDir(dir)) {
      if (name === "test" && sub === undefined) return null;
      fail(`--class-folders: ${dir} is not a folder (the ${name} videos go in ${dir}/<class>/<video>)`);
    }
    const entries = asUsage(() => annotationsFromFolders(dir, VIDEO_EXTENSIONS));
    if (entries.length === 0) {
      fail(`--class-folders: no videos (${VIDEO_EXTENSIONS.join(", ")}) under ${dir}/<class>/`);
    }
    return { name, dir, list: null, listHash: null, entries };
  }
  const given = v[`${name}-list`] as string | undefined;
  if (given === undefined) {
    if (name === "test") return null;
    fail(`pass --${name}-list FILE (or --class-folders)`);
  }
  const list = listPath(`${name}-list`, given, root);
  let text: string;
  try {
    text = await Deno.readTextFile(list);
  } catch (e) {
    fail(`cannot read --${name}-list ${list}: ${(e as Error).message}`);
  }
  const entries = asUsage(() => parseAnnotations(text, { source: list, root }));
  if (entries.length === 0) fail(`--${name}-list ${list} lists no videos`);
  asUsage(() => checkFilesExist(entries));
  return { name, dir: root, list, listHash: await sha256(text), entries };
}

/** Label name → class id, from the training split; checks the other splits against it. */
function classMapping(splits: Split[]): Record<string, number> {
  for (const s of splits) {
    const unlabelled = s.entries.find((e) => e.label === null);
    if (unlabelled) fail(`${unlabelled.where}: no label (every ${s.name} video needs one: 'path,label')`);
  }
  const map = asUsage(() => labelMap(splits[0].entries));
  const n = Object.keys(map).length;
  if (n < 2) {
    fail(
      `the training ${splits[0].list ? "list" : "folder"} has ${n} class${
        n === 1 ? "" : "es"
      }; probing needs 2 or more`,
    );
  }
  for (const s of splits.slice(1)) {
    try {
      labelMap(s.entries, map);
    } catch (e) {
      if (!(e instanceof DataError)) throw e;
      fail(
        s.list ? e.message : e.message.replace(/the training list$/, `the training folder ${splits[0].dir}`),
      );
    }
  }
  return map;
}

/** A fingerprint of a split's files: path, label, size and modification time of each. */
async function filesFingerprint(entries: Annotation[]): Promise<string> {
  const lines = entries.map((e) => {
    const st = Deno.statSync(e.path);
    return `${e.path}\t${e.label}\t${st.size}\t${st.mtime?.getTime() ?? 0}`;
  });
  return await sha256(lines.join("\n"));
}

function loadEncoder(spec: EncoderSpec, cfg: TrainConfig, device: torch.Device): VideoMAE {
  if (spec.kind === "untrained") {
    // as the trainer does: seed torch, then build the model
    torch.manualSeed(spec.initSeed!);
    return new VideoMAE(modelConfig(cfg), device);
  }
  const model = new VideoMAE(modelConfig(cfg), device);
  try {
    torch.scope(() => {
      const { tensors } = loadSafetensors(spec.checkpoint!);
      const sd: Record<string, torch.Tensor> = {};
      for (const [k, t] of Object.entries(tensors)) if (k.startsWith("model.")) sd[k.slice(6)] = t;
      model.loadStateDict(sd);
    });
  } catch (e) {
    model.dispose();
    if (e instanceof LayerlockError) fail(`${spec.checkpoint}: ${e.message.split("\n")[0]}`);
    throw e;
  }
  return model;
}

/**
 * Decodes every clip of a split once, runs each encoder on it (`extractClipFeatures`) and writes one cache file
 * per encoder: `pooled`, `tokens` (when wanted) and `classes`, with the cache key and the skipped files in the
 * metadata.
 */
async function extractSplit(
  folder: VideoFolder,
  models: { model: VideoMAE; file: string; key: string }[],
  o: {
    norm: Normalization;
    depth: number;
    tokens: boolean;
    batchSize: number;
    device: torch.Device;
    listed: string[];
  },
): Promise<void> {
  const usable = new Set(folder.videos.map((x) => x.path));
  const unreadable = o.listed.filter((p) => !usable.has(p));
  const r = await extractClipFeatures(folder, models.map((m) => m.model.encoder), {
    ...o,
    log: (l) => console.log(`  ${l}`),
  });
  try {
    torch.scope(() => {
      const classes = torch.tensor(r.classes);
      models.forEach(({ file, key }, k) => {
        const t: Record<string, torch.Tensor> = { pooled: r.features[k].pooled, classes };
        if (r.features[k].tokens) t.tokens = r.features[k].tokens!;
        saveSafetensors(file, t, {
          format: CACHE_FORMAT,
          key,
          skipped: JSON.stringify(r.skipped),
          unreadable: JSON.stringify(unreadable),
          videos: String(folder.videos.length),
        });
      });
    });
  } finally {
    for (const f of r.features) {
      f.pooled.dispose();
      f.tokens?.dispose();
    }
  }
}

/** The cached features of a split, if a cache file with exactly this key exists. */
function readCache(file: string, key: string): boolean {
  if (!isFile(file)) return false;
  try {
    const m = readSafetensorsMetadata(file);
    return m.format === CACHE_FORMAT && m.key === key;
  } catch {
    return false;
  }
}

interface LoadedSplit extends SplitFeatures {
  /** Files that failed to decode (their clips were replaced by other videos' clips). */
  skipped: string[];
  /** Listed files ffprobe could not read (left out). */
  unreadable: string[];
  videos: number;
}

function loadCached(file: string, tokens: boolean): LoadedSplit {
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

async function main(): Promise<number> {
  const t0 = performance.now();
  let v: Record<string, string | boolean | undefined>;
  try {
    v = parseArgs({
      args: Deno.args,
      allowPositionals: false,
      options: {
        run: { type: "string" },
        checkpoint: { type: "string" },
        config: { type: "string" },
        untrained: { type: "boolean" },
        baseline: { type: "boolean" },
        "init-seed": { type: "string" },
        "data-path": { type: "string" },
        "train-list": { type: "string" },
        "val-list": { type: "string" },
        "test-list": { type: "string" },
        "class-folders": { type: "boolean" },
        "train-dir": { type: "string" },
        "val-dir": { type: "string" },
        "test-dir": { type: "string" },
        "clips-per-video": { type: "string" },
        depth: { type: "string" },
        "depth-fraction": { type: "string" },
        probes: { type: "string" },
        "linear-epochs": { type: "string" },
        "linear-lr": { type: "string" },
        "linear-wd": { type: "string" },
        "attentive-epochs": { type: "string" },
        "attentive-lr": { type: "string" },
        "attentive-wd": { type: "string" },
        "attentive-batch": { type: "string" },
        seeds: { type: "string" },
        "batch-size": { type: "string" },
        refresh: { type: "boolean" },
        out: { type: "string" },
        device: { type: "string" },
        threads: { type: "string" },
        help: { type: "boolean" },
      },
    }).values;
  } catch (e) {
    fail(`${(e as Error).message.split(/\.\s/)[0].replace(/\.$/, "")} (${USAGE})`);
  }
  if (v.help) {
    console.log(USAGE);
    return 0;
  }

  // ---- the encoder(s) and the configuration
  const run = v.run as string | undefined;
  let ckpt = v.checkpoint as string | undefined;
  const untrainedOnly = v.untrained === true || ckpt === "none";
  if (ckpt === "none") ckpt = undefined;
  if (run !== undefined && !/^[A-Za-z0-9._-]+$/.test(run)) fail(`--run: '${run}' is not a run name`);
  if (!run && !ckpt && !(untrainedOnly && v.config)) {
    fail("pass --run NAME or --checkpoint FILE (or --checkpoint none with --run NAME or --config FILE)");
  }
  if (v.config && ckpt) {
    fail("--config is for an untrained encoder without a checkpoint; a checkpoint carries its own");
  }
  if (untrainedOnly && v.baseline) {
    fail("--baseline adds the untrained encoder beside a checkpoint; --untrained probes it alone");
  }
  if (v.device !== undefined && !["auto", "cpu", "cuda"].includes(v.device as string)) {
    fail(`--device: expected auto, cpu or cuda, got '${v.device}'`);
  }
  let cfg: TrainConfig | null = null, step: number | null = null;
  if (!ckpt && run && !(untrainedOnly && v.config)) {
    if (!isDir(`runs/${run}`)) fail(`runs/${run} does not exist`);
    ckpt = listCheckpoints(`runs/${run}/checkpoints`).at(-1);
    if (!ckpt && !untrainedOnly) fail(`runs/${run} has no checkpoints`);
    if (!ckpt) {
      if (!isFile(`runs/${run}/config.json`)) fail(`runs/${run} has neither checkpoints nor config.json`);
      cfg = readConfigFile(`runs/${run}/config.json`);
    }
  }
  if (ckpt) ({ cfg, step } = checkpointConfig(ckpt));
  if (!cfg) cfg = readConfigFile(v.config as string);
  cfg.device = (v.device as TrainConfig["device"] | undefined) ?? "auto";
  const threads = int("threads", v.threads as string | undefined, 0, 0);
  if (threads > 0) torch.setNumThreads(threads);
  const initSeed = int("init-seed", v["init-seed"] as string | undefined, cfg.seed, 0);
  const encoders: EncoderSpec[] = [];
  if (!untrainedOnly) {
    const st = Deno.statSync(ckpt!);
    encoders.push({
      kind: "checkpoint",
      label: `checkpoint${step !== null ? ` (step ${step})` : ""}`,
      checkpoint: ckpt!,
      step,
      initSeed: null,
      identity: { checkpoint: Deno.realPathSync(ckpt!), size: st.size, mtime: st.mtime?.getTime() ?? 0 },
    });
  }
  if (untrainedOnly || v.baseline) {
    encoders.push({
      kind: "untrained",
      label: `untrained (init seed ${initSeed})`,
      checkpoint: null,
      step: null,
      initSeed,
      identity: { untrained: modelConfig(cfg), initSeed },
    });
  }
  const total = modelConfig(cfg).encoderDepth;
  const depth = v.depth !== undefined
    ? int("depth", v.depth as string, total, 0)
    : v["depth-fraction"] !== undefined
    ? (() => {
      const f = Number(v["depth-fraction"]);
      if (!(f >= 0 && f <= 1)) {
        fail(`--depth-fraction: expected a number in [0, 1], got '${v["depth-fraction"]}'`);
      }
      return depthFromFraction(f, total);
    })()
    : total;
  if (depth > total) fail(`--depth ${depth}: the encoder has ${total} blocks`);

  // ---- probe settings (defaults: the experiment's probes, with a small learning-rate grid around them)
  const ex = ExperimentConfigSchema.shape.probe.parse(undefined);
  const which = ((v.probes as string | undefined) ?? "linear,attentive").split(",").map((s) => s.trim());
  for (const w of which) {
    if (!(FOLDER_PROBES as readonly string[]).includes(w)) {
      fail(`--probes: expected linear and/or attentive, got '${w}'`);
    }
  }
  const probes: Partial<Record<FolderProbeName, ProbeGrid>> = {};
  if (which.includes("linear")) {
    probes.linear = {
      epochs: int("linear-epochs", v["linear-epochs"] as string | undefined, ex.linearEpochs),
      batchSize: 256,
      lrs: numbers(
        "linear-lr",
        v["linear-lr"] as string | undefined,
        [0.1, 1, 10].map((m) => m * ex.linearLr),
      ),
      weightDecays: numbers("linear-wd", v["linear-wd"] as string | undefined, [1e-4]),
    };
  }
  if (which.includes("attentive")) {
    probes.attentive = {
      epochs: int("attentive-epochs", v["attentive-epochs"] as string | undefined, ex.attentiveEpochs),
      batchSize: int("attentive-batch", v["attentive-batch"] as string | undefined, ex.attentiveBatch),
      lrs: numbers(
        "attentive-lr",
        v["attentive-lr"] as string | undefined,
        [0.3, 1, 3].map((m) => m * ex.attentiveLr),
      ),
      weightDecays: numbers("attentive-wd", v["attentive-wd"] as string | undefined, [0.05]),
    };
  }
  for (const g of Object.values(probes)) if (g.lrs.some((x) => x <= 0)) fail("learning rates must be > 0");
  const seeds = numbers("seeds", v.seeds as string | undefined, [0, 1, 2], 0, true);
  const tokens = probes.attentive !== undefined;
  const clipsPerVideo = int("clips-per-video", v["clips-per-video"] as string | undefined, 1);
  const batchSize = int("batch-size", v["batch-size"] as string | undefined, 16);

  // ---- the data: lists or class folders, and the class mapping of the training split
  const rootFlag = v["data-path"] as string | undefined;
  if (!rootFlag) fail("pass --data-path DIR (the root of the videos)");
  const root = rootFlag.replace(/\/+$/, "") || "/";
  if (!isDir(root)) fail(`--data-path ${root} is not a folder`);
  if (v["class-folders"]) {
    for (const s of SPLITS) {
      if (v[`${s}-list`] !== undefined) fail(`--${s}-list and --class-folders contradict`);
    }
  } else {
    for (const s of SPLITS) if (v[`${s}-dir`] !== undefined) fail(`--${s}-dir needs --class-folders`);
  }
  const splits: Split[] = [];
  for (const s of SPLITS) {
    const sp = await readSplit(s, root, v);
    if (sp) splits.push(sp);
  }
  const classes = classMapping(splits);
  const numClasses = Math.max(...Object.values(classes)) + 1;
  const notes: string[] = [];
  const trainPaths = new Set(splits[0].entries.map((e) => e.path));
  for (const s of splits.slice(1)) {
    const shared = s.entries.filter((e) => trainPaths.has(e.path));
    if (shared.length) {
      const msg = `${shared.length} ${s.name} video(s) are also training videos (e.g. ${shared[0].path}): ` +
        `the ${s.name} accuracy is not held-out`;
      notes.push(msg);
      console.warn(`probe: warning: ${msg}`);
    }
  }

  // ---- the output folder
  const ckptRun = ckpt?.match(/(?:^|\/)runs\/([^/]+)\/checkpoints\/[^/]+$/)?.[1];
  const out = (v.out as string | undefined)?.replace(/\/+$/, "") ??
    (run ?? ckptRun
      ? `runs/${run ?? ckptRun}/${untrainedOnly ? "probe-untrained" : "probe"}`
      : ckpt && !untrainedOnly
      ? `runs/probe-${ckpt.split("/").pop()!.replace(/\.safetensors$/, "")}`
      : "runs/probe-untrained");
  const cacheDir = `${out}/cache`;
  try {
    Deno.mkdirSync(cacheDir, { recursive: true });
  } catch (e) {
    fail(`cannot create ${cacheDir}: ${(e as Error).message} (the task may write under runs/ only)`);
  }

  const device = resolveDevice(cfg);
  const d = cfg.data;
  // the normalisation the encoder was trained with (ImageNet's unless the run set data.mean / data.std)
  const norm: Normalization = { mean: d.mean, std: d.std };
  const timing = d.segments
    ? "one frame per segment"
    : d.fps
    ? `${d.fps} fps`
    : `frame stride ${d.frameStride}`;
  console.log(
    `probe: ${
      encoders.map((e) => e.label).join(" + ")
    }, depth ${depth}/${total}, clips ${d.frames}×${d.size}×${d.size} ` +
      `(${timing}), ${Object.keys(classes).length} classes, ${
        splits.map((s) => `${s.name} ${s.entries.length}`).join(", ")
      } videos, ` +
      `device ${device}`,
  );

  // ---- features: from the cache, or extracted (each split decoded once for every encoder that needs it)
  const keyOf = async (s: Split, e: EncoderSpec) => {
    const key = JSON.stringify({
      format: CACHE_FORMAT,
      encoder: e.identity,
      split: s.name,
      dir: Deno.realPathSync(s.dir),
      list: s.list,
      listHash: s.listHash,
      files: await filesFingerprint(s.entries),
      classes,
      depth,
      tokens,
      frames: d.frames,
      size: d.size,
      stride: d.frameStride,
      fps: d.fps ?? null,
      segments: d.segments,
      norm,
      clipsPerVideo,
      sampling: "eval",
    });
    return { key, file: `${cacheDir}/${s.name}-${e.kind}-${(await sha256(key)).slice(0, 16)}.safetensors` };
  };
  const models = new Map<EncoderSpec, VideoMAE>();
  const cacheFiles: Record<string, { file: string; cached: boolean }> = {}; // `${encoder index}/${split}`
  let extractSeconds = 0;
  try {
    for (const s of splits) {
      const keys = await Promise.all(encoders.map((e) => keyOf(s, e)));
      const missing = encoders.map((e, k) => ({ e, ...keys[k] })).filter((m) =>
        v.refresh || !readCache(m.file, m.key)
      );
      encoders.forEach((e, k) => {
        const hit = !missing.some((m) => m.e === e);
        cacheFiles[`${k}/${s.name}`] = { file: keys[k].file, cached: hit };
        if (hit) {
          console.log(`probe: ${s.name} features of the ${e.kind} encoder from the cache (${keys[k].file})`);
        }
      });
      if (missing.length) {
        const te = performance.now();
        const folder = await asyncUsage(() =>
          VideoFolder.open(s.dir, {
            ...(s.list ? { list: s.list } : { classFolders: true }),
            labelMap: classes,
            frames: d.frames,
            size: d.size,
            stride: d.frameStride,
            fps: d.fps,
            segments: d.segments,
            augment: false,
            norm,
            clipsPerVideo,
            workers: d.workers || undefined,
            decoder: d.decoder,
            index: defaultIndex(s.dir),
            seed: 0,
          })
        );
        console.log(
          `probe: extracting ${s.name} features (${folder.length} clips of ${folder.videos.length} videos) with the ` +
            `${missing.map((m) => m.e.kind).join(" and ")} encoder${missing.length > 1 ? "s" : ""}`,
        );
        const ms = missing.map((m) => {
          if (!models.has(m.e)) models.set(m.e, loadEncoder(m.e, cfg!, device));
          return { model: models.get(m.e)!, file: m.file, key: m.key };
        });
        await extractSplit(folder, ms, {
          norm,
          depth,
          tokens,
          batchSize,
          device,
          listed: s.entries.map((x) => x.path),
        });
        extractSeconds += (performance.now() - te) / 1000;
      }
    }
  } finally {
    for (const m of models.values()) m.dispose();
  }

  // ---- probes, one encoder at a time (its features of every split in memory)
  const hasTest = splits.some((s) => s.name === "test");
  const names = Object.fromEntries(Object.entries(classes).map(([n, id]) => [id, n]));
  const counts = (c: Int32Array) => {
    const r: Record<string, number> = {};
    for (const id of c) r[names[id]] = (r[names[id]] ?? 0) + 1;
    return r;
  };
  const tp = performance.now();
  const outcomes: EncoderOutcome[] = [];
  const splitInfo: Partial<Record<SplitName, Omit<LoadedSplit, "pooled" | "tokens">>> = {};
  encoders.forEach((e, k) => {
    const f: Partial<Record<SplitName, LoadedSplit>> = {};
    try {
      for (const s of splits) f[s.name] = loadCached(cacheFiles[`${k}/${s.name}`].file, tokens);
      if (k === 0) {
        for (const s of splits) {
          const { pooled: _p, tokens: _t, ...info } = f[s.name]!;
          splitInfo[s.name] = info;
        }
      }
      console.log(`probe: probing the ${e.label} encoder`);
      outcomes.push({
        label: e.label,
        probes: probeSplits(
          f.train!,
          f.val!,
          f.test ?? null,
          { probes, seeds, numClasses },
          device,
          (l) => console.log(`  ${l}`),
        ),
      });
    } finally {
      for (const x of Object.values(f)) {
        x.pooled.dispose();
        x.tokens?.dispose();
      }
    }
  });
  const probeSeconds = (performance.now() - tp) / 1000;

  // ---- the report
  const trainClasses = splitInfo.train!.classes;
  const chance = {
    val: chanceLevel(trainClasses, splitInfo.val!.classes, numClasses),
    test: hasTest ? chanceLevel(trainClasses, splitInfo.test!.classes, numClasses) : null,
  };
  const skipped: Record<string, { unreadable: string[]; failedToDecode: string[] }> = {};
  const perSplit = splits.map((s) => {
    const f = splitInfo[s.name]!;
    const listed = s.entries.length;
    const usable = f.videos;
    if (f.unreadable.length) {
      notes.push(
        `${s.name}: ${f.unreadable.length} of ${listed} files could not be read (ffprobe) and were left out ` +
          `(${f.unreadable.slice(0, 3).join(", ")}${f.unreadable.length > 3 ? ", …" : ""})`,
      );
    }
    if (f.skipped.length) {
      notes.push(
        `${s.name}: ${f.skipped.length} file(s) failed to decode; their clips were replaced by other videos' clips ` +
          `(${f.skipped.slice(0, 3).join(", ")}${f.skipped.length > 3 ? ", …" : ""})`,
      );
    }
    skipped[s.name] = { unreadable: f.unreadable, failedToDecode: f.skipped };
    return {
      name: s.name,
      list: s.list,
      listSha256: s.listHash,
      folder: s.dir,
      videosListed: listed,
      videosUsed: usable,
      clips: f.classes.length,
      clipsPerClass: counts(f.classes),
    };
  });
  const report = {
    format: "layerlock-probe-report-1",
    date: new Date().toISOString(),
    torch: torch.torchVersion(),
    encoders: encoders.map((e, k) => ({
      kind: e.kind,
      label: e.label,
      checkpoint: e.checkpoint,
      step: e.step,
      initSeed: e.initSeed,
      cache: Object.fromEntries(splits.map((s) => [s.name, cacheFiles[`${k}/${s.name}`]])),
      probes: outcomes[k].probes,
    })),
    run: run ?? null,
    model: { ...modelConfig(cfg), depth, blocks: total },
    clips: {
      frames: d.frames,
      size: d.size,
      frameStride: d.frameStride,
      fps: d.fps ?? null,
      segments: d.segments,
      mean: d.mean,
      std: d.std,
      clipsPerVideo,
      sampling: "eval (augment: false)",
    },
    data: { root, mode: v["class-folders"] ? "class-folders" : "lists", splits: perSplit },
    classes,
    numClasses,
    probeSettings: { probes, seeds, selectedOn: "val", reported: hasTest ? "test" : "val" },
    chance,
    skipped,
    notes,
    seconds: {
      extract: extractSeconds,
      probe: probeSeconds,
      total: (performance.now() - t0) / 1000,
    },
  };
  await Deno.writeTextFile(`${out}/report.json`, JSON.stringify(report, null, 2) + "\n");
  const md = probeReportMarkdown({
    header: [
      `encoder${encoders.length > 1 ? "s" : ""}: ${
        encoders.map((e) => e.checkpoint ?? e.label).join(", ")
      }; depth ${depth}/${total}`,
      `data: ${root} (${
        perSplit.map((p) =>
          `${p.name}: ${p.clips} clips of ${p.videosUsed} videos${p.list ? `, ${p.list}` : ""}`
        ).join("; ")
      })`,
      `clips: ${d.frames} frames of ${d.size}×${d.size}, ${timing}, ${clipsPerVideo} per video, centre crop; ` +
      `mean [${d.mean.join(", ")}], std [${d.std.join(", ")}]`,
      `probe seeds: ${seeds.join(", ")}`,
    ],
    encoders: outcomes,
    classes: Object.entries(classes).map(([name, id]) => ({
      name,
      id,
      counts: Object.fromEntries(perSplit.map((p) => [p.name, p.clipsPerClass[name] ?? 0])),
    })),
    chance,
    notes,
  });
  await Deno.writeTextFile(`${out}/report.md`, md);

  const rep = hasTest ? "test" : "val";
  for (const o of outcomes) {
    for (const name of FOLDER_PROBES) {
      const p = o.probes[name];
      if (!p) continue;
      console.log(
        `probe: ${o.label} ${name}: ${rep} ${
          pctStats(p[rep]!)
        } (lr ${p.chosen.lr}, wd ${p.chosen.weightDecay}, chosen on val)`,
      );
    }
  }
  const ch = chance[rep]!;
  console.log(
    `probe: chance (training majority class) ${(100 * ch.majority).toFixed(1)}% on ${rep}` +
      (hasTest ? "" : " — no test list: these val numbers are the ones the settings were chosen on"),
  );
  console.log(`probe: wrote ${out}/report.json and ${out}/report.md (${report.seconds.total.toFixed(1)} s)`);
  return 0;
}

async function asyncUsage<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof DataError) fail(e.message);
    throw e;
  }
}

await runMain("probe", main);
