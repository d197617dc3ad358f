/**
 * Which encoders a folder probe (`src/eval/probe_run.ts`) probes, and the training configuration they share: a
 * checkpoint's encoder (a run's newest checkpoint, or a checkpoint file; the configuration from its metadata),
 * and/or the randomly initialised encoder of the same configuration (alone, or beside the checkpoint as a
 * baseline), seeded and built as the trainer builds it. Mistakes in the choice (no encoder named, a missing run
 * or checkpoint, contradicting options) are ConfigErrors worded with the probe's flags.
 * @module
 */
import { modelConfig, parseConfig, type TrainConfig } from "../config.ts";
import { ConfigError, LayerlockError } from "../errors.ts";
import { VideoMAE } from "../models/video_mae.ts";
import type { Device } from "../torch/dtype.ts";
import { manualSeed } from "../torch/runtime.ts";
import { readSafetensorsMetadata } from "../torch/safetensors.ts";
import { loadModelCheckpoint, readCheckpointConfig } from "../train/checkpoint.ts";
import { RunFolder } from "../train/run_folder.ts";
import { depthFromFraction } from "./features.ts";
import { isDir, isFile } from "./paths.ts";

/** Which encoders to probe (the probe's `--run`, `--checkpoint`, `--untrained`, `--baseline`, … flags). */
export interface ProbeEncoderChoice {
  /** A run under runs/: its newest checkpoint (or, for an untrained encoder, its configuration). */
  run?: string;
  /** A checkpoint file (its configuration from its metadata). */
  checkpoint?: string;
  /** Probe the untrained encoder of the configuration alone. */
  untrained?: boolean;
  /** Probe the untrained encoder beside the checkpoint's. */
  baseline?: boolean;
  /** A configuration file (JSON) for an untrained encoder without a checkpoint. */
  config?: string;
  /** Seed of the untrained encoder (default: the configuration's seed, the run's own initialisation). */
  initSeed?: number;
  /** Where to run (default auto). */
  device?: TrainConfig["device"];
}

/** An encoder to probe: a checkpoint's, or the untrained one of the configuration. */
export interface ProbeEncoderSpec {
  /** `checkpoint` or `untrained`. */
  kind: "checkpoint" | "untrained";
  /** How the report names it: `checkpoint (step 7)`, `untrained (init seed 3)`. */
  label: string;
  /** The checkpoint file, or null. */
  checkpoint: string | null;
  /** The checkpoint's step (from its metadata), or null. */
  step: number | null;
  /** The untrained encoder's seed, or null. */
  initSeed: number | null;
  /** What identifies its features (part of the feature cache's key). */
  identity: Record<string, unknown>;
}

/** The encoders chosen and their configuration. */
export interface ProbeEncoders {
  /** The training configuration (with the device asked for). */
  cfg: TrainConfig;
  /** The checkpoint that was found or named (also with an untrained encoder), or null. */
  checkpoint: string | null;
  /** The encoders, the checkpoint's first. */
  encoders: ProbeEncoderSpec[];
}

function fail(where: string, message: string, cause?: unknown): never {
  throw new ConfigError(where, message, cause === undefined ? undefined : { cause });
}

/** Reads a checkpoint's configuration and step from its metadata (no tensor is read). */
function checkpointConfig(path: string): { cfg: TrainConfig; step: number | null } {
  if (!isFile(path)) fail(path, `checkpoint ${path} does not exist`);
  let meta: Record<string, string>;
  try {
    meta = readSafetensorsMetadata(path);
  } catch (e) {
    fail(path, `${path} is not a readable checkpoint: ${(e as Error).message.split("\n")[0]}`, e);
  }
  if (!meta.config) {
    fail(path, `${path} has no configuration in its metadata (is it a layerlock checkpoint?)`);
  }
  const step = meta.step !== undefined && /^\d+$/.test(meta.step) ? Number(meta.step) : null;
  return { cfg: readCheckpointConfig(path), step };
}

function readConfigFile(path: string): TrainConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(Deno.readTextFileSync(path));
  } catch (e) {
    fail(path, `cannot read --config ${path}: ${(e as Error).message}`, e);
  }
  return parseConfig(raw, path);
}

/** The contradictions between the options, in the order the probe has always reported them. */
function checkChoice(o: ProbeEncoderChoice): void {
  const { run, checkpoint: ckpt, untrained } = o;
  if (run !== undefined && !/^[A-Za-z0-9._-]+$/.test(run)) fail("--run", `--run: '${run}' is not a run name`);
  if (!run && !ckpt && !(untrained && o.config)) {
    fail(
      "probe",
      "pass --run NAME or --checkpoint FILE (or --checkpoint none with --run NAME or --config FILE)",
    );
  }
  if (o.config && ckpt) {
    fail(
      "--config",
      "--config is for an untrained encoder without a checkpoint; a checkpoint carries its own",
    );
  }
  if (untrained && o.baseline) {
    fail(
      "--baseline",
      "--baseline adds the untrained encoder beside a checkpoint; --untrained probes it alone",
    );
  }
}

/** The checkpoint to probe (or to take the configuration from) and the configuration. */
function findConfig(o: ProbeEncoderChoice): { ckpt: string | null; cfg: TrainConfig; step: number | null } {
  const run = o.run;
  let ckpt = o.checkpoint ?? null;
  if (!ckpt && run && !(o.untrained && o.config)) {
    if (!isDir(`runs/${run}`)) fail("--run", `runs/${run} does not exist`);
    ckpt = new RunFolder(`runs/${run}`).newestCheckpoint();
    if (!ckpt && !o.untrained) fail("--run", `runs/${run} has no checkpoints`);
    if (!ckpt) {
      if (!isFile(`runs/${run}/config.json`)) {
        fail("--run", `runs/${run} has neither checkpoints nor config.json`);
      }
      return { ckpt, cfg: readConfigFile(`runs/${run}/config.json`), step: null };
    }
  }
  if (ckpt) return { ckpt, ...checkpointConfig(ckpt) };
  return { ckpt, cfg: readConfigFile(o.config!), step: null };
}

/**
 * Chooses the encoders of a probe: the checkpoint's (named, or the newest of `run`) unless `untrained`, and the
 * untrained one with `untrained` or `baseline`; reads their configuration (the checkpoint's metadata, else the
 * run's config.json or the `config` file). Throws a ConfigError for a contradicting choice or a missing file.
 */
export function chooseProbeEncoders(o: ProbeEncoderChoice): ProbeEncoders {
  checkChoice(o);
  const { ckpt, cfg, step } = findConfig(o);
  cfg.device = o.device ?? "auto";
  const initSeed = o.initSeed ?? cfg.seed;
  const encoders: ProbeEncoderSpec[] = [];
  if (!o.untrained) {
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
  if (o.untrained || o.baseline) {
    encoders.push({
      kind: "untrained",
      label: `untrained (init seed ${initSeed})`,
      checkpoint: null,
      step: null,
      initSeed,
      identity: { untrained: modelConfig(cfg), initSeed },
    });
  }
  return { cfg, checkpoint: ckpt, encoders };
}

/**
 * The encoder blocks to run: `depth`, else `depthFraction` of them (rounded as in 4DS), else all of them.
 * Throws a ConfigError when `depth` exceeds the encoder's blocks.
 */
export function probeDepth(
  cfg: TrainConfig,
  o: { depth?: number; depthFraction?: number },
): { depth: number; total: number } {
  const total = modelConfig(cfg).encoderDepth;
  const depth = o.depth ??
    (o.depthFraction !== undefined ? depthFromFraction(o.depthFraction, total) : total);
  if (depth > total) fail("--depth", `--depth ${depth}: the encoder has ${total} blocks`);
  return { depth, total };
}

/**
 * Builds an encoder's model on `device`: the checkpoint's weights (`loadModelCheckpoint` with `cfg`), or the
 * untrained model as the trainer builds it (torch seeded with its seed, then the model built). A checkpoint
 * that does not load is a ConfigError `<checkpoint>: <first line of the error>`. The caller owns the model.
 */
export function loadProbeEncoder(spec: ProbeEncoderSpec, cfg: TrainConfig, device: Device): VideoMAE {
  if (spec.kind === "untrained") {
    manualSeed(spec.initSeed!);
    return new VideoMAE(modelConfig(cfg), device);
  }
  const path = spec.checkpoint!;
  try {
    return loadModelCheckpoint(path, device, cfg).model;
  } catch (e) {
    if (e instanceof LayerlockError) fail(path, `${path}: ${e.message.split("\n")[0]}`, e);
    throw e;
  }
}
