/**
 * `deno task embed --run NAME [flags]`: runs a checkpoint's encoder on a dataset or on video files, with every
 * token visible, and writes the features to a safetensors file: `pooled` [N, D] (mean over tokens), `tokens`
 * [N, T, D] (unless --no-tokens), and the clips' `labels.shape` / `labels.direction` when the data has them.
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
import * as torch from "../../mod.ts";
import { parseConfig, type TrainConfig } from "../config.ts";
import { batchToTensor } from "../data/clip.ts";
import type { ClipDataset } from "../data/dataset.ts";
import { MovingFashionMnist } from "../data/moving_fashion_mnist.ts";
import { makeDataset } from "../data/registry.ts";
import { depthFromFraction, extractFeatures } from "../eval/features.ts";
import { loadSafetensors, saveSafetensors } from "../torch/safetensors.ts";
import { VideoMAE } from "../models/video_mae.ts";
import { listCheckpoints } from "../train/checkpoint.ts";
import { modelConfig } from "../config.ts";
import { resolveDevice } from "../train/device.ts";
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
  let path = v.checkpoint;
  let cfg: TrainConfig;
  if (v.run) {
    const ckpts = listCheckpoints(`runs/${v.run}/checkpoints`);
    if (!path) path = ckpts[ckpts.length - 1];
    if (!path) {
      console.error(`embed: runs/${v.run} has no checkpoints`);
      return 2;
    }
  }
  {
    // The configuration travels in every checkpoint's metadata.
    const { tensors, metadata } = loadSafetensors(path!);
    for (const t of Object.values(tensors)) t.dispose();
    cfg = parseConfig(JSON.parse(metadata.config), `${path} metadata`);
  }
  if (v.data) cfg.data.source = v.data as TrainConfig["data"]["source"];
  if (v["data-path"]) cfg.data.path = v["data-path"];
  const device = resolveDevice(cfg);
  const model = new VideoMAE(modelConfig(cfg), device);
  torch.scope(() => {
    const { tensors } = loadSafetensors(path!, { device });
    const sd: Record<string, torch.Tensor> = {};
    for (const [k, t] of Object.entries(tensors)) if (k.startsWith("model.")) sd[k.slice(6)] = t;
    model.loadStateDict(sd);
  });
  const total = model.encoder.blocks.length;
  const depth = v.depth
    ? Number(v.depth)
    : v["depth-fraction"]
    ? depthFromFraction(Number(v["depth-fraction"]), total)
    : total;
  const n = Number(v.clips ?? 256);
  const ds: ClipDataset = cfg.data.source === "fashion"
    ? await MovingFashionMnist.open({
      frames: cfg.data.frames,
      size: cfg.data.size,
      split: (v.split ?? "test") as "train" | "test",
      seed: cfg.seed + 2,
    })
    : await makeDataset({ ...cfg, data: { ...cfg.data, augment: false } }); // videos: evaluation clips
  const pooled: torch.Tensor[] = [],
    tokens: torch.Tensor[] = [],
    shape: number[] = [],
    direction: number[] = [];
  let labelled = true;
  for (let i = 0; i < n; i += 32) {
    const b = await ds.batch(Array.from({ length: Math.min(32, n - i) }, (_, k) => i + k));
    if (b.labels) {
      shape.push(...b.labels.shape);
      direction.push(...b.labels.direction);
    } else labelled = false;
    torch.scope(() => {
      const f = extractFeatures(model.encoder, batchToTensor(b, device), { depth });
      pooled.push(torch.keep(f.pooled.cpu()));
      if (!v["no-tokens"]) tokens.push(torch.keep(f.tokens.cpu()));
    });
  }
  const out = v.out ?? `runs/${v.run ?? "embed"}/features.safetensors`;
  torch.scope(() => {
    const t: Record<string, torch.Tensor> = { pooled: torch.cat(pooled) };
    if (tokens.length) t.tokens = torch.cat(tokens);
    if (labelled) {
      t["labels.shape"] = torch.tensor(Int32Array.from(shape)).long();
      t["labels.direction"] = torch.tensor(Int32Array.from(direction)).long();
    }
    saveSafetensors(out, t, { checkpoint: path!, depth: String(depth), data: cfg.data.source });
    console.log(
      `embed: ${n} clips, depth ${depth}/${total} -> ${out} (pooled [${t.pooled.shape}]${
        tokens.length ? `, tokens [${t.tokens.shape}]` : ""
      })`,
    );
  });
  for (const t of [...pooled, ...tokens]) t.dispose();
  model.dispose();
  return 0;
}

await runMain("embed", main, new URL(import.meta.url));
