/**
 * How the experiment's probe settings were chosen: probe one encoder's frozen features on the experiment's
 * Moving Fashion-MNIST clips (1024 train / 512 test, as `deno task experiment` draws them) under several
 * optimisation settings, printing test / train top-1 for the garment and the direction label. A probe whose
 * train accuracy stays low is under-trained, not a measure of the features.
 *
 *   deno run -A tools/probe_sweep.ts runs/experiment/mae/checkpoints/step_0000800.safetensors [--attentive]
 *   deno run -A tools/probe_sweep.ts untrained [--depths 4,8,12]
 *
 * Uses the experiment's default model settings (tiny, 16×64×64, patch 16).
 * @module
 */
import { parseArgs } from "node:util";
import {
  batchToTensor,
  cat,
  extractFeatures,
  loadSafetensors,
  manualSeed,
  modelConfig,
  MovingFashionMnist,
  type ProbeResult,
  scope,
  type Tensor,
  tensor,
  trainAttentiveProbe,
  trainLinearProbe,
  VideoMAE,
} from "../mod.ts";
import { DEFAULT_EXPERIMENT, modeTrainConfig } from "../src/eval/experiment.ts";

const { positionals, values } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { attentive: { type: "boolean" }, depths: { type: "string" } },
});
const which = positionals[0];
if (!which) {
  console.error("usage: probe_sweep.ts <checkpoint.safetensors | untrained> [--attentive] [--depths 4,8,12]");
  Deno.exit(2);
}
const e = DEFAULT_EXPERIMENT;

async function clips(split: "train" | "test", seed: number, n: number) {
  const ds = await MovingFashionMnist.open({ frames: e.frames, size: e.size, split, seed });
  const xs: Tensor[] = [], shape: number[] = [], direction: number[] = [];
  for (let i = 0; i < n; i += 64) {
    const b = await ds.batch(Array.from({ length: Math.min(64, n - i) }, (_, k) => i + k));
    xs.push(batchToTensor(b, "cpu"));
    shape.push(...b.labels!.shape);
    direction.push(...b.labels!.direction);
  }
  const long = (v: number[]) => tensor(Int32Array.from(v)).long();
  return { x: cat(xs, 0), shape: long(shape), direction: long(direction) };
}

// the same splits and seeds as runExperiment
const tr = await clips("train", e.seed + 1, e.trainClips), te = await clips("test", e.seed + 2, e.testClips);
const cfg = modeTrainConfig(e, "mae");
manualSeed(cfg.seed); // the trainer's initialisation, for "untrained"
const model = new VideoMAE(modelConfig(cfg), "cpu");
if (which !== "untrained") {
  scope(() => {
    const sd: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(loadSafetensors(which).tensors)) {
      if (k.startsWith("model.")) sd[k.slice(6)] = t;
    }
    model.loadStateDict(sd);
  });
}
const pct = (r: ProbeResult) => `${(100 * r.accuracy).toFixed(1)}/${(100 * r.trainAccuracy).toFixed(0)}`;
const depths = (values.depths ?? String(model.encoder.blocks.length)).split(",").map(Number);
for (const depth of depths) {
  scope(() => {
    const a = extractFeatures(model.encoder, tr.x, { depth, batchSize: 64 });
    const b = extractFeatures(model.encoder, te.x, { depth, batchSize: 64 });
    console.log(`${which} · depth ${depth} · test/train top-1 % (garment, direction)`);
    for (
      const [epochs, lr, batchSize] of [[40, 1e-3, 256], [300, 1e-3, 256], [300, 1e-2, 256], [
        1000,
        3e-3,
        256,
      ]]
    ) {
      const o = { epochs, lr, batchSize };
      const s = trainLinearProbe(a.pooled, tr.shape, b.pooled, te.shape, o);
      const d = trainLinearProbe(a.pooled, tr.direction, b.pooled, te.direction, o);
      console.log(`  linear    ${epochs} epochs, lr ${lr}, batch ${batchSize}: ${pct(s)}  ${pct(d)}`);
    }
    if (!values.attentive) return;
    for (const [epochs, lr, batchSize] of [[40, 1e-3, 256], [40, 1e-3, 64], [40, 3e-3, 64]]) {
      const o = { epochs, lr, batchSize };
      const s = trainAttentiveProbe(a.tokens, tr.shape, b.tokens, te.shape, o);
      const d = trainAttentiveProbe(a.tokens, tr.direction, b.tokens, te.direction, o);
      console.log(`  attentive ${epochs} epochs, lr ${lr}, batch ${batchSize}: ${pct(s)}  ${pct(d)}`);
    }
  });
}
