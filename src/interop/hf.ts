/**
 * Hugging Face folders of transformers' VideoMAE (`VideoMAEModel`, `VideoMAEForPreTraining`, and the encoder of
 * `VideoMAEForVideoClassification`): `config.json` beside `model.safetensors` (or its shards,
 * `model.safetensors.index.json`, or `pytorch_model.bin`).
 *
 * Reading ({@link readHfFolder}): the architecture comes from config.json — a key it omits has transformers'
 * default, as `from_pretrained` reads it — and every tensor must then have the name and shape that
 * architecture gives it (`videomae_names.ts` maps the names). transformers' `layer_norm_eps` becomes the run's
 * `model.layerNormEps`, so the imported model computes what transformers computes; `layerNormEps` overrides it
 * (VideoMAE's own models use 1e-6, while the conversions on the Hub record transformers' default, 1e-12).
 *
 * Writing ({@link writeHfFolder}): config.json and model.safetensors as `save_pretrained` writes them, for
 * `VideoMAEForPreTraining` (encoder and decoder) or `VideoMAEModel` (the encoder alone), so that the class's
 * `from_pretrained` loads them with no missing or unexpected key. Our attention has no key bias: it is written
 * as zeros (transformers 5's biased key Linear).
 * @module
 */
import { DataError, IoError, LayerlockError } from "../errors.ts";
import type { ModelSize } from "../models/presets.ts";
import { zeros } from "../torch/creation.ts";
import { cat } from "../torch/functional.ts";
import { loadSafetensors, saveSafetensors } from "../torch/safetensors.ts";
import type { Tensor } from "../torch/tensor.ts";
import { readTorchFile } from "./torch_file.ts";
import {
  asF32,
  blockIndices,
  depthFrom,
  disposeSource,
  drop,
  type FreshPart,
  positiveInt,
  type SourceWeights,
} from "./source.ts";
import { fromHfName, hfMapping } from "./videomae_names.ts";

/** transformers' `VideoMAEConfig` defaults: what `from_pretrained` reads for a key config.json omits. */
export const HF_DEFAULTS: Readonly<Record<string, unknown>> = {
  image_size: 224,
  patch_size: 16,
  num_channels: 3,
  num_frames: 16,
  tubelet_size: 2,
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  hidden_act: "gelu",
  layer_norm_eps: 1e-12,
  qkv_bias: true,
  use_mean_pooling: true,
  decoder_num_attention_heads: 6,
  decoder_hidden_size: 384,
  decoder_num_hidden_layers: 4,
  decoder_intermediate_size: 1536,
  norm_pix_loss: true,
};

/** transformers' activations and our `model.gelu` (the tanh approximations are one formula). */
const ACTIVATIONS: Record<string, "exact" | "tanh"> = {
  gelu: "exact",
  gelu_pytorch_tanh: "tanh",
  gelu_new: "tanh",
};

/** The weight files of a folder, in the order tried. */
const WEIGHT_FILES = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"];

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Whether `dir` looks like a Hugging Face model folder (config.json beside weights). */
export function isHfFolder(dir: string): boolean {
  return exists(`${dir}/config.json`) && WEIGHT_FILES.some((f) => exists(`${dir}/${f}`));
}

/** Options of {@link readHfFolder}. */
export interface HfReadOptions {
  /** Run the model at this LayerNorm eps instead of the one its config.json records. */
  layerNormEps?: number;
}

function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new IoError(path, `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const v = JSON.parse(text);
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new SyntaxError("not a JSON object");
    return v as Record<string, unknown>;
  } catch (e) {
    throw new DataError(path, `${path} is not a JSON object (${(e as Error).message})`, { cause: e });
  }
}

/** A square side from an int or [h, w] (image_size, patch_size); a DataError for a non-square one. */
function side(where: string, key: string, v: unknown): number {
  if (Array.isArray(v)) {
    if (v.length !== 2 || v[0] !== v[1]) {
      throw new DataError(
        where,
        `${where}: ${key} ${JSON.stringify(v)} is not square; runs hold square frames`,
      );
    }
    return positiveInt(where, key, v[0]);
  }
  return positiveInt(where, key, v);
}

/** The tensors of a folder's weight file(s) by transformers' names, as float32; a DataError names a bad file. */
function readWeights(dir: string): { tensors: Record<string, Tensor>; file: string } {
  const load = (path: string): Record<string, Tensor> => {
    try {
      return loadSafetensors(path).tensors;
    } catch (e) {
      if (!(e instanceof LayerlockError)) throw e;
      throw new DataError(path, `${path} does not read as safetensors: ${e.message.replace(/^\w+: /, "")}`, {
        cause: e,
      });
    }
  };
  const out: Record<string, Tensor> = {};
  const take = (ts: Record<string, Tensor>) => {
    for (const [k, t] of Object.entries(ts)) out[k] = asF32(t);
  };
  try {
    if (exists(`${dir}/model.safetensors`)) {
      take(load(`${dir}/model.safetensors`));
      return { tensors: out, file: `${dir}/model.safetensors` };
    }
    if (exists(`${dir}/model.safetensors.index.json`)) {
      const index = `${dir}/model.safetensors.index.json`;
      const map = readJson(index).weight_map;
      if (typeof map !== "object" || map === null) {
        throw new DataError(index, `${index} has no weight_map`);
      }
      for (const shard of new Set(Object.values(map as Record<string, string>))) {
        if (typeof shard !== "string" || shard.includes("/")) {
          throw new DataError(index, `${index} names a shard '${shard}' outside its folder`);
        }
        take(load(`${dir}/${shard}`));
      }
      return { tensors: out, file: index };
    }
    take(readTorchFile(`${dir}/pytorch_model.bin`));
    return { tensors: out, file: `${dir}/pytorch_model.bin` };
  } catch (e) {
    for (const t of Object.values(out)) t.dispose();
    throw e;
  }
}

/**
 * Reads a Hugging Face VideoMAE folder: its architecture from config.json and its tensors in our names. A
 * `model_type` other than `videomae`, a value we cannot represent (non-square frames, other channels than 3,
 * another activation or LayerNorm eps, a decoder MLP of another ratio than the encoder's) is a DataError naming
 * the key; so is a tensor name that maps to nothing of ours. Tensors are float32 on the CPU, owned by the result
 * (`disposeSource`).
 */
export function readHfFolder(dir: string, o: HfReadOptions = {}): SourceWeights {
  const notes: string[] = [];
  const cfg = readHfConfig(`${dir}/config.json`, o, notes);
  const { tensors: files, file } = readWeights(dir);
  const base = Object.keys(files).some((n) => n.startsWith("videomae.")) ? "videomae." : "";
  const src = hfSource(dir, cfg, base, notes);
  try {
    mapHfWeights(src, files, file, base);
    checkAgainstConfig(src, cfg, file, base);
    src.mayLack.set("decoder", "the source has no decoder (a VideoMAEModel): decoder initialised fresh");
    if (cfg.meanPooling) {
      src.mayLack.set(
        "encoder.norm",
        "the source has no final norm (use_mean_pooling: transformers' last_hidden_state is un-normalised): " +
          "encoder.norm initialised fresh (unit weight, zero bias), so our tokens are its tokens layer-normalised",
      );
    }
    return src;
  } catch (e) {
    disposeSource(src);
    throw e;
  } finally {
    for (const t of Object.values(files)) t.dispose();
  }
}

/** What config.json says of a model: the model section, the clip, other keys, and what the tensors must match. */
interface HfConfig {
  /** Its path (for messages). */
  path: string;
  /** The model section (`model.*` keys). */
  model: Record<string, unknown>;
  /** The clip it was made for (`num_frames`, `image_size`). */
  geometry: { frames: number; size: number };
  /** Configuration keys besides `model.*` (`target.normalize` from `norm_pix_loss`). */
  config: Record<string, unknown>;
  /** `use_mean_pooling`: the encoder has no final norm. */
  meanPooling: boolean;
  /** `intermediate_size`, the encoder's MLP width. */
  intermediate: number;
  /** `decoder_intermediate_size`, the decoder's MLP width. */
  decoderIntermediate: number;
}

/** A config.json's values by key, a key it omits read as transformers' default (and listed in `omitted`). */
interface ConfigValues {
  get(key: string): unknown;
  int(key: string): number;
  bool(key: string): boolean;
  /** The keys read at their default, as `key=value`, in the order read. */
  omitted: string[];
}

/** Reads `raw` (the config.json at `cfgPath`) key by key: a positive int or a boolean, or a DataError naming it. */
function configValues(cfgPath: string, raw: Record<string, unknown>): ConfigValues {
  const omitted: string[] = [];
  const get = (key: string): unknown => {
    if (key in raw) return raw[key];
    omitted.push(`${key}=${JSON.stringify(HF_DEFAULTS[key])}`);
    return HF_DEFAULTS[key];
  };
  return {
    get,
    int: (key) => positiveInt(cfgPath, key, get(key)),
    bool: (key) => {
      const v = get(key);
      if (typeof v !== "boolean") throw new DataError(cfgPath, `${cfgPath}: ${key} must be true or false`);
      return v;
    },
    omitted,
  };
}

/**
 * Reads and validates config.json into the model section: `model_type` must be `videomae`, the activation one
 * we run, the channels 3, the eps positive (run at `o.layerNormEps` when given, with a note), the frames and
 * patches square. Notes the keys it omits (transformers' defaults).
 */
function readHfConfig(cfgPath: string, o: HfReadOptions, notes: string[]): HfConfig {
  const raw = readJson(cfgPath);
  if (raw.model_type !== "videomae") {
    throw new DataError(
      cfgPath,
      `${cfgPath}: model_type is ${JSON.stringify(raw.model_type ?? null)}, not "videomae"; only VideoMAE ` +
        "models (VideoMAEModel, VideoMAEForPreTraining, VideoMAEForVideoClassification) can be imported",
    );
  }
  const { get, int, bool, omitted } = configValues(cfgPath, raw);
  const dim = int("hidden_size"), inter = int("intermediate_size");
  const gelu = activation(cfgPath, get("hidden_act"));
  if (int("num_channels") !== 3) {
    throw new DataError(
      cfgPath,
      `${cfgPath}: num_channels ${raw.num_channels}: runs take RGB clips (3 channels)`,
    );
  }
  const layerNormEps = runEps(cfgPath, get("layer_norm_eps"), o, notes);
  const model: Record<string, unknown> = {
    encoderDim: dim,
    layerNormEps,
    encoderDepth: int("num_hidden_layers"),
    encoderHeads: int("num_attention_heads"),
    mlpRatio: inter / dim,
    decoderDim: int("decoder_hidden_size"),
    decoderDepth: int("decoder_num_hidden_layers"),
    decoderHeads: int("decoder_num_attention_heads"),
    patch: side(cfgPath, "patch_size", get("patch_size")),
    tubelet: int("tubelet_size"),
    posEmbed: "videomae",
    qkvBias: bool("qkv_bias"),
    gelu,
  };
  const geometry = { frames: int("num_frames"), size: side(cfgPath, "image_size", get("image_size")) };
  const meanPooling = bool("use_mean_pooling");
  const config = { target: { normalize: bool("norm_pix_loss") } };
  const decoderIntermediate = int("decoder_intermediate_size");
  if (omitted.length) {
    notes.push(`config.json omits ${omitted.join(", ")}: transformers' defaults, as it reads them`);
  }
  return { path: cfgPath, model, geometry, config, meanPooling, intermediate: inter, decoderIntermediate };
}

/** Our `model.gelu` for config.json's `hidden_act`; a DataError for an activation we do not run. */
function activation(cfgPath: string, act: unknown): "exact" | "tanh" {
  const gelu = typeof act === "string" ? ACTIVATIONS[act] : undefined;
  if (!gelu) {
    throw new DataError(
      cfgPath,
      `${cfgPath}: hidden_act ${JSON.stringify(act)} is not one we run (gelu, gelu_pytorch_tanh, gelu_new)`,
    );
  }
  return gelu;
}

/**
 * The LayerNorm eps to run at: config.json's `layer_norm_eps` (a DataError unless a positive number), or
 * `o.layerNormEps` when given, noted when it differs.
 */
function runEps(cfgPath: string, eps: unknown, o: HfReadOptions, notes: string[]): number {
  if (typeof eps !== "number" || !(eps > 0)) {
    throw new DataError(
      cfgPath,
      `${cfgPath}: layer_norm_eps must be a positive number, got ${JSON.stringify(eps)}`,
    );
  }
  const layerNormEps = o.layerNormEps ?? eps; // the source's, unless the import is told otherwise
  if (layerNormEps !== eps) {
    notes.push(
      `layer_norm_eps ${eps} in config.json is run at ${layerNormEps} (--layer-norm-eps): features differ from ` +
        "transformers' by about eps / variance of each token",
    );
  }
  return layerNormEps;
}

/** A Hugging Face source of config.json's architecture, with no tensors yet; `base`: the encoder's prefix. */
function hfSource(dir: string, cfg: HfConfig, base: string, notes: string[]): SourceWeights {
  return {
    format: "hf",
    path: dir,
    model: cfg.model,
    recorded: new Set(Object.keys(cfg.model).map((k) => `model.${k}`)),
    geometry: cfg.geometry,
    learnedGrid: null,
    config: cfg.config,
    tensors: new Map(),
    unmapped: [],
    dropped: new Map(),
    mayLack: new Map<FreshPart, string>(),
    sourceName(ours: string): string {
      const m = hfMapping(ours, base);
      if (!m) return ours;
      return m.kind === "qkv" ? m.names.join(", ") : m.names[0];
    },
    notes,
  };
}

/**
 * Maps the weights into `src` under our names: a tensor moved leaves `files`; key biases and a classification
 * head are dropped, unknown names listed as unmapped, and the separate query, key and value weights joined into
 * our qkv weight (a DataError when one is missing or their shapes are not [D, D] alike).
 */
function mapHfWeights(src: SourceWeights, files: Record<string, Tensor>, file: string, base: string): void {
  const qkv = new Map<string, (string | undefined)[]>();
  for (const name of Object.keys(files)) {
    const r = fromHfName(name, base);
    if (r.kind === "keyBias") {
      drop(src, "key biases (softmax ignores them: dropped exactly)", name);
    } else if (r.kind === "classifier") {
      drop(src, "the classification head", name);
    } else if (r.kind === "unknown") {
      src.unmapped.push(name);
    } else if (r.part !== undefined) {
      const parts = qkv.get(r.ours) ?? [undefined, undefined, undefined];
      parts[r.part] = name;
      qkv.set(r.ours, parts);
    } else {
      src.tensors.set(r.ours, { tensor: files[name], from: name });
      delete files[name];
    }
  }
  for (const [ours, parts] of qkv) {
    const want = hfMapping(ours, base)!.names;
    const missing = want.filter((_, i) => parts[i] === undefined);
    if (missing.length) throw new DataError(src.path, `${file} lacks ${missing.join(", ")}`);
    const ts = parts.map((p) => files[p!]);
    const shapes = ts.map((t) => `[${t.shape.join(", ")}]`);
    if (new Set(shapes).size !== 1 || ts[0].shape.length !== 2) {
      throw new DataError(
        src.path,
        `${file}: ${want.join(", ")} have shapes ${shapes.join(", ")}; expected [D, D] each`,
      );
    }
    src.tensors.set(ours, { tensor: cat(ts, 0), from: want.join(", ") });
  }
}

/**
 * Checks the tensors against config.json: a decoder's MLP must have the encoder's ratio (ours does), and the
 * encoder must hold `num_hidden_layers` layers; a DataError otherwise.
 */
function checkAgainstConfig(src: SourceWeights, cfg: HfConfig, file: string, base: string): void {
  const { model, path: cfgPath, intermediate: inter, decoderIntermediate: decoderInter } = cfg;
  const dim = model.encoderDim as number;
  // The decoder's MLP runs at the encoder's ratio here: another width is refused (when there is a decoder).
  const hasDecoder = [...src.tensors.keys()].some((k) => k.startsWith("decoder."));
  if (hasDecoder && decoderInter !== Math.round((model.decoderDim as number) * (model.mlpRatio as number))) {
    throw new DataError(
      cfgPath,
      `${cfgPath}: decoder_intermediate_size ${decoderInter} is not the encoder's MLP ratio ` +
        `(${inter}/${dim}) times decoder_hidden_size ${model.decoderDim}; our decoder's MLP has the encoder's ratio`,
    );
  }
  const layerName = (i: number) => `${base}encoder.layer.${i}`;
  const depth = depthFrom(blockIndices(src.tensors.keys(), "encoder.blocks."), file, layerName);
  if (depth !== model.encoderDepth) {
    throw new DataError(
      src.path,
      `config.json's num_hidden_layers is ${model.encoderDepth}, but ${file} holds ${depth} layers (${
        layerName(0)
      }…${layerName(depth - 1)})`,
    );
  }
}

/** Which transformers class a folder is written for. */
export type HfClass = "VideoMAEForPreTraining" | "VideoMAEModel";

/** What {@link writeHfFolder} needs to know of the model. */
export interface HfModelSpec extends ModelSize {
  patch: number;
  tubelet: number;
  qkvBias: boolean;
  gelu: "exact" | "tanh";
  layerNormEps: number;
  frames: number;
  size: number;
  normalizeTarget: boolean;
}

/** transformers' config.json of a model (`VideoMAEConfig`'s keys, as `save_pretrained` writes them). */
export function hfConfig(m: HfModelSpec, cls: HfClass): Record<string, unknown> {
  return {
    architectures: [cls],
    model_type: "videomae",
    image_size: m.size,
    patch_size: m.patch,
    num_channels: 3,
    num_frames: m.frames,
    tubelet_size: m.tubelet,
    hidden_size: m.encoderDim,
    num_hidden_layers: m.encoderDepth,
    num_attention_heads: m.encoderHeads,
    intermediate_size: Math.round(m.encoderDim * m.mlpRatio),
    hidden_act: m.gelu === "tanh" ? "gelu_pytorch_tanh" : "gelu",
    hidden_dropout_prob: 0,
    attention_probs_dropout_prob: 0,
    initializer_range: 0.02,
    layer_norm_eps: m.layerNormEps,
    qkv_bias: m.qkvBias,
    use_mean_pooling: false,
    decoder_num_attention_heads: m.decoderHeads,
    decoder_hidden_size: m.decoderDim,
    decoder_num_hidden_layers: m.decoderDepth,
    decoder_intermediate_size: Math.round(m.decoderDim * m.mlpRatio),
    norm_pix_loss: m.normalizeTarget,
    dtype: "float32",
  };
}

/**
 * transformers' state dict of ours (`sd`: our names, e.g. `model.stateDict()`), for `cls`: the encoder under
 * `videomae.` beside the decoder (VideoMAEForPreTraining), or the encoder alone without prefix (VideoMAEModel).
 * The qkv weight is split in three; with q/v biases a zero key bias is added. A name transformers has no place
 * for is a DataError (the caller refuses learned position tables before). Tensors made here belong to the
 * current scope.
 */
export function toHfStateDict(sd: Record<string, Tensor>, cls: HfClass): Record<string, Tensor> {
  const base = cls === "VideoMAEForPreTraining" ? "videomae." : "";
  const out: Record<string, Tensor> = {};
  for (const [ours, t] of Object.entries(sd)) {
    const isEncoder = ours.startsWith("encoder.");
    if (cls === "VideoMAEModel" && !isEncoder) continue;
    const m = hfMapping(ours, base);
    if (!m) throw new DataError("export", `${ours} has no counterpart in transformers' VideoMAE`);
    if (m.kind === "qkv") {
      const [q, k, v] = t.chunk(3, 0);
      out[m.names[0]] = q.contiguous();
      out[m.names[1]] = k.contiguous();
      out[m.names[2]] = v.contiguous();
    } else {
      out[m.names[0]] = t;
    }
    const bias = ours.match(/^(.*)\.attn\.q_bias$/);
    if (bias) {
      const keyBias = hfMapping(`${bias[1]}.attn.q_bias`, base)!.names[0].replace(/query\.bias$/, "key.bias");
      out[keyBias] = zeros([t.shape[0]]);
    }
  }
  return out;
}

/** Writes config.json and model.safetensors for `cls` into `dir` (created). An IoError names a failed write. */
export function writeHfFolder(
  dir: string,
  sd: Record<string, Tensor>,
  m: HfModelSpec,
  cls: HfClass,
): string[] {
  try {
    Deno.mkdirSync(dir, { recursive: true });
    Deno.writeTextFileSync(`${dir}/config.json`, JSON.stringify(hfConfig(m, cls), null, 2) + "\n");
  } catch (e) {
    throw new IoError(dir, `cannot write ${dir}/config.json: ${(e as Error).message}`, { cause: e });
  }
  const path = `${dir}/model.safetensors`;
  const hf = toHfStateDict(sd, cls);
  try {
    saveSafetensors(path, hf, { format: "pt" });
  } catch (e) {
    if (!(e instanceof LayerlockError)) throw e;
    throw new IoError(path, `cannot write ${path}: ${e.message}`, { cause: e });
  }
  return [`${dir}/config.json`, path];
}
