/**
 * Whether a run learned anything beyond the mean target: its loss compared with the trivial floor logged beside
 * it (src/layerlock/floor.ts), at the end of each target phase. Pure: metrics records in, a verdict out.
 *
 * A phase is the run's records with that loss and its floor: `pixels` (the pixel loss; for LayerLock the steps
 * before the first freeze) and `latent` (LayerLock's latent loss). Its verdict reads the last tenth of them (at
 * least one record): the ratio Σ loss / Σ floor. A phase has left the floor when that ratio is at most
 * `LEARNING_RATIO`. LayerLock's latent phase is also judged stage by stage (`stageVerdicts`): each latent target
 * (h1, h2, …) against its own floor, at the switch (the "switch shock": the first record after it) and over the
 * stage's last fifth. A run is "learning" when every phase and every latent stage has left its floor, and "not
 * learning" otherwise, in those words in the report.
 * @module
 */

/** The largest loss / floor ratio at which a phase counts as having left the floor. */
export const LEARNING_RATIO = 0.9;

/** One phase's verdict. */
export interface PhaseVerdict {
  /** Which loss. */
  phase: "pixels" | "latent";
  /** First and last step of the records read. */
  fromStep: number;
  toStep: number;
  /** Mean loss and mean floor over those records. */
  loss: number;
  floor: number;
  /** loss / floor. */
  ratio: number;
  /** ratio ≤ LEARNING_RATIO. */
  left: boolean;
}

/** One latent stage's verdict: a target (h1, h2, …, or h1..h3) from its switch to the next. */
export interface StageVerdict {
  /** What the stage predicts, as the records name it. */
  target: string;
  /** First and last step of its records. */
  fromStep: number;
  toStep: number;
  /** Latent loss / floor of its first record: how far above its floor the switch put the loss. */
  shock: number;
  /** Σ loss / Σ floor over the stage's last fifth of records (at least one). */
  ratio: number;
  /** ratio ≤ LEARNING_RATIO. */
  left: boolean;
}

/** A run's verdict. */
export interface LearningVerdict {
  /** Every phase and latent stage left its floor (null when no floor was logged). */
  learning: boolean | null;
  /** The phases found, pixels first. */
  phases: PhaseVerdict[];
  /** The latent stages, in order (none without a latent loss and its floor). */
  stages: StageVerdict[];
  /** The verdict in words. */
  text: string;
}

/** The fields of a metrics.jsonl record this module reads. */
export interface LossRecord {
  step: number;
  /** What the step predicted (`pixels`, `h3`, `h1..h3`, …). */
  target?: string;
  pixelLoss?: number | null;
  latentLoss?: number | null;
  pixelFloor?: number | null;
  latentFloor?: number | null;
}

function phaseVerdict(
  phase: PhaseVerdict["phase"],
  records: readonly LossRecord[],
  ratio: number,
): PhaseVerdict | null {
  const key = phase === "pixels"
    ? ["pixelLoss", "pixelFloor"] as const
    : ["latentLoss", "latentFloor"] as const;
  const rs = records.filter((r) =>
    typeof r[key[0]] === "number" && typeof r[key[1]] === "number" && Number.isFinite(r[key[0]]!) &&
    Number.isFinite(r[key[1]]!)
  );
  if (rs.length === 0) return null;
  const tail = rs.slice(rs.length - Math.max(1, Math.ceil(rs.length / 10)));
  const loss = tail.reduce((a, r) => a + r[key[0]]!, 0) / tail.length;
  const floor = tail.reduce((a, r) => a + r[key[1]]!, 0) / tail.length;
  const q = floor > 0 ? loss / floor : Infinity;
  return {
    phase,
    fromStep: tail[0].step,
    toStep: tail[tail.length - 1].step,
    loss,
    floor,
    ratio: q,
    left: q <= ratio,
  };
}

const hasLatent = (r: LossRecord) =>
  typeof r.latentLoss === "number" && typeof r.latentFloor === "number" && Number.isFinite(r.latentLoss) &&
  Number.isFinite(r.latentFloor);

/** The verdict of one latent stage from its records (in step order, at least one). */
export function stageVerdict(records: readonly LossRecord[], ratio = LEARNING_RATIO): StageVerdict {
  const tail = records.slice(records.length - Math.max(1, Math.ceil(records.length / 5)));
  const q = (rs: readonly LossRecord[]) => {
    const floor = rs.reduce((a, r) => a + r.latentFloor!, 0);
    return floor > 0 ? rs.reduce((a, r) => a + r.latentLoss!, 0) / floor : Infinity;
  };
  const end = q(tail);
  return {
    target: records[0].target ?? "latent",
    fromStep: records[0].step,
    toStep: records[records.length - 1].step,
    shock: q(records.slice(0, 1)),
    ratio: end,
    left: end <= ratio,
  };
}

/**
 * The verdict of each latent stage of a run: its records with a latent loss and floor, split where the target
 * changes (records without a `target` form one stage).
 */
export function stageVerdicts(records: readonly LossRecord[], ratio = LEARNING_RATIO): StageVerdict[] {
  const groups: LossRecord[][] = [];
  for (const r of records.filter(hasLatent)) {
    const last = groups.at(-1);
    if (last && last[0].target === r.target) last.push(r);
    else groups.push([r]);
  }
  return groups.map((g) => stageVerdict(g, ratio));
}

/**
 * Follows a run's records as they are logged and returns each latent stage's verdict once the stage is over (a
 * record with another target arrives, or `finish` is called): the progress line's per-stage diagnostics.
 */
export class StageTracker {
  #current: LossRecord[] = [];
  /** Adds the next record; returns the verdict of the latent stage it ends, if it ends one. */
  add(r: LossRecord): StageVerdict | null {
    const ended = this.#current.length > 0 && this.#current[0].target !== r.target ? this.finish() : null;
    if (hasLatent(r)) this.#current.push(r);
    return ended;
  }
  /** The verdict of the stage in progress (null when none), which is then over. */
  finish(): StageVerdict | null {
    const rs = this.#current;
    this.#current = [];
    return rs.length ? stageVerdict(rs) : null;
  }
}

/** A stage's verdict in words. */
export function formatStage(s: StageVerdict): string {
  return `${s.target} (steps ${s.fromStep}–${s.toStep}): ${
    s.shock.toFixed(2)
  }× its floor after the switch, ` +
    `${s.ratio.toFixed(2)}× over its last fifth${s.left ? "" : " — not learning"}`;
}

/** The verdict of one run from its metrics records (in step order). */
export function learningVerdict(records: readonly LossRecord[], ratio = LEARNING_RATIO): LearningVerdict {
  const phases = [phaseVerdict("pixels", records, ratio), phaseVerdict("latent", records, ratio)].filter((
    p,
  ): p is PhaseVerdict => p !== null);
  const stages = stageVerdicts(records, ratio);
  if (phases.length === 0) {
    return { learning: null, phases, stages, text: "no loss floor was logged (log.floorClips 0?)" };
  }
  const stuckStages = stages.filter((s) => !s.left);
  const learning = phases.every((p) => p.left) && stuckStages.length === 0;
  const parts = phases.map((p) =>
    `${p.phase === "pixels" ? "pixel" : "latent"} loss ${p.loss.toFixed(3)} is ${
      (100 * p.ratio).toFixed(0)
    }% of its floor ${p.floor.toFixed(3)} (steps ${p.fromStep}–${p.toStep})`
  );
  if (stages.length > 1) {
    parts.push(
      `latent stages: ${stages.map((s) => `${s.target} ${(100 * s.ratio).toFixed(0)}%`).join(", ")}`,
    );
  }
  const stuck = phases.filter((p) => !p.left);
  const what = (p: PhaseVerdict) => p.phase === "pixels" ? "the mean image" : "the mean latent";
  const why = stuck.map((p) =>
    p.ratio > 1 ? `it predicts worse than ${what(p)}` : `it predicts little more than ${what(p)}`
  );
  if (stuckStages.length) {
    why.push(`stage ${stuckStages.map((s) => s.target).join(", ")} stayed near its floor`);
  }
  return {
    learning,
    phases,
    stages,
    text: learning
      ? `learning: ${parts.join("; ")}`
      : `not learning: ${parts.join("; ")} — ${why.join("; ")}`,
  };
}
