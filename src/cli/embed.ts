/**
 * `deno task embed --run NAME [flags]`: runs a checkpoint's encoder on a dataset or on video files, with every
 * token visible, and writes the features to a safetensors file: `pooled` [N, D] (mean over tokens), `tokens`
 * [N, T, D] (unless --no-tokens), and the clips' labels when the data has them: `labels.<task>` per labelled task
 * (`labels.shape` / `labels.direction` for moving shapes, `labels.garment` / `labels.direction` for Moving
 * Fashion-MNIST, `labels.class` for a labelled folder). The work is `src/eval/embed.ts`.
 *
 *   --run NAME | --checkpoint FILE     the run (its newest checkpoint and config.json) or a checkpoint file
 *   --data shapes|fashion|folder       default: the run's own data source
 *   --data-path DIR                    video folder (with --data folder)
 *   --split train|test                 Moving Fashion-MNIST split (default test)
 *   --clips N                          clips to embed (default 256)
 *   --depth K | --depth-fraction F     blocks to run (default all, with the final norm; a fraction as in 4DS)
 *   --no-tokens                        write pooled features only
 *   --out FILE                         default runs/NAME/features.safetensors
 * @module
 */
import { parseArgs } from "node:util";
import type { TrainConfig } from "../config.ts";
import { depthFromFraction } from "../eval/features.ts";
import { disposeEmbedding, embedClips, embeddingDataset, saveEmbedding } from "../eval/embed.ts";
import { loadModelCheckpoint, readCheckpointConfig } from "../train/checkpoint.ts";
import { resolveDevice } from "../train/device.ts";
import { RunFolder } from "../train/run_folder.ts";
import { runMain } from "./run.ts";

async function main(): Promise<number> {
  const { values: v } = parseArgs({
    args: Deno.args,
    options: {
      run: { type: "string" },
      checkpoint: { type: "string" },
      data: { type: "string" },
      "data-path": { type: "string" },
      split: { type: "string" },
      clips: { type: "string" },
      depth: { type: "string" },
      "depth-fraction": { type: "string" },
      "no-tokens": { type: "boolean" },
      out: { type: "string" },
    },
  });
  if (!v.run && !v.checkpoint) {
    console.error("embed: pass --run NAME or --checkpoint FILE");
    return 2;
  }
  const path = v.checkpoint ?? new RunFolder(`runs/${v.run}`).newestCheckpoint();
  if (!path) {
    console.error(`embed: runs/${v.run} has no checkpoints`);
    return 2;
  }
  // the configuration travels in every checkpoint's metadata
  const cfg = readCheckpointConfig(path);
  if (v.data) cfg.data.source = v.data as TrainConfig["data"]["source"];
  if (v["data-path"]) cfg.data.path = v["data-path"];
  const device = resolveDevice(cfg);
  const { model } = loadModelCheckpoint(path, device, cfg);
  try {
    const total = model.encoder.blocks.length;
    const depth = v.depth
      ? Number(v.depth)
      : v["depth-fraction"]
      ? depthFromFraction(Number(v["depth-fraction"]), total)
      : total;
    const n = Number(v.clips ?? 256);
    const ds = await embeddingDataset(cfg, (v.split ?? "test") as "train" | "test");
    const e = await embedClips(model.encoder, ds, { clips: n, depth, tokens: !v["no-tokens"], device });
    const out = v.out ?? `runs/${v.run ?? "embed"}/features.safetensors`;
    try {
      saveEmbedding(out, e, { checkpoint: path, depth: String(depth), data: cfg.data.source });
      console.log(
        `embed: ${n} clips, depth ${depth}/${total} -> ${out} (pooled [${e.pooled.shape}]${
          e.tokens ? `, tokens [${e.tokens.shape}]` : ""
        })`,
      );
    } finally {
      disposeEmbedding(e);
    }
  } finally {
    model.dispose();
  }
  return 0;
}

await runMain("embed", main, new URL(import.meta.url));
