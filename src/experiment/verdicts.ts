/**
 * What the experiment's results say, as numbers and words: one summary row per baseline and mode (mean ± spread
 * over training seeds), the order in which layers converge, and plain verdicts on the paper's four claims (a
 * difference counts only beyond its spread, src/eval/seeds.ts). Pure computations on `ExperimentResults`: no
 * tensors, no HTML (the report, src/experiment/report.ts, renders these).
 * @module
 */
import type { ExperimentMode } from "./config.ts";
import type { ExperimentResults, RunResult } from "./run.ts";
import type { ProbeName, ProbeSummary } from "./probes.ts";
import { LEARNING_RATIO } from "../layerlock/learning.ts";
import {
  compare,
  type Comparison,
  formatDifference,
  type Spread,
  spreadOf,
  spreadOfProbes,
} from "../eval/seeds.ts";

/** The four probes, in the order of tables (the same as `PROBES` in probes.ts, kept here free of tensors). */
export const PROBE_NAMES: readonly ProbeName[] = [
  "linearShape",
  "linearDirection",
  "attentiveShape",
  "attentiveDirection",
];

/** A spread of accuracies as percent: "51.0 ± 1.4". */
export const pct = (s: Spread): string => `${(100 * s.mean).toFixed(1)} ± ${(100 * s.std).toFixed(1)}`;
/** A spread to `d` decimals: "12.3 ± 0.4". */
export const num = (s: Spread, d: number): string => `${s.mean.toFixed(d)} ± ${s.std.toFixed(d)}`;
/** "n training seed(s)". */
export const seedCount = (n: number): string => `${n} training seed${n === 1 ? "" : "s"}`;

/** The mean of an encoder's four probe accuracies (each a mean over probe seeds). */
export function probeMeanOf(s: ProbeSummary): number {
  return PROBE_NAMES.reduce((a, k) => a + s.probes[k].mean, 0) / PROBE_NAMES.length;
}

/** One row of the summary: a baseline or a mode, over its training seeds. */
export interface SummaryRow {
  /** The baseline's or mode's name. */
  name: string;
  /** Whether it is a baseline. */
  baseline: boolean;
  /** Each probe over training seeds. */
  probes: Record<ProbeName, Spread>;
  /** The mean of the four probes, over training seeds. */
  probeMean: Spread;
  /** Collapse metrics of the pooled evaluation features. */
  effectiveRank: Spread;
  featureStd: Spread;
  meanCosine: Spread;
  /** Training steps per second (modes only). */
  stepsPerSec: Spread | null;
  /** Each run's learning verdict (modes only): true, false, or null when no floor was logged. */
  learning: (boolean | null)[];
}

type MeasuredRun = ProbeSummary & { stepsPerSec?: number; learning?: RunResult["learning"] };

function rowOf(name: string, baseline: boolean, runs: MeasuredRun[]): SummaryRow {
  const probes = Object.fromEntries(
    PROBE_NAMES.map((k) => [k, spreadOfProbes(runs.map((r) => r.probes[k]))]),
  ) as Record<ProbeName, Spread>;
  const probeMean = spreadOf(runs.map(probeMeanOf));
  // the probe-seed spread of the mean: the mean of the probes' own probe-seed spreads
  probeMean.probeStd = PROBE_NAMES.reduce((a, k) => a + probes[k].probeStd, 0) / PROBE_NAMES.length;
  return {
    name,
    baseline,
    probes,
    probeMean,
    effectiveRank: spreadOf(runs.map((r) => r.collapse.effectiveRank)),
    featureStd: spreadOf(runs.map((r) => r.collapse.featureStd)),
    meanCosine: spreadOf(runs.map((r) => r.collapse.meanCosine)),
    stepsPerSec: baseline ? null : spreadOf(runs.map((r) => r.stepsPerSec!)),
    learning: baseline ? [] : runs.map((r) => r.learning!.learning),
  };
}

/** The summary rows: baselines first (those with runs), then the modes with runs. */
export function summaryRows(r: ExperimentResults): SummaryRow[] {
  return [
    ...r.baselines.filter((b) => b.runs.length > 0).map((b) => rowOf(b.name, true, b.runs)),
    ...r.modes.filter((m) => m.runs.length > 0).map((m) => rowOf(m.mode, false, m.runs)),
  ];
}

/** Spearman rank correlation of two equal-length lists (ties get average ranks). */
export function spearman(a: number[], b: number[]): number {
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

/** The first checkpoint step at which each block's CKA to its final output reaches 0.9 (Infinity: never). */
export function convergenceSteps(run: Pick<RunResult, "convergence">): number[] {
  const c = run.convergence;
  if (c.length === 0) return [];
  return c[0].cka.map((_, l) => c.find((x) => x.cka[l] >= 0.9)?.step ?? Infinity);
}

/** Spearman ρ between block depth and the step each block converged (never: after every checkpoint). */
export function convergenceOrder(run: Pick<RunResult, "convergence">): number {
  const first = convergenceSteps(run);
  return spearman(first.map((_, i) => i), first.map((v) => (Number.isFinite(v) ? v : 1e12)));
}

/** A claim, what was measured, and the verdict. */
export interface Claim {
  /** The claim. */
  claim: string;
  /** The numbers behind the verdict. */
  measured: string;
  /** The verdict in words. */
  verdict: string;
}

const WORDS: Record<Comparison, string> = {
  above: "above by more than the spread",
  within: "within the spread",
  below: "below by more than the spread",
};

/** 0a: every run's loss leaves its trivial floor. */
function learningClaim(r: ExperimentResults): Claim {
  const allRuns = r.modes.flatMap((m) => m.runs);
  const stuck = allRuns.filter((x) => x.learning.learning === false);
  const unknown = allRuns.filter((x) => x.learning.learning === null);
  return {
    claim: `0a. (sanity check) Every run's loss leaves its trivial floor (the loss of predicting the mean ` +
      `target), ending at most ${Math.round(100 * LEARNING_RATIO)}% of it`,
    measured: allRuns.map((x) =>
      `${x.mode}-s${x.seed}: ${
        [
          ...x.learning.phases.map((p) => `${p.phase} ${(100 * p.ratio).toFixed(0)}%`),
          ...(x.learning.stages ?? []).map((st) => `${st.target} ${(100 * st.ratio).toFixed(0)}%`),
        ].join(", ") || "no floor"
      }`
    ).join("; "),
    verdict: unknown.length === allRuns.length
      ? "not measured (no floor logged)"
      : stuck.length === 0
      ? "yes, every run is learning"
      : `not learning: ${stuck.map((x) => `${x.mode}-s${x.seed}`).join(", ")}`,
  };
}

/** 0b: pretraining beats the untrained encoder (mean of the four probes). */
function pretrainingClaim(base: SummaryRow, trained: SummaryRow[]): Claim {
  const cmp = trained.map((t) => ({ t, c: compare(t.probeMean, base.probeMean) }));
  const above = cmp.filter((x) => x.c === "above").map((x) => x.t.name);
  return {
    claim: "0b. (sanity check) Pretraining improves the frozen features over the untrained encoder " +
      "(mean of the four probes)",
    measured: `untrained ${pct(base.probeMean)}%; ` +
      cmp.map((x) =>
        `${x.t.name} ${pct(x.t.probeMean)}% (${formatDifference(x.t.probeMean, base.probeMean)})`
      )
        .join(", ") +
      ` — ${seedCount(base.probeMean.n)}`,
    verdict: above.length === trained.length
      ? "yes: every mode, by more than the spread"
      : above.length > 0
      ? `only ${above.join(", ")} by more than the spread; ` +
        cmp.filter((x) => x.c !== "above").map((x) => `${x.t.name} ${WORDS[x.c]}`).join(", ")
      : `no mode beats it by more than the spread (${
        cmp.map((x) => `${x.t.name} ${WORDS[x.c]}`).join(", ")
      })`,
  };
}

/** 1: layers converge in order of depth (MAE runs with more than one checkpoint). */
function depthOrderClaim(maeRuns: RunResult[]): Claim {
  const rho = maeRuns.map(convergenceOrder);
  const s = spreadOf(rho);
  return {
    claim: "1. Layers converge in order of depth (MAE; first checkpoint at which each block's CKA to its " +
      "final output reaches 0.9)",
    measured:
      maeRuns.map((x, i) =>
        `s${x.seed}: ${convergenceSteps(x).map((v) => (Number.isFinite(v) ? v : "never")).join(", ")} (ρ ${
          rho[i].toFixed(2)
        })`
      ).join("; ") + `; Spearman ρ(depth, step) ${num(s, 2)}`,
    verdict: rho.every((x) => x > 0.5)
      ? "reproduced (ρ > 0.5 for every seed)"
      : s.mean > 0
      ? "weakly reproduced (ρ > 0 on average, not > 0.5 for every seed)"
      : "not reproduced",
  };
}

/** 2: progressive freezing makes MAE steps cheaper without hurting the probes. */
function freezingClaim(mae: SummaryRow, freeze: SummaryRow): Claim {
  const speed = freeze.stepsPerSec!.mean / mae.stepsPerSec!.mean;
  const c = compare(freeze.probeMean, mae.probeMean);
  return {
    claim: "2. Progressive freezing makes MAE steps cheaper without hurting a frozen-feature probe",
    measured: `mae-freeze ${num(freeze.stepsPerSec!, 2)} vs mae ${num(mae.stepsPerSec!, 2)} steps/s ` +
      `(${speed.toFixed(2)}×, whole run); mean probe ${pct(freeze.probeMean)}% vs ${pct(mae.probeMean)}% ` +
      `(${formatDifference(freeze.probeMean, mae.probeMean)} points)`,
    verdict: speed > 1 && c !== "below"
      ? `reproduced (faster; the probe ${WORDS[c]})`
      : speed > 1
      ? "cheaper, but the probe dropped by more than the spread"
      : "not reproduced (not faster)",
  };
}

/** 3: a latent loss on unfrozen layers collapses, LayerLock does not. */
function collapseClaim(lu: SummaryRow, ll: SummaryRow, mae: SummaryRow | undefined): Claim {
  const rank = compare(lu.effectiveRank, ll.effectiveRank), probe = compare(lu.probeMean, ll.probeMean);
  return {
    claim: "3. A latent loss on unfrozen layers collapses, LayerLock does not",
    measured: `effective rank ${num(lu.effectiveRank, 1)} (latent-unfrozen) vs ${num(ll.effectiveRank, 1)} ` +
      `(layerlock)${mae ? ` and ${num(mae.effectiveRank, 1)} (mae)` : ""}; mean probe ${
        pct(lu.probeMean)
      }% vs ` +
      `${pct(ll.probeMean)}% (${formatDifference(lu.probeMean, ll.probeMean)})`,
    verdict: rank === "below" && probe === "below"
      ? "reproduced (lower rank and lower probe, each by more than the spread)"
      : rank === "below" || probe === "below"
      ? `partly: ${rank === "below" ? "the rank" : "the probe"} is lower by more than the spread, ${
        rank === "below" ? "the probe" : "the rank"
      } is not`
      : "not reproduced at this scale",
  };
}

/** 4: LayerLock's frozen features probe at least as well as pixel MAE's. */
function probeClaim(ll: SummaryRow, mae: SummaryRow): Claim {
  const c = compare(ll.probeMean, mae.probeMean);
  return {
    claim: "4. LayerLock's frozen features probe at least as well as pixel MAE's",
    measured: `mean probe ${pct(ll.probeMean)}% (layerlock) vs ${pct(mae.probeMean)}% (mae): ` +
      `${formatDifference(ll.probeMean, mae.probeMean)} points`,
    verdict: c === "above"
      ? "reproduced: better by more than the spread"
      : c === "within"
      ? "reproduced: equal within the spread"
      : "not reproduced: worse by more than the spread",
  };
}

/**
 * Plain verdicts on the paper's four claims, preceded by two sanity checks (do the losses leave their floors;
 * does pretraining beat the untrained encoder). Means are over training seeds; a difference counts only when it
 * exceeds the spread of the difference (src/eval/seeds.ts). A claim whose modes did not run is left out.
 */
export function claims(r: ExperimentResults): Claim[] {
  const rows = summaryRows(r);
  const row = (n: string) => rows.find((x) => x.name === n);
  const modeRuns = (m: ExperimentMode) => r.modes.find((x) => x.mode === m)?.runs ?? [];
  const trained = rows.filter((x) => !x.baseline);
  const out: Claim[] = [];
  if (trained.length > 0) out.push(learningClaim(r));
  const base = row("untrained");
  if (base && trained.length > 0) out.push(pretrainingClaim(base, trained));
  const maeRuns = modeRuns("mae").filter((x) => x.convergence.length > 1);
  if (maeRuns.length > 0) out.push(depthOrderClaim(maeRuns));
  const mae = row("mae"), freeze = row("mae-freeze"), ll = row("layerlock"), lu = row("latent-unfrozen");
  if (mae && freeze) out.push(freezingClaim(mae, freeze));
  if (lu && ll) out.push(collapseClaim(lu, ll, mae));
  if (mae && ll) out.push(probeClaim(ll, mae));
  return out;
}
