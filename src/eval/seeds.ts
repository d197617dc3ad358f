/**
 * Statistics over training seeds, and when a difference counts. Pure: numbers in, numbers out.
 *
 * Each run (a mode trained from one seed) is probed with several probe seeds; the run's number is the mean over
 * its probe seeds. A mode's number is then the mean over its runs, and its spread is the sample standard
 * deviation over runs (training seeds): the variation a reader would see by training again. The probe-seed
 * spread inside the runs is kept beside it (`probeStd`).
 *
 * A difference between two rows counts only when it exceeds the spread of the difference: |Δ| > √(s_a² + s_b²),
 * the standard deviation of the difference between one run of each (with one run, or runs that agree exactly, a
 * row's spread is 0).
 * @module
 */

import { DataError } from "../errors.ts";

/** A probe's accuracy over probe seeds (src/eval/probe.ts's `SeedStats`). */
export interface ProbeSeedStats {
  /** Mean accuracy over probe seeds. */
  mean: number;
  /** Sample standard deviation over probe seeds (0 for one seed). */
  std: number;
  /** Each probe seed's accuracy. */
  values: number[];
}

/** A number over training seeds. */
export interface Spread {
  /** Mean over training seeds. */
  mean: number;
  /** Sample standard deviation over training seeds (Bessel-corrected; 0 for one seed). */
  std: number;
  /** Number of training seeds. */
  n: number;
  /** Each training seed's value (for probes: the mean over its probe seeds), in order. */
  values: number[];
  /** The mean, over training seeds, of the spread over probe seeds (0 for plain numbers). */
  probeStd: number;
}

function mean(v: readonly number[]): number {
  return v.reduce((a, b) => a + b, 0) / v.length;
}

function sampleStd(v: readonly number[]): number {
  if (v.length < 2) return 0;
  const m = mean(v);
  return Math.sqrt(v.reduce((a, x) => a + (x - m) ** 2, 0) / (v.length - 1));
}

/** The spread of plain numbers, one per training seed. */
export function spreadOf(values: readonly number[]): Spread {
  if (values.length === 0) throw new DataError("spreadOf", "spreadOf: no values");
  return { mean: mean(values), std: sampleStd(values), n: values.length, values: [...values], probeStd: 0 };
}

/** The spread over training seeds of a probe, given each run's probe-seed statistics. */
export function spreadOfProbes(runs: readonly ProbeSeedStats[]): Spread {
  if (runs.length === 0) throw new DataError("spreadOfProbes", "spreadOfProbes: no runs");
  const s = spreadOf(runs.map((r) => r.mean));
  return { ...s, probeStd: mean(runs.map((r) => r.std)) };
}

/** The spread of the difference a − b between one run of each: √(s_a² + s_b²). */
export function differenceSpread(a: Spread, b: Spread): number {
  return Math.sqrt(a.std ** 2 + b.std ** 2);
}

/** How a − b compares with its spread. */
export type Comparison = "above" | "within" | "below";

/** Whether a − b exceeds the spread of the difference upwards, downwards, or not. */
export function compare(a: Spread, b: Spread): Comparison {
  const d = a.mean - b.mean, s = differenceSpread(a, b);
  return d > s ? "above" : d < -s ? "below" : "within";
}

/** "+1.2 ± 0.8" (points when `scale` is 100): a − b and the spread of the difference. */
export function formatDifference(a: Spread, b: Spread, scale = 100, digits = 1): string {
  const d = (a.mean - b.mean) * scale, s = differenceSpread(a, b) * scale;
  return `${d >= 0 ? "+" : ""}${d.toFixed(digits)} ± ${s.toFixed(digits)}`;
}
