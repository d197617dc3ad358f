/**
 * A checkpoint's features of a dataset's clips, for use elsewhere (`deno task embed`, src/cli/embed.ts): the
 * encoder run with every token visible on the first N clips, their pooled features [N, D], their tokens
 * [N, T, D] (optional) and, when every clip is labelled, the class id of each clip per labelled task (moving
 * shapes' `shape` and `direction`, Moving Fashion-MNIST's `garment` and `direction`, a labelled folder's
 * `class`), written to one safetensors file (`pooled`, `tokens`, `labels.<task>`).
 * @module
 */
import type { TrainConfig } from "../config.ts";
import { batchToTensor } from "../data/clip_tensor.ts";
import type { ClipDataset } from "../data/dataset.ts";
import { MovingFashionMnist } from "../data/moving_fashion_mnist.ts";
import { makeDataset } from "../data/registry.ts";
import type { VideoMAEEncoder } from "../models/video_mae.ts";
import { tensor } from "../torch/creation.ts";
import type { Device } from "../torch/dtype.ts";
import { cat } from "../torch/functional.ts";
import { saveSafetensors } from "../torch/safetensors.ts";
import { keep, scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import { extractFeatures } from "./features.ts";

/** Options of `embedClips`. */
export interface EmbedOptions {
  /** Clips to embed: the dataset's first ones. */
  clips: number;
  /** Encoder blocks to run (default all, with the final norm). */
  depth?: number;
  /** Keep every token, not only the pooled features (default true). */
  tokens?: boolean;
  /** Where the encoder runs (default cpu); the features are gathered on the CPU. */
  device?: Device;
  /** Clips per forward pass (default 32). */
  batchSize?: number;
}

/** The features of a dataset's clips, on the CPU (owned by the caller: `disposeEmbedding`). */
export interface ClipEmbedding {
  /** Mean over tokens, [N, D]. */
  pooled: Tensor;
  /** Every token, [N, T, D], or null. */
  tokens: Tensor | null;
  /** Task → class id of each clip, when every clip carries labels; else null. */
  labels: Record<string, Int32Array> | null;
}

/**
 * The dataset a checkpoint's configuration names, as evaluation clips: Moving Fashion-MNIST's `split` (seeded
 * with the configuration's seed + 2, as the experiment's probes), or the configured source with `augment: false`
 * (video folders: clips spread over each video, centre crop).
 */
export async function embeddingDataset(cfg: TrainConfig, split: "train" | "test"): Promise<ClipDataset> {
  if (cfg.data.source === "fashion") {
    return await MovingFashionMnist.open({
      frames: cfg.data.frames,
      size: cfg.data.size,
      split,
      seed: cfg.seed + 2,
    });
  }
  return await makeDataset({ ...cfg, data: { ...cfg.data, augment: false } });
}

/** Gathers the labels of each batch per task; null as soon as a batch (or a task of one) has none. */
function gatherLabels(parts: (Record<string, Int32Array> | null)[], tasks: string[]) {
  if (tasks.length === 0 || parts.some((p) => p === null || tasks.some((t) => !p[t]))) return null;
  return Object.fromEntries(tasks.map((t) => [t, Int32Array.from(parts.flatMap((p) => [...p![t]]))]));
}

/**
 * Runs `encoder` (frozen, every token visible; `extractFeatures`) on the first `o.clips` clips of `ds`, a batch
 * at a time, and returns their features on the CPU and their labels. Nothing else is left alive.
 */
export async function embedClips(
  encoder: VideoMAEEncoder,
  ds: ClipDataset,
  o: EmbedOptions,
): Promise<ClipEmbedding> {
  const n = o.clips, bs = o.batchSize ?? 32, device = o.device ?? "cpu", withTokens = o.tokens ?? true;
  const pooled: Tensor[] = [], tokens: Tensor[] = [];
  const labels: (Record<string, Int32Array> | null)[] = [];
  try {
    for (let i = 0; i < n; i += bs) {
      const b = await ds.batch(Array.from({ length: Math.min(bs, n - i) }, (_, k) => i + k));
      labels.push(b.labels);
      scope(() => {
        const f = extractFeatures(encoder, batchToTensor(b, device), { depth: o.depth });
        pooled.push(keep(f.pooled.cpu()));
        if (withTokens) tokens.push(keep(f.tokens.cpu()));
      });
    }
    return scope(() => ({
      pooled: keep(cat(pooled)),
      tokens: tokens.length ? keep(cat(tokens)) : null,
      labels: gatherLabels(labels, Object.keys(ds.labelTasks)),
    }));
  } finally {
    for (const t of [...pooled, ...tokens]) t.dispose();
  }
}

/**
 * Writes an embedding to `path`: `pooled`, `tokens` (when kept) and `labels.<task>` (int64, when labelled), with
 * `metadata` in the file's header.
 */
export function saveEmbedding(path: string, e: ClipEmbedding, metadata: Record<string, string>): void {
  scope(() => {
    const t: Record<string, Tensor> = { pooled: e.pooled };
    if (e.tokens) t.tokens = e.tokens;
    for (const [task, ids] of Object.entries(e.labels ?? {})) t[`labels.${task}`] = tensor(ids).long();
    saveSafetensors(path, t, metadata);
  });
}

/** Frees an embedding's tensors. */
export function disposeEmbedding(e: ClipEmbedding): void {
  e.pooled.dispose();
  e.tokens?.dispose();
}
