/**
 * `deno run ... bench/train_step.ts [--preset base] [--batch N] [--compile MODES]`: the time of one VideoMAE
 * training step (tube mask 0.9, pixel targets, forward, backward, fused AdamW; bf16 autocast on CUDA) through
 * layerlock — eagerly, and on CUDA also replayed from a captured CUDA graph (src/train/step_graph.ts) — beside the
 * same model and step in PyTorch (bench/video_mae_ref.py) run in the same invocation on the same device: eager,
 * and `torch.compile` of the model in each of `--compile`'s comma-separated modes (default on CUDA
 * `max-autotune-no-cudagraphs,reduce-overhead`, on the CPU `default`; `none` for eager only).
 * Defaults: ViT-B on 16×224×224 clips with batch 16 on CUDA; the `tiny` CPU default (16×32×32, batch 8) on the
 * CPU. Writes runs/bench/train_step.json.
 * @module
 */
import * as torch from "../mod.ts";
import { pythonWithTorch, timeSteps, trainBenchSetup } from "./common.ts";
import { cudaBackend, StepGraphs } from "../src/train/step_graph.ts";
import { disposeMask, makeMask } from "../src/models/masking.ts";
import { maskedMse, pixelTargets } from "../src/models/targets.ts";
import { VideoMAE } from "../src/models/video_mae.ts";

const { cudaOn, device, preset, batch, cfg, compile } = trainBenchSetup(Deno.args);
const steps = cudaOn ? 20 : 5;
const compileModes = (compile ?? (cudaOn ? "max-autotune-no-cudagraphs,reduce-overhead" : "default"))
  .split(",").map((m) => m.trim()).filter((m) => m && m !== "none");

/**
 * The model, AdamW and input of one measurement of our step, and the step's parts: `forward` (mask, targets,
 * model, loss; bf16 autocast on CUDA) and `step` (forward, backward, AdamW at `lr`, a number or a device tensor).
 */
function setUp() {
  torch.manualSeed(0);
  const model = new VideoMAE(cfg, device);
  const opt = new torch.AdamW(model.namedParameters().map(([name, param]) => ({ name, param })), {
    lr: 1e-4,
    weightDecay: 0.05,
  });
  const x = torch.randn([batch, 3, cfg.frames, cfg.height, cfg.width], { device });
  /** The loss, and the mask to dispose after backward (call inside a scope). */
  const forward = () => {
    const mask = makeMask("tube", batch, model.encoder.grid, 0.9, device);
    const target = torch.noGrad(() => pixelTargets(x, cfg.tubelet, cfg.patch));
    const loss = cudaOn
      ? torch.autocast(
        "bf16",
        () => maskedMse(model.forward(x, mask.keep, mask.masked).float(), target, mask.masked),
      )
      : maskedMse(model.forward(x, mask.keep, mask.masked), target, mask.masked);
    return { loss, mask };
  };
  const step = (lr?: number | torch.Tensor) => {
    torch.scope(() => {
      const { loss, mask } = forward();
      loss.backward();
      disposeMask(mask);
    });
    opt.step(lr);
    opt.zeroGrad();
  };
  const dispose = () => {
    x.dispose();
    opt.dispose();
    model.dispose();
  };
  return { model, opt, forward, step, dispose };
}

/** Our step, replayed from a CUDA graph captured after 3 eager warm-ups (the trainer's graph path). */
function oursGraphed(): { msPerStep: number; peakBytes: number } {
  const s = setUp();
  const lr = torch.zeros([], { device }).fill_(1e-4);
  const graphs = new StepGraphs(cudaBackend(device), 3);
  try {
    const { msPerStep, peakBytes } = timeSteps(() => graphs.run("mae", () => s.step(lr)), {
      warmup: 5,
      steps,
      cudaOn,
    });
    return { msPerStep, peakBytes: peakBytes ?? 0 };
  } finally {
    graphs.dispose();
    lr.dispose();
    s.dispose();
  }
}

function ours(): {
  msPerStep: number;
  peakBytes: number;
  params: number;
  phases: { forward: number; backward: number; optimizer: number };
} {
  const s = setUp();
  const { msPerStep: best, peakBytes } = timeSteps(() => s.step(), { warmup: 5, steps, cudaOn });
  const peak = peakBytes ?? 0;
  // where a step's time goes: forward (mask, targets, model, loss), backward, optimizer (synchronised phases)
  const now = () => {
    if (cudaOn) torch.cuda.synchronize();
    return performance.now();
  };
  const phases = { forward: Infinity, backward: Infinity, optimizer: Infinity };
  for (let i = 0; i < steps; i++) {
    torch.scope(() => {
      const t0 = now();
      const { loss, mask } = s.forward();
      const t1 = now();
      loss.backward();
      disposeMask(mask);
      const t2 = now();
      s.opt.step();
      s.opt.zeroGrad();
      const t3 = now();
      phases.forward = Math.min(phases.forward, t1 - t0);
      phases.backward = Math.min(phases.backward, t2 - t1);
      phases.optimizer = Math.min(phases.optimizer, t3 - t2);
    });
  }
  const params = s.model.numParameters();
  s.dispose();
  return { msPerStep: best, peakBytes: peak, params, phases };
}

const mine = ours();
const graphed = cudaOn ? oursGraphed() : null;

/** The PyTorch reference's step, eager or under `torch.compile` in `mode`. */
async function reference(mode: string | null) {
  const arg = JSON.stringify({
    ...cfg,
    size: cfg.height,
    batch,
    steps,
    warmup: mode ? 8 : 5, // compilation (and CUDA-graph trees' recording) happens in the first calls
    rounds: 3,
    amp: cudaOn,
    device,
    compile: mode,
  });
  const r = await new Deno.Command(pythonWithTorch(), {
    args: [new URL("./video_mae_ref.py", import.meta.url).pathname, arg],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    throw new Error(`PyTorch reference (${mode ?? "eager"}) failed:\n${new TextDecoder().decode(r.stderr)}`);
  }
  return JSON.parse(new TextDecoder().decode(r.stdout).trim().split("\n").pop()!);
}
const ref = await reference(null);
const compiled: Record<string, { msPerStep: number; peakBytes: number; compileS: number }> = {};
for (const mode of compileModes) {
  const c = await reference(mode);
  compiled[mode] = { msPerStep: c.ms_per_step, peakBytes: c.peak_bytes, compileS: c.warmup_s };
}
const r3 = (v: number) => Number(v.toFixed(3));
const row = {
  name: `video_mae_${preset}_train_step_${device}`,
  unit: "ms/step",
  ours: Number(mine.msPerStep.toFixed(3)),
  reference: Number(ref.ms_per_step.toFixed(3)),
  ratio: Number((mine.msPerStep / ref.ms_per_step).toFixed(3)),
  peakBytes: { ours: mine.peakBytes, reference: ref.peak_bytes },
  params: { ours: mine.params, reference: ref.params },
  /** Best ms of each synchronised phase, ours / PyTorch's: which part of the step differs. */
  phases: Object.fromEntries(
    Object.entries(mine.phases).map(([k, v]) => [
      k,
      {
        ours: Number(v.toFixed(3)),
        reference: Number(ref.phases[k].toFixed(3)),
        ratio: Number((v / ref.phases[k]).toFixed(3)),
      },
    ]),
  ),
  /** Our step replayed from a CUDA graph (CUDA only), against PyTorch eager. */
  graphed: graphed &&
    {
      ours: r3(graphed.msPerStep),
      ratio: r3(graphed.msPerStep / ref.ms_per_step),
      peakBytes: graphed.peakBytes,
    },
  /** PyTorch with torch.compile(model, mode): its step, and ours (eager; graphed on CUDA) against it. */
  compiled: Object.fromEntries(
    Object.entries(compiled).map(([mode, c]) => [mode, {
      reference: r3(c.msPerStep),
      compileSeconds: Number(c.compileS.toFixed(1)),
      vsEager: r3(c.msPerStep / ref.ms_per_step),
      oursRatio: r3(mine.msPerStep / c.msPerStep),
      ...(graphed ? { oursGraphedRatio: r3(graphed.msPerStep / c.msPerStep) } : {}),
      peakBytes: c.peakBytes,
    }]),
  ),
  setup: { preset, batch, clip: `${cfg.frames}x${cfg.height}x${cfg.width}`, patch: cfg.patch, bf16: cudaOn },
};
console.log(JSON.stringify(row, null, 2));
await Deno.mkdir(new URL("../runs/bench/", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("../runs/bench/train_step.json", import.meta.url),
  JSON.stringify(row, null, 2) + "\n",
);
