/**
 * The training configuration: a zod schema with documented defaults, validated with errors that name the
 * offending key (`optim.lr: ...`). Pure: it loads no native code.
 * @module
 */
import { z } from "zod";
import { PRESETS } from "./models/presets.ts";
import { LayerLockSectionSchema } from "./layerlock/schedule.ts";
import { ConfigError } from "./errors.ts";
import { LR_SCHEDULES } from "./optim/schedule.ts";
import type { VideoMAEConfig } from "./models/video_mae.ts";

export { ConfigError };

const positiveInt = z.number().int().positive();

/** The schema of a training run's configuration. */
export const TrainConfigSchema = z.object({
  /** Run name: outputs go to runs/<name>/ (a folder name: not `.`, `..` or hidden, no `/`). */
  name: z.string().regex(
    /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/,
    "use letters, digits, '.', '_' and '-' only, not starting with '.'",
  )
    .max(200).default("default"),
  /** Seed of torch's generators and of the data. */
  seed: z.number().int().nonnegative().default(0),
  /** Device: auto picks cuda when available. */
  device: z.enum(["auto", "cpu", "cuda"]).default("auto"),
  /** Mixed precision on CUDA (bf16 autocast); ignored on the CPU. */
  amp: z.enum(["bf16", "off"]).default("bf16"),
  /** CPU threads for libtorch (0: libtorch's default). */
  threads: z.number().int().nonnegative().default(0),
  /**
   * Start from these weights instead of a fresh initialisation (`train --init SOURCE`): one of our runs or
   * checkpoints, a VideoMAE `.pth` or a Hugging Face VideoMAE folder (anything `import` reads). The optimiser,
   * the latent heads and the schedule start fresh; a resumed run continues from its checkpoint instead.
   */
  init: z.string().min(1).optional(),
  model: z.object({
    /** A named size; the fields below override it. */
    preset: z.enum(Object.keys(PRESETS) as [keyof typeof PRESETS, ...(keyof typeof PRESETS)[]]).default(
      "tiny",
    ),
    encoderDim: positiveInt.optional(),
    encoderDepth: positiveInt.optional(),
    encoderHeads: positiveInt.optional(),
    mlpRatio: z.number().finite().positive().optional(),
    decoderDim: positiveInt.optional(),
    decoderDepth: positiveInt.optional(),
    decoderHeads: positiveInt.optional(),
    /** Spatial patch size. */
    patch: positiveInt.default(8),
    /** Temporal tubelet size. */
    tubelet: positiveInt.default(2),
    /**
     * Position embedding: `sincos`, a fixed factorised 3-d table (the default; VideoMAE's code does not build it);
     * `videomae`, VideoMAE's fixed 1-d table (`get_sinusoid_encoding_table`): choose it for checkpoints meant
     * for VideoMAE's PyTorch code, which rebuilds its table rather than loading it; `learned`.
     */
    posEmbed: z.enum(["sincos", "videomae", "learned"]).default("sincos"),
    qkvBias: z.boolean().default(true),
    /** The MLPs' GELU: `exact` (VideoMAE's) or `tanh` (the approximation; a cheaper kernel on some devices). */
    gelu: z.enum(["exact", "tanh"]).default("exact"),
    /**
     * The epsilon of every LayerNorm: VideoMAE's 1e-6; a model imported from elsewhere keeps its source's (many of
     * transformers' VideoMAE configs record 1e-12).
     */
    layerNormEps: z.number().finite().positive().default(1e-6),
  }).strict().default({}),
  data: z.object({
    /** "shapes": the embedded moving-shapes generator; "fashion": Moving Fashion-MNIST; "folder": `path`'s videos. */
    source: z.enum(["shapes", "fashion", "folder"]).default("shapes"),
    /** Folder of .mp4/.webm/.avi/.mkv files (source "folder"). */
    path: z.string().optional(),
    /**
     * An annotation list for the folder (`path[,label]` per line, comma, tab or space separated; paths relative to
     * `path`): only the listed videos are used (e.g. a training split), with their labels.
     */
    list: z.string().optional(),
    /** Labels from class subfolders of `path` (`path/<class>/<video>`). */
    classFolders: z.boolean().default(false),
    /**
     * A JSON file of label → class id to use instead of numbering this list's labels (a training run's
     * `labels.json`, for its validation and test lists); a label not in it is an error.
     */
    labelMap: z.string().optional(),
    frames: positiveInt.default(16),
    /** Frame height and width. */
    size: positiveInt.default(32),
    /** Frame stride when sampling clips from video files (VideoMAE's `sampling_rate`; Kinetics recipe: 4). */
    frameStride: positiveInt.default(2),
    /** Video files: a fixed output frame rate instead of `frameStride`, the same span for videos of any rate. */
    fps: z.number().finite().positive().optional(),
    /**
     * Video files: one frame from each of `frames` equal segments of the video (TSN; VideoMAE's
     * Something-Something recipe) instead of a dense clip at `frameStride`.
     */
    segments: z.boolean().default(false),
    /** Video files: random offset, multi-scale crop and flip per clip and epoch (off: centred clip, centre crop). */
    augment: z.boolean().default(true),
    /** Video files: crop sides as fractions of the short side (VideoMAE's `GroupMultiScaleCrop` scales). */
    scales: z.array(z.number().finite().gt(0).max(1)).min(1).default([1, 0.875, 0.75, 0.66]),
    /** Video files: mirror training clips with probability ½ (turn off for direction-sensitive labels, e.g. SSv2). */
    flip: z.boolean().default(true),
    /** Video files: per-channel (RGB) mean of pixels in [0, 1] (ImageNet's, as VideoMAE). */
    mean: z.tuple([z.number().finite(), z.number().finite(), z.number().finite()]).default([
      0.485,
      0.456,
      0.406,
    ]),
    /** Video files: per-channel (RGB) standard deviation of pixels in [0, 1] (ImageNet's, as VideoMAE). */
    std: z.tuple([
      z.number().finite().positive(),
      z.number().finite().positive(),
      z.number().finite().positive(),
    ]).default([
      0.229,
      0.224,
      0.225,
    ]),
    /** Video files: distinct clips drawn per video and epoch (the epoch's length is videos × clipsPerVideo). */
    clipsPerVideo: positiveInt.default(64),
    /** Video files: clips decoded at once (0: the number of cores). */
    workers: z.number().int().nonnegative().default(0),
    /** Video files: `auto` decodes in process where the decoder was built, else with the ffmpeg program. */
    decoder: z.enum(["auto", "libav", "ffmpeg"]).default("auto"),
    /**
     * Video files: the probe index (each file's frame rate, size and frame count, keyed by path, size and mtime),
     * read and updated so a folder is probed once. Default: runs/.video_index/<hash of the folder>.json.
     */
    index: z.string().optional(),
    /** Batches prepared ahead in a worker. */
    prefetch: z.number().int().nonnegative().default(4),
  }).strict().default({}),
  mask: z.object({
    kind: z.enum(["tube", "random"]).default("tube"),
    ratio: z.number().finite().gt(0).lt(1).default(0.9),
  }).strict().default({}),
  target: z.object({
    /**
     * Per-tubelet, per-channel normalised pixels (VideoMAE's `normlize_target`). Off by default here: on the
     * embedded moving shapes (flat colours over a grainy background) a normalised tubelet is mostly grain, and
     * in a CPU-sized run the loss sits at the floor of predicting zero, (n-1)/n, throughout. Turn it on for
     * VideoMAE's recipe on real video.
     */
    normalize: z.boolean().default(false),
  }).strict().default({}),
  optim: z.object({
    steps: positiveInt.default(600),
    batchSize: positiveInt.default(8),
    /** Peak learning rate (not scaled by batch size unless scaleLr). */
    lr: z.number().finite().nonnegative().default(1e-3),
    /** VideoMAE's rule: lr × batch / 256, with the global batch (every process's clips) in data-parallel runs. */
    scaleLr: z.boolean().default(false),
    minLr: z.number().finite().nonnegative().default(1e-5),
    /**
     * The learning rate after the warmup (src/optim/schedule.ts): `cosine` decays to `minLr` over the run; `constant`
     * stays at `lr`, so LayerLock's later stages train at the same rate as its first; `wsd` stays at `lr`, then
     * decays linearly to `minLr` over the last `decayFraction` of the run.
     */
    schedule: z.enum(LR_SCHEDULES).default("cosine"),
    /** `wsd`: the share of the run over which the learning rate decays at the end. */
    decayFraction: z.number().finite().gt(0).lt(1).default(0.2),
    /** Linear warmup steps; default 60, or a tenth of `steps` for runs shorter than 600 steps. */
    warmupSteps: z.number().int().nonnegative().optional(),
    weightDecay: z.number().finite().nonnegative().default(0.05),
    betas: z.tuple([z.number().finite().min(0).lt(1), z.number().finite().min(0).lt(1)]).default([0.9, 0.95]),
    /** Max global grad norm (0: no clipping). */
    clipGrad: z.number().finite().nonnegative().default(0),
  }).strict().transform((o) => ({
    ...o,
    warmupSteps: o.warmupSteps ?? Math.min(60, Math.floor(o.steps / 10)),
  })).default({}),
  /** What is trained and how layers are frozen (src/layerlock/schedule.ts documents each key). */
  layerlock: LayerLockSectionSchema.default({}),
  log: z.object({
    /** Steps between progress lines and metrics.jsonl records. */
    every: positiveInt.default(10),
    /** Steps between checkpoints (and one at the end). */
    checkpointEvery: positiveInt.default(200),
    /**
     * Also checkpoint every this many minutes of training (checked at logging steps; 0: off), so a preempted
     * job loses at most that much, whatever the step time.
     */
    checkpointMinutes: z.number().finite().nonnegative().default(0),
    /** Checkpoints kept (oldest deleted first). */
    keep: positiveInt.default(3),
    /** Steps between collapse metrics of the encoder's pooled features on 64 fixed clips (0: off). */
    collapseEvery: z.number().int().nonnegative().default(0),
    /**
     * Clips, outside the training stream, from which the mean targets of the trivial loss floors are estimated
     * (src/layerlock/floor.ts); the floors are logged beside the losses (`pixelFloor`, `latentFloor`). 0: off.
     */
    floorClips: z.number().int().nonnegative().default(128),
    /**
     * Warn when training waits on data for more than this share of a logging window's time (at most once per
     * 10 windows); 1 turns the warning off.
     */
    dataWaitWarn: z.number().finite().min(0).max(1).default(0.25),
    /**
     * Also write every number of each metrics.jsonl record as a TensorBoard scalar, in
     * `runs/<name>/tb/events.out.tfevents.*` (src/train/tensorboard.ts; no TensorFlow needed).
     */
    tensorboard: z.boolean().default(false),
  }).strict().default({}),
  /**
   * A non-finite loss (or, with `optim.clipGrad`, gradient norm), found at the logging step after it (per-step
   * values kept on the device: no host sync per step) and before any checkpoint is written.
   */
  nonFinite: z.object({
    /** `stop`: end the run with an error naming the step (checkpoints stay good); `rollback`: recover. */
    policy: z.enum(["stop", "rollback"]).default("stop"),
    /** Rollbacks allowed in one invocation before the run stops anyway. */
    maxRollbacks: positiveInt.default(3),
    /** The learning rate is multiplied by this after each rollback (1: unchanged). */
    lrScale: z.number().finite().gt(0).max(1).default(1),
  }).strict().default({}),
  /**
   * CUDA graphs (src/train/step_graph.ts): each schedule stage's whole step (forward, backward, clipping, AdamW)
   * is captured once after `warmup` eager steps and replayed, one launch a step; re-captured when the stage
   * changes. `auto`: on a CUDA device in a single-process run, off elsewhere; `on`: as auto, but asking for it
   * where it cannot run is an error; `off`: eager; `emulate`: the graph path's bookkeeping on any device, each
   * replay re-running the captured step (for tests of capturability on a CPU). Where a capture fails the run
   * goes on eagerly with a warning. The default is `off` until the CUDA path has been run on a GPU.
   */
  graphs: z.object({
    // default off until the CUDA path has run on a GPU (it is tested on the CPU through the emulation only)
    mode: z.enum(["auto", "on", "off", "emulate"]).default("off"),
    /** Eager steps at the start of each stage before the capture (≥ 1: optimiser state is made then). */
    warmup: positiveInt.default(3),
  }).strict().default({}),
  /** Testing aids; leave empty in real runs. */
  debug: z.object({
    /** Steps (0-based, the step being trained) whose loss is made NaN once, to exercise `nonFinite`. */
    nanAtSteps: z.array(z.number().int().nonnegative()).default([]),
    /** Data parallel: inject only on this rank (default every rank). */
    nanRank: z.number().int().nonnegative().optional(),
    /** graphs.mode=emulate: every capture fails, to exercise the fallback to eager steps. */
    failCapture: z.boolean().default(false),
    /**
     * After this step (its logging and checkpoint done) the run announces `holding after step N` and waits for a
     * signal (SIGINT/SIGTERM stop it as usual; SIGKILL ends it there): tests interrupt a run at a known step,
     * whatever the machine's speed, instead of racing a printed line.
     */
    holdAt: z.number().int().positive().optional(),
    /** Data parallel: only this rank holds at `holdAt` (default every rank). */
    holdRank: z.number().int().nonnegative().optional(),
  }).strict().default({}),
  /**
   * Data-parallel training, used when the job is launched by torchrun (WORLD_SIZE set; src/train/launch.ts):
   * `optim.batchSize` is per process, gradients are averaged in buckets.
   */
  dist: z.object({
    /** Process-group backend: `auto` is nccl on CUDA, gloo on the CPU. */
    backend: z.enum(["auto", "gloo", "nccl"]).default("auto"),
    /** Bucket capacity of the gradient all-reduce, in MiB (PyTorch DDP's default, 25). */
    bucketMb: z.number().finite().positive().default(25),
    /** Start a bucket's all-reduce while backward still runs (off: all after backward). */
    overlap: z.boolean().default(true),
    /** Seconds a rank waits for the others (rendezvous, each collective) before failing with an error. */
    timeoutS: z.number().finite().positive().default(300),
    /**
     * ZeRO stage 1: shard AdamW's moments over the processes (each keeps 1/N; gradients reduce-scattered,
     * parameters all-gathered). Same updates as unsharded AdamW; checkpoints load on any world size.
     */
    zero: z.boolean().default(false),
  }).strict().default({}),
}).strict().superRefine((c, ctx) => {
  if (c.data.source === "folder" && !c.data.path) {
    ctx.addIssue({
      code: "custom",
      path: ["data", "path"],
      message: 'required when data.source is "folder"',
    });
  }
  if (c.optim.warmupSteps >= c.optim.steps) {
    ctx.addIssue({
      code: "custom",
      path: ["optim", "warmupSteps"],
      message: `must be less than optim.steps (${c.optim.steps}), got ${c.optim.warmupSteps}`,
    });
  }
  // The clip must cut into whole patches and tubelets (caught here, not when the model is built).
  if (c.data.size % c.model.patch !== 0) {
    ctx.addIssue({
      code: "custom",
      path: ["data", "size"],
      message: `must be a multiple of model.patch (${c.model.patch}), got ${c.data.size}`,
    });
  }
  if (c.data.frames % c.model.tubelet !== 0) {
    ctx.addIssue({
      code: "custom",
      path: ["data", "frames"],
      message: `must be a multiple of model.tubelet (${c.model.tubelet}), got ${c.data.frames}`,
    });
  }
});

/** A validated training configuration. */
export type TrainConfig = z.infer<typeof TrainConfigSchema>;

/** Validates a raw configuration object; throws a ConfigError listing every bad key. */
export function parseConfig(raw: unknown, source = "config"): TrainConfig {
  const r = TrainConfigSchema.safeParse(raw);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => {
    const key = i.path.length ? i.path.join(".") : "(top level)";
    const extra = i.code === "unrecognized_keys" ? ` (${i.keys.join(", ")})` : "";
    return `  ${key}: ${i.message}${extra}`;
  });
  throw new ConfigError(source, `invalid ${source}:\n${lines.join("\n")}`);
}

/** The model configuration a training configuration describes. */
export function modelConfig(cfg: TrainConfig): VideoMAEConfig {
  const m = cfg.model;
  const size = PRESETS[m.preset];
  return {
    encoderDim: m.encoderDim ?? size.encoderDim,
    encoderDepth: m.encoderDepth ?? size.encoderDepth,
    encoderHeads: m.encoderHeads ?? size.encoderHeads,
    mlpRatio: m.mlpRatio ?? size.mlpRatio,
    decoderDim: m.decoderDim ?? size.decoderDim,
    decoderDepth: m.decoderDepth ?? size.decoderDepth,
    decoderHeads: m.decoderHeads ?? size.decoderHeads,
    inChans: 3,
    frames: cfg.data.frames,
    height: cfg.data.size,
    width: cfg.data.size,
    patch: m.patch,
    tubelet: m.tubelet,
    qkvBias: m.qkvBias,
    posEmbed: m.posEmbed,
    gelu: m.gelu === "tanh" ? "tanh" : "none",
    layerNormEps: m.layerNormEps,
  };
}

/** Sets `value` at a dotted path of a plain object, creating objects on the way. */
export function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split(".");
  // own properties only: `__proto__` (or `constructor.prototype`) must name a key, never reach a prototype
  if (keys.some((k) => k === "__proto__" || k === "prototype" || k === "constructor")) {
    throw new ConfigError(path, `'${path}' is not a configuration key`);
  }
  let o = obj;
  for (const k of keys.slice(0, -1)) {
    if (typeof o[k] !== "object" || o[k] === null) o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[keys[keys.length - 1]] = value;
}
