/**
 * Training checkpoints: one safetensors file per save, `runs/<name>/checkpoints/step_<N>.safetensors`, holding
 * the weights of each module under its key (`model.<name>`, loadable by name in PyTorch after stripping the
 * prefix; `heads.<name>` for LayerLock's latent heads), the optimizer
 * state (`optim.<param>.exp_avg|exp_avg_sq|step`), the generator states (`rng.cpu`, and `rng.cuda` on a CUDA
 * host), and in its metadata the
 * step, the configuration, the data sampler's state and any extra state (e.g. a schedule's).
 * Writes are atomic, and only the oldest checkpoints beyond `keep` are deleted, after a new one is complete.
 * @module
 */
import { IoError, TorchError } from "../errors.ts";
import { loadSafetensors, readSafetensorsMetadata, saveSafetensors } from "../torch/safetensors.ts";
import type { Module } from "../nn/module.ts";
import type { ParamOptimizer } from "../optim/adamw.ts";
import { cuda, getRngState, setRngState } from "../torch/runtime.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";

/** The format tag written into every checkpoint's metadata. */
export const CHECKPOINT_FORMAT = "layerlock-checkpoint-1";

/** What a checkpoint restores besides tensors. */
export interface CheckpointMeta {
  /** The number of optimizer steps completed. */
  step: number;
  /** The run's configuration (JSON). */
  config: unknown;
  /** The data sampler's state (JSON). */
  data: unknown;
  /** Further state (JSON), e.g. of a freezing schedule. */
  extra?: unknown;
}

/** The file name of the checkpoint of a step. */
export function checkpointName(step: number): string {
  return `step_${String(step).padStart(7, "0")}.safetensors`;
}

/** Checkpoint files in a directory, oldest first. */
export function listCheckpoints(dir: string): string[] {
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(dir)].filter((e) => e.isFile && /^step_\d+\.safetensors$/.test(e.name)).map((
      e,
    ) => e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new IoError(dir, `cannot list the checkpoints in ${dir}: ${(e as Error).message}`, { cause: e });
    }
  }
  return names.sort().map((n) => `${dir}/${n}`);
}

/** Saves modules (by key), optimizer and RNG state with `meta` into `dir`; keeps the newest `keep` files. */
export function saveCheckpoint(
  dir: string,
  modules: Record<string, Module>,
  opt: ParamOptimizer,
  meta: CheckpointMeta,
  keep = 3,
): string {
  Deno.mkdirSync(dir, { recursive: true });
  const path = `${dir}/${checkpointName(meta.step)}`;
  scope(() => {
    const tensors: Record<string, Tensor> = {};
    for (const [key, m] of Object.entries(modules)) {
      for (const [k, t] of Object.entries(m.stateDict())) tensors[`${key}.${k}`] = t;
    }
    for (const [k, t] of Object.entries(opt.stateDict())) tensors[`optim.${k}`] = t;
    tensors["rng.cpu"] = getRngState();
    if (cuda.isAvailable()) tensors["rng.cuda"] = getRngState("cuda");
    saveSafetensors(path, tensors, {
      format: CHECKPOINT_FORMAT,
      step: String(meta.step),
      config: JSON.stringify(meta.config),
      data: JSON.stringify(meta.data),
      extra: JSON.stringify(meta.extra ?? null),
    });
  });
  const all = listCheckpoints(dir);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) Deno.removeSync(old);
  return path;
}

/** A checkpoint's step and extra state, read from its header alone (no tensor is loaded). */
export function readCheckpointMeta(path: string): { step: number; extra: unknown } {
  const metadata = readSafetensorsMetadata(path);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new TorchError(
      "readCheckpointMeta",
      `${path} is not a layerlock checkpoint (format '${metadata.format}')`,
    );
  }
  return { step: Number(metadata.step), extra: JSON.parse(metadata.extra ?? "null") };
}

/** Reads a checkpoint's metadata and restores modules (by key), optimizer and RNG state from it. */
export function loadCheckpoint(
  path: string,
  modules: Record<string, Module>,
  opt: ParamOptimizer,
): CheckpointMeta {
  return scope(() => {
    const { tensors, metadata } = loadSafetensors(path);
    if (metadata.format !== CHECKPOINT_FORMAT) {
      throw new TorchError(
        "loadCheckpoint",
        `${path} is not a layerlock checkpoint (format '${metadata.format}')`,
      );
    }
    const sds: Record<string, Record<string, Tensor>> = {}, optSd: Record<string, Tensor> = {};
    for (const key of Object.keys(modules)) sds[key] = {};
    for (const [k, t] of Object.entries(tensors)) {
      const dot = k.indexOf(".");
      const key = k.slice(0, dot), rest = k.slice(dot + 1);
      if (key === "optim") optSd[rest] = t;
      else if (key in sds) sds[key][rest] = t;
      else if (key !== "rng") throw new TorchError("loadCheckpoint", `${path}: unexpected tensor '${k}'`);
    }
    for (const [key, m] of Object.entries(modules)) {
      try {
        m.loadStateDict(sds[key]);
      } catch (e) {
        throw new TorchError("loadCheckpoint", `${path}: '${key}' does not match: ${(e as Error).message}`);
      }
    }
    opt.loadStateDict(optSd);
    if (tensors["rng.cpu"]) setRngState(tensors["rng.cpu"]);
    if (tensors["rng.cuda"] && cuda.isAvailable()) setRngState(tensors["rng.cuda"], "cuda");
    return {
      step: Number(metadata.step),
      config: JSON.parse(metadata.config),
      data: JSON.parse(metadata.data),
      extra: JSON.parse(metadata.extra ?? "null"),
    };
  });
}
