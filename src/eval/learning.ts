/**
 * Whether a run learned anything beyond the mean target: its loss compared with the trivial floor logged beside
 * it (src/layerlock/floor.ts), at the end of each target phase. Pure: metrics records in, a verdict out.
 *
 * A phase is the run's records with that loss and its floor: `pixels` (the pixel loss; for LayerLock the steps
 * before the first freeze) and `latent` (LayerLock's latent loss). Its verdict reads the last tenth of them (at
 * least one record): the ratio Σ loss / Σ floor. A phase has left the floor when that ratio is at most
 * `LEARNING_RATIO`; a run is "learning" when every phase it has left the floor, and "not learning" otherwise,
 * in those words in the report.
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

/** A run's verdict. */
export interface LearningVerdict {
  /** Every phase left its floor (null when no floor was logged). */
  learning: boolean | null;
  /** The phases found, pixels first. */
  phases: PhaseVerdict[];
  /** The verdict in words. */
  text: string;
}

/** The fields of a metrics.jsonl record this module reads. */
export interface LossRecord {
  step: number;
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

/** The verdict of one run from its metrics records (in step order). */
export function learningVerdict(records: readonly LossRecord[], ratio = LEARNING_RATIO): LearningVerdict {
  const phases = [phaseVerdict("pixels", records, ratio), phaseVerdict("latent", records, ratio)].filter((
    p,
  ): p is PhaseVerdict => p !== null);
  if (phases.length === 0) {
    return { learning: null, phases, text: "no loss floor was logged (log.floorClips 0?)" };
  }
  const learning = phases.every((p) => p.left);
  const parts = phases.map((p) =>
    `${p.phase === "pixels" ? "pixel" : "latent"} loss ${p.loss.toFixed(3)} is ${
      (100 * p.ratio).toFixed(0)
    }% of its floor ${p.floor.toFixed(3)} (steps ${p.fromStep}–${p.toStep})`
  );
  const stuck = phases.filter((p) => !p.left);
  const what = (p: PhaseVerdict) => p.phase === "pixels" ? "the mean image" : "the mean latent";
  const why = stuck.map((p) =>
    p.ratio > 1 ? `it predicts worse than ${what(p)}` : `it predicts little more than ${what(p)}`
  );
  return {
    learning,
    phases,
    text: learning
      ? `learning: ${parts.join("; ")}`
      : `not learning: ${parts.join("; ")} — ${why.join("; ")}`,
  };
}
