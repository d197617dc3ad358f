/**
 * `deno run ... bench/layerlock_depth.ts [--preset P] [--batch N]`: what progressive freezing saves. For frozen
 * depths 0, 2, 4, ... it times one training step (forward, backward, AdamW) with pixel targets (`mae-freeze`) and
 * with latent targets (`layerlock`, which adds the full-sequence target pass), and the target pass alone; on CUDA
 * also the peak allocated memory of a step. Defaults: ViT-B, 16×224×224, batch 16, bf16 on CUDA; `tiny`,
 * 16×32×32, batch 8 on the CPU. Writes runs/bench/layerlock_depth.json.
 * @module
 */
import * as torch from "../mod.ts";
import { timeSteps, trainBenchSetup } from "./common.ts";
import { Freezer } from "../src/layerlock/freeze.ts";
import { LatentHeads } from "../src/layerlock/heads.ts";
import { computeLosses, latentTargets } from "../src/layerlock/objective.ts";
import { LayerLockConfigSchema } from "../src/layerlock/schedule.ts";
import { disposeMask, makeMask } from "../src/models/masking.ts";
import { pixelTargets } from "../src/models/targets.ts";
import { VideoMAE } from "../src/models/video_mae.ts";

const { cudaOn, device, preset, batch, cfg } = trainBenchSetup(Deno.args);
const steps = cudaOn ? 10 : 4;
const depth = cfg.encoderDepth;
const sync = () => cudaOn && torch.cuda.synchronize();

interface Row {
  frozenDepth: number;
  mode: "mae-freeze" | "layerlock";
  msPerStep: number;
  targetPassMs: number | null;
  peakBytes: number | null;
}

function measure(mode: "mae-freeze" | "layerlock", frozen: number): Row {
  torch.manualSeed(0);
  const model = new VideoMAE(cfg, device);
  const heads = new LatentHeads("last", cfg.decoderDim, cfg.encoderDim, depth, device);
  const params = [
    ...model.namedParameters().map(([name, param]) => ({ name, param })),
    ...heads.namedParameters().map(([name, param]) => ({ name: `heads.${name}`, param })),
  ];
  const opt = new torch.AdamW(params, { lr: 1e-4 });
  new Freezer(model, opt, "with-first").freezeTo(frozen);
  const ll = LayerLockConfigSchema.parse({ mode });
  const x = torch.randn([batch, 3, cfg.frames, cfg.height, cfg.width], { device });
  const state = {
    stage: frozen,
    frozenDepth: frozen,
    targetLayers: mode === "layerlock" && frozen > 0 ? [frozen] : [],
    lrFactor: 1,
    stageStart: 0,
  };
  const step = () => {
    torch.scope(() => {
      const mask = makeMask("tube", batch, model.encoder.grid, 0.9, device);
      const tgt = torch.noGrad(() => pixelTargets(x, cfg.tubelet, cfg.patch, false));
      const ctx = { cfg: ll, pixelTargets: tgt, heads, state };
      const l = cudaOn
        ? torch.autocast("bf16", () => computeLosses(model, x, mask, ctx))
        : computeLosses(model, x, mask, ctx);
      l.total.backward();
      disposeMask(mask);
    });
    opt.step();
    opt.zeroGrad();
  };
  const { msPerStep: best, peakBytes: peak } = timeSteps(step, { warmup: 3, steps, cudaOn });
  let targetPassMs: number | null = null;
  if (mode === "layerlock" && frozen > 0) {
    const pass = () =>
      torch.scope(() => {
        const run = () => latentTargets(model, x, [frozen], "layernorm");
        return cudaOn ? torch.autocast("bf16", run) : run();
      });
    pass();
    sync();
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) pass();
    sync();
    targetPassMs = (performance.now() - t0) / steps;
  }
  x.dispose();
  opt.dispose();
  heads.dispose();
  model.dispose();
  return { frozenDepth: frozen, mode, msPerStep: best, targetPassMs, peakBytes: peak };
}

const maxFrozen = Math.floor(depth * 2 / 3);
const depths = [...new Set([0, ...Array.from({ length: 5 }, (_, i) => Math.round((i + 1) * maxFrozen / 5))])];
const rows: Row[] = [];
console.log(
  `${preset} (${depth} blocks), ${cfg.frames}x${cfg.height}x${cfg.width}, batch ${batch}, ${device}${
    cudaOn ? " bf16" : ""
  }`,
);
console.log("| frozen | mode | ms/step | vs depth 0 | target pass (ms) | peak MiB |");
console.log("| ---: | --- | ---: | ---: | ---: | ---: |");
for (const mode of ["mae-freeze", "layerlock"] as const) {
  for (const d of depths) {
    const r = measure(mode, d);
    rows.push(r);
    const base = rows.find((q) => q.mode === mode && q.frozenDepth === 0)!.msPerStep;
    console.log(
      `| ${d} | ${mode} | ${r.msPerStep.toFixed(1)} | ${(r.msPerStep / base).toFixed(2)} | ${
        r.targetPassMs?.toFixed(1) ?? "-"
      } | ${r.peakBytes === null ? "-" : (r.peakBytes / 2 ** 20).toFixed(0)} |`,
    );
  }
}
await Deno.mkdir(new URL("../runs/bench/", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("../runs/bench/layerlock_depth.json", import.meta.url),
  JSON.stringify({ preset, batch, device, rows }, null, 2) + "\n",
);
