/**
 * The probe protocol on the user's own labelled clips (`deno task probe`, src/cli/probe.ts): the linear probe on
 * pooled features and the attentive probe on tokens — the probes of the Fashion-MNIST experiment
 * (`src/eval/probe.ts`) — with their settings chosen on a validation split and the chosen settings scored once
 * on a test split, over several probe seeds. Plus the chance level of a split and the report's Markdown.
 *
 * Honest by construction: `probeSplits` sees the test features only after the choice, and scores them with the
 * chosen setting alone; without a test split, the validation numbers it reports are the ones the settings were
 * chosen on (flagged `selectedOn: "val"`).
 * @module
 */
import type { ClipBatch, Normalization } from "../data/clip.ts";
import { batchToTensor } from "../data/clip_tensor.ts";
import { FOLDER_TASK } from "../data/video_folder.ts";
import { ConfigError, DataError } from "../errors.ts";
import type { VideoMAEEncoder } from "../models/video_mae.ts";
import { tensor, zeros } from "../torch/creation.ts";
import type { Device } from "../torch/dtype.ts";
import { keep, scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";
import { extractFeatures } from "./features.ts";
import {
  type ProbeResult,
  probeWithSeeds,
  type SeedStats,
  trainAttentiveProbe,
  trainLinearProbe,
} from "./probe.ts";

/** What `extractClipFeatures` reads clips from: a labelled video folder, or any dataset of labelled batches. */
export interface LabelledClipSource {
  /** Number of clips. */
  readonly length: number;
  /** The clips at `indices`, with their class ids (`labels.class`, a labelled video folder's task). */
  batch(indices: readonly number[]): Promise<ClipBatch>;
}

/** Pooled [N, D] and (when asked for) token [N, T, D] features of every clip of a source, on the CPU. */
export interface ClipFeatures {
  /** Mean over tokens. */
  pooled: Tensor;
  /** Every token, or null. */
  tokens: Tensor | null;
}

/** Options of `extractClipFeatures`. */
export interface ExtractClipOptions {
  /** Blocks to run (default all, with the final norm; see `extractFeatures`). */
  depth?: number;
  /** Keep every token (for the attentive probe), not only the pooled features (default true). */
  tokens?: boolean;
  /** Clips decoded and encoded at once (default 16). */
  batchSize?: number;
  /** Pixel normalisation (default: the batches' own, else ImageNet's; see `batchToTensor`). */
  norm?: Normalization;
  /** Where the encoders run (default cpu); the features are gathered on the CPU. */
  device?: Device;
  /** Progress lines (about every 10 s, and at the end). */
  log?: (line: string) => void;
}

/**
 * Runs each of `encoders` (frozen, every token visible) on every clip of `source`, each clip decoded once for
 * all of them, chunk by chunk: the next chunk is decoded while the current one is encoded, and the features
 * go straight into preallocated CPU tensors, so memory holds one chunk of clips besides the results. Returns
 * one `ClipFeatures` per encoder (owned by the caller), the clips' class ids (-1 where a batch has none) and the
 * files the source skipped. Nothing else is left alive.
 */
export async function extractClipFeatures(
  source: LabelledClipSource,
  encoders: VideoMAEEncoder[],
  o: ExtractClipOptions = {},
): Promise<{ features: ClipFeatures[]; classes: Int32Array; skipped: string[] }> {
  const n = source.length, bs = o.batchSize ?? 16, device = o.device ?? "cpu", withTokens = o.tokens ?? true;
  if (n === 0) throw new DataError("extractClipFeatures", "extractClipFeatures: the source has no clips");
  const classes = new Int32Array(n).fill(-1);
  const skipped = new Set<string>();
  const out: { pooled: Tensor | null; tokens: Tensor | null }[] = encoders.map(() => ({
    pooled: null,
    tokens: null,
  }));
  const indices = (i: number) => Array.from({ length: Math.min(bs, n - i) }, (_, k) => i + k);
  const t0 = performance.now();
  let lastLog = t0;
  let next: Promise<ClipBatch> | null = null;
  try {
    next = source.batch(indices(0));
    for (let i = 0; i < n; i += bs) {
      const b: ClipBatch = await next!;
      next = i + bs < n ? source.batch(indices(i + bs)) : null;
      next?.catch(() => {}); // awaited on the next turn (or abandoned on an error): never unobserved
      for (const s of b.skipped ?? []) skipped.add(s);
      const ids = b.labels?.[FOLDER_TASK];
      if (ids) classes.set(ids, i);
      scope(() => {
        const x = batchToTensor(b, device, o.norm);
        encoders.forEach((encoder, k) =>
          scope(() => {
            const f = extractFeatures(encoder, x, { depth: o.depth });
            const dst = out[k];
            if (dst.pooled === null) {
              dst.pooled = keep(zeros([n, f.pooled.shape[1]]));
              if (withTokens) dst.tokens = keep(zeros([n, f.tokens.shape[1], f.tokens.shape[2]]));
            }
            dst.pooled.narrow(0, i, b.batch).copy_(f.pooled);
            dst.tokens?.narrow(0, i, b.batch).copy_(f.tokens);
          })
        );
      });
      const done = Math.min(n, i + bs), now = performance.now();
      if (o.log && (done === n || now - lastLog > 10_000)) {
        lastLog = now;
        o.log(`${done}/${n} clips (${((now - t0) / 1000).toFixed(1)} s)`);
      }
    }
  } catch (e) {
    for (const d of out) {
      d.pooled?.dispose();
      d.tokens?.dispose();
    }
    throw e;
  }
  return {
    features: out.map((d) => ({ pooled: d.pooled!, tokens: d.tokens })),
    classes,
    skipped: [...skipped],
  };
}

/** The two probes. */
export const FOLDER_PROBES = ["linear", "attentive"] as const;
/** One of the two probes: `linear` (pooled features) or `attentive` (tokens). */
export type FolderProbeName = (typeof FOLDER_PROBES)[number];

/** A probe's fixed settings and the grid its learning rate and weight decay are chosen from. */
export interface ProbeGrid {
  /** Passes over the training clips. */
  epochs: number;
  /** Clips per step. */
  batchSize: number;
  /** Candidate peak learning rates. */
  lrs: number[];
  /** Candidate weight decays. */
  weightDecays: number[];
}

/** Options of `probeSplits`. */
export interface FolderProbeOptions {
  /** The probes to run, each with its grid (absent: not run). */
  probes: Partial<Record<FolderProbeName, ProbeGrid>>;
  /** Probe seeds (initialisation and shuffling); every grid point is trained once per seed. */
  seeds: number[];
  /** Number of classes (1 + the largest class id of the training mapping). */
  numClasses: number;
}

/** The frozen features of one split: pooled [N, D], tokens [N, T, D] (null when the attentive probe is off), class ids. */
export interface SplitFeatures {
  /** Mean over tokens. */
  pooled: Tensor;
  /** Every token, or null. */
  tokens: Tensor | null;
  /** Class id of each clip. */
  classes: Int32Array;
}

/** One point of the grid: its settings and its validation accuracy over the seeds. */
export interface GridPoint {
  /** Peak learning rate. */
  lr: number;
  /** Weight decay. */
  weightDecay: number;
  /** Top-1 accuracy on the validation split. */
  val: SeedStats;
  /** Mean top-1 accuracy on the training clips (how well the probe fit them). */
  trainAccuracy: number;
}

/** A probe's outcome: the grid on validation, the chosen point, and its test accuracy. */
export interface ProbeOutcome {
  /** Epochs and batch size (fixed). */
  epochs: number;
  /** Clips per step. */
  batchSize: number;
  /** Every grid point, in grid order (learning rates outer, weight decays inner). */
  grid: GridPoint[];
  /** The chosen settings: the best mean validation accuracy (ties: the smaller spread, then grid order). */
  chosen: { lr: number; weightDecay: number };
  /** Validation accuracy of the chosen settings (the number they were chosen on). */
  val: SeedStats;
  /** Test accuracy of the chosen settings, or null without a test split. */
  test: SeedStats | null;
  /** Mean training accuracy of the chosen settings. */
  trainAccuracy: number;
  /** The split whose numbers should be read as the result: `test`, or `val` when there is no test split. */
  reported: "test" | "val";
}

/** Accuracy of always answering the training split's most frequent class, and the uniform chance 1/K. */
export interface ChanceLevel {
  /** The most frequent class id of the training split (the smallest id on a tie). */
  majorityClass: number;
  /** The share of `classes` that are the majority class: the accuracy of always answering it. */
  majority: number;
  /** 1 / the number of classes of the training mapping. */
  uniform: number;
}

/** The chance levels of a split's class ids given the training split's class ids. */
export function chanceLevel(trainClasses: Int32Array, classes: Int32Array, numClasses: number): ChanceLevel {
  const counts = new Map<number, number>();
  for (const c of trainClasses) counts.set(c, (counts.get(c) ?? 0) + 1);
  let majorityClass = -1, best = -1;
  for (const [c, n] of [...counts].sort((a, b) => a[0] - b[0])) {
    if (n > best) [majorityClass, best] = [c, n];
  }
  let hit = 0;
  for (const c of classes) if (c === majorityClass) hit++;
  return { majorityClass, majority: classes.length ? hit / classes.length : 0, uniform: 1 / numClasses };
}

/**
 * Trains each probe of `o.probes` on `train` for every grid point and seed, scores it on `val`, chooses the grid
 * point with the best mean validation accuracy, and scores that point alone on `test` (when given) with every
 * seed. `log` receives one line per grid point. Leaves no tensor alive.
 */
export function probeSplits(
  train: SplitFeatures,
  val: SplitFeatures,
  test: SplitFeatures | null,
  o: FolderProbeOptions,
  device: Device,
  log: (line: string) => void = () => {},
): Partial<Record<FolderProbeName, ProbeOutcome>> {
  const out: Partial<Record<FolderProbeName, ProbeOutcome>> = {};
  for (const name of FOLDER_PROBES) {
    const grid = o.probes[name];
    if (!grid) continue;
    out[name] = scope(() => {
      const x = (s: SplitFeatures) => {
        const t = name === "linear" ? s.pooled : s.tokens;
        if (t === null) {
          throw new ConfigError(
            "probeSplits",
            "probeSplits: the attentive probe needs tokens (features extracted with tokens: false)",
          );
        }
        return t.to({ device });
      };
      const y = (s: SplitFeatures) => tensor(s.classes, { device }).long();
      const [xtr, ytr, xva, yva] = [x(train), y(train), x(val), y(val)];
      const run = (xte: Tensor, yte: Tensor, lr: number, weightDecay: number, seed: number): ProbeResult => {
        const opts = {
          epochs: grid.epochs,
          batchSize: grid.batchSize,
          lr,
          weightDecay,
          seed,
          numClasses: o.numClasses,
        };
        return name === "linear"
          ? trainLinearProbe(xtr, ytr, xte, yte, opts)
          : trainAttentiveProbe(xtr, ytr, xte, yte, opts);
      };
      const points: GridPoint[] = [];
      for (const lr of grid.lrs) {
        for (const weightDecay of grid.weightDecays) {
          const rs = o.seeds.map((seed) => run(xva, yva, lr, weightDecay, seed));
          const p: GridPoint = {
            lr,
            weightDecay,
            val: probeWithSeeds((s) => rs[o.seeds.indexOf(s)], o.seeds),
            trainAccuracy: rs.reduce((a, r) => a + r.trainAccuracy, 0) / rs.length,
          };
          points.push(p);
          log(
            `${name} lr ${lr} wd ${weightDecay}: val ${pctStats(p.val)} (train ${
              (100 * p.trainAccuracy).toFixed(1)
            }%)`,
          );
        }
      }
      let best = points[0];
      for (const p of points) {
        if (
          p.val.mean > best.val.mean + 1e-12 ||
          (Math.abs(p.val.mean - best.val.mean) <= 1e-12 && p.val.std < best.val.std)
        ) {
          best = p;
        }
      }
      let testStats: SeedStats | null = null;
      if (test) {
        const [xte, yte] = [x(test), y(test)];
        testStats = probeWithSeeds((seed) => run(xte, yte, best.lr, best.weightDecay, seed), o.seeds);
        log(`${name} chosen lr ${best.lr} wd ${best.weightDecay}: test ${pctStats(testStats)}`);
      }
      return {
        epochs: grid.epochs,
        batchSize: grid.batchSize,
        grid: points,
        chosen: { lr: best.lr, weightDecay: best.weightDecay },
        val: best.val,
        test: testStats,
        trainAccuracy: best.trainAccuracy,
        reported: test ? "test" : "val",
      };
    });
  }
  return out;
}

/** `87.5 ± 2.1%` (mean ± sample std over seeds, in percent). */
export function pctStats(s: SeedStats): string {
  return `${(100 * s.mean).toFixed(1)} ± ${(100 * s.std).toFixed(1)}%`;
}

/** One encoder's row of the report: its name and its probes' outcomes. */
export interface EncoderOutcome {
  /** E.g. `checkpoint (step 3000)` or `untrained`. */
  label: string;
  /** The probes' outcomes. */
  probes: Partial<Record<FolderProbeName, ProbeOutcome>>;
}

/** What `probeReportMarkdown` renders. */
export interface ProbeReportSummary {
  /** The checkpoint (or `none`), the depth and the data, in words, one line each. */
  header: string[];
  /** The probed encoders. */
  encoders: EncoderOutcome[];
  /** Class names by id and the clips of each split per class. */
  classes: { name: string; id: number; counts: Record<string, number> }[];
  /** Chance levels of the validation and test splits. */
  chance: { val: ChanceLevel; test: ChanceLevel | null };
  /** Notes (skipped files, overlapping lists, …), one line each. */
  notes: string[];
}

/** The report's Markdown: a table of top-1 accuracy per encoder and probe, the chance levels, the classes. */
export function probeReportMarkdown(s: ProbeReportSummary): string {
  const hasTest = s.chance.test !== null;
  const l: string[] = ["# Probes", "", ...s.header.map((h) => `- ${h}`), ""];
  l.push(
    hasTest
      ? "Settings (learning rate, weight decay) were chosen on **val**; **test** was scored once, with the chosen " +
        "settings. Top-1 accuracy, mean ± std over probe seeds."
      : "No test list: the **val** numbers below are the ones the settings were chosen on (optimistic). Top-1 " +
        "accuracy, mean ± std over probe seeds.",
    "",
  );
  l.push(`| encoder | probe | chosen lr / wd | val top-1 |${hasTest ? " test top-1 |" : ""}`);
  l.push(`| --- | --- | --- | --- |${hasTest ? " --- |" : ""}`);
  for (const e of s.encoders) {
    for (const name of FOLDER_PROBES) {
      const p = e.probes[name];
      if (!p) continue;
      l.push(
        `| ${e.label} | ${name} | ${p.chosen.lr} / ${p.chosen.weightDecay} | ${pctStats(p.val)} |${
          hasTest ? ` ${p.test ? pctStats(p.test) : "–"} |` : ""
        }`,
      );
    }
  }
  const chance = (c: ChanceLevel) => `${(100 * c.majority).toFixed(1)}%`;
  l.push(
    `| chance (always the training majority class) | | | ${chance(s.chance.val)} |${
      hasTest ? ` ${chance(s.chance.test!)} |` : ""
    }`,
  );
  l.push(
    "",
    `Uniform chance: ${(100 * s.chance.val.uniform).toFixed(1)}% (${s.classes.length} classes).`,
    "",
  );
  const splits = Object.keys(s.classes[0]?.counts ?? {});
  l.push(
    "## Clips per class",
    "",
    `| class | id | ${splits.join(" | ")} |`,
    `| --- | --- |${" --- |".repeat(splits.length)}`,
  );
  for (const c of s.classes) {
    l.push(`| ${c.name} | ${c.id} | ${splits.map((k) => c.counts[k] ?? 0).join(" | ")} |`);
  }
  if (s.notes.length) l.push("", "## Notes", "", ...s.notes.map((n) => `- ${n}`));
  return l.join("\n") + "\n";
}
