/**
 * The import workflow (`./layerlock import SOURCE --name NAME`): weights from a Hugging Face VideoMAE folder
 * (`hf.ts`), a VideoMAE/VideoMAEv2 torch.save checkpoint (`pth.ts`) or one of our own runs or checkpoints,
 * made into a run folder, `runs/NAME/` with `config.json` and `checkpoints/step_0000000.safetensors`, that
 * every command takes (`probe --run NAME`, `embed --run NAME`, `export --run NAME`).
 *
 * The architecture is the source's, never guessed: the configuration is built from what the source records
 * (`model.*`), and the model that configuration describes must then take every tensor by name and shape — a
 * tensor that maps to nothing, a missing one or a shape that disagrees is a DataError naming the source's key.
 * The parts a source lacks on purpose (an encoder-only checkpoint's decoder; the final norm of a model that
 * pools with `fc_norm`) are initialised fresh, and the output says so. Another clip (`frames`, `size`) than
 * the source's rebuilds a fixed position table for the new token grid (exact) or resizes a learned one
 * (trilinear over (T, H, W), `pos_table.ts`), and says which.
 *
 * The checkpoint is written in the project's format (src/train/checkpoint.ts: `model.*` tensors, metadata
 * `format`, `step` "0", `config`, `data`, `extra`, and the CRC-32 `checksum` and `configChecksum`), so
 * `verifyCheckpoint`, `readCheckpointConfig` and `loadModelCheckpoint` take it. It holds no optimiser state: it
 * is a starting point (`train --init`), not a run to resume.
 * @module
 */
import { ConfigError, DataError, IoError, LayerlockError, TorchError } from "../errors.ts";
import { modelConfig, parseConfig, setPath, type TrainConfig } from "../config.ts";
import { VideoMAE } from "../models/video_mae.ts";
import { getRngState, manualSeed, setRngState } from "../torch/runtime.ts";
import { loadSafetensors, readSafetensorsMetadata } from "../torch/safetensors.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import {
  CHECKPOINT_FORMAT,
  readCheckpointConfig,
  saveModelCheckpoint,
  verifyCheckpoint,
} from "../train/checkpoint.ts";
import { newestIntact, RunFolder } from "../train/run_folder.ts";
import { isHfFolder, readHfFolder } from "./hf.ts";
import { type Grid, resizePosEmbed } from "./pos_table.ts";
import { readPth } from "./pth.ts";
import { asF32, disposeSource, type FreshPart, type SourceWeights, usage } from "./source.ts";
import { isDecoderName } from "./videomae_names.ts";

/** Options of {@link importWeights}. */
export interface ImportOptions {
  /** The run's name: it is written to `<root>/<name>/`, which must not exist yet (or be empty). */
  name: string;
  /** Frames per clip of the run (default: the source's, else VideoMAE's 16). */
  frames?: number;
  /** Frame size of the run (default: the source's, else VideoMAE's 224). */
  size?: number;
  /** Further configuration keys (`--set key=value`, in order); a `model.*` key the source records is refused. */
  set?: [string, unknown][];
  /** Run a Hugging Face model at this LayerNorm eps instead of the one its config.json records. */
  layerNormEps?: number;
  /** A `.pth` with a learned position table: the clip length it was trained for (default 16). */
  sourceFrames?: number;
  /** Where runs live (default `runs`). */
  root?: string;
}

/** What {@link importWeights} made. */
export interface ImportResult {
  /** The run folder. */
  runDir: string;
  /** Its checkpoint. */
  checkpoint: string;
  /** Its configuration. */
  cfg: TrainConfig;
  /** What was read, dropped, initialised fresh or rebuilt, one line each. */
  lines: string[];
}

/** VideoMAE's clip, for a source that does not record one (its fixed position table is rebuilt for any clip). */
const VIDEOMAE_CLIP = { frames: 16, size: 224 };

function stat(path: string): Deno.FileInfo {
  try {
    return Deno.statSync(path);
  } catch (e) {
    throw new IoError(path, `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** Our own run or checkpoint as a source: its `model.*` tensors and its whole configuration. */
function readLayerlock(path: string, checkpoint: string): SourceWeights {
  verifyCheckpoint(checkpoint);
  const cfg = readCheckpointConfig(checkpoint);
  const step = readSafetensorsMetadata(checkpoint).step ?? "?";
  const tensors = new Map<string, { tensor: Tensor; from: string }>();
  const { tensors: all } = loadSafetensors(checkpoint);
  for (const [k, t] of Object.entries(all)) {
    if (k.startsWith("model.")) tensors.set(k.slice(6), { tensor: asF32(t), from: k });
    else t.dispose();
  }
  const { name: _n, ...rest } = JSON.parse(JSON.stringify(cfg)) as Record<string, unknown>;
  const mc = modelConfig(cfg);
  const model = { ...(rest.model as Record<string, unknown>) };
  const grid: Grid = [mc.frames / mc.tubelet, mc.height / mc.patch, mc.width / mc.patch];
  return {
    format: "layerlock",
    path,
    model,
    recorded: new Set(Object.keys(model).map((k) => `model.${k}`)),
    geometry: { frames: cfg.data.frames, size: cfg.data.size },
    learnedGrid: cfg.model.posEmbed === "learned" ? grid : null,
    config: rest,
    tensors,
    unmapped: [],
    dropped: new Map(),
    mayLack: new Map<FreshPart, string>(),
    sourceName: (ours) => `model.${ours}`,
    notes: [
      `copied the model weights of ${checkpoint} (step ${step}); its optimiser state and LayerLock heads are not copied`,
    ],
  };
}

/** Reads SOURCE in whichever format it is. */
function readSource(source: string, o: ImportOptions): SourceWeights {
  const info = stat(source);
  const path = source.replace(/\/+$/, "");
  if (info.isDirectory) {
    if (isHfFolder(path)) {
      return readHfFolder(path, { layerNormEps: o.layerNormEps });
    }
    const run = new RunFolder(path);
    const checkpoints = run.checkpoints();
    if (checkpoints.length) {
      const warnings: string[] = [];
      const src = readLayerlock(path, newestIntact(checkpoints, (m) => warnings.push(m)));
      src.notes.unshift(...warnings);
      return src;
    }
    throw new DataError(
      path,
      `${path} is neither a Hugging Face model folder (config.json beside model.safetensors or ` +
        "pytorch_model.bin) nor a run folder (checkpoints/step_*.safetensors)",
    );
  }
  if (path.endsWith(".safetensors")) {
    let meta: Record<string, string>;
    try {
      meta = readSafetensorsMetadata(path);
    } catch (e) {
      if (!(e instanceof LayerlockError)) throw e;
      throw new DataError(path, `${path} does not read as safetensors: ${e.message.replace(/^\w+: /, "")}`, {
        cause: e,
      });
    }
    if (meta.format === CHECKPOINT_FORMAT) return readLayerlock(path, path);
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".";
    if (isHfFolder(dir)) return readHfFolder(dir, { layerNormEps: o.layerNormEps });
    throw new DataError(
      path,
      `${path} is a safetensors file with no config.json beside it: name the Hugging Face folder (config.json + ` +
        "model.safetensors), so the architecture is read rather than guessed",
    );
  }
  if (path.endsWith("config.json")) {
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".";
    if (isHfFolder(dir)) return readSource(dir, o);
  }
  return readPth(path, { sourceFrames: o.sourceFrames });
}

/** The run's raw configuration: the source's, the clip, then `--set`; a recorded `model.*` key may not change. */
function buildConfig(src: SourceWeights, o: ImportOptions, lines: string[]): TrainConfig {
  const raw: Record<string, unknown> = JSON.parse(JSON.stringify(src.config));
  raw.name = o.name;
  raw.model = { ...(raw.model as Record<string, unknown> ?? {}), ...src.model };
  const data = { ...(raw.data as Record<string, unknown> ?? {}) };
  const recordedClip = src.geometry;
  data.frames = o.frames ?? recordedClip?.frames ?? VIDEOMAE_CLIP.frames;
  data.size = o.size ?? recordedClip?.size ?? VIDEOMAE_CLIP.size;
  raw.data = data;
  for (const [key, value] of o.set ?? []) {
    if (key === "name") usage("set the run's name with --name");
    const modelKey = key.startsWith("model.") ? key.slice(6) : null;
    if (
      modelKey !== null && src.recorded.has(key) &&
      JSON.stringify(src.model[modelKey]) !== JSON.stringify(value)
    ) {
      usage(`${key} is read from ${src.path} (${JSON.stringify(src.model[modelKey])}) and cannot be set`);
    }
    setPath(raw, key, value);
  }
  const m = raw.model as Record<string, unknown>;
  for (const k of ["encoderHeads", "decoderDim", "decoderDepth", "decoderHeads"]) {
    if (m[k] !== undefined) continue;
    const why = k.endsWith("Heads")
      ? `a .pth holds no head counts, and VideoMAE has no model of width ${
        k === "encoderHeads" ? m.encoderDim : m.decoderDim
      }`
      : `it has no decoder, and VideoMAE has no pretraining decoder for width ${m.encoderDim}`;
    usage(`${src.path} does not record model.${k} (${why}); pass --set model.${k}=N`);
  }
  const sizeFlag = o.size !== undefined ? "--size" : "the source's size",
    framesFlag = o.frames !== undefined ? "--frames" : "the source's frames";
  if ((data.size as number) % (m.patch as number)) {
    usage(`${sizeFlag} ${data.size} is not a multiple of the source's patch size ${m.patch}`);
  }
  if ((data.frames as number) % (m.tubelet as number)) {
    usage(`${framesFlag} ${data.frames} is not a multiple of the source's tubelet size ${m.tubelet}`);
  }
  if (!recordedClip && o.frames === undefined && o.size === undefined) {
    lines.push(
      `the source records no clip: ${data.frames} frames of ${data.size}×${data.size} (VideoMAE's; the fixed ` +
        "position table is built for any clip: --frames/--size choose another)",
    );
  }
  return parseConfig(raw, "imported configuration");
}

/** Builds the model of `cfg` on the CPU from a fixed seed, leaving torch's generator as it was. */
function buildModel(cfg: TrainConfig): VideoMAE {
  const state = getRngState();
  try {
    manualSeed(cfg.seed);
    return new VideoMAE(modelConfig(cfg), "cpu");
  } catch (e) {
    if (e instanceof TorchError) throw new ConfigError("import", `the model cannot be built: ${e.message}`);
    throw e;
  } finally {
    setRngState(state);
    state.dispose();
  }
}

/**
 * The state dict to load: every tensor of the source checked against the model (name and shape), a learned
 * table resized to the model's grid; our names it lacks on purpose are left out (fresh). Throws a DataError
 * naming the source's keys otherwise.
 */
function matchSource(src: SourceWeights, model: VideoMAE, lines: string[]): Record<string, Tensor> {
  const own = model.stateDict();
  const problems: string[] = [];
  for (const name of src.unmapped) problems.push(`${name} does not map to any parameter of ours`);
  for (const [ours, { tensor, from }] of src.tensors) {
    if (!(ours in own)) {
      problems.push(`${from} does not map to a parameter of the model ${src.path} describes`);
      continue;
    }
    if (ours === "encoder.pos_embed" && src.learnedGrid) continue; // resized below
    const a = own[ours].shape, b = tensor.shape;
    if (a.length !== b.length || a.some((v, i) => v !== b[i])) {
      problems.push(
        `${from} is [${b.join(", ")}], but the model ${src.path} describes has [${a.join(", ")}] there`,
      );
    }
  }
  const hasDecoder = [...src.tensors.keys()].some(isDecoderName);
  const fresh = new Set<FreshPart>();
  for (const ours of Object.keys(own)) {
    if (src.tensors.has(ours)) continue;
    if (isDecoderName(ours) && !hasDecoder && src.mayLack.has("decoder")) fresh.add("decoder");
    else if (ours.startsWith("encoder.norm.") && src.mayLack.has("encoder.norm")) fresh.add("encoder.norm");
    else problems.push(`${src.path} lacks ${src.sourceName(ours)}`);
  }
  if (problems.length) {
    const more = problems.length > 4 ? ` (and ${problems.length - 4} more)` : "";
    throw new DataError(src.path, `${problems.slice(0, 4).join("; ")}${more}`);
  }
  for (const part of fresh) lines.push(src.mayLack.get(part)!);
  const sd: Record<string, Tensor> = {};
  for (const [ours, { tensor }] of src.tensors) sd[ours] = tensor;
  const pos = src.tensors.get("encoder.pos_embed");
  if (pos && src.learnedGrid) {
    const to = model.encoder.grid, from = src.learnedGrid;
    if (from.some((v, i) => v !== to[i])) {
      sd["encoder.pos_embed"] = resizePosEmbed(pos.tensor, from, to); // in the caller's scope
      lines.push(
        `learned position table interpolated (trilinear over T×H×W, as VideoMAEv2's fine-tuning resizes it) ` +
          `from ${from.join("×")} to ${to.join("×")} tokens`,
      );
    } else if (pos.tensor.shape.length !== 3 || pos.tensor.shape[1] !== to[0] * to[1] * to[2]) {
      throw new DataError(
        src.path,
        `${pos.from} is [${pos.tensor.shape.join(", ")}], not [1, ${to.join("·")}, D]`,
      );
    }
  }
  return sd;
}

/** Whether a folder exists and holds anything. */
function occupied(dir: string): boolean {
  try {
    for (const _ of Deno.readDirSync(dir)) return true;
    return false;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    return true; // a file, or unreadable: not ours to write into
  }
}

/**
 * Imports `source` (a Hugging Face VideoMAE folder, a VideoMAE `.pth`, or one of our runs or checkpoints) as
 * the run `<root>/<name>`. Usage mistakes are ConfigErrors; a source that is not what it should be is a
 * DataError (or an IoError when it cannot be read) naming the file and key. Leaves no tensor alive.
 */
export function importWeights(source: string, o: ImportOptions): ImportResult {
  const root = o.root ?? "runs";
  const runDir = `${root}/${o.name}`;
  if (occupied(runDir)) usage(`${runDir} already exists; choose another --name (an import never overwrites)`);
  const src = readSource(source, o);
  try {
    const lines = [...src.notes];
    const cfg = buildConfig(src, o, lines);
    const model = buildModel(cfg);
    try {
      scope(() => {
        const sd = matchSource(src, model, lines);
        model.loadStateDict(sd, { strict: false });
      });
      const clip = src.geometry;
      if (clip && (clip.frames !== cfg.data.frames || clip.size !== cfg.data.size) && !src.learnedGrid) {
        lines.push(
          `clip ${cfg.data.frames}×${cfg.data.size}² instead of the source's ${clip.frames}×${clip.size}²: the fixed ` +
            `position table (${cfg.model.posEmbed}) is rebuilt for ${
              model.encoder.grid.join("×")
            } tokens (exact)`,
        );
      }
      for (const [reason, names] of src.dropped) {
        lines.push(
          `dropped ${names.length} tensor${names.length > 1 ? "s" : ""}: ${reason} (${
            names.slice(0, 2).join(", ")
          }${names.length > 2 ? ", …" : ""})`,
        );
      }
      const folder = new RunFolder(runDir);
      folder.writeConfig(cfg);
      const checkpoint = saveModelCheckpoint(runDir, model, cfg);
      return { runDir, checkpoint, cfg, lines };
    } finally {
      model.dispose();
    }
  } finally {
    disposeSource(src);
  }
}

/**
 * The `model.*` keys `source` (anything {@link importWeights} reads) records, e.g. `{ encoderDim: 768, ... }`:
 * the architecture a run that starts from it (`train --init`) takes unless its flags say otherwise.
 */
export function sourceArchitecture(source: string): Record<string, unknown> {
  const src = readSource(source, { name: "init" });
  try {
    const out: Record<string, unknown> = {};
    for (const key of src.recorded) if (key.startsWith("model.")) out[key.slice(6)] = src.model[key.slice(6)];
    return out;
  } finally {
    disposeSource(src);
  }
}

/**
 * Loads the weights of `source` into `model`, the freshly built model of the run `cfg` (`train --init`): the
 * architecture `cfg` gives must be the one the source records (a ConfigError names each `model.*` key that
 * differs); a clip of another size than the source's rebuilds a fixed position table (exact) or interpolates a
 * learned one, as `import` does. Parts the source lacks on purpose (an encoder-only checkpoint's decoder) keep
 * their fresh initialisation. Returns what was read and decided, one line each; leaves no tensor alive.
 */
export function loadInitWeights(source: string, model: VideoMAE, cfg: TrainConfig): string[] {
  const src = readSource(source, { name: cfg.name, frames: cfg.data.frames, size: cfg.data.size });
  try {
    // the run's model section, with the sizes its preset gives filled in (in the configuration's terms)
    const ours: Record<string, unknown> = {
      ...(modelConfig(cfg) as unknown as Record<string, unknown>),
      ...cfg.model,
    };
    const differ = [...src.recorded].filter((k) => k.startsWith("model.")).map((k) => k.slice(6)).filter((
      k,
    ) => k in ours && JSON.stringify(src.model[k]) !== JSON.stringify(ours[k]));
    if (differ.length) {
      const what = differ.map((k) =>
        `model.${k} (${JSON.stringify(src.model[k])} there, ${JSON.stringify(ours[k])} here)`
      );
      throw new ConfigError(
        "init",
        `--init ${source} records another architecture than this run's: ${
          what.join("; ")
        }; drop the flags that ` +
          "change it (a run started from a source takes its architecture)",
      );
    }
    const lines = [...src.notes];
    scope(() => model.loadStateDict(matchSource(src, model, lines), { strict: false }));
    return lines;
  } finally {
    disposeSource(src);
  }
}
