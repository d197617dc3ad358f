/**
 * The experiment's HTML report: the verdicts on the paper's claims and the summary rows (computed in
 * src/experiment/verdicts.ts), the setup, the learning checks, loss and collapse curves, the probes, step time,
 * layer convergence and the reconstructions, one named section each. Pure: results in, HTML out (no tensors).
 * @module
 */
import { FASHION_CLASSES } from "../data/fashion_mnist.ts";
import { DIRECTION_NAMES } from "../data/moving_shapes.ts";
import { resolveSchedule } from "../layerlock/schedule.ts";
import { type ExperimentMode, plannedRuns, seedsOf } from "./config.ts";
import type { ExperimentResults, RunResult } from "./run.ts";
import type { ProbeName, ProbeSummary } from "./probes.ts";
import type { StepRecord } from "../train/events.ts";
import { LEARNING_RATIO } from "../layerlock/learning.ts";
import { barChart, lineChart, type LineSeries } from "../eval/charts.ts";
import { escapeHtml, table } from "../eval/html.ts";
import { renderReport, type ReportSection } from "../eval/report.ts";
import { formatDifference, spreadOf } from "../eval/seeds.ts";
import { claims, num, pct, PROBE_NAMES, seedCount, type SummaryRow, summaryRows } from "./verdicts.ts";

const PROBE_LABELS: Record<ProbeName, string> = {
  linearShape: "linear · garment",
  linearDirection: "linear · direction",
  attentiveShape: "attentive · garment",
  attentiveDirection: "attentive · direction",
};

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
  const e = r.config, total = plannedRuns(e).length;
  const done = r.modes.reduce((a, m) => a + m.runs.length, 0);
  const t = r.trainConfigs[e.modes[0]];
  return {
    title: "LayerLock and its comparison modes on Moving Fashion-MNIST",
    subtitle:
      `${e.modes.join(", ")} · ${seedCount(e.seeds.length)} · ${
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
        `${lrShape(t.optim)}; training seeds ${
          e.modes.map((m) => `${m} ${seedsOf(e, m).join(", ")}`).join("; ")
        }`,
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

/** The modes that ran, in the configured order. */
type TrainedModes = ExperimentResults["modes"];

/** A mode's colour: each mode keeps its colour in every chart. */
function colorOf(r: ExperimentResults, mode: ExperimentMode): number {
  return Math.max(0, r.config.modes.indexOf(mode));
}

/** Each mode's mean `loss` curve, then the dashed `floor` curves of the modes that logged one. */
function lossSeries(
  r: ExperimentResults,
  loss: "pixelLoss" | "latentLoss",
  floor: "pixelFloor" | "latentFloor",
  modes: TrainedModes,
): LineSeries[] {
  const out: LineSeries[] = [];
  for (const m of modes) {
    out.push({
      name: m.mode,
      color: colorOf(r, m.mode),
      dashed: false,
      points: meanCurve(m.runs, (x) => x[loss]),
    });
  }
  for (const m of modes) {
    const pts = meanCurve(m.runs, (x) => x[floor]);
    if (pts.some(([, y]) => y !== null)) {
      out.push({ name: `${m.mode} floor`, color: colorOf(r, m.mode), dashed: true, points: pts });
    }
  }
  return out;
}

/** The verdicts on the paper's claims. */
function claimsSection(r: ExperimentResults): ReportSection {
  return {
    heading: "The paper's claims at this scale",
    html: table(["claim", "measured", "verdict"], claims(r).map((c) => [c.claim, c.measured, c.verdict])),
  };
}

/** Each run's learning verdict and, for LayerLock's runs, each latent stage against its own floor. */
function learningSections(trained: TrainedModes): ReportSection[] {
  const stageRows = trained.flatMap((m) =>
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
  return [
    {
      heading: "Is it learning? Each run's loss against its trivial floor",
      html: table(
        ["run", "verdict"],
        trained.flatMap((m) => m.runs.map((x) => [`${m.mode}-s${x.seed}`, x.learning.text])),
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
  ];
}

/** The pixel loss curves and, for modes with a latent loss, the latent ones, each with its floor. */
function lossSection(r: ExperimentResults, trained: TrainedModes): ReportSection {
  const latentModes = trained.filter((m) => m.runs.some((x) => x.metrics.some((k) => k.latentLoss != null)));
  return {
    heading: "Loss curves (mean over training seeds; dashed: the trivial floor)",
    html: lineChart({
      title: "pixel loss (masked tokens; log scale)",
      xLabel: "step",
      yLabel: "MSE",
      logY: true, // the first steps' loss is several times the floor; a log axis keeps the gap below it visible
      series: lossSeries(r, "pixelLoss", "pixelFloor", trained),
    }) +
      (latentModes.length
        ? lineChart({
          title: "latent loss (log scale)",
          xLabel: "step",
          yLabel: "MSE",
          logY: true,
          series: lossSeries(r, "latentLoss", "latentFloor", latentModes),
        })
        : ""),
  };
}

/** Frozen encoder blocks over training. */
function frozenDepthSection(r: ExperimentResults, trained: TrainedModes): ReportSection {
  return {
    heading: "Frozen depth",
    html: lineChart({
      title: "frozen encoder blocks",
      xLabel: "step",
      yLabel: "blocks",
      series: trained.map((m) => ({
        name: m.mode,
        color: colorOf(r, m.mode),
        points: meanCurve(m.runs, (x) => x.frozenDepth),
      })),
    }),
  };
}

/** The probe table (with the difference to the untrained encoder), the bar chart of the means, the fit table. */
function probesSection(r: ExperimentResults, rows: SummaryRow[], trained: TrainedModes): ReportSection {
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
      ...trained.map((m) => ({ name: m.mode, runs: m.runs as ProbeSummary[] })),
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
  return {
    heading: "Frozen-feature probes",
    html: probeTable +
      barChart({ title: "mean of the four probes (± std over training seeds)", yLabel: "top-1", bars }) +
      fitTable,
  };
}

/** The collapse metrics during training and at the end, per encoder. */
function collapseSection(r: ExperimentResults, rows: SummaryRow[], trained: TrainedModes): ReportSection {
  return {
    heading: "Collapse metrics (pooled features of the evaluation clips)",
    html: ["effectiveRank", "featureStd", "meanCosine"].map((k) =>
      lineChart({
        title: `${k} during training (64 clips, mean over seeds)`,
        xLabel: "step",
        yLabel: k,
        series: trained.map((m) => ({
          name: m.mode,
          color: colorOf(r, m.mode),
          points: meanCurve(m.runs, (x) => (x.eval as Record<string, number> | undefined)?.[k]),
        })),
      })
    ).join("") +
      table(
        ["encoder", "effective rank", "feature std", "mean cosine"],
        rows.map((x) => [x.name, num(x.effectiveRank, 1), num(x.featureStd, 4), num(x.meanCosine, 3)]),
      ),
  };
}

/** Steps per second over seeds and the first run's peak device memory, per mode. */
function stepTimeSection(trained: TrainedModes): ReportSection {
  return {
    heading: "Step time and memory",
    html: table(
      ["mode", "steps/s", "peak memory (MiB)"],
      trained.map((m) => {
        const peak = m.runs[0].peakBytes;
        return [
          m.mode,
          num(spreadOf(m.runs.map((x) => x.stepsPerSec)), 2),
          peak === null ? "n/a (CPU)" : (peak / 2 ** 20).toFixed(0),
        ];
      }),
    ),
  };
}

/** CKA of each block to its final output over training, for the first MAE run (else the first run); none: []. */
function convergenceSections(r: ExperimentResults, trained: TrainedModes): ReportSection[] {
  const conv = (r.modes.find((m) => m.mode === "mae") ?? trained[0])?.runs[0];
  if (!conv) return [];
  const layers = conv.convergence[0]?.cka.length ?? 0;
  return [{
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
  }];
}

/** The reconstruction images, one figure each. */
function reconstructionsSection(imageNames: string[]): ReportSection {
  return {
    heading:
      "Reconstructions (first seed; rows per clip: input, masked input, reconstruction; columns: frames)",
    html:
      imageNames.map((n) =>
        `<figure><img src="${escapeHtml(n)}" alt="${escapeHtml(n)}"><figcaption>${
          escapeHtml(n.replace(/^recon_|\.png$/g, ""))
        }</figcaption></figure>`
      ).join("") || "<p>none</p>",
  };
}

/** The report's HTML. */
export function renderExperimentReport(r: ExperimentResults, imageNames: string[]): string {
  const rows = summaryRows(r);
  const trained = r.modes.filter((m) => m.runs.length > 0);
  const sections = [
    claimsSection(r),
    { heading: "Setup", html: table(["setting", "value"], setupRows(r)) },
    ...learningSections(trained),
    lossSection(r, trained),
    frozenDepthSection(r, trained),
    probesSection(r, rows, trained),
    collapseSection(r, rows, trained),
    stepTimeSection(trained),
    ...convergenceSections(r, trained),
    reconstructionsSection(imageNames),
  ];
  return renderReport({ ...title(r), sections });
}

/** The learning-rate schedule in words. */
function lrShape(o: { schedule?: string; minLr: number; decayFraction?: number }): string {
  if (o.schedule === "constant") return "then constant";
  if (o.schedule === "wsd") {
    return `then constant, decaying linearly to ${o.minLr} over the last ${(o.decayFraction ?? 0.2) * 100}%`;
  }
  return `cosine to ${o.minLr}`;
}
