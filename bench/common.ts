/**
 * What the benchmarks share: the Python that has the PyTorch reference, and the model setup of the training
 * benchmarks (ViT-B on 16×224×224 clips with bf16 on CUDA; the `tiny` CPU default on 16×32×32 clips otherwise).
 * @module
 */
import { parseArgs } from "node:util";
import * as torch from "../mod.ts";
import type { VideoMAEConfig } from "../src/models/video_mae.ts";
import type { PRESETS } from "../src/models/presets.ts";

/** The Python with torch that the shim was built against (or LAYERLOCK_BENCH_PYTHON, or python3). */
export function pythonWithTorch(): string {
  const env = Deno.env.get("LAYERLOCK_BENCH_PYTHON");
  if (env) return env;
  try {
    const rec = JSON.parse(Deno.readTextFileSync(new URL("../native/build/current.json", import.meta.url)));
    if (rec.torch?.python) return rec.torch.python;
  } catch { /* fall through */ }
  return "python3";
}

/** The setup of a training benchmark, from `--preset` and `--batch` flags and the device present. */
export interface TrainBenchSetup {
  /** Whether CUDA is used (bf16 autocast then). */
  cudaOn: boolean;
  /** The device. */
  device: torch.Device;
  /** The preset name. */
  preset: keyof typeof PRESETS;
  /** Clips per step. */
  batch: number;
  /** The model configuration. */
  cfg: VideoMAEConfig;
  /** `--compile`: the torch.compile modes of the PyTorch reference (comma-separated), where a bench has them. */
  compile?: string;
}

/** Reads the flags and builds the training-benchmark setup. */
export function trainBenchSetup(args: string[]): TrainBenchSetup {
  const cudaOn = torch.cuda.isAvailable();
  const { values } = parseArgs({
    args,
    options: { preset: { type: "string" }, batch: { type: "string" }, compile: { type: "string" } },
  });
  const preset = (values.preset ?? (cudaOn ? "base" : "tiny")) as keyof typeof PRESETS;
  const geo = cudaOn ? { frames: 16, size: 224, patch: 16 } : { frames: 16, size: 32, patch: 8 };
  const cfg: VideoMAEConfig = {
    ...torch.PRESETS[preset],
    inChans: 3,
    frames: geo.frames,
    height: geo.size,
    width: geo.size,
    patch: geo.patch,
    tubelet: 2,
    qkvBias: true,
    posEmbed: "sincos",
  };
  return {
    cudaOn,
    device: cudaOn ? "cuda" : "cpu",
    preset,
    batch: Number(values.batch ?? (cudaOn ? 16 : 8)),
    cfg,
    compile: values.compile,
  };
}

/**
 * Times `step` as the best of `rounds` rounds of `steps` calls each, after `warmup` calls; on CUDA it
 * synchronises around each round and reports the peak allocated bytes since the warm-up (null on the CPU).
 */
export function timeSteps(
  step: () => void,
  { warmup, rounds = 3, steps, cudaOn }: { warmup: number; rounds?: number; steps: number; cudaOn: boolean },
): { msPerStep: number; peakBytes: number | null } {
  const sync = () => cudaOn && torch.cuda.synchronize();
  for (let i = 0; i < warmup; i++) step();
  sync();
  if (cudaOn) torch.cuda.resetPeakMemoryStats();
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) step();
    sync();
    best = Math.min(best, (performance.now() - t0) / steps);
  }
  return { msPerStep: best, peakBytes: cudaOn ? torch.cuda.memoryStats()!.peakAllocated : null };
}
