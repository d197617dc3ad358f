/**
 * The small-scale reproduction (`deno task experiment`): train `mae`, `mae-freeze`, `layerlock` and
 * `latent-unfrozen` on Moving Fashion-MNIST with the same budget and seeds, then for each: frozen-feature probes
 * (linear on pooled features, attentive on tokens; garment class and motion direction; several probe seeds),
 * collapse metrics (logged during training and at the end), step time, layer convergence, and reconstructions.
 * Writes `runs/<name>/results.json` and `runs/<name>/report.html` (with its PNGs).
 * @module
 */
import { TorchError } from "../../ffi/errors.ts";
import { noGrad } from "../autograd.ts";
import { tensor } from "../creation.ts";
import { cat } from "../functional.ts";
import type { Device } from "../dtype.ts";
import { scope } from "../scope.ts";
import type { Tensor } from "../tensor.ts";
import { cuda, liveTensors, manualSeed } from "../runtime.ts";
import { parseConfig, type TrainConfig } from "../cli/config.ts";
import { batchToTensor, IMAGENET_MEAN, IMAGENET_STD } from "../data/clip.ts";
import { FASHION_CLASSES, MovingFashionMnist } from "../data/moving_fashion_mnist.ts";
import { DIRECTION_NAMES } from "../data/moving_shapes.ts";
import { makeBatchSource } from "../data/source.ts";
import { loadSafetensors } from "../io/safetensors.ts";
import type { Mode } from "../layerlock/schedule.ts";
import { makeMask } from "../models/masking.ts";
import { patchify } from "../models/targets.ts";
import { VideoMAE } from "../models/video_mae.ts";
import { listCheckpoints } from "../train/checkpoint.ts";
import { modelConfig, resolveDevice, train } from "../train/trainer.ts";
import { type CollapseMetrics, collapseMetrics } from "./collapse.ts";
import { layerOutputs, linearCka } from "./convergence.ts";
import { extractFeatures } from "./features.ts";
import { encodePng, imageGrid, type RgbImage, upscale } from "./png.ts";
import { probeWithSeeds, type SeedStats, trainAttentiveProbe, trainLinearProbe } from "./probe.ts";
import { barChart, lineChart, renderReport, table, writeReport } from "./report.ts";

/** The experiment's settings (defaults sized for under an hour on 2 CPU cores). */
export interface ExperimentConfig {
  /** Output directory name under runs/. */
  name: string;
  /** Modes compared. */
  modes: Mode[];
  /** Training steps per mode. */
  steps: number;
  /** Clips per step. */
  batchSize: number;
  /** Peak learning rate of every mode's training (warmup-cosine). */
  lr: number;
  /** Model preset. */
  preset: TrainConfig["model"]["preset"];
  /** Frames per clip. */
  frames: number;
  /** Frame size. */
  size: number;
  /** Patch size. */
  patch: number;
  /** Training seed (shared by every mode). */
  seed: number;
  /** Probe seeds (the spread of each probe is over these). */
  probeSeeds: number[];
  /** Training-split clips the probes learn from. */
  trainClips: number;
  /** Test-split clips the probes are scored on. */
  testClips: number;
  /** Linear-probe epochs (full passes over the training clips; the probe costs little). */
  linearEpochs: number;
  /** Linear-probe peak learning rate. */
  linearLr: number;
  /** Attentive-probe epochs (the attentive probe is the costly part of the evaluation). */
  attentiveEpochs: number;
  /** Attentive-probe peak learning rate. */
  attentiveLr: number;
  /** Attentive-probe batch size. */
  attentiveBatch: number;
  /** Also probe the untrained encoder (the initialisation every mode starts from) as a baseline row. */
  baseline: boolean;
  /** Steps between collapse measurements during training. */
  evalEvery: number;
  /** Device (auto: cuda when available). */
  device: "auto" | "cpu" | "cuda";
}

/** The default settings. */
export const DEFAULT_EXPERIMENT: ExperimentConfig = {
  name: "experiment",
  modes: ["mae", "mae-freeze", "layerlock", "latent-unfrozen"],
  steps: 800,
  batchSize: 8,
  lr: 1e-3,
  preset: "tiny",
  frames: 16,
  size: 64,
  patch: 16,
  seed: 0,
  probeSeeds: [0, 1, 2],
  trainClips: 1024,
  testClips: 512,
  linearEpochs: 300,
  linearLr: 1e-2,
  attentiveEpochs: 40,
  attentiveLr: 1e-3,
  attentiveBatch: 64,
  baseline: true,
  evalEvery: 100,
  device: "auto",
};

/** One mode's results. */
export interface ModeResult {
  /** The mode. */
  mode: Mode;
  /** metrics.jsonl records of its run. */
  metrics: Record<string, unknown>[];
  /** Mean training steps per second (after the first logging window). */
  stepsPerSec: number;
  /** Peak CUDA memory (bytes), or null on the CPU. */
  peakBytes: number | null;
  /** Probe accuracies: linear/attentive × shape/direction. */
  probes: Record<"linearShape" | "linearDirection" | "attentiveShape" | "attentiveDirection", SeedStats>;
  /** Collapse metrics of the final pooled test features. */
  collapse: CollapseMetrics;
  /** Linear CKA of each layer's output at each checkpoint to its final output: {step, cka[]}[]. */
  convergence: { step: number; cka: number[] }[];
}

/** The trainer configuration of one mode. */
export function modeTrainConfig(e: ExperimentConfig, mode: Mode): TrainConfig {
  return parseConfig({
    name: `${e.name}-${mode}`.replace(/[^A-Za-z0-9._-]/g, "_"),
    seed: e.seed,
    device: e.device,
    model: { preset: e.preset, patch: e.patch },
    data: { source: "fashion", frames: e.frames, size: e.size, prefetch: 4 },
    optim: {
      steps: e.steps,
      batchSize: e.batchSize,
      lr: e.lr,
      warmupSteps: Math.max(1, Math.round(e.steps / 10)),
    },
    layerlock: { mode },
    log: { every: 20, checkpointEvery: Math.max(1, Math.round(e.steps / 8)), keep: 100 },
  });
}

/** Labelled clips of one split, as [chunk, C, T, H, W] tensors on `device` and their labels. */
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
  for (let i = 0; i < n; i += chunk) {
    const idx = Array.from({ length: Math.min(chunk, n - i) }, (_, k) => i + k);
    const b = await ds.batch(idx);
    xs.push(batchToTensor(b, device));
    shape.push(...b.labels!.shape);
    direction.push(...b.labels!.direction);
  }
  return { xs, shape, direction };
}

/**
 * The clips the probes learn from (`trainClips` from the training split) and are scored on (`testClips` from the
 * test split), the same for every mode and run with the same settings. The caller owns the tensors.
 */
export async function probeClips(
  e: ExperimentConfig,
  device: Device,
): Promise<{ train: LabelledClips; test: LabelledClips }> {
  const open = (split: "train" | "test", seed: number) =>
    MovingFashionMnist.open({ frames: e.frames, size: e.size, split, seed });
  const train = await clipsOf(await open("train", e.seed + 1), e.trainClips, device);
  try {
    return { train, test: await clipsOf(await open("test", e.seed + 2), e.testClips, device) };
  } catch (err) {
    for (const t of train.xs) t.dispose();
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

/** Pooled and token features of clip chunks after `depth` blocks (default all), concatenated. */
export function featuresOf(
  model: VideoMAE,
  xs: Tensor[],
  depth?: number,
): { pooled: Tensor; tokens: Tensor } {
  return scope(() => {
    const parts = xs.map((x) => extractFeatures(model.encoder, x, { depth }));
    return {
      pooled: scope(() => catRows(parts.map((p) => p.pooled))),
      tokens: scope(() => catRows(parts.map((p) => p.tokens))),
    };
  });
}

function catRows(ts: Tensor[]): Tensor {
  return cat(ts, 0);
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

/** A probed encoder's results: probe accuracies and the collapse metrics of its pooled test features. */
export interface ProbeSummary {
  /** Probe accuracies: linear/attentive × shape/direction. */
  probes: ModeResult["probes"];
  /** Collapse metrics of the pooled test features. */
  collapse: CollapseMetrics;
}

/** Features of the training and test clips, the four probes over every probe seed, and collapse metrics. */
function probeModel(
  model: VideoMAE,
  train_: LabelledClips,
  test: LabelledClips,
  e: ExperimentConfig,
): ProbeSummary {
  return scope(() => {
    const device = train_.xs[0].device;
    const tr = featuresOf(model, train_.xs), te = featuresOf(model, test.xs);
    const labels = (v: number[]) => tensor(Int32Array.from(v), { device }).long();
    const trS = labels(train_.shape), teS = labels(test.shape);
    const trD = labels(train_.direction), teD = labels(test.direction);
    const lin = { epochs: e.linearEpochs, lr: e.linearLr };
    const att = { epochs: e.attentiveEpochs, lr: e.attentiveLr, batchSize: e.attentiveBatch };
    return {
      probes: {
        linearShape: probeWithSeeds(
          (seed) => trainLinearProbe(tr.pooled, trS, te.pooled, teS, { ...lin, seed }),
          e.probeSeeds,
        ),
        linearDirection: probeWithSeeds(
          (seed) => trainLinearProbe(tr.pooled, trD, te.pooled, teD, { ...lin, seed }),
          e.probeSeeds,
        ),
        attentiveShape: probeWithSeeds(
          (seed) => trainAttentiveProbe(tr.tokens, trS, te.tokens, teS, { ...att, seed }),
          e.probeSeeds,
        ),
        attentiveDirection: probeWithSeeds(
          (seed) => trainAttentiveProbe(tr.tokens, trD, te.tokens, teD, { ...att, seed }),
          e.probeSeeds,
        ),
      },
      collapse: collapseMetrics(te.pooled),
    };
  });
}

/** One line of probe accuracies. */
function probeLine(r: ProbeSummary): string {
  const p = r.probes, f = (s: SeedStats) => (100 * s.mean).toFixed(1);
  return `linear shape ${f(p.linearShape)}%, direction ${f(p.linearDirection)}%; attentive shape ${
    f(p.attentiveShape)
  }%, direction ${f(p.attentiveDirection)}%; effective rank ${r.collapse.effectiveRank.toFixed(1)}`;
}

/** Runs the experiment; `print` receives progress lines. */
export async function runExperiment(e: ExperimentConfig, print: (s: string) => void = console.log) {
  const dir = `runs/${e.name}`;
  checkExperiment(e);
  await Deno.mkdir(dir, { recursive: true });
  const device = resolveDevice(modeTrainConfig(e, e.modes[0]));
  const { train: train_, test } = await probeClips(e, device);
  const evalBatch = test.xs[0];
  const results: ModeResult[] = [];
  const images: { name: string; png: Uint8Array }[] = [];
  const t0 = performance.now();
  let baseline: ProbeSummary | null = null;
  // results.json and the report are rewritten after every mode, so a run cut short keeps what it measured
  // (`complete: false`, and the report's subtitle says how many modes it holds).
  const save = async (complete: boolean) => {
    const minutes = (performance.now() - t0) / 60000;
    const summary = {
      config: e,
      device,
      minutes,
      complete,
      // the count after everything is freed (only meaningful once the run is complete)
      liveTensors: complete ? liveTensors() : null,
      baseline,
      results,
    };
    await Deno.writeTextFile(`${dir}/results.json`, JSON.stringify(summary, null, 2) + "\n");
    const html = renderReport({
      ...reportTitle(e, device, minutes, complete ? null : results.length),
      sections: reportSections(e, results, images.map((i) => i.name), baseline),
    });
    await writeReport(dir, html, images);
    return summary;
  };
  try {
    if (e.baseline) {
      // The initialisation every mode starts from: the trainer seeds torch with the run's seed, then builds
      // the model, so this is each run's step-0 encoder.
      print(`[${BASELINE_NAME}] probing the untrained encoder (${e.probeSeeds.length} seeds)`);
      const cfg = modeTrainConfig(e, e.modes[0]);
      manualSeed(cfg.seed);
      const init = new VideoMAE(modelConfig(cfg), device);
      try {
        baseline = probeModel(init, train_, test, e);
      } finally {
        init.dispose();
      }
      print(`[${BASELINE_NAME}] ${probeLine(baseline)}`);
    }
    for (const mode of e.modes) {
      const cfg = modeTrainConfig(e, mode);
      const runDir = `${dir}/${mode}`;
      await Deno.remove(runDir, { recursive: true }).catch(() => {});
      print(
        `[${mode}] training ${e.steps} steps (${cfg.model.preset}, ${e.frames}x${e.size}x${e.size}, batch ${e.batchSize})`,
      );
      if (device === "cuda") cuda.resetPeakMemoryStats();
      await train(cfg, {
        runDir,
        resume: false,
        data: makeBatchSource,
        print: (line, final) => {
          if (final || /^step \d+\/\d+/.test(line) && Number(line.match(/^step (\d+)/)![1]) % 100 === 0) {
            print(`[${mode}] ${line.trim()}`);
          }
        },
        evaluate: {
          every: e.evalEvery,
          fn: (model) => ({ ...collapseMetrics(extractFeatures(model.encoder, evalBatch).pooled) }),
        },
      });
      const peakBytes = device === "cuda" ? cuda.memoryStats()!.peakAllocated : null;
      const metrics = (await Deno.readTextFile(`${runDir}/metrics.jsonl`)).trim().split("\n").map((l) =>
        JSON.parse(l)
      );
      const sps = (metrics.length > 1 ? metrics.slice(1) : metrics).map((r) => r.stepsPerSec as number);
      const ckpts = listCheckpoints(`${runDir}/checkpoints`);
      const final = loadModel(ckpts[ckpts.length - 1], cfg, device);
      try {
        print(`[${mode}] probing (${e.probeSeeds.length} seeds)`);
        const r = probeModel(final, train_, test, e);
        print(`[${mode}] measuring layer convergence over ${ckpts.length} checkpoints`);
        const small = scope(() => evalBatch.narrow(0, 0, Math.min(16, evalBatch.shape[0])));
        const finalOuts = layerOutputs(final.encoder, small);
        const convergence: ModeResult["convergence"] = [];
        for (const path of ckpts) {
          const step = Number(path.match(/step_(\d+)/)![1]);
          const m = loadModel(path, cfg, device);
          const cka = scope(() => layerOutputs(m.encoder, small).map((o, i) => linearCka(o, finalOuts[i])));
          m.dispose();
          convergence.push({ step, cka });
        }
        for (const t of finalOuts) t.dispose();
        small.dispose();
        const pixelHead = mode !== "layerlock";
        if (pixelHead) {
          const two = test.xs[0].narrow(0, 0, 2);
          try {
            images.push({ name: `recon_${mode}.png`, png: await reconstructionGrid(final, two, cfg) });
          } finally {
            two.dispose();
          }
        }
        results.push({
          mode,
          metrics,
          stepsPerSec: sps.reduce((a, b) => a + b, 0) / Math.max(1, sps.length),
          peakBytes,
          probes: r.probes,
          collapse: r.collapse,
          convergence,
        });
        print(`[${mode}] ${probeLine(r)}`);
      } finally {
        final.dispose();
      }
      if (results.length < e.modes.length) await save(false);
    }
  } finally {
    for (const t of [...train_.xs, ...test.xs]) t.dispose();
  }
  const summary = await save(true);
  print(`wrote ${dir}/results.json and ${dir}/report.html (${summary.minutes.toFixed(1)} min)`);
  return summary;
}

/** Re-renders runs/<name>/report.html from its results.json (the reconstruction PNGs already there are kept). */
export async function rerenderReport(name: string): Promise<void> {
  const dir = `runs/${name}`;
  const summary = JSON.parse(await Deno.readTextFile(`${dir}/results.json`));
  const e = upgradeConfig(summary.config);
  const names = [...Deno.readDirSync(dir)].filter((f) => f.isFile && /^recon_.*\.png$/.test(f.name)).map((
    f,
  ) => f.name)
    .sort();
  const html = renderReport({
    ...reportTitle(
      e,
      summary.device,
      summary.minutes,
      summary.complete === false ? summary.results.length : null,
    ),
    sections: reportSections(e, summary.results, names, summary.baseline ?? null),
  });
  await writeReport(dir, html, []);
}

/** The report's title and subtitle; `partialModes` is the number of modes done when the run is incomplete. */
function reportTitle(e: ExperimentConfig, device: string, minutes: number, partialModes: number | null) {
  return {
    title: "LayerLock and its comparison modes on Moving Fashion-MNIST",
    subtitle: `${e.modes.join(", ")} · ${e.preset} · ${e.steps} steps of batch ${e.batchSize} · ` +
      `${e.frames}×${e.size}×${e.size} clips · device ${device} · ${minutes.toFixed(1)} min` +
      (partialModes === null ? "" : ` · partial: ${partialModes} of ${e.modes.length} modes`),
  };
}

/** The row name of the untrained-encoder baseline. */
export const BASELINE_NAME = "untrained";

/**
 * The configuration of a results.json, with the settings that older versions did not record filled in with the
 * values those versions used: peak lr 1e-3, and one `probeEpochs` for both probes at lr 1e-3, batch 256.
 */
function upgradeConfig(c: Partial<ExperimentConfig> & { probeEpochs?: number }): ExperimentConfig {
  const old = c.probeEpochs;
  const probes = old === undefined ? {} : {
    linearEpochs: old,
    linearLr: 1e-3,
    attentiveEpochs: old,
    attentiveLr: 1e-3,
    attentiveBatch: 256,
    baseline: false,
  };
  return { ...DEFAULT_EXPERIMENT, lr: 1e-3, ...probes, ...c };
}

/** Throws a TorchError naming the first probe setting that is not usable, before anything is trained. */
function checkExperiment(e: ExperimentConfig): void {
  const bad = (what: string) => {
    throw new TorchError("runExperiment", what);
  };
  for (const k of ["linearEpochs", "attentiveEpochs", "attentiveBatch", "trainClips", "testClips"] as const) {
    if (!Number.isInteger(e[k]) || e[k] < 1) bad(`${k} must be a positive integer, got ${e[k]}`);
  }
  for (const k of ["lr", "linearLr", "attentiveLr"] as const) {
    if (!(Number.isFinite(e[k]) && e[k] > 0)) bad(`${k} must be a finite number > 0, got ${e[k]}`);
  }
  if (e.probeSeeds.length === 0) bad("probeSeeds is empty");
  if (e.modes.length === 0) bad("modes is empty");
}

/** The probe settings in words. */
function probeSettings(e: ExperimentConfig): string {
  return `linear ${e.linearEpochs} epochs at lr ${e.linearLr} (batch 256), attentive ${e.attentiveEpochs} ` +
    `epochs at lr ${e.attentiveLr} (batch ${e.attentiveBatch})`;
}

function pct(s: SeedStats): string {
  return `${(100 * s.mean).toFixed(1)} ± ${(100 * s.std).toFixed(1)}`;
}

/** Spearman rank correlation of two equal-length lists (ties get average ranks). */
function spearman(a: number[], b: number[]): number {
  const rank = (v: number[]) => {
    const idx = v.map((x, i) => [x, i] as const).sort((p, q) => p[0] - q[0]);
    const r = new Array<number>(v.length);
    for (let i = 0; i < idx.length;) {
      let j = i;
      while (j + 1 < idx.length && idx[j + 1][0] === idx[i][0]) j++;
      for (let k = i; k <= j; k++) r[idx[k][1]] = (i + j) / 2;
      i = j + 1;
    }
    return r;
  };
  const ra = rank(a), rb = rank(b);
  const mean = (v: number[]) => v.reduce((x, y) => x + y, 0) / v.length;
  const ma = mean(ra), mb = mean(rb);
  let num = 0, da = 0, db = 0;
  for (let i = 0; i < ra.length; i++) {
    num += (ra[i] - ma) * (rb[i] - mb);
    da += (ra[i] - ma) ** 2;
    db += (rb[i] - mb) ** 2;
  }
  return da > 0 && db > 0 ? num / Math.sqrt(da * db) : 0;
}

/** The mean of a result's four probe accuracies. */
function probeMean(r: ProbeSummary): number {
  return (r.probes.linearShape.mean + r.probes.linearDirection.mean + r.probes.attentiveShape.mean +
    r.probes.attentiveDirection.mean) / 4;
}

/**
 * Plain statements of what the results say about each of the paper's four claims at this scale. With the
 * untrained encoder's results (`baseline`), a sanity row "0." comes first: whether training beat the untrained
 * encoder on the probes at all, without which claims 2 and 4 compare numbers that say little.
 */
export function claims(
  rs: ModeResult[],
  baseline: ProbeSummary | null = null,
): { claim: string; measured: string; verdict: string }[] {
  const by = (m: Mode) => rs.find((r) => r.mode === m);
  const out: { claim: string; measured: string; verdict: string }[] = [];
  const mae = by("mae"), freeze = by("mae-freeze"), ll = by("layerlock"), lu = by("latent-unfrozen");
  if (baseline && rs.length > 0) {
    const b = probeMean(baseline);
    const better = rs.filter((r) => probeMean(r) > b + 0.005);
    out.push({
      claim: "0. (sanity check) Pretraining improves the frozen features over the untrained encoder",
      measured: `mean probe accuracy: untrained ${(100 * b).toFixed(1)}%; ` +
        rs.map((r) => `${r.mode} ${(100 * probeMean(r)).toFixed(1)}%`).join(", "),
      verdict: better.length === rs.length
        ? "yes, every mode"
        : better.length > 0
        ? `only ${better.map((r) => r.mode).join(", ")}`
        : "no: at this budget no mode beats the untrained encoder",
    });
  }
  if (mae && mae.convergence.length > 1) {
    // the first checkpoint at which each block's CKA to its final self reaches 0.9
    const first = mae.convergence[0].cka.map((_, l) =>
      mae.convergence.find((c) => c.cka[l] >= 0.9)?.step ?? Infinity
    );
    const finite = first.map((v) => (Number.isFinite(v) ? v : 1e12));
    const rho = spearman(first.map((_, i) => i), finite);
    out.push({
      claim: "1. Layers converge in order of depth (MAE run; CKA of each block to its final output ≥ 0.9)",
      measured:
        `first step reaching 0.9 per block: ${
          first.map((v) => (Number.isFinite(v) ? v : "never")).join(", ")
        }; ` +
        `Spearman ρ(depth, step) = ${rho.toFixed(2)}`,
      verdict: rho > 0.5 ? "reproduced" : rho > 0 ? "weakly reproduced" : "not reproduced",
    });
  }
  if (mae && freeze) {
    const speed = freeze.stepsPerSec / mae.stepsPerSec;
    const dp = probeMean(freeze) - probeMean(mae);
    out.push({
      claim: "2. Progressive freezing makes MAE steps cheaper without hurting a frozen-feature probe",
      measured:
        `mae-freeze runs at ${speed.toFixed(2)}× MAE's steps/s (whole run, CPU); mean probe accuracy ` +
        `${(100 * probeMean(freeze)).toFixed(1)}% vs ${(100 * probeMean(mae)).toFixed(1)}% (${
          dp >= 0 ? "+" : ""
        }${(100 * dp).toFixed(1)} points)`,
      verdict: speed > 1 && dp > -0.02
        ? "reproduced"
        : speed > 1
        ? "cheaper, but the probe dropped"
        : "not reproduced",
    });
  }
  if (lu && ll) {
    out.push({
      claim: "3. A latent loss on unfrozen layers collapses, LayerLock does not",
      measured:
        `effective rank ${lu.collapse.effectiveRank.toFixed(1)} (latent-unfrozen) vs ${
          ll.collapse.effectiveRank.toFixed(1)
        } ` +
        `(layerlock)${mae ? ` and ${mae.collapse.effectiveRank.toFixed(1)} (mae)` : ""}; feature std ${
          lu.collapse.featureStd.toFixed(4)
        } vs ` +
        `${ll.collapse.featureStd.toFixed(4)}; mean probe ${(100 * probeMean(lu)).toFixed(1)}% vs ${
          (100 * probeMean(ll)).toFixed(1)
        }%`,
      verdict: lu.collapse.effectiveRank < 0.5 * ll.collapse.effectiveRank
        ? "reproduced"
        : "not reproduced at this scale",
    });
  }
  if (mae && ll) {
    const d = probeMean(ll) - probeMean(mae);
    out.push({
      claim: "4. LayerLock's frozen features probe at least as well as pixel MAE's",
      measured: `mean probe accuracy ${(100 * probeMean(ll)).toFixed(1)}% (layerlock) vs ${
        (100 * probeMean(mae)).toFixed(1)
      }% (mae)`,
      verdict: d >= -0.005 ? "reproduced" : "not reproduced at this scale",
    });
  }
  return out;
}

/** The report's sections, from the results. */
export function reportSections(
  e: ExperimentConfig,
  rs: ModeResult[],
  imageNames: string[],
  baseline: ProbeSummary | null = null,
) {
  const series = (pick: (r: Record<string, unknown>) => unknown) =>
    rs.map((r) => ({
      name: r.mode,
      points: r.metrics.map((m) =>
        [m.step as number, (pick(m) as number | null) ?? null] as [number, number | null]
      ),
    }));
  // every probed encoder: the untrained baseline first, when there is one
  const probed: (ProbeSummary & { mode: string })[] = [
    ...(baseline ? [{ mode: BASELINE_NAME, ...baseline }] : []),
    ...rs,
  ];
  const probeRows = probed.map((r) => [
    r.mode,
    pct(r.probes.linearShape),
    pct(r.probes.linearDirection),
    pct(r.probes.attentiveShape),
    pct(r.probes.attentiveDirection),
  ]);
  const bars = probed.flatMap((r) => [
    { label: `${r.mode} lin·shape`, value: r.probes.linearShape.mean, err: r.probes.linearShape.std },
    { label: `${r.mode} att·shape`, value: r.probes.attentiveShape.mean, err: r.probes.attentiveShape.std },
    { label: `${r.mode} lin·dir`, value: r.probes.linearDirection.mean, err: r.probes.linearDirection.std },
    {
      label: `${r.mode} att·dir`,
      value: r.probes.attentiveDirection.mean,
      err: r.probes.attentiveDirection.std,
    },
  ]);
  const conv = rs.find((r) => r.mode === "mae") ?? rs[0];
  const layers = conv.convergence[0]?.cka.length ?? 0;
  return [
    {
      heading: "The paper's claims at this scale",
      html: table(
        ["claim", "measured", "verdict"],
        claims(rs, baseline).map((c) => [c.claim, c.measured, c.verdict]),
      ),
    },
    {
      heading: "Setup",
      html: table(["setting", "value"], [
        [
          "data",
          `Moving Fashion-MNIST (${FASHION_CLASSES.length} garment classes, ${DIRECTION_NAMES.length} directions)`,
        ],
        ["clips", `${e.frames} frames of ${e.size}×${e.size}, patch ${e.patch}, tubelet 2`],
        ["model", `${e.preset}`],
        [
          "training",
          `${e.steps} steps, batch ${e.batchSize}, peak lr ${e.lr}, seed ${e.seed}, same for every mode`,
        ],
        [
          "probes",
          `${e.trainClips} train / ${e.testClips} test clips; ${probeSettings(e)}; seeds ${
            e.probeSeeds.join(", ")
          }${
            baseline ? `; baseline: the untrained encoder (seed ${e.seed}, each mode's initialisation)` : ""
          }`,
        ],
      ]),
    },
    {
      heading: "Loss curves",
      html: lineChart({
        title: "pixel loss (masked tokens)",
        xLabel: "step",
        yLabel: "MSE",
        series: series((m) => m.pixelLoss),
      }) +
        lineChart({
          title: "latent loss",
          xLabel: "step",
          yLabel: "MSE",
          series: series((m) => m.latentLoss),
        }),
    },
    {
      heading: "Frozen depth",
      html: lineChart({
        title: "frozen encoder blocks",
        xLabel: "step",
        yLabel: "blocks",
        series: series((m) => m.frozenDepth),
      }),
    },
    {
      heading: "Frozen-feature probes (top-1 %, mean ± std over probe seeds)",
      html: table([
        "mode",
        "linear · garment",
        "linear · direction",
        "attentive · garment",
        "attentive · direction",
      ], probeRows) +
        barChart({ title: "probe accuracy", yLabel: "top-1", bars }),
    },
    {
      heading: "Collapse metrics during training (pooled features of 64 test clips)",
      html: ["effectiveRank", "featureStd", "meanCosine"].map((k) =>
        lineChart({
          title: k,
          xLabel: "step",
          yLabel: k,
          series: series((m) => (m.eval as Record<string, number> | undefined)?.[k] ?? null),
        })
      ).join("") +
        table(
          ["mode", "effective rank", "feature std", "mean cosine"],
          probed.map((r) => [r.mode, r.collapse.effectiveRank, r.collapse.featureStd, r.collapse.meanCosine]),
        ),
    },
    {
      heading: "Step time and memory",
      html: table(
        ["mode", "steps/s", "peak memory (MiB)"],
        rs.map((r) => [r.mode, r.stepsPerSec, r.peakBytes === null ? "n/a (CPU)" : r.peakBytes / 2 ** 20]),
      ),
    },
    {
      heading: `Layer convergence (${conv.mode}): linear CKA of each block's output to its final output`,
      html: lineChart({
        title: "CKA to the final model, per block",
        xLabel: "step",
        yLabel: "CKA",
        series: Array.from(
          { length: layers },
          (_, l) => ({
            name: `block ${l + 1}`,
            points: conv.convergence.map((c) => [c.step, c.cka[l]] as [number, number]),
          }),
        ),
      }),
    },
    {
      heading: "Reconstructions (rows per clip: input, masked input, reconstruction; columns: frames)",
      html: imageNames.map((n) =>
        `<figure><img src="${n}" alt="${n}"><figcaption>${
          n.replace(/^recon_|\.png$/g, "")
        }</figcaption></figure>`
      ).join(""),
    },
  ];
}
