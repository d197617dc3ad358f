/**
 * `deno run ... bench/layerlock_depth.ts [--preset P] [--batch N]`: what progressive freezing saves. For frozen
 * depths 0, 2, 4, ... it times one training step (forward, backward, AdamW) with pixel targets (`mae-freeze`) and
 * with latent targets (`layerlock`, which adds the full-sequence target pass), and the target pass alone (in
 * inference mode, as training runs it, and under no-grad); on CUDA also the step replayed from a captured CUDA
 * graph (src/train/step_graph.ts) and the peak allocated memory of a step. Defaults: ViT-B, 16×224×224, batch 16, bf16 on CUDA; `tiny`,
 * 16×32×32, batch 8 on the CPU. Writes runs/bench/layerlock_depth.json.
 * @module
 */
import * as torch from "../mod.ts";
import { timeSteps, trainBenchSetup } from "./common.ts";
import { cudaBackend, StepGraphs } from "../src/train/step_graph.ts";
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

interface Row {
  frozenDepth: number;
  mode: "mae-freeze" | "layerlock" | "layerlock+stream";
  msPerStep: number;
  /** The step replayed from a CUDA graph (CUDA only). */
  graphedMsPerStep: number | null;
  /** The target pass in inference mode (as training runs it), and under no-grad. */
  targetPassMs: number | null;
  targetPassNoGradMs: number | null;
  peakBytes: number | null;
}

function measure(mode: "mae-freeze" | "layerlock", frozen: number, targetStream = false): Row {
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
  const stream = targetStream ? torch.CudaStream.create(device) : null;
  const x = torch.randn([batch, 3, cfg.frames, cfg.height, cfg.width], { device });
  const state = {
    stage: frozen,
    frozenDepth: frozen,
    targetLayers: mode === "layerlock" && frozen > 0 ? [frozen] : [],
    lrFactor: 1,
    pixelWeight: mode === "layerlock" && frozen > 0 ? 0 : 1, // LayerLock's latent stages predict latents alone
    stageStart: 0,
  };
  const lr = torch.zeros([], { device }).fill_(1e-4);
  const step = () => {
    torch.scope(() => {
      const mask = makeMask("tube", batch, model.encoder.grid, 0.9, device);
      const tgt = torch.noGrad(() => pixelTargets(x, cfg.tubelet, cfg.patch, false));
      const ctx = { cfg: ll, pixelTargets: tgt, heads, state, targetStream: stream };
      const l = cudaOn
        ? torch.autocast("bf16", () => computeLosses(model, x, mask, ctx))
        : computeLosses(model, x, mask, ctx);
      l.total.backward();
      disposeMask(mask);
    });
    opt.step(lr);
    opt.zeroGrad();
  };
  const { msPerStep: best, peakBytes: peak } = timeSteps(step, { warmup: 3, steps, cudaOn });
  let graphedMsPerStep: number | null = null;
  if (cudaOn) {
    const graphs = new StepGraphs(cudaBackend(device), 3);
    try {
      graphedMsPerStep = timeSteps(() => graphs.run("stage", step), { warmup: 5, steps, cudaOn }).msPerStep;
    } finally {
      graphs.dispose();
    }
  }
  let targetPassMs: number | null = null, targetPassNoGradMs: number | null = null;
  if (mode === "layerlock" && frozen > 0) {
    const timePass = (run: () => unknown) =>
      timeSteps(() => torch.scope(() => cudaOn ? torch.autocast("bf16", run) : run()), {
        warmup: 1,
        steps,
        cudaOn,
      })
        .msPerStep;
    targetPassMs = timePass(() => latentTargets(model, x, [frozen], "layernorm"));
    targetPassNoGradMs = timePass(() =>
      torch.noGrad(() => {
        const h = model.encoder.hiddenStates(x, [frozen])[0];
        return torch.layerNorm(h, [h.shape[2]], null, null, 1e-6);
      })
    );
  }
  stream?.dispose();
  lr.dispose();
  x.dispose();
  opt.dispose();
  heads.dispose();
  model.dispose();
  return {
    frozenDepth: frozen,
    mode: targetStream ? "layerlock+stream" : mode,
    msPerStep: best,
    graphedMsPerStep,
    targetPassMs,
    targetPassNoGradMs,
    peakBytes: peak,
  };
}

/**
 * Multiply-add FLOPs (×2) of the target pass through `k` blocks for the batch: the patch embedding, then per block
 * the qkv, output and MLP matmuls (2·N·d²·(4 + 2·mlpRatio)) and attention's two N×N products (4·N²·d).
 */
function targetPassFlops(k: number): number {
  const n = (cfg.frames / cfg.tubelet) * (cfg.height / cfg.patch) * (cfg.width / cfg.patch);
  const d = cfg.encoderDim, patchDim = 3 * cfg.tubelet * cfg.patch * cfg.patch;
  const block = 2 * n * d * d * (4 + 2 * cfg.mlpRatio) + 4 * n * n * d;
  return batch * (2 * n * patchDim * d + k * block);
}

const maxFrozen = Math.floor(depth * 2 / 3);
const depths = [...new Set([0, ...Array.from({ length: 5 }, (_, i) => Math.round((i + 1) * maxFrozen / 5))])];
const rows: Row[] = [];
/** The attention kernel PyTorch would pick for `n` tokens of width `dim` in `heads` heads (bf16 on CUDA). */
const kernelFor = (n: number, dim: number, heads: number) =>
  torch.scope(() => {
    const q = torch.randn([batch, heads, n, dim / heads], { device, dtype: cudaOn ? "bf16" : "f32" });
    return torch.sdpaBackend(q, q, q);
  });
{
  const hw = (cfg.height / cfg.patch) * (cfg.width / cfg.patch), n = (cfg.frames / cfg.tubelet) * hw;
  const visible = (cfg.frames / cfg.tubelet) * (hw - Math.floor(0.9 * hw)); // tube mask 0.9
  console.log(
    `attention kernels: target pass (${n} tokens) ${
      kernelFor(n, cfg.encoderDim, cfg.encoderHeads)
    }, encoder ` +
      `(${visible} visible) ${kernelFor(visible, cfg.encoderDim, cfg.encoderHeads)}, decoder (${n}) ${
        kernelFor(n, cfg.decoderDim, cfg.decoderHeads)
      }`,
  );
}
console.log(
  `${preset} (${depth} blocks), ${cfg.frames}x${cfg.height}x${cfg.width}, batch ${batch}, ${device}${
    cudaOn ? " bf16" : ""
  }`,
);
console.log(
  "| frozen | mode | ms/step | vs depth 0 | graphed ms/step | target pass (ms) | its TFLOP/s | no-grad target pass (ms) | peak MiB |",
);
console.log("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
// on CUDA also LayerLock with the target pass on a second stream (layerlock.targetStream)
const modes = cudaOn
  ? ["mae-freeze", "layerlock", "layerlock+stream"] as const
  : ["mae-freeze", "layerlock"] as const;
for (const mode of modes) {
  for (const d of depths) {
    const r = measure(mode === "layerlock+stream" ? "layerlock" : mode, d, mode === "layerlock+stream");
    rows.push(r);
    const base = rows.find((q) => q.mode === mode && q.frozenDepth === 0)!.msPerStep;
    console.log(
      `| ${d} | ${mode} | ${r.msPerStep.toFixed(1)} | ${(r.msPerStep / base).toFixed(2)} | ${
        r.graphedMsPerStep?.toFixed(1) ?? "-"
      } | ${r.targetPassMs?.toFixed(2) ?? "-"} | ${
        r.targetPassMs ? (targetPassFlops(d) / r.targetPassMs / 1e9).toFixed(2) : "-"
      } | ${r.targetPassNoGradMs?.toFixed(2) ?? "-"} | ${
        r.peakBytes === null ? "-" : (r.peakBytes / 2 ** 20).toFixed(0)
      } |`,
    );
  }
}
await Deno.mkdir(new URL("../runs/bench/", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("../runs/bench/layerlock_depth.json", import.meta.url),
  JSON.stringify(
    {
      preset,
      batch,
      device,
      rows: rows.map((r) => ({ ...r, targetPassFlops: targetPassFlops(r.frozenDepth) })),
    },
    null,
    2,
  ) + "\n",
);
