/**
 * Imported weights before they become a run: what every reader (`hf.ts`, `pth.ts`, and our own runs here)
 * hands the import workflow (`import.ts`). A reader maps the file's tensors to our state-dict names and says
 * what it read: the model's sizes (`model.*` keys, each marked as recorded by the source or not), the position
 * table, the clip geometry, which of the file's tensors it dropped and why, and which of our parts the source
 * lacks on purpose (an encoder-only checkpoint's decoder). It never builds a model: the workflow checks every
 * name and shape against the model the sizes describe.
 * @module
 */
import { ConfigError, DataError } from "../errors.ts";
import { PRESETS } from "../models/presets.ts";
import type { Tensor } from "../torch/tensor.ts";
import type { Grid } from "./pos_table.ts";

/** Formats a source can be in. */
export type SourceFormat = "hf" | "pth" | "layerlock";

/** Parts of our model a source may lack on purpose (they are then initialised fresh). */
export type FreshPart = "decoder" | "encoder.norm";

/** One tensor of the source in our names, with the source's own name(s) for messages. */
export interface MappedTensor {
  /** The tensor (float32, on the CPU), owned by the source until it is disposed. */
  tensor: Tensor;
  /** The source's name (or names, joined, for a tensor made of several). */
  from: string;
}

/** Weights read from a source, in our names. */
export interface SourceWeights {
  /** The format read. */
  format: SourceFormat;
  /** The path named on the command line (for messages). */
  path: string;
  /** The model section of a configuration (`model.*` keys) read from the source. */
  model: Record<string, unknown>;
  /** The `model.*` keys the source records (the rest are conventions, and may be set). */
  recorded: Set<string>;
  /** The clip the weights were made for, when the source records it. */
  geometry: { frames: number; size: number } | null;
  /** The grid of a learned position table (`encoder.pos_embed`), when there is one. */
  learnedGrid: Grid | null;
  /** Configuration keys besides `model.*` the source implies (`target.normalize` from `norm_pix_loss`, ...). */
  config: Record<string, unknown>;
  /** The tensors, by our name. */
  tensors: Map<string, MappedTensor>;
  /** Source names that map to nothing of ours and are not dropped on purpose: each is an error. */
  unmapped: string[];
  /** Source names dropped on purpose, with the reason (one line per kind). */
  dropped: Map<string, string[]>;
  /** Our parts the source may lack, with the reason printed when it does. */
  mayLack: Map<FreshPart, string>;
  /** The source's spelling of one of our names (for a missing tensor). */
  sourceName(ours: string): string;
  /** Lines to print: what was read and decided. */
  notes: string[];
}

/** Frees every tensor a source holds. */
export function disposeSource(s: SourceWeights): void {
  for (const { tensor } of s.tensors.values()) tensor.dispose();
  s.tensors.clear();
}

/** A float32 tensor: `t` itself when it is one, else a converted copy (and `t` is freed). */
export function asF32(t: Tensor): Tensor {
  if (t.dtype === "f32") return t;
  const out = t.float();
  t.dispose();
  return out;
}

/** Records a dropped source name under a reason. */
export function drop(s: Pick<SourceWeights, "dropped">, reason: string, name: string): void {
  const list = s.dropped.get(reason) ?? [];
  list.push(name);
  s.dropped.set(reason, list);
}

/** The blocks' indices present under `prefix` (`encoder.blocks.`), as a sorted list. */
export function blockIndices(names: Iterable<string>, prefix: string): number[] {
  const seen = new Set<number>();
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    const m = n.slice(prefix.length).match(/^(\d+)\./);
    if (m) seen.add(Number(m[1]));
  }
  return [...seen].sort((a, b) => a - b);
}

/**
 * The number of blocks from their indices (0..n−1); a DataError naming the first missing block (its source
 * name through `name`) when they are not contiguous.
 */
export function depthFrom(indices: number[], where: string, name: (i: number) => string): number {
  const n = indices.length ? indices[indices.length - 1] + 1 : 0;
  for (let i = 0; i < n; i++) {
    if (!indices.includes(i)) throw new DataError(where, `${where} lacks block ${i} (${name(i)}.*)`);
  }
  return n;
}

/**
 * The attention heads of an encoder (or decoder) width in VideoMAE's models (ViT-S/B/L/H, VideoMAEv2's ViT-g
 * and their decoders; the project's presets hold the same values), or null for another width.
 */
export function officialHeads(width: number, part: "encoder" | "decoder"): number | null {
  for (const p of Object.values(PRESETS)) {
    if (part === "encoder" && p.encoderDim === width) return p.encoderHeads;
    if (part === "decoder" && p.decoderDim === width) return p.decoderHeads;
  }
  return null;
}

/** VideoMAE's pretraining decoder for an encoder width (the preset of that width), or null. */
export function officialDecoder(
  width: number,
): { decoderDim: number; decoderDepth: number; decoderHeads: number } | null {
  const p = Object.values(PRESETS).find((p) => p.encoderDim === width);
  return p ? { decoderDim: p.decoderDim, decoderDepth: p.decoderDepth, decoderHeads: p.decoderHeads } : null;
}

/** A positive integer from a parsed JSON value, or a DataError naming the key. */
export function positiveInt(where: string, key: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw new DataError(where, `${where}: ${key} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Throws a ConfigError: a usage mistake on the import command. */
export function usage(message: string): never {
  throw new ConfigError("import", message);
}
