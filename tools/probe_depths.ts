/**
 * Which block the experiment's probes read, chosen on the VALIDATION split only: probe encoders' frozen features
 * after each of several depths with the experiment's own probe settings, and print the four probes and their mean
 * per encoder and depth (validation top-1 %). The full depth is the encoder's output (its final norm applied); a
 * smaller depth is the residual stream after that block, as `extractFeatures` returns it.
 *
 *   deno run -A tools/probe_depths.ts --depths 4,5,6 untrained:0 runs/experiment/mae-s0/checkpoints/step_0003000.safetensors
 *   deno run -A tools/probe_depths.ts --depths 3,4,5,6 --linear-only --set probe.evalClips=4096 untrained:1 CKPT...
 *
 * Encoders: `untrained:SEED` (the initialisation of that training seed) or a checkpoint made with the experiment's
 * protocol. `--linear-only` shows the linear probes alone and cuts the attentive ones to a single epoch, whose
 * result is not shown (about 80 s instead of 2.5 min per encoder and depth on 2 cores). The other flags are the
 * experiment's (`deno task experiment`); the probe split is always `val`.
 * @module
 */
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { experimentConfigFromArgs } from "../src/cli/experiment.ts";
import { disposeClips, featuresOf, probeClips, probeFeatures, PROBES } from "../src/experiment/probes.ts";
import { loadModelCheckpoint } from "../src/train/checkpoint.ts";
import { parseExperimentConfig, runConfig } from "../src/experiment/config.ts";
import { manualSeed, modelConfig, scope, VideoMAE } from "../mod.ts";

const own = parseArgs({
  args: Deno.args,
  options: { depths: { type: "string" }, "linear-only": { type: "boolean" } },
  strict: false,
  allowPositionals: true,
});
const rest = Deno.args.filter((a, i, all) =>
  a !== "--linear-only" && !a.startsWith("--depths") && all[i - 1] !== "--depths"
);
const { raw, positionals } = await experimentConfigFromArgs(rest, true);
const depths = String(own.values.depths ?? "").split(",").filter((s) => s !== "").map(Number);
if (positionals.length === 0 || depths.length === 0 || depths.some((d) => !Number.isInteger(d) || d < 0)) {
  console.error("usage: probe_depths.ts --depths D,D... [--linear-only] ENCODER... [experiment flags]");
  console.error("  ENCODER: untrained:SEED | CHECKPOINT; D: blocks run (the encoder's depth = its output)");
  Deno.exit(2);
}
// every encoder is checked before minutes go into the probe clips
for (const which of positionals) {
  if (which.startsWith("untrained:") ? !/^untrained:\d+$/.test(which) : !existsSync(which)) {
    console.error(
      `probe_depths: ${which}: neither untrained:SEED (a non-negative integer) nor an existing checkpoint`,
    );
    Deno.exit(2);
  }
}
const linearOnly = own.values["linear-only"] === true;
const probe = { ...(raw.probe as object ?? {}), split: "val", ...(linearOnly ? { attentiveEpochs: 1 } : {}) };
const e = parseExperimentConfig({ ...raw, probe });
const clips = await probeClips(e, "cpu");
console.log(
  `validation top-1 % (${e.probe.trainClips} probe-training clips, ${e.probe.evalClips} validation clips, ` +
    `probe seeds ${e.probe.seeds.join(",")})` + (linearOnly ? "; linear probes only" : ""),
);
console.log(["encoder", "depth", ...PROBES, "mean"].join("\t"));
for (const which of positionals) {
  scope(() => {
    const untrainedSeed = which.startsWith("untrained:") ? Number(which.slice("untrained:".length)) : null;
    const cfg = runConfig(e, "mae", untrainedSeed ?? e.seeds[0]);
    manualSeed(cfg.seed);
    using model = untrainedSeed !== null
      ? new VideoMAE(modelConfig(cfg), "cpu")
      : loadModelCheckpoint(which, "cpu", cfg).model;
    for (const depth of depths) {
      scope(() => {
        const s = probeFeatures(
          featuresOf(model, clips.train.xs, depth),
          featuresOf(model, clips.eval.xs, depth),
          clips.train,
          clips.eval,
          e,
        );
        const names = linearOnly ? PROBES.filter((p) => p.startsWith("linear")) : PROBES;
        const acc = names.map((p) => 100 * s.probes[p].mean);
        const cells = PROBES.map((p) => names.includes(p) ? (100 * s.probes[p].mean).toFixed(1) : "-");
        const mean = acc.reduce((a, b) => a + b, 0) / acc.length;
        console.log([which, depth, ...cells, mean.toFixed(2)].join("\t"));
      });
    }
  });
}
disposeClips(clips.train);
disposeClips(clips.eval);
