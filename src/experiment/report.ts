/**
 * What the experiment's results say: one summary row per baseline and mode (mean ± spread over training seeds),
 * plain verdicts on the paper's four claims (a difference counts only beyond its spread, src/eval/seeds.ts), and
 * the HTML report. Pure: results in, numbers, words and HTML out (no tensors).
 * @module
 */
import { FASHION_CLASSES } from "../data/fashion_mnist.ts";
import { DIRECTION_NAMES } from "../data/moving_shapes.ts";
import { resolveSchedule } from "../layerlock/schedule.ts";
import type { ExperimentMode } from "./config.ts";
import type { ExperimentResults, RunResult } from "./run.ts";
import type { ProbeName, ProbeSummary } from "./probes.ts";
import type { StepRecord } from "../train/events.ts";
import { LEARNING_RATIO } from "../layerlock/learning.ts";
import { barChart, lineChart, type LineSeries } from "../eval/charts.ts";
import { escapeHtml, table } from "../eval/html.ts";
import { renderReport } from "../eval/report.ts";
import {
  compare,
  type Comparison,
  formatDifference,
  type Spread,
  spreadOf,
  spreadOfProbes,
} from "../eval/seeds.ts";

const PROBE_NAMES: readonly ProbeName[] = [
  "linearShape",
  "linearDirection",
  "attentiveShape",
  "attentiveDirection",
];
const PROBE_LABELS: Record<ProbeName, string> = {
  linearShape: "linear · garment",
  linearDirection: "linear · direction",
  attentiveShape: "attentive · garment",
  attentiveDirection: "attentive · direction",
};

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

const pct = (s: Spread) => `${(100 * s.mean).toFixed(1)} ± ${(100 * s.std).toFixed(1)}`;
const num = (s: Spread, d: number) => `${s.mean.toFixed(d)} ± ${s.std.toFixed(d)}`;
const runs = (n: number) => `${n} training seed${n === 1 ? "" : "s"}`;

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

/**
 * Plain verdicts on the paper's four claims, preceded by two sanity checks (do the losses leave their floors;
 * does pretraining beat the untrained encoder). Means are over training seeds; a difference counts only when it
 * exceeds the spread of the difference (src/eval/seeds.ts).
 */
export function claims(r: ExperimentResults): Claim[] {
  const rows = summaryRows(r);
  const row = (n: string) => rows.find((x) => x.name === n);
  const modeRuns = (m: ExperimentMode) => r.modes.find((x) => x.mode === m)?.runs ?? [];
  const trained = rows.filter((x) => !x.baseline);
  const out: Claim[] = [];
  if (trained.length > 0) {
    const allRuns = r.modes.flatMap((m) => m.runs);
    const stuck = allRuns.filter((x) => x.learning.learning === false);
    const unknown = allRuns.filter((x) => x.learning.learning === null);
    out.push({
      claim:
        `0a. (sanity check) Every run's loss leaves its trivial floor (the loss of predicting the mean ` +
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
    });
  }
  const base = row("untrained");
  if (base && trained.length > 0) {
    const cmp = trained.map((t) => ({ t, c: compare(t.probeMean, base.probeMean) }));
    const above = cmp.filter((x) => x.c === "above").map((x) => x.t.name);
    out.push({
      claim: "0b. (sanity check) Pretraining improves the frozen features over the untrained encoder " +
        "(mean of the four probes)",
      measured: `untrained ${pct(base.probeMean)}%; ` +
        cmp.map((x) =>
          `${x.t.name} ${pct(x.t.probeMean)}% (${formatDifference(x.t.probeMean, base.probeMean)})`
        )
          .join(", ") +
        ` — ${runs(base.probeMean.n)}`,
      verdict: above.length === trained.length
        ? "yes: every mode, by more than the spread"
        : above.length > 0
        ? `only ${above.join(", ")} by more than the spread; ` +
          cmp.filter((x) => x.c !== "above").map((x) => `${x.t.name} ${WORDS[x.c]}`).join(", ")
        : `no mode beats it by more than the spread (${
          cmp.map((x) => `${x.t.name} ${WORDS[x.c]}`).join(", ")
        })`,
    });
  }
  const maeRuns = modeRuns("mae").filter((x) => x.convergence.length > 1);
  if (maeRuns.length > 0) {
    const rho = maeRuns.map(convergenceOrder);
    const s = spreadOf(rho);
    out.push({
      claim: "1. Layers converge in order of depth (MAE; first checkpoint at which each block's CKA to its " +
        "final output reaches 0.9)",
      measured: maeRuns.map((x, i) =>
        `s${x.seed}: ${convergenceSteps(x).map((v) => (Number.isFinite(v) ? v : "never")).join(", ")} (ρ ${
          rho[i].toFixed(2)
        })`
      ).join("; ") + `; Spearman ρ(depth, step) ${num(s, 2)}`,
      verdict: rho.every((x) =>
          x > 0.5
        )
        ? "reproduced (ρ > 0.5 for every seed)"
        : s.mean > 0
        ? "weakly reproduced (ρ > 0 on average, not > 0.5 for every seed)"
        : "not reproduced",
    });
  }
  const mae = row("mae"), freeze = row("mae-freeze"), ll = row("layerlock"), lu = row("latent-unfrozen");
  if (mae && freeze) {
    const speed = freeze.stepsPerSec!.mean / mae.stepsPerSec!.mean;
    const c = compare(freeze.probeMean, mae.probeMean);
    out.push({
      claim: "2. Progressive freezing makes MAE steps cheaper without hurting a frozen-feature probe",
      measured: `mae-freeze ${num(freeze.stepsPerSec!, 2)} vs mae ${num(mae.stepsPerSec!, 2)} steps/s ` +
        `(${speed.toFixed(2)}×, whole run); mean probe ${pct(freeze.probeMean)}% vs ${pct(mae.probeMean)}% ` +
        `(${formatDifference(freeze.probeMean, mae.probeMean)} points)`,
      verdict: speed > 1 && c !== "below"
        ? `reproduced (faster; the probe ${WORDS[c]})`
        : speed > 1
        ? "cheaper, but the probe dropped by more than the spread"
        : "not reproduced (not faster)",
    });
  }
  if (lu && ll) {
    const rank = compare(lu.effectiveRank, ll.effectiveRank), probe = compare(lu.probeMean, ll.probeMean);
    out.push({
      claim: "3. A latent loss on unfrozen layers collapses, LayerLock does not",
      measured:
        `effective rank ${num(lu.effectiveRank, 1)} (latent-unfrozen) vs ${num(ll.effectiveRank, 1)} ` +
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
    });
  }
  if (mae && ll) {
    const c = compare(ll.probeMean, mae.probeMean);
    out.push({
      claim: "4. LayerLock's frozen features probe at least as well as pixel MAE's",
      measured: `mean probe ${pct(ll.probeMean)}% (layerlock) vs ${pct(mae.probeMean)}% (mae): ` +
        `${formatDifference(ll.probeMean, mae.probeMean)} points`,
      verdict: c === "above"
        ? "reproduced: better by more than the spread"
        : c === "within"
        ? "reproduced: equal within the spread"
        : "not reproduced: worse by more than the spread",
    });
  }
  return out;
}

/** The mean over runs of `pick` at each logged step (steps where no run has a value are gaps). */
function meanCurve(
  rs: RunResult[],
  pick: (m: StepRecord) => unknown,
): [number, number | null][] {
  const byStep = new Map<number, number[]>();
  for (const run of rs) {
    for (const m of run.metrics) {
      const v = pick(m);
      const step = m.step;
      if (!byStep.has(step)) byStep.set(step, []);
      if (typeof v === "number" && Number.isFinite(v)) byStep.get(step)!.push(v);
    }
  }
  return [...byStep.entries()].sort((a, b) => a[0] - b[0]).map((
    [s, v],
  ) => [s, v.length ? v.reduce((a, b) => a + b, 0) / v.length : null]);
}

/** The report's title and subtitle. */
function title(r: ExperimentResults) {
  const e = r.config, total = e.modes.length * e.seeds.length;
  const done = r.modes.reduce((a, m) => a + m.runs.length, 0);
  const t = r.trainConfigs[e.modes[0]];
  return {
    title: "LayerLock and its comparison modes on Moving Fashion-MNIST",
    subtitle:
      `${e.modes.join(", ")} · ${runs(e.seeds.length)} · ${
        t
          ? `${t.optim.steps} steps of batch ${t.optim.batchSize} · ` +
            `${t.data.frames}×${t.data.size}×${t.data.size} clips · `
          : ""
      }probes on the ${e.probe.split} split · ` +
      `device ${r.device} · ${r.minutes.toFixed(1)} min` +
      (r.complete ? "" : ` · partial: ${done} of ${total} runs`),
  };
}

function setupRows(r: ExperimentResults): string[][] {
  const e = r.config, t = r.trainConfigs[e.modes[0]];
  const rows: string[][] = [[
    "data",
    `Moving Fashion-MNIST (${FASHION_CLASSES.length} garment classes, ${DIRECTION_NAMES.length} directions); ` +
    "training clips from the training images less the 10000 held out, validation clips from those, test clips " +
    "from the test images",
  ]];
  if (t) {
    const m = t.model;
    rows.push(
      [
        "clips",
        `${t.data.frames} frames of ${t.data.size}×${t.data.size}, patch ${m.patch}, tubelet ${m.tubelet}`,
      ],
      [
        "model",
        `${m.preset}${m.encoderDepth ? `, encoder depth ${m.encoderDepth}` : ""}${
          m.encoderDim ? `, width ${m.encoderDim}` : ""
        }`,
      ],
      ["masking", `${t.mask.kind} at ${t.mask.ratio}`],
      [
        "pixel targets",
        t.target.normalize ? "per-tubelet normalised" : "unnormalised (ImageNet-normalised input)",
      ],
      [
        "training",
        `${t.optim.steps} steps, batch ${t.optim.batchSize}, peak lr ${t.optim.lr}, warmup ${t.optim.warmupSteps}, ` +
        `cosine to ${t.optim.minLr}; training seeds ${e.seeds.join(", ")}, the same for every mode`,
      ],
    );
    const ll = r.trainConfigs.layerlock ?? r.trainConfigs["mae-freeze"];
    if (ll) {
      const depth = ll.model.encoderDepth ?? 12;
      const s = resolveSchedule(ll.layerlock, depth, ll.optim.steps);
      rows.push([
        "freezing schedule",
        `pixels for ${s.pixelSteps} steps, then one block every ${s.interval} steps up to ${s.maxFrozen}; ` +
        `mini-warmup ${s.miniWarmupSteps} steps`,
      ]);
    }
  }
  const p = e.probe;
  rows.push([
    "probes",
    `${p.trainClips} training clips, scored on ${p.evalClips} ${p.split} clips; linear ${p.linearEpochs} epochs at ` +
    `lr ${p.linearLr} (batch 256), attentive ${p.attentiveEpochs} epochs at lr ${p.attentiveLr} (batch ` +
    `${p.attentiveBatch}); probe seeds ${p.seeds.join(", ")} inside each training seed`,
  ], [
    "baselines",
    e.baselines.length
      ? e.baselines.map((b) =>
        b === "untrained"
          ? "untrained (each seed's initial encoder)"
          : b === "embedding"
          ? "embedding (its patch and position embedding alone)"
          : "pixels (raw tubelets as tokens)"
      ).join("; ")
      : "none",
  ], [
    "spread",
    "± is the sample std over training seeds; a difference counts when it exceeds √(s_a² + s_b²)",
  ]);
  return rows;
}

/** The report's HTML. */
export function renderExperimentReport(r: ExperimentResults, imageNames: string[]): string {
  const rows = summaryRows(r);
  const trainedRuns = r.modes.filter((m) => m.runs.length > 0);
  const base = rows.find((x) => x.name === "untrained");
  const probeTable = table(
    ["encoder", ...PROBE_NAMES.map((k) => PROBE_LABELS[k]), "mean of the four", base ? "vs untrained" : ""]
      .filter(Boolean),
    rows.map((x) => [
      x.name,
      ...PROBE_NAMES.map((k) => pct(x.probes[k])),
      pct(x.probeMean),
      ...(base ? [x === base ? "—" : formatDifference(x.probeMean, base.probeMean)] : []),
    ]),
    { caption: "top-1 %, mean ± std over training seeds (each the mean over its probe seeds)" },
  );
  const fitTable = table(
    ["encoder", ...PROBE_NAMES.map((k) => PROBE_LABELS[k])],
    [
      ...r.baselines.filter((b) => b.runs.length).map((b) => ({
        name: b.name,
        runs: b.runs as ProbeSummary[],
      })),
      ...trainedRuns.map((m) => ({ name: m.mode, runs: m.runs as ProbeSummary[] })),
    ].map((x) => [
      x.name,
      ...PROBE_NAMES.map((k) =>
        (100 * x.runs.reduce((a, run) => a + run.trainAccuracy[k], 0) / x.runs.length).toFixed(1)
      ),
    ]),
    {
      caption:
        "top-1 % on the probes' own training clips (mean over runs): a probe far below 100 is under-fit",
    },
  );
  const bars = rows.map((x) => ({ label: x.name, value: x.probeMean.mean, err: x.probeMean.std }));
  // each mode keeps its colour in every chart
  const colorOf = (mode: ExperimentMode) => Math.max(0, r.config.modes.indexOf(mode));
  const lossSeries = (
    loss: "pixelLoss" | "latentLoss",
    floor: "pixelFloor" | "latentFloor",
    modes: typeof trainedRuns,
  ): LineSeries[] => {
    const out: LineSeries[] = [];
    for (const m of modes) {
      out.push({
        name: m.mode,
        color: colorOf(m.mode),
        dashed: false,
        points: meanCurve(m.runs, (x) => x[loss]),
      });
    }
    for (const m of modes) {
      const pts = meanCurve(m.runs, (x) => x[floor]);
      if (pts.some(([, y]) => y !== null)) {
        out.push({ name: `${m.mode} floor`, color: colorOf(m.mode), dashed: true, points: pts });
      }
    }
    return out;
  };
  const stageRows = trainedRuns.flatMap((m) =>
    m.runs.flatMap((x) =>
      (x.learning.stages ?? []).map((st) => [
        `${m.mode}-s${x.seed}`,
        st.target,
        `${st.fromStep}–${st.toStep}`,
        `${st.shock.toFixed(2)}×`,
        `${st.ratio.toFixed(2)}×`,
        st.left ? "learning" : "not learning",
      ])
    )
  );
  const latentModes = trainedRuns.filter((m) =>
    m.runs.some((x) => x.metrics.some((k) => k.latentLoss != null))
  );
  const conv = (r.modes.find((m) => m.mode === "mae") ?? trainedRuns[0])?.runs[0];
  const layers = conv?.convergence[0]?.cka.length ?? 0;
  const sections = [
    {
      heading: "The paper's claims at this scale",
      html: table(["claim", "measured", "verdict"], claims(r).map((c) => [c.claim, c.measured, c.verdict])),
    },
    { heading: "Setup", html: table(["setting", "value"], setupRows(r)) },
    {
      heading: "Is it learning? Each run's loss against its trivial floor",
      html: table(
        ["run", "verdict"],
        trainedRuns.flatMap((m) => m.runs.map((x) => [`${m.mode}-s${x.seed}`, x.learning.text])),
        {
          caption:
            `the floor is the loss of predicting the mean target at each token position (estimated from ` +
            `clips outside the training stream, on the same masked tokens); a phase has left it when its loss ends ` +
            `at most ${Math.round(100 * LEARNING_RATIO)}% of it`,
        },
      ),
    },
    ...(stageRows.length
      ? [{
        heading: "LayerLock's latent stages: each target against its own floor",
        html: table(["run", "target", "steps", "after the switch", "last fifth", "verdict"], stageRows, {
          caption:
            `loss / floor of the stage's first logged window ("after the switch": how far above its floor ` +
            `the new target starts) and over its last fifth; a stage has left its floor at ≤ ` +
            `${LEARNING_RATIO.toFixed(2)}×`,
        }),
      }]
      : []),
    {
      heading: "Loss curves (mean over training seeds; dashed: the trivial floor)",
      html: lineChart({
        title: "pixel loss (masked tokens; log scale)",
        xLabel: "step",
        yLabel: "MSE",
        logY: true, // the first steps' loss is several times the floor; a log axis keeps the gap below it visible
        series: lossSeries("pixelLoss", "pixelFloor", trainedRuns),
      }) +
        (latentModes.length
          ? lineChart({
            title: "latent loss (log scale)",
            xLabel: "step",
            yLabel: "MSE",
            logY: true,
            series: lossSeries("latentLoss", "latentFloor", latentModes),
          })
          : ""),
    },
    {
      heading: "Frozen depth",
      html: lineChart({
        title: "frozen encoder blocks",
        xLabel: "step",
        yLabel: "blocks",
        series: trainedRuns.map((m) => ({
          name: m.mode,
          color: colorOf(m.mode),
          points: meanCurve(m.runs, (x) => x.frozenDepth),
        })),
      }),
    },
    {
      heading: "Frozen-feature probes",
      html: probeTable +
        barChart({ title: "mean of the four probes (± std over training seeds)", yLabel: "top-1", bars }) +
        fitTable,
    },
    {
      heading: "Collapse metrics (pooled features of the evaluation clips)",
      html: ["effectiveRank", "featureStd", "meanCosine"].map((k) =>
        lineChart({
          title: `${k} during training (64 clips, mean over seeds)`,
          xLabel: "step",
          yLabel: k,
          series: trainedRuns.map((m) => ({
            name: m.mode,
            color: colorOf(m.mode),
            points: meanCurve(m.runs, (x) => (x.eval as Record<string, number> | undefined)?.[k]),
          })),
        })
      ).join("") +
        table(
          ["encoder", "effective rank", "feature std", "mean cosine"],
          rows.map((x) => [x.name, num(x.effectiveRank, 1), num(x.featureStd, 4), num(x.meanCosine, 3)]),
        ),
    },
    {
      heading: "Step time and memory",
      html: table(
        ["mode", "steps/s", "peak memory (MiB)"],
        trainedRuns.map((m) => {
          const peak = m.runs[0].peakBytes;
          return [
            m.mode,
            num(spreadOf(m.runs.map((x) => x.stepsPerSec)), 2),
            peak === null ? "n/a (CPU)" : (peak / 2 ** 20).toFixed(0),
          ];
        }),
      ),
    },
    ...(conv
      ? [{
        heading:
          `Layer convergence (${conv.mode}, seed ${conv.seed}): linear CKA of each block's output to its final output`,
        html: lineChart({
          title: "CKA to the final model, per block",
          xLabel: "step",
          yLabel: "CKA",
          series: Array.from({ length: layers }, (_, l) => ({
            name: `block ${l + 1}`,
            points: conv.convergence.map((c) => [c.step, c.cka[l]] as [number, number]),
          })),
        }),
      }]
      : []),
    {
      heading:
        "Reconstructions (first seed; rows per clip: input, masked input, reconstruction; columns: frames)",
      html:
        imageNames.map((n) =>
          `<figure><img src="${escapeHtml(n)}" alt="${escapeHtml(n)}"><figcaption>${
            escapeHtml(n.replace(/^recon_|\.png$/g, ""))
          }</figcaption></figure>`
        ).join("") || "<p>none</p>",
    },
  ];
  return renderReport({ ...title(r), sections });
}
