/**
 * The experiment's readout of an encoder: the probe clips (Moving Fashion-MNIST, the same for every run), the
 * frozen features of an encoder (or the raw pixels) on them, and the four probes — linear / attentive × garment /
 * direction — over probe seeds, with the collapse metrics of the pooled features.
 * @module
 */
import { noGrad } from "../torch/autograd.ts";
import { tensor } from "../torch/creation.ts";
import { cat } from "../torch/functional.ts";
import type { Device } from "../torch/dtype.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import { batchToTensor } from "../data/clip_tensor.ts";
import { MovingFashionMnist } from "../data/moving_fashion_mnist.ts";
import { pixelTargets } from "../models/targets.ts";
import type { VideoMAE } from "../models/video_mae.ts";
import { type CollapseMetrics, collapseMetrics } from "../eval/collapse.ts";
import { type ExperimentConfig, runConfig } from "./config.ts";
import { extractFeatures } from "../eval/features.ts";
import {
  type ProbeResult,
  probeWithSeeds,
  type SeedStats,
  trainAttentiveProbes,
  trainLinearProbe,
} from "../eval/probe.ts";

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
      shape.push(...b.labels!.garment);
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
export function probeModel(
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
