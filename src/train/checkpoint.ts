/**
 * Training checkpoints: one safetensors file per save, `runs/<name>/checkpoints/step_<N>.safetensors`, holding
 * the weights of each module under its key (`model.<name>`, loadable by name in PyTorch after stripping the
 * prefix; `heads.<name>` for LayerLock's latent heads), the optimizer
 * state (`optim.<param>.exp_avg|exp_avg_sq|step`), the generator states (`rng.cpu`, and `rng.cuda` on a CUDA
 * host), and in its metadata the
 * step, the configuration, the data sampler's state and any extra state (e.g. a schedule's), and checksums:
 * `checksum`, the CRC-32 of every tensor's bytes in name order (Python: `zlib.crc32` over them), and
 * `configChecksum`, that of the configuration's JSON. `verifyCheckpoint` (and so loading and resuming) checks
 * both: a checkpoint whose bytes changed after it was written is refused, naming the file.
 * Writes are atomic, and only the oldest checkpoints beyond `keep` are deleted, after a new one is complete; a
 * failed write (disk full, permissions) is an IoError and leaves every earlier checkpoint as it was.
 * @module
 */
import { IoError, LayerlockError, TorchError } from "../errors.ts";
import { crc32, crc32Tag } from "../checksum.ts";
import { loadSafetensors, readSafetensorsMetadata, saveSafetensors } from "../torch/safetensors.ts";
import type { Module } from "../nn/module.ts";
import type { ParamOptimizer } from "../optim/adamw.ts";
import { cuda, getRngState, setRngState } from "../torch/runtime.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import type { Device } from "../torch/dtype.ts";
import { modelConfig, parseConfig, type TrainConfig } from "../config.ts";
import { VideoMAE } from "../models/video_mae.ts";

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

/** The step a checkpoint file was saved at, from its name (`step_0000120.safetensors` → 120). */
export function checkpointStep(path: string): number {
  const m = path.match(/(?:^|\/)step_(\d+)\.safetensors$/);
  if (!m) throw new IoError(path, `${path} is not named as a checkpoint (step_<N>.safetensors)`);
  return Number(m[1]);
}

/** Checkpoint files in a directory, oldest first. */
export function listCheckpoints(dir: string): string[] {
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(dir)].filter((e) => e.isFile && /^step_\d+\.safetensors$/.test(e.name)).map((
      e,
    ) => e.name);
  } catch (e) {
    // no folder (or a file where the run folder would be: writing to it fails later, naming it): no checkpoints
    if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory)) {
      throw new IoError(dir, `cannot list the checkpoints in ${dir}: ${(e as Error).message}`, { cause: e });
    }
  }
  return names.sort().map((n) => `${dir}/${n}`);
}

/**
 * Writes `tensors` to `path` in the checkpoint format: the step, configuration, data and extra state of `meta`,
 * and the CRC-32s of the tensor bytes (in name order) and of the configuration, which `verifyCheckpoint` checks.
 * A failed write is an IoError naming the file, ending with `note`.
 */
function writeCheckpointFile(
  path: string,
  tensors: Record<string, Tensor>,
  meta: CheckpointMeta,
  note: string,
): void {
  let crc = 0;
  for (const name of Object.keys(tensors).sort()) crc = crc32(tensors[name].toBytes(), crc);
  const config = JSON.stringify(meta.config);
  try {
    saveSafetensors(path, tensors, {
      format: CHECKPOINT_FORMAT,
      step: String(meta.step),
      config,
      data: JSON.stringify(meta.data ?? null),
      extra: JSON.stringify(meta.extra ?? null),
      checksum: crc32Tag(crc),
      configChecksum: crc32Tag(crc32(new TextEncoder().encode(config))),
    });
  } catch (e) {
    if (!(e instanceof LayerlockError)) throw e;
    throw new IoError(
      path,
      `cannot write the checkpoint ${path}: ${e.message.replace(/^saveSafetensors: /, "")}${note}`,
      { cause: e },
    );
  }
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
    writeCheckpointFile(path, tensors, meta, "; the earlier checkpoints are intact");
  });
  const all = listCheckpoints(dir);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) Deno.removeSync(old);
  return path;
}

/**
 * Writes a model-only checkpoint of step 0 into `dir/checkpoints/` (what `import` makes): the names, metadata and
 * checksums of `saveCheckpoint`, without optimiser or generator state; verified as read back. Returns its path.
 */
export function saveModelCheckpoint(dir: string, model: Module, config: TrainConfig): string {
  const ckDir = `${dir}/checkpoints`;
  const path = `${ckDir}/${checkpointName(0)}`;
  try {
    Deno.mkdirSync(ckDir, { recursive: true });
  } catch (e) {
    throw new IoError(ckDir, `cannot create ${ckDir}: ${(e as Error).message}`, { cause: e });
  }
  const tensors: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(model.stateDict())) tensors[`model.${k}`] = t;
  writeCheckpointFile(path, tensors, { step: 0, config, data: null }, "");
  verifyCheckpoint(path);
  return path;
}

/**
 * Checks that a checkpoint reads back as it was written: a layerlock checkpoint whose tensor bytes (in name
 * order) and configuration have the CRC-32s its metadata records. Throws an IoError naming the file and what
 * differs. Checkpoints written before checksums existed are checked for structure only (every tensor's bytes
 * present). Reads the whole file; makes no tensor.
 */
export function verifyCheckpoint(path: string): void {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch (e) {
    throw new IoError(path, `cannot read the checkpoint ${path}: ${(e as Error).message}`, { cause: e });
  }
  const bad = (what: string): never => {
    throw new IoError(path, `the checkpoint ${path} ${what}`);
  };
  if (bytes.length < 8) bad(`is ${bytes.length} bytes long, too short for a safetensors file`);
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  if (!(n > 0 && 8 + n <= bytes.length)) bad(`has a header length (${n}) beyond its ${bytes.length} bytes`);
  let header: Record<string, { data_offsets?: [number, number] } | Record<string, string>>;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    return bad(`has an unreadable header (${(e as Error).message})`);
  }
  const meta = (header.__metadata__ ?? {}) as Record<string, string>;
  if (meta.format !== CHECKPOINT_FORMAT) bad(`is not a layerlock checkpoint (format '${meta.format}')`);
  const data = bytes.subarray(8 + n);
  let crc = 0;
  for (const name of Object.keys(header).filter((k) => k !== "__metadata__").sort()) {
    const [b, e] = (header[name] as { data_offsets?: [number, number] }).data_offsets ?? [NaN, NaN];
    if (!(Number.isInteger(b) && Number.isInteger(e) && 0 <= b && b <= e && e <= data.length)) {
      bad(`is cut or corrupt: tensor '${name}' lies outside its ${data.length} data bytes`);
    }
    crc = crc32(data.subarray(b, e), crc);
  }
  if (meta.checksum !== undefined && meta.checksum !== crc32Tag(crc)) {
    bad(
      `is corrupt: its tensor data has ${
        crc32Tag(crc)
      }, but ${meta.checksum} was recorded when it was written`,
    );
  }
  if (meta.configChecksum !== undefined) {
    const c = crc32Tag(crc32(new TextEncoder().encode(meta.config ?? "")));
    if (c !== meta.configChecksum) {
      bad(`is corrupt: its configuration has ${c}, but ${meta.configChecksum} was recorded`);
    }
  }
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
  verifyCheckpoint(path);
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

/** The training configuration a checkpoint was written with (its metadata), validated. */
export function readCheckpointConfig(path: string): TrainConfig {
  const metadata = readSafetensorsMetadata(path);
  if (metadata.config === undefined) {
    throw new IoError(path, `${path} records no training configuration (not a layerlock checkpoint?)`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(metadata.config);
  } catch (e) {
    throw new IoError(path, `${path}: its configuration is not JSON (${(e as Error).message})`, { cause: e });
  }
  return parseConfig(raw, `${path} metadata`);
}

/**
 * The video MAE of a checkpoint, on `device`: built from `cfg` (default: the configuration the checkpoint
 * records) and loaded with the checkpoint's `model.*` tensors. Whatever was made is freed when it fails.
 */
export function loadModelCheckpoint(
  path: string,
  device: Device,
  cfg: TrainConfig = readCheckpointConfig(path),
): { model: VideoMAE; cfg: TrainConfig } {
  const model = new VideoMAE(modelConfig(cfg), device);
  try {
    scope(() => {
      const { tensors } = loadSafetensors(path, { device });
      const sd: Record<string, Tensor> = {};
      for (const [k, t] of Object.entries(tensors)) if (k.startsWith("model.")) sd[k.slice(6)] = t;
      if (Object.keys(sd).length === 0) throw new IoError(path, `${path} holds no model weights (model.*)`);
      model.loadStateDict(sd);
    });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, cfg };
}
