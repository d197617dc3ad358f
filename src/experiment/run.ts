/**
 * The small-scale reproduction (`deno task experiment`): train each mode (`mae`, `mae-freeze`, `layerlock`,
 * `latent-unfrozen`) from each training seed on Moving Fashion-MNIST with the same protocol
 * (src/eval/experiment_config.ts), then for each run: frozen-feature probes (linear on pooled features, attentive
 * on tokens; garment class and motion direction; probe seeds inside), collapse metrics (during training and at
 * the end), the loss against its trivial floor (is it learning?), step time, layer convergence, reconstructions.
 * Baselines — the untrained encoder of each seed, its patch embedding alone, raw pixels — are probed the same
 * way. Probes learn from clips of the training images and are scored on the validation split (held-out training
 * images: for every choice of settings) or on the test split (the reported numbers).
 *
 * Writes `runs/<name>/results.json` and `runs/<name>/report.html` (with its PNGs) after every run, so a run cut
 * short keeps what it measured. With `log.tensorboard`, each run's `tb/` folder gets its probe accuracies too
 * (`probe/linearGarment`, ... at its final step).
 * @module
 */
import type { Device } from "../torch/dtype.ts";
import { scope } from "../torch/scope.ts";
import { cuda, liveTensors, manualSeed } from "../torch/runtime.ts";
import type { TrainConfig } from "../config.ts";
import { DataError, IoError } from "../errors.ts";
import { floorClips, makeBatchSource } from "../data/source.ts";
import { VideoMAE } from "../models/video_mae.ts";
import { checkpointStep, listCheckpoints, loadModelCheckpoint } from "../train/checkpoint.ts";
import { train } from "../train/trainer.ts";
import { loadInitWeights } from "../interop/import.ts";
import { modelConfig } from "../config.ts";
import { resolveDevice } from "../train/device.ts";
import { formatEvent, type StepRecord } from "../train/events.ts";
import { writeScalars } from "../train/tensorboard.ts";
import { collapseMetrics } from "../eval/collapse.ts";
import { layerOutputs, linearCka } from "../eval/convergence.ts";
import {
  type Baseline,
  type ExperimentConfig,
  type ExperimentMode,
  parseExperimentConfig,
  plannedRuns,
  runConfig,
  runName,
} from "./config.ts";
import { renderExperimentReport } from "./report.ts";
import { reconstructionGrid } from "../eval/reconstruction.ts";
import { extractFeatures } from "../eval/features.ts";
import { type LearningVerdict, learningVerdict } from "../layerlock/learning.ts";
import type { SeedStats } from "../eval/probe.ts";
import { writeReport } from "../eval/report.ts";
import {
  disposeClips,
  type LabelledClips,
  pixelFeaturesOf,
  probeClips,
  probeFeatures,
  probeModel,
  type ProbeSummary,
} from "./probes.ts";

/** One trained run: a mode from one training seed. */
export interface RunResult extends ProbeSummary {
  /** The mode. */
  mode: ExperimentMode;
  /** The training seed. */
  seed: number;
  /** metrics.jsonl records of the run. */
  metrics: StepRecord[];
  /** Mean training steps per second (after the first logging window). */
  stepsPerSec: number;
  /** Peak CUDA memory (bytes), or null on the CPU. */
  peakBytes: number | null;
  /** Linear CKA of each block's output at each checkpoint to its final output. */
  convergence: { step: number; cka: number[] }[];
  /** The loss against its trivial floor. */
  learning: LearningVerdict;
  /** Minutes the run took (training and its measurements). */
  minutes: number;
}

/** One baseline encoder (for `untrained` and `embedding`, one per training seed; `pixels` has no seed). */
export interface BaselineRun extends ProbeSummary {
  /** The training seed whose initialisation it is, or null. */
  seed: number | null;
}

/** The contents of results.json. */
export interface ExperimentResults {
  /** Format version of this file. */
  version: 2;
  /** The experiment's configuration. */
  config: ExperimentConfig;
  /** The resolved training configuration of each mode (first seed; other seeds differ only in `seed`/`name`). */
  trainConfigs: Partial<Record<ExperimentMode, TrainConfig>>;
  /** Device the runs used. */
  device: string;
  /** Minutes since the start. */
  minutes: number;
  /** Whether every run finished. */
  complete: boolean;
  /** Live native tensors after everything was freed (only meaningful once complete). */
  liveTensors: number | null;
  /** The baselines, in the configured order. */
  baselines: { name: Baseline; runs: BaselineRun[] }[];
  /** The trained runs, by mode, in the configured order. */
  modes: { mode: ExperimentMode; runs: RunResult[] }[];
}

/** A one-line summary of an encoder's probes. */
function probeLine(r: ProbeSummary): string {
  const p = r.probes, f = (s: SeedStats) => (100 * s.mean).toFixed(1);
  return `linear garment ${f(p.linearShape)}%, direction ${f(p.linearDirection)}%; attentive garment ${
    f(p.attentiveShape)
  }%, direction ${f(p.attentiveDirection)}%; effective rank ${r.collapse.effectiveRank.toFixed(1)}`;
}

function fmtMinutes(m: number): string {
  return m < 1 ? `${Math.round(m * 60)} s` : `${m.toFixed(1)} min`;
}

/** Trains one run and measures it. */
async function measureRun(
  e: ExperimentConfig,
  mode: ExperimentMode,
  seed: number,
  clips: { train: LabelledClips; eval: LabelledClips },
  device: Device,
  dir: string,
  print: (s: string) => void,
  reconstruct: boolean,
): Promise<{ result: RunResult; image: { name: string; png: Uint8Array } | null }> {
  const t0 = performance.now();
  const cfg = runConfig(e, mode, seed);
  const runDir = `${dir}/${runName(mode, seed)}`;
  await Deno.remove(runDir, { recursive: true }).catch(() => {});
  const tag = `[${runName(mode, seed)}]`;
  const evalBatch = clips.eval.xs[0];
  if (device === "cuda") cuda.resetPeakMemoryStats();
  const every = Math.max(1, Math.round(cfg.optim.steps / 10));
  const metrics: StepRecord[] = []; // the trainer's records, also in metrics.jsonl
  await train(cfg, {
    runDir,
    resume: false,
    data: makeBatchSource,
    floorClips: (n) => floorClips(cfg, n),
    loadInit: loadInitWeights,
    onEvent: (ev) => {
      if (ev.kind === "log") metrics.push(ev.record);
      if (ev.kind === "log" && ev.record.step % every !== 0) return;
      const f = formatEvent(ev);
      if (f) print(`${tag} ${f.text.trim()}`);
    },
    evaluate: {
      every: e.evalEvery,
      fn: (model) => ({ ...collapseMetrics(extractFeatures(model.encoder, evalBatch).pooled) }),
    },
  });
  const peakBytes = device === "cuda" ? cuda.memoryStats()!.peakAllocated : null;
  const sps = (metrics.length > 1 ? metrics.slice(1) : metrics).map((r) => r.stepsPerSec);
  const learning = learningVerdict(metrics);
  print(`${tag} ${learning.text}`);
  const ckpts = listCheckpoints(`${runDir}/checkpoints`);
  const { model: final } = loadModelCheckpoint(ckpts[ckpts.length - 1], device, cfg);
  try {
    print(`${tag} probing (${e.probe.seeds.length} probe seed${e.probe.seeds.length > 1 ? "s" : ""})`);
    const r = probeModel(final, clips, e);
    if (cfg.log.tensorboard) { // the probes' accuracies beside the run's scalars, at its final step
      const acc = Object.entries(r.probes).map(([name, s]) => [name.replace("Shape", "Garment"), s.mean]);
      writeScalars(`${runDir}/tb`, checkpointStep(ckpts[ckpts.length - 1]), {
        probe: Object.fromEntries(acc),
      });
    }
    const small = scope(() => evalBatch.narrow(0, 0, Math.min(16, evalBatch.shape[0])));
    const finalOuts = layerOutputs(final.encoder, small);
    const convergence: RunResult["convergence"] = [];
    for (const path of ckpts) {
      const step = checkpointStep(path);
      using m = loadModelCheckpoint(path, device, cfg).model;
      convergence.push({
        step,
        cka: scope(() => layerOutputs(m.encoder, small).map((o, i) => linearCka(o, finalOuts[i]))),
      });
    }
    for (const t of finalOuts) t.dispose();
    small.dispose();
    let image = null;
    if (reconstruct && cfg.layerlock.mode !== "layerlock") { // layerlock's pixel head stops training at the first freeze
      const two = evalBatch.narrow(0, 0, 2);
      try {
        image = { name: `recon_${mode}.png`, png: await reconstructionGrid(final, two, cfg) };
      } finally {
        two.dispose();
      }
    }
    print(`${tag} ${probeLine(r)}`);
    return {
      result: {
        mode,
        seed,
        ...r,
        metrics,
        stepsPerSec: sps.reduce((a, b) => a + b, 0) / Math.max(1, sps.length),
        peakBytes,
        convergence,
        learning,
        minutes: (performance.now() - t0) / 60000,
      },
      image,
    };
  } finally {
    final.dispose();
  }
}

/** Probes the configured baselines (pixels once; the untrained encoder and its embedding once per seed). */
function measureBaselines(
  e: ExperimentConfig,
  clips: { train: LabelledClips; eval: LabelledClips },
  device: Device,
  print: (s: string) => void,
  onResult: (name: Baseline, run: BaselineRun) => Promise<void> | void,
): Promise<void> {
  const go = async () => {
    const cfg0 = runConfig(e, e.modes[0], e.seeds[0]);
    if (e.baselines.includes("pixels")) {
      print(`[pixels] probing the raw tubelet pixels`);
      const r = scope(() => {
        const m = cfg0.model;
        const tr = pixelFeaturesOf(clips.train.xs, m.tubelet, m.patch);
        const ev = pixelFeaturesOf(clips.eval.xs, m.tubelet, m.patch);
        return probeFeatures(tr, ev, clips.train, clips.eval, e);
      });
      print(`[pixels] ${probeLine(r)}`);
      await onResult("pixels", { seed: null, ...r });
    }
    for (const seed of e.seeds) {
      const wants = (["untrained", "embedding"] as const).filter((b) => e.baselines.includes(b));
      if (wants.length === 0) break;
      // Each run's initialisation: the trainer seeds torch with the run's seed, then builds the model.
      const cfg = runConfig(e, e.modes[0], seed);
      manualSeed(cfg.seed);
      const init = new VideoMAE(modelConfig(cfg), device);
      try {
        for (const name of wants) {
          print(
            `[${name}-s${seed}] probing the ${
              name === "untrained" ? "untrained encoder" : "untrained patch embedding (depth 0)"
            }`,
          );
          const r = probeModel(init, clips, e, name === "embedding" ? 0 : undefined);
          print(`[${name}-s${seed}] ${probeLine(r)}`);
          await onResult(name, { seed, ...r });
        }
      } finally {
        init.dispose();
      }
    }
  };
  return go();
}

/** Runs the experiment; `print` receives progress lines. Returns what results.json holds. */
export async function runExperiment(
  e: ExperimentConfig,
  print: (s: string) => void = console.log,
): Promise<ExperimentResults> {
  e = parseExperimentConfig(e); // every setting checked before anything is trained or written
  const dir = `runs/${e.name}`;
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (err) {
    throw new IoError(dir, `cannot write the experiment folder ${dir}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const device = resolveDevice(runConfig(e, e.modes[0], e.seeds[0]));
  const t0 = performance.now();
  const minutes = () => (performance.now() - t0) / 60000;
  const results: ExperimentResults = {
    version: 2,
    config: e,
    trainConfigs: Object.fromEntries(e.modes.map((m) => [m, runConfig(e, m, e.seeds[0])])),
    device,
    minutes: 0,
    complete: false,
    liveTensors: null,
    baselines: e.baselines.map((name) => ({ name, runs: [] })),
    modes: e.modes.map((mode) => ({ mode, runs: [] })),
  };
  const images: { name: string; png: Uint8Array }[] = [];
  // results.json and the report are rewritten after every measurement, so a run cut short keeps what it
  // measured (`complete: false`; the report's subtitle says how many runs it holds).
  const save = async (complete: boolean) => {
    results.minutes = minutes();
    results.complete = complete;
    results.liveTensors = complete ? liveTensors() : null;
    await Deno.writeTextFile(`${dir}/results.json`, JSON.stringify(results, null, 2) + "\n");
    await writeReport(dir, renderExperimentReport(results, images.map((i) => i.name)), images);
  };
  print(
    `[experiment] ${e.modes.length} modes, ${plannedRuns(e).length} runs (training seeds ${
      e.seeds.join(", ")
    }), probes scored on the ` +
      `${e.probe.split} split; writing ${dir}/`,
  );
  const clips = await probeClips(e, device);
  try {
    await measureBaselines(e, clips, device, print, async (name, run) => {
      results.baselines.find((b) => b.name === name)!.runs.push(run);
      await save(false);
    });
    const runs = plannedRuns(e), total = runs.length;
    let done = 0;
    const tRuns = performance.now();
    for (const { mode, seed } of runs) {
      print(
        `[${runName(mode, seed)}] run ${done + 1} of ${total}: training ${
          runConfig(e, mode, seed).optim.steps
        } steps`,
      );
      const { result, image } = await measureRun(
        e,
        mode,
        seed,
        clips,
        device,
        dir,
        print,
        seed === e.seeds[0],
      );
      results.modes.find((m) => m.mode === mode)!.runs.push(result);
      if (image) images.push(image);
      done++;
      const per = (performance.now() - tRuns) / 60000 / done;
      print(
        `[experiment] ${done}/${total} runs done, ${fmtMinutes(minutes())} so far` +
          (done < total ? `, about ${fmtMinutes(per * (total - done))} to go` : ""),
      );
      if (done < total) await save(false);
    }
  } finally {
    disposeClips(clips.train);
    disposeClips(clips.eval);
  }
  await save(true);
  print(`wrote ${dir}/results.json and ${dir}/report.html (${fmtMinutes(results.minutes)})`);
  return results;
}

/** Re-renders runs/<name>/report.html from its results.json (the reconstruction PNGs already there are kept). */
export async function rerenderReport(name: string): Promise<void> {
  const dir = `runs/${name}`;
  const results = JSON.parse(await Deno.readTextFile(`${dir}/results.json`));
  if (results.version !== 2) {
    throw new DataError(
      `${dir}/results.json`,
      `${dir}/results.json was written by an earlier version (one training seed, no loss floor); ` +
        "rerun the experiment to get a report of this version",
    );
  }
  const names = [...Deno.readDirSync(dir)].filter((f) => f.isFile && /^recon_.*\.png$/.test(f.name))
    .map((f) => f.name).sort();
  await writeReport(dir, renderExperimentReport(results as ExperimentResults, names), []);
}
