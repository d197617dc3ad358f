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
  manualSeed,
  modelConfig,
  type ProbeResult,
  scope,
  tensor,
  trainAttentiveProbe,
  trainLinearProbe,
  VideoMAE,
} from "../mod.ts";
import {
  DEFAULT_EXPERIMENT,
  featuresOf,
  loadModel,
  modeTrainConfig,
  probeClips,
} from "../src/eval/experiment.ts";

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
const cfg = modeTrainConfig(e, "mae");
// the experiment's clips, and for "untrained" the trainer's initialisation (seeded, then built)
const { train: tr, test: te } = await probeClips(e, "cpu");
manualSeed(cfg.seed);
const model = which === "untrained" ? new VideoMAE(modelConfig(cfg), "cpu") : loadModel(which, cfg, "cpu");
const long = (v: number[]) => tensor(Int32Array.from(v)).long();
const [trS, trD, teS, teD] = [tr.shape, tr.direction, te.shape, te.direction].map(long);
// [epochs, peak lr, batch size] of each probe setting tried
const LINEAR_SETTINGS = [[40, 1e-3, 256], [300, 1e-3, 256], [300, 1e-2, 256], [1000, 3e-3, 256]];
const ATTENTIVE_SETTINGS = [[40, 1e-3, 256], [40, 1e-3, 64], [40, 3e-3, 64]];
const pct = (r: ProbeResult) => `${(100 * r.accuracy).toFixed(1)}/${(100 * r.trainAccuracy).toFixed(0)}`;
const depths = (values.depths ?? String(model.encoder.blocks.length)).split(",").map(Number);
for (const depth of depths) {
  scope(() => {
    const a = featuresOf(model, tr.xs, depth), b = featuresOf(model, te.xs, depth);
    console.log(`${which} · depth ${depth} · test/train top-1 % (garment, direction)`);
    for (const [epochs, lr, batchSize] of LINEAR_SETTINGS) {
      const o = { epochs, lr, batchSize };
      const s = trainLinearProbe(a.pooled, trS, b.pooled, teS, o);
      const d = trainLinearProbe(a.pooled, trD, b.pooled, teD, o);
      console.log(`  linear    ${epochs} epochs, lr ${lr}, batch ${batchSize}: ${pct(s)}  ${pct(d)}`);
    }
    if (!values.attentive) return;
    for (const [epochs, lr, batchSize] of ATTENTIVE_SETTINGS) {
      const o = { epochs, lr, batchSize };
      const s = trainAttentiveProbe(a.tokens, trS, b.tokens, teS, o);
      const d = trainAttentiveProbe(a.tokens, trD, b.tokens, teD, o);
      console.log(`  attentive ${epochs} epochs, lr ${lr}, batch ${batchSize}: ${pct(s)}  ${pct(d)}`);
    }
  });
}
