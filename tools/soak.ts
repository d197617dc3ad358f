/**
 * `deno task soak [--steps N] [--every K]`: a long run of a small LayerLock model with checkpoints, watching
 * for leaks — the live native tensors (the shim's handle count) and the process's resident memory at every
 * logging step. Both must be flat once the freezing schedule has finished (the stages before it change the
 * optimiser state legitimately). Prints a table and a verdict, and writes runs/soak/soak.json; exits 1 when
 * either grows. The test suite runs a short version (`tests/soak_test.ts`).
 * @module
 */
import { parseArgs } from "node:util";
import { parseConfig, type TrainConfig } from "../src/config.ts";
import { makeBatchSource } from "../src/data/source.ts";
import { liveTensors } from "../src/torch/runtime.ts";
import { train } from "../src/train/trainer.ts";

/** One sample of the soak: after `step`, the live tensors and the resident set in MiB. */
export interface SoakSample {
  step: number;
  liveTensors: number;
  rssMiB: number;
  /** The JavaScript heap in use, MiB. */
  heapMiB: number;
  seconds: number;
}

/** The configuration of a soak of `steps` steps: a 2-block model on 4×16² clips, checkpoints every 10%. */
export function soakConfig(steps: number, every: number): TrainConfig {
  return parseConfig({
    name: "soak",
    threads: 1,
    model: {
      encoderDim: 48,
      encoderDepth: 4,
      encoderHeads: 3,
      decoderDim: 24,
      decoderDepth: 1,
      decoderHeads: 3,
    },
    data: { frames: 4, size: 16, prefetch: 2 },
    optim: { batchSize: 4, lr: 1e-3, steps },
    log: { every, checkpointEvery: Math.max(every, Math.floor(steps / 10)), keep: 2, floorClips: 16 },
  });
}

/**
 * Trains `cfg` into `runDir` from scratch, sampling at every logging step. `flat` is whether the live tensors
 * are constant and the resident set grew by less than `rssSlackMiB` over the samples after the last freeze.
 */
export async function soak(
  cfg: TrainConfig,
  runDir: string,
  rssSlackMiB = 64,
): Promise<{ samples: SoakSample[]; settledFrom: number; flat: boolean; why: string }> {
  const samples: SoakSample[] = [];
  const t0 = performance.now();
  let lastFreeze = 0;
  const before = liveTensors();
  await train(cfg, {
    runDir,
    resume: false,
    data: makeBatchSource,
    onEvent: (e) => {
      if (e.kind === "stage") lastFreeze = e.step;
      if (e.kind === "log") {
        samples.push({
          step: e.record.step,
          liveTensors: e.record.liveTensors,
          rssMiB: Deno.memoryUsage().rss / 2 ** 20,
          heapMiB: Deno.memoryUsage().heapUsed / 2 ** 20,
          seconds: (performance.now() - t0) / 1000,
        });
      }
    },
  });
  const settled = samples.filter((s) => s.step > lastFreeze + cfg.log.every);
  const why: string[] = [];
  if (settled.length < 2) {
    why.push(`only ${settled.length} samples after the last freeze (step ${lastFreeze})`);
  }
  const live = new Set(settled.map((s) => s.liveTensors));
  if (live.size > 1) why.push(`live tensors changed after the schedule settled: ${[...live].join(", ")}`);
  const rss = settled.map((s) => s.rssMiB);
  // growth: the mean of the last quarter over the mean of the first quarter (robust to a single spike)
  const q = Math.max(1, Math.floor(rss.length / 4));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const growth = rss.length ? mean(rss.slice(-q)) - mean(rss.slice(0, q)) : 0;
  if (growth > rssSlackMiB) {
    why.push(`resident memory grew by ${growth.toFixed(1)} MiB (allowed ${rssSlackMiB})`);
  }
  if (liveTensors() !== before) why.push(`${liveTensors() - before} tensors left alive after the run`);
  return {
    samples,
    settledFrom: lastFreeze,
    flat: why.length === 0,
    why: why.length
      ? why.join("; ")
      : `flat: live tensors ${[...live].join("")}, RSS growth ${growth.toFixed(1)} MiB`,
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { steps: { type: "string" }, every: { type: "string" } },
  });
  const steps = Number(values.steps ?? 10000), every = Number(values.every ?? 250);
  const runDir = "runs/soak";
  await Deno.remove(runDir, { recursive: true }).catch(() => {});
  const cfg = soakConfig(steps, every);
  console.log(
    `soak: ${steps} steps of a 4-block LayerLock model on 4×16² clips, checkpoints every ` +
      `${cfg.log.checkpointEvery}, sampled every ${every} steps`,
  );
  const r = await soak(cfg, runDir);
  console.log("   step  live tensors  RSS MiB  JS heap MiB  seconds");
  for (const s of r.samples) {
    console.log(
      [
        String(s.step).padStart(7),
        String(s.liveTensors).padStart(12),
        s.rssMiB.toFixed(1).padStart(7),
        s.heapMiB.toFixed(1).padStart(11),
        s.seconds.toFixed(0).padStart(7),
      ].join("  "),
    );
  }
  console.log(`schedule settled after step ${r.settledFrom}; ${r.why}`);
  await Deno.writeTextFile(`${runDir}/soak.json`, JSON.stringify(r, null, 2));
  Deno.exit(r.flat ? 0 : 1);
}
