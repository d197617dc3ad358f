/**
 * Why does an untrained ViT read motion direction so well, and a pixel-MAE encoder less well? Two measurements
 * on the validation split (never the test images), for each encoder given:
 *
 * 1. position: how much of its own position a token's features still carry — a linear probe from each token's
 *    features to its spatial position (H'·W' classes) and its time index (T' classes), at depths 0, half and all
 *    (128 training clips' tokens, scored on 64 validation clips' tokens);
 * 2. (`untrained` only) the same untrained encoder with its fixed sin-cos position embedding zeroed, probed as the
 *    experiment probes (4096/1024 clips, its default probe settings): what direction accuracy is left without
 *    position.
 *
 *   deno run -A tools/direction_diagnostics.ts untrained runs/experiment/mae-s0/checkpoints/step_0002000.safetensors
 *
 * The other flags are the experiment's (the protocol must match the checkpoints').
 * @module
 */
import { experimentConfigFromArgs } from "../src/cli/experiment.ts";
import {
  disposeClips,
  featuresOf,
  probeClips,
  probeFeatures,
  type ProbeName,
} from "../src/experiment/probes.ts";
import { loadModelCheckpoint } from "../src/train/checkpoint.ts";
import { parseExperimentConfig, runConfig } from "../src/experiment/config.ts";
import { manualSeed, modelConfig, noGrad, scope, tensor, trainLinearProbe, VideoMAE } from "../mod.ts";

const { raw, positionals } = await experimentConfigFromArgs(Deno.args, true);
if (positionals.length === 0) {
  console.error(
    "usage: direction_diagnostics.ts ENCODER... [experiment flags]  (ENCODER: untrained | CHECKPOINT)",
  );
  Deno.exit(2);
}
const base = parseExperimentConfig({ ...raw, probe: { ...(raw.probe as object ?? {}), split: "val" } });
const cfg = runConfig(base, "mae", base.seeds[0]);
const make = (which: string) => {
  manualSeed(cfg.seed);
  return which === "untrained"
    ? new VideoMAE(modelConfig(cfg), "cpu")
    : loadModelCheckpoint(which, "cpu", cfg).model;
};
const pct = (v: number) => (100 * v).toFixed(1);

// 1. position left in the tokens
{
  const e = parseExperimentConfig({ ...base, probe: { ...base.probe, trainClips: 128, evalClips: 64 } });
  const clips = await probeClips(e, "cpu");
  for (const which of positionals) {
    scope(() => {
      using model = make(which);
      const [t, h, w] = model.encoder.grid, depth = model.encoder.blocks.length;
      const out: string[] = [];
      for (const d of [0, Math.floor(depth / 2), depth]) {
        const tr = featuresOf(model, clips.train.xs, d).tokens,
          ev = featuresOf(model, clips.eval.xs, d).tokens;
        const n = tr.shape[1], dim = tr.shape[2];
        const labels = (clipsN: number, f: (token: number) => number) =>
          tensor(Int32Array.from({ length: clipsN * n }, (_, i) => f(i % n))).long();
        const a = tr.reshape([-1, dim]), b = ev.reshape([-1, dim]);
        const [m1, m2] = [tr.shape[0], ev.shape[0]];
        const space = trainLinearProbe(a, labels(m1, (k) => k % (h * w)), b, labels(m2, (k) => k % (h * w)), {
          epochs: 10,
          lr: 1e-2,
        });
        const time = trainLinearProbe(
          a,
          labels(m1, (k) => Math.floor(k / (h * w))),
          b,
          labels(m2, (k) => Math.floor(k / (h * w))),
          { epochs: 10, lr: 1e-2 },
        );
        out.push(
          `depth ${d}: position ${pct(space.accuracy)}% (of ${h * w}), time ${pct(time.accuracy)}% (of ${t})`,
        );
      }
      console.log(`${which} — a token's own position from its features: ${out.join("; ")}`);
    });
  }
  disposeClips(clips.train);
  disposeClips(clips.eval);
}

// 2. the untrained encoder without its position embedding
if (positionals.includes("untrained")) {
  const clips = await probeClips(base, "cpu");
  const names: ProbeName[] = ["linearShape", "linearDirection", "attentiveShape", "attentiveDirection"];
  for (const zero of [false, true]) {
    scope(() => {
      using model = make("untrained");
      if (zero) noGrad(() => model.encoder.namedBuffers().find(([n]) => n === "pos_embed")![1].zero_());
      const r = probeFeatures(
        featuresOf(model, clips.train.xs),
        featuresOf(model, clips.eval.xs),
        clips.train,
        clips.eval,
        base,
      );
      console.log(
        `untrained, position embedding ${zero ? "zeroed" : "kept"}: ` +
          names.map((k) => `${k} ${pct(r.probes[k].mean)}% (fit ${pct(r.trainAccuracy[k])}%)`).join(", "),
      );
    });
  }
  disposeClips(clips.train);
  disposeClips(clips.eval);
}
