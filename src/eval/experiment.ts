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
 * short keeps what it measured.
 * @module
 */
import { noGrad } from "../torch/autograd.ts";
import { tensor } from "../torch/creation.ts";
import { cat } from "../torch/functional.ts";
import type { Device } from "../torch/dtype.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import { cuda, liveTensors, manualSeed } from "../torch/runtime.ts";
import type { TrainConfig } from "../config.ts";
import { batchToTensor, IMAGENET_MEAN, IMAGENET_STD } from "../data/clip.ts";
import { MovingFashionMnist } from "../data/moving_fashion_mnist.ts";
import { floorClips, makeBatchSource } from "../data/source.ts";
import { loadSafetensors } from "../torch/safetensors.ts";
import { makeMask } from "../models/masking.ts";
import { patchify, pixelTargets } from "../models/targets.ts";
import { VideoMAE } from "../models/video_mae.ts";
import { listCheckpoints } from "../train/checkpoint.ts";
import { modelConfig, resolveDevice, train } from "../train/trainer.ts";
import { formatEvent, type StepRecord } from "../train/events.ts";
import { type CollapseMetrics, collapseMetrics } from "./collapse.ts";
import { layerOutputs, linearCka } from "./convergence.ts";
import {
  type Baseline,
  type ExperimentConfig,
  type ExperimentMode,
  parseExperimentConfig,
  runConfig,
  runName,
} from "./experiment_config.ts";
import { renderExperimentReport } from "./experiment_report.ts";
import { extractFeatures } from "./features.ts";
import { type LearningVerdict, learningVerdict } from "./learning.ts";
import { encodePng, imageGrid, type RgbImage, upscale } from "./png.ts";
import {
  type ProbeResult,
  probeWithSeeds,
  type SeedStats,
  trainAttentiveProbes,
  trainLinearProbe,
} from "./probe.ts";
import { writeReport } from "./report.ts";

/** The four probes: linear / attentive × garment class / motion direction. */
export const PROBES = ["linearShape", "linearDirection", "attentiveShape", "attentiveDirection"] as const;
/** One of the four probes. */
export type ProbeName = (typeof PROBES)[number];

/** An encoder's probe results and the collapse metrics of its pooled evaluation features. */
export interface ProbeSummary {
  /** Accuracy on the evaluation split of each probe, over probe seeds. */
  probes: Record<ProbeName, SeedStats>;
  /** Accuracy on the probes' own training clips (mean over probe seeds): how well each probe fit. */
  trainAccuracy: Record<ProbeName, number>;
  /** Collapse metrics of the pooled evaluation features. */
  collapse: CollapseMetrics;
}

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

/** Dataset seeds of the probe clips: the same clips for every run, whatever the training seed. */
export const PROBE_DATA_SEEDS = { train: 1, eval: 2 } as const;

/** Labelled clips of one split, as [chunk, C, T, H, W] tensors on a device, and their labels. */
export interface LabelledClips {
  /** The clips, in chunks of up to 64. */
  xs: Tensor[];
  /** Garment class of each clip. */
  shape: number[];
  /** Motion direction of each clip. */
  direction: number[];
}

async function clipsOf(
  ds: MovingFashionMnist,
  n: number,
  device: Device,
  chunk = 64,
): Promise<LabelledClips> {
  const xs: Tensor[] = [], shape: number[] = [], direction: number[] = [];
  try {
    for (let i = 0; i < n; i += chunk) {
      const b = await ds.batch(Array.from({ length: Math.min(chunk, n - i) }, (_, k) => i + k));
      xs.push(batchToTensor(b, device));
      shape.push(...b.labels!.shape);
      direction.push(...b.labels!.direction);
    }
  } catch (err) {
    for (const x of xs) x.dispose();
    throw err;
  }
  return { xs, shape, direction };
}

/** Frees the clips. */
export function disposeClips(c: LabelledClips): void {
  for (const x of c.xs) x.dispose();
}

/**
 * The datasets the probe clips come from: the training split (the training images less the held-out ones) and
 * the evaluation split (`val`: the held-out training images; `test`: the official test images).
 */
export async function probeDatasets(
  e: ExperimentConfig,
): Promise<{ train: MovingFashionMnist; eval: MovingFashionMnist }> {
  const d = runConfig(e, e.modes[0], e.seeds[0]).data;
  const open = (split: "train" | "val" | "test", seed: number) =>
    MovingFashionMnist.open({ frames: d.frames, size: d.size, split, seed });
  return {
    train: await open("train", PROBE_DATA_SEEDS.train),
    eval: await open(e.probe.split, PROBE_DATA_SEEDS.eval),
  };
}

/** The probe clips (`probe.trainClips` of the training split, `probe.evalClips` of the evaluation split). */
export async function probeClips(
  e: ExperimentConfig,
  device: Device,
): Promise<{ train: LabelledClips; eval: LabelledClips }> {
  const ds = await probeDatasets(e);
  const train = await clipsOf(ds.train, e.probe.trainClips, device);
  try {
    return { train, eval: await clipsOf(ds.eval, e.probe.evalClips, device) };
  } catch (err) {
    disposeClips(train);
    throw err;
  }
}

/** A VideoMAE of `cfg`'s architecture with the model weights of a training checkpoint. */
export function loadModel(path: string, cfg: TrainConfig, device: Device): VideoMAE {
  const model = new VideoMAE(modelConfig(cfg), device);
  scope(() => {
    const { tensors } = loadSafetensors(path, { device });
    const sd: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(tensors)) if (k.startsWith("model.")) sd[k.slice(6)] = t;
    model.loadStateDict(sd);
  });
  return model;
}

/** Pooled [N, D] and token [N, T, D] features of some clip chunks. */
export interface FeatureSet {
  /** Mean over tokens. */
  pooled: Tensor;
  /** Every token. */
  tokens: Tensor;
}

/** Pooled and token features of clip chunks after `depth` blocks (default all), concatenated. */
export function featuresOf(model: VideoMAE, xs: Tensor[], depth?: number): FeatureSet {
  return scope(() => {
    const parts = xs.map((x) => extractFeatures(model.encoder, x, { depth }));
    return {
      pooled: scope(() => cat(parts.map((p) => p.pooled), 0)),
      tokens: scope(() => cat(parts.map((p) => p.tokens), 0)),
    };
  });
}

/** The raw-pixel "features" of clip chunks: each tubelet's pixels as a token [N, T, pt·ph·pw·C], and their mean. */
export function pixelFeaturesOf(xs: Tensor[], tubelet: number, patch: number): FeatureSet {
  return noGrad(() =>
    scope(() => {
      const tokens = cat(xs.map((x) => pixelTargets(x, tubelet, patch, false)), 0);
      return { pooled: tokens.mean(1), tokens };
    })
  );
}

/** The four probes over every probe seed on precomputed features, and collapse metrics of the pooled ones. */
export function probeFeatures(
  tr: FeatureSet,
  ev: FeatureSet,
  train_: LabelledClips,
  eval_: LabelledClips,
  e: ExperimentConfig,
): ProbeSummary {
  return scope(() => {
    const device = tr.pooled.device;
    const labels = (v: number[]) => tensor(Int32Array.from(v), { device }).long();
    const y = {
      Shape: [labels(train_.shape), labels(eval_.shape)],
      Direction: [labels(train_.direction), labels(eval_.direction)],
    };
    const p = e.probe;
    const lin = { epochs: p.linearEpochs, lr: p.linearLr };
    const att = { epochs: p.attentiveEpochs, lr: p.attentiveLr, batchSize: p.attentiveBatch };
    const probes = {} as Record<ProbeName, SeedStats>;
    const trainAccuracy = {} as Record<ProbeName, number>;
    const record = (name: ProbeName, rs: ProbeResult[]) => {
      probes[name] = probeWithSeeds((seed) => rs[p.seeds.indexOf(seed)], p.seeds);
      trainAccuracy[name] = rs.reduce((a, r) => a + r.trainAccuracy, 0) / rs.length;
    };
    for (const label of ["Shape", "Direction"] as const) {
      const [ytr, yev] = y[label];
      record(
        `linear${label}`,
        p.seeds.map((seed) => trainLinearProbe(tr.pooled, ytr, ev.pooled, yev, { ...lin, seed })),
      );
    }
    // both labels' attentive probes in one pass over the tokens per batch (trainAttentiveProbes)
    const att2 = p.seeds.map((seed) =>
      trainAttentiveProbes(tr.tokens, [y.Shape[0], y.Direction[0]], ev.tokens, [y.Shape[1], y.Direction[1]], {
        ...att,
        seed,
      })
    );
    record("attentiveShape", att2.map((r) => r[0]));
    record("attentiveDirection", att2.map((r) => r[1]));
    return { probes, trainAccuracy, collapse: collapseMetrics(ev.pooled) };
  });
}

/** Features of an encoder (at `depth`, default all) on the probe clips, probed. */
function probeModel(
  model: VideoMAE,
  clips: { train: LabelledClips; eval: LabelledClips },
  e: ExperimentConfig,
  depth?: number,
): ProbeSummary {
  return scope(() =>
    probeFeatures(
      featuresOf(model, clips.train.xs, depth),
      featuresOf(model, clips.eval.xs, depth),
      clips.train,
      clips.eval,
      e,
    )
  );
}

/** Frames of clips [B, C, T, H, W] (ImageNet-normalised) as RGB images, one per (clip, frame index). */
function framesToImages(x: Tensor, frameIdx: number[]): RgbImage[] {
  const [b, , , h, w] = x.shape;
  const data = noGrad(() =>
    scope(() => {
      const mean = tensor(new Float32Array(IMAGENET_MEAN), { shape: [1, 3, 1, 1, 1], device: x.device });
      const std = tensor(new Float32Array(IMAGENET_STD), { shape: [1, 3, 1, 1, 1], device: x.device });
      return x.mul(std).add(mean).clamp(0, 1).mul(255).permute([0, 2, 3, 4, 1]).contiguous().to({
        dtype: "u8",
      })
        .toArray();
    })
  ) as Uint8Array;
  const t = x.shape[2];
  const out: RgbImage[] = [];
  for (let i = 0; i < b; i++) {
    for (const f of frameIdx) {
      const off = ((i * t) + f) * h * w * 3;
      out.push({ rgb: data.slice(off, off + h * w * 3), width: w, height: h });
    }
  }
  return out;
}

/** Input, masked input and reconstruction of a few clips, as one PNG grid (rows: clip × kind; columns: frames). */
async function reconstructionGrid(model: VideoMAE, x: Tensor, cfg: TrainConfig): Promise<Uint8Array> {
  const m = modelConfig(cfg);
  const frames = [0, Math.floor(m.frames / 3), Math.floor((2 * m.frames) / 3), m.frames - 1];
  const rows = noGrad(() =>
    scope(() => {
      const [b, c, t, h, w] = x.shape;
      const mask = makeMask(cfg.mask.kind, b, model.encoder.grid, cfg.mask.ratio, x.device);
      const pred = model.forward(x, mask.keep, mask.masked);
      const patches = patchify(x, m.tubelet, m.patch); // [B, N, K, C]
      const [, n, k] = patches.shape;
      const flat = patches.reshape([b, n, k * c]);
      const idx = mask.masked.unsqueeze(-1).expand([b, mask.masked.shape[1], k * c]);
      const unpatch = (p: Tensor) =>
        p.reshape([b, t / m.tubelet, h / m.patch, w / m.patch, m.tubelet, m.patch, m.patch, c])
          .permute([0, 7, 1, 4, 2, 5, 3, 6]).reshape([b, c, t, h, w]);
      const masked = unpatch(flat.scatter(1, idx, flat.mul(0).gather(1, idx)));
      const recon = unpatch(flat.scatter(1, idx, pred.float()));
      return [x, masked, recon].map((v) => framesToImages(v, frames));
    })
  );
  const tiles: RgbImage[] = [];
  for (let i = 0; i < x.shape[0]; i++) for (const r of rows) tiles.push(...r.slice(i * 4, i * 4 + 4));
  const grid = upscale(imageGrid(tiles, 4), 2);
  return await encodePng(grid.rgb, grid.width, grid.height);
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
  const final = loadModel(ckpts[ckpts.length - 1], cfg, device);
  try {
    print(`${tag} probing (${e.probe.seeds.length} probe seed${e.probe.seeds.length > 1 ? "s" : ""})`);
    const r = probeModel(final, clips, e);
    const small = scope(() => evalBatch.narrow(0, 0, Math.min(16, evalBatch.shape[0])));
    const finalOuts = layerOutputs(final.encoder, small);
    const convergence: RunResult["convergence"] = [];
    for (const path of ckpts) {
      const step = Number(path.match(/step_(\d+)/)![1]);
      const m = loadModel(path, cfg, device);
      const cka = scope(() => layerOutputs(m.encoder, small).map((o, i) => linearCka(o, finalOuts[i])));
      m.dispose();
      convergence.push({ step, cka });
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
  await Deno.mkdir(dir, { recursive: true });
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
    `[experiment] ${e.modes.length} modes × ${e.seeds.length} training seeds, probes scored on the ` +
      `${e.probe.split} split; writing ${dir}/`,
  );
  const clips = await probeClips(e, device);
  try {
    await measureBaselines(e, clips, device, print, async (name, run) => {
      results.baselines.find((b) => b.name === name)!.runs.push(run);
      await save(false);
    });
    const total = e.modes.length * e.seeds.length;
    let done = 0;
    const tRuns = performance.now();
    for (const seed of e.seeds) { // seed-major: a run cut short has every mode from the first seed
      for (const mode of e.modes) {
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
    throw new Error(
      `${dir}/results.json was written by an earlier version (one training seed, no loss floor); ` +
        "rerun the experiment to get a report of this version",
    );
  }
  const names = [...Deno.readDirSync(dir)].filter((f) => f.isFile && /^recon_.*\.png$/.test(f.name))
    .map((f) => f.name).sort();
  await writeReport(dir, renderExperimentReport(results as ExperimentResults, names), []);
}
