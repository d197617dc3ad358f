/**
 * VideoMAE's own checkpoints, written by torch.save (`.pth`): the pretraining checkpoints of VideoMAE and
 * VideoMAEv2 (`PretrainVisionTransformer`: encoder, decoder, `encoder_to_decoder`, `mask_token`) and their
 * fine-tuning checkpoints (`VisionTransformer`: the encoder alone, with a classification head), under
 * `model` or `module` (or bare), beside `epoch`, `optimizer`, `args` and the like, with or without
 * `module.`/`_orig_mod.`/`encoder.`/`backbone.` prefixes (`videomae_names.ts`: {@link officialStateDict}).
 *
 * The architecture is read from the tensors: width, input channels, tubelet and patch from
 * `patch_embed.proj.weight` [D, 3, t, p, p], depth from the blocks present, MLP ratio from `mlp.fc1.weight`,
 * q/v biases from their presence, the decoder's width and depth likewise. A `.pth` does not record two things:
 * the attention heads (a qkv weight is [3D, D] for any head count), read for VideoMAE's widths from its models
 * (ViT-S/B/L/H/g: 6/12/16/16/16 heads, decoders 3/6/8/8/8) and otherwise to be given (`--set
 * model.encoderHeads=N`); and the clip, free for a fixed position table (it is rebuilt for any clip), read from
 * a learned table's length for square frames and, unless `sourceFrames` says otherwise, VideoMAE's 16 frames.
 *
 * Writing ({@link writeVideoMAEPth}): `{"model": state_dict}` in the pretraining layout, which VideoMAE's
 * fine-tuning code reads (`--finetune FILE`: it takes `model`, strips `encoder.` and loads the encoder).
 * @module
 */
import { DataError } from "../errors.ts";
import type { Tensor } from "../torch/tensor.ts";
import { isSinusoidTable, squareGrid } from "./pos_table.ts";
import {
  asF32,
  blockIndices,
  depthFrom,
  disposeSource,
  drop,
  type FreshPart,
  officialDecoder,
  officialHeads,
  type SourceWeights,
} from "./source.ts";
import { readTorchFile, writeTorchFile } from "./torch_file.ts";
import { isDecoderName, type OfficialLayout, officialStateDict, QKV_BIAS } from "./videomae_names.ts";

/** Options of {@link readPth}. */
export interface PthReadOptions {
  /** The clip length a learned position table was made for (default 16, VideoMAE's). */
  sourceFrames?: number;
}

/**
 * Reads a torch.save checkpoint of VideoMAE's code into our names (float32, CPU, owned by the result:
 * `disposeSource`). A file that is not torch.save's, or holds no VideoMAE state dict, is a DataError naming it.
 */
export function readPth(path: string, o: PthReadOptions = {}): SourceWeights {
  const files = readTorchFile(path);
  const src = emptySource(path);
  try {
    const layout = officialStateDict(Object.keys(files));
    const fileOf = mapStateDict(src, files, layout);
    const [dim, , tubelet, patch] = patchEmbedShape(src, path, files, fileOf);
    src.notes.push(
      `read ${src.tensors.size} tensors from ${path}` +
        (layout.container ? ` (the state dict under '${layout.container}')` : " (a bare state dict)") +
        (layout.prefixes.length ? `, prefixes taken off: ${layout.prefixes.join(", ")}` : "") +
        (layout.bareEncoder ? ", the encoder's names bare (as a fine-tuning checkpoint holds them)" : ""),
    );
    const model = encoderArchitecture(src, path, dim, patch, tubelet);
    if ([...src.tensors.keys()].some(isDecoderName)) decoderArchitecture(src, path, model);
    else officialDecoderFor(src, model);
    if (layout.dropped.some((f) => /fc_norm\./.test(f)) && !src.tensors.has("encoder.norm.weight")) {
      src.mayLack.set(
        "encoder.norm",
        "the source pools with fc_norm (dropped with the head) and has no final norm: encoder.norm initialised " +
          "fresh (unit weight, zero bias)",
      );
    }
    positionTable(src, path, model, o.sourceFrames ?? 16);
    src.model = model;
    return src;
  } catch (e) {
    disposeSource(src);
    throw e;
  } finally {
    for (const t of Object.values(files)) t.dispose();
  }
}

/** A `.pth` source with nothing read yet: no model, no tensors, names as they are. */
function emptySource(path: string): SourceWeights {
  return {
    format: "pth",
    path,
    model: {},
    recorded: new Set(),
    geometry: null,
    learnedGrid: null,
    config: {},
    tensors: new Map(),
    unmapped: [],
    dropped: new Map(),
    mayLack: new Map<FreshPart, string>(),
    sourceName: (ours) => ours,
    notes: [],
  };
}

/**
 * Moves the state dict's tensors into `src` under our names (as float32; a tensor moved leaves `files`), splits
 * joined qkv biases into q and v biases (the key third dropped), records the classification head as dropped and
 * names our tensors as the file does (`src.sourceName`). Returns our name → the file's name of each tensor moved.
 */
function mapStateDict(
  src: SourceWeights,
  files: Record<string, Tensor>,
  layout: OfficialLayout,
): Map<string, string> {
  const fileOf = new Map<string, string>();
  for (const [ours, f] of layout.names) {
    const qkvBias = ours.match(QKV_BIAS);
    if (qkvBias) {
      const parts = files[f].chunk(3, 0);
      try {
        src.tensors.set(`${qkvBias[1]}q_bias`, {
          tensor: asF32(parts[0].clone()),
          from: `${f} (first third)`,
        });
        src.tensors.set(`${qkvBias[1]}v_bias`, {
          tensor: asF32(parts[2].clone()),
          from: `${f} (last third)`,
        });
      } finally {
        for (const t of parts) t.dispose();
      }
      drop(src, "the key thirds of joined qkv biases (softmax ignores them: dropped exactly)", f);
      continue;
    }
    src.tensors.set(ours, { tensor: asF32(files[f]), from: f });
    fileOf.set(ours, f);
    delete files[f];
  }
  for (const f of layout.dropped) drop(src, "the classification head", f);
  src.sourceName = (ours) => {
    const pre = layout.container ? `${layout.container}.` : "";
    return fileOf.get(ours) ?? `${pre}${ours} (in VideoMAE's names)`;
  };
  return fileOf;
}

/**
 * The shape [D, 3, t, p, p] of the tubelet embedding (`encoder.patch_embed.proj.weight`): a DataError when
 * there is none (no VideoMAE state dict: it names a few of the file's tensors) or it is not of RGB clips.
 */
function patchEmbedShape(
  src: SourceWeights,
  path: string,
  files: Record<string, Tensor>,
  fileOf: Map<string, string>,
): number[] {
  const pe = src.tensors.get("encoder.patch_embed.proj.weight");
  if (!pe) {
    const seen = Object.keys(files).concat([...fileOf.values()]).slice(0, 4);
    throw new DataError(
      path,
      `${path} holds no VideoMAE state dict: no patch_embed.proj.weight under model, module, state_dict or at ` +
        `the top${seen.length ? ` (it holds ${seen.join(", ")}, …)` : " (it holds no tensors)"}`,
    );
  }
  const where = src.sourceName("encoder.patch_embed.proj.weight");
  const [, chans, , p1, p2] = pe.tensor.shape;
  if (pe.tensor.shape.length !== 5 || chans !== 3 || p1 !== p2) {
    throw new DataError(
      path,
      `${path}: ${where} is [${
        pe.tensor.shape.join(", ")
      }], not a tubelet embedding of RGB clips [D, 3, t, p, p]`,
    );
  }
  return pe.tensor.shape;
}

/**
 * The model section of the encoder, read from its tensors: depth from the blocks present, MLP ratio from
 * `blocks.0.mlp.fc1.weight`, q/v biases from their presence (recorded), and the heads VideoMAE gives its width
 * (not recorded: a `.pth` does not hold them). A DataError when there are no encoder blocks.
 */
function encoderArchitecture(
  src: SourceWeights,
  path: string,
  dim: number,
  patch: number,
  tubelet: number,
): Record<string, unknown> {
  const depth = depthFrom(
    blockIndices(src.tensors.keys(), "encoder.blocks."),
    path,
    (i) => src.sourceName(`encoder.blocks.${i}`),
  );
  const fc1 = src.tensors.get("encoder.blocks.0.mlp.fc1.weight");
  if (depth === 0 || !fc1) throw new DataError(path, `${path} holds no encoder blocks (blocks.0.*)`);
  const heads = officialHeads(dim, "encoder");
  const model: Record<string, unknown> = {
    encoderDim: dim,
    encoderDepth: depth,
    mlpRatio: fc1.tensor.shape[0] / dim,
    patch,
    tubelet,
    qkvBias: src.tensors.has("encoder.blocks.0.attn.q_bias"),
    gelu: "exact",
    posEmbed: "videomae",
  };
  for (const k of Object.keys(model)) src.recorded.add(`model.${k}`);
  if (heads !== null) {
    model.encoderHeads = heads;
    src.notes.push(`encoder heads: ${heads}, VideoMAE's for width ${dim} (a .pth does not record heads)`);
  }
  return model;
}

/**
 * Adds the decoder the tensors hold to `model`: width from `encoder_to_decoder.weight` (or `decoder.norm`),
 * depth from the blocks present, heads VideoMAE's for the width. A DataError when the width cannot be read or
 * the decoder's MLP ratio is not the encoder's (ours has the encoder's).
 */
function decoderArchitecture(src: SourceWeights, path: string, model: Record<string, unknown>): void {
  const mlpRatio = model.mlpRatio as number;
  const e2d = src.tensors.get("encoder_to_decoder.weight") ?? src.tensors.get("decoder.norm.weight");
  if (!e2d) {
    throw new DataError(
      path,
      `${path} has decoder tensors but no ${src.sourceName("encoder_to_decoder.weight")}`,
    );
  }
  const ddim = e2d.tensor.shape[0];
  const ddepth = depthFrom(
    blockIndices(src.tensors.keys(), "decoder.blocks."),
    path,
    (i) => src.sourceName(`decoder.blocks.${i}`),
  );
  Object.assign(model, { decoderDim: ddim, decoderDepth: ddepth });
  src.recorded.add("model.decoderDim").add("model.decoderDepth");
  const dh = officialHeads(ddim, "decoder");
  if (dh !== null) {
    model.decoderHeads = dh;
    src.notes.push(`decoder heads: ${dh}, VideoMAE's for width ${ddim}`);
  }
  const dfc1 = src.tensors.get("decoder.blocks.0.mlp.fc1.weight");
  if (dfc1 && dfc1.tensor.shape[0] !== Math.round(ddim * mlpRatio)) {
    throw new DataError(
      path,
      `${path}: ${dfc1.from} is [${
        dfc1.tensor.shape.join(", ")
      }]: the decoder's MLP ratio differs from the ` +
        `encoder's (${mlpRatio}), and our decoder's MLP has the encoder's ratio`,
    );
  }
}

/**
 * For an encoder alone (a fine-tuning checkpoint): VideoMAE's pretraining decoder for its width in `model`,
 * when there is one, and the decoder marked as initialised fresh.
 */
function officialDecoderFor(src: SourceWeights, model: Record<string, unknown>): void {
  const dim = model.encoderDim as number;
  const d = officialDecoder(dim);
  if (d) Object.assign(model, d);
  src.mayLack.set(
    "decoder",
    `the source holds an encoder alone (as a fine-tuning checkpoint does): decoder initialised fresh${
      d
        ? ` (VideoMAE's pretraining decoder for width ${dim}: ${d.decoderDim} wide, ${d.decoderDepth} blocks)`
        : ""
    }`,
  );
}

/**
 * The position table, if the source holds one: a copy of VideoMAE's fixed sinusoid table is dropped (it is
 * rebuilt); a learned one sets `model.posEmbed`, the grid and the clip it was made for (square frames of
 * `frames`), and a DataError says when its length is no such grid.
 */
function positionTable(
  src: SourceWeights,
  path: string,
  model: Record<string, unknown>,
  frames: number,
): void {
  const pos = src.tensors.get("encoder.pos_embed");
  if (!pos) return;
  if (isSinusoidTable(pos.tensor)) {
    pos.tensor.dispose();
    src.tensors.delete("encoder.pos_embed");
    drop(src, "a stored copy of VideoMAE's fixed sinusoid table (rebuilt)", pos.from);
    return;
  }
  const tubelet = model.tubelet as number;
  const n = pos.tensor.shape[pos.tensor.shape.length - 2];
  const grid = squareGrid(n, frames / tubelet);
  if (!grid) {
    throw new DataError(
      path,
      `${path}: the learned position table ${pos.from} holds ${n} tokens, not ${frames / tubelet} frames ` +
        `(${frames} / tubelet ${tubelet}) of a square grid; pass --source-frames F, the clip length it was ` +
        "trained for",
    );
  }
  model.posEmbed = "learned";
  src.learnedGrid = grid;
  src.geometry = { frames: grid[0] * tubelet, size: grid[1] * (model.patch as number) };
  src.notes.push(
    `learned position table: ${grid.join("×")} tokens (${src.geometry.frames} frames of ` +
      `${src.geometry.size}×${src.geometry.size})`,
  );
}

/** Writes `{"model": sd}` (`sd`: our state dict, VideoMAE's pretraining names) as torch.save does. */
export function writeVideoMAEPth(path: string, sd: Record<string, Tensor>): void {
  writeTorchFile(path, sd);
}
