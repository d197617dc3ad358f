/**
 * How the experiment's probe settings are chosen: probe encoders' frozen features on the experiment's clips,
 * scored on the VALIDATION split only (held-out training images; never the test images), under a grid of
 * optimisation settings, printing validation / probe-training top-1 for the garment and the direction label.
 * A probe whose training accuracy stays low is under-trained, not a measure of the features; settings are
 * chosen for every encoder alike (the mean over the encoders given), then fixed in the experiment's defaults.
 *
 *   deno run -A tools/probe_sweep.ts untrained runs/sweep/mae-s0/checkpoints/step_0002000.safetensors
 *   deno run -A tools/probe_sweep.ts untrained --set model.encoderDepth=4 --steps 3000 --train-clips 4096
 *
 * Encoders: `untrained` (the initialisation of training seed 0), `embedding` (its depth-0 features), `pixels`, or a
 * checkpoint of a run made with the same protocol. The other flags are the experiment's (`deno task experiment`).
 * @module
 */
import { experimentConfigFromArgs } from "../src/cli/experiment.ts";
import {
  disposeClips,
  type FeatureSet,
  featuresOf,
  pixelFeaturesOf,
  probeClips,
} from "../src/experiment/probes.ts";
import { loadModelCheckpoint } from "../src/train/checkpoint.ts";
import { parseExperimentConfig, runConfig } from "../src/experiment/config.ts";
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

// [epochs, peak lr] of each setting tried (linear: batch 256; attentive: the experiment's batch)
const LINEAR = [[100, 1e-2], [300, 1e-2], [300, 3e-2], [1000, 1e-2]];
const ATTENTIVE = [[20, 1e-3], [40, 1e-3], [20, 3e-3], [40, 3e-3], [80, 3e-3]];

const { raw, positionals } = await experimentConfigFromArgs(Deno.args, true);
if (positionals.length === 0) {
  console.error(
    "usage: probe_sweep.ts ENCODER... [experiment flags]  (ENCODER: untrained | embedding | pixels | CHECKPOINT)",
  );
  Deno.exit(2);
}
const e = parseExperimentConfig({ ...raw, probe: { ...(raw.probe as object ?? {}), split: "val" } });
const cfg = runConfig(e, "mae", e.seeds[0]);
const clips = await probeClips(e, "cpu");
const long = (v: number[]) => tensor(Int32Array.from(v)).long();
const labels = {
  garment: [long(clips.train.shape), long(clips.eval.shape)],
  direction: [long(clips.train.direction), long(clips.eval.direction)],
};
const pct = (r: ProbeResult) => `${(100 * r.accuracy).toFixed(1)}/${(100 * r.trainAccuracy).toFixed(0)}`;
console.log(
  `validation / probe-training top-1 % (${e.probe.trainClips} training clips, ${e.probe.evalClips} validation clips)`,
);
for (const which of positionals) {
  scope(() => {
    let tr: FeatureSet, ev: FeatureSet;
    if (which === "pixels") {
      tr = pixelFeaturesOf(clips.train.xs, cfg.model.tubelet, cfg.model.patch);
      ev = pixelFeaturesOf(clips.eval.xs, cfg.model.tubelet, cfg.model.patch);
    } else {
      manualSeed(cfg.seed);
      using model = which === "untrained" || which === "embedding"
        ? new VideoMAE(modelConfig(cfg), "cpu")
        : loadModelCheckpoint(which, "cpu", cfg).model;
      const depth = which === "embedding" ? 0 : undefined;
      tr = featuresOf(model, clips.train.xs, depth);
      ev = featuresOf(model, clips.eval.xs, depth);
    }
    for (const [epochs, lr] of LINEAR) {
      const [g, d] = (["garment", "direction"] as const).map((k) =>
        pct(trainLinearProbe(tr.pooled, labels[k][0], ev.pooled, labels[k][1], { epochs, lr }))
      );
      console.log(`${which}\tlinear\t${epochs} epochs\tlr ${lr}\tgarment ${g}\tdirection ${d}`);
    }
    for (const [epochs, lr] of ATTENTIVE) {
      const o = { epochs, lr, batchSize: e.probe.attentiveBatch };
      const [g, d] = (["garment", "direction"] as const).map((k) =>
        pct(trainAttentiveProbe(tr.tokens, labels[k][0], ev.tokens, labels[k][1], o))
      );
      console.log(`${which}\tattentive\t${epochs} epochs\tlr ${lr}\tgarment ${g}\tdirection ${d}`);
    }
  });
}
disposeClips(clips.train);
disposeClips(clips.eval);
