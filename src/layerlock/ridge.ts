/**
 * Ridge regression in closed form, from sufficient statistics: the best linear map (weight and bias) from
 * features x ∈ ℝᵈ to targets y ∈ ℝᵏ, given Σ1, Σx, Σy, Σxxᵀ and Σxyᵀ over the samples. LayerLock uses it to start
 * a latent head at the best linear predictor of its new target (`layerlock.headInit: "ridge"`). Pure: numbers
 * in, numbers out, in float64.
 * @module
 */
import { TorchError } from "../errors.ts";

/** Sums over n samples of features [d] and targets [k] (row-major). */
export interface RidgeStats {
  /** Samples. */
  n: number;
  /** Feature and target sizes. */
  d: number;
  k: number;
  /** Σx [d]. */
  sumX: ArrayLike<number>;
  /** Σy [k]. */
  sumY: ArrayLike<number>;
  /** Σ x xᵀ [d, d]. */
  xtx: ArrayLike<number>;
  /** Σ x yᵀ [d, k]. */
  xty: ArrayLike<number>;
}

/**
 * The default ridge strength, relative to the mean variance of the features: λ = 1 · tr(C)/d. A weaker one fits
 * the held-out clips a little better but gives large weights on the features' weak directions (the decoder's
 * LayerNorm leaves one exactly null), and then the first updates of the decoder move the head's predictions far:
 * in the tests' small run λ = 1e-2 put the loss at 0.92× its floor after the fit and at 23× one step later,
 * λ = 1 at 0.93× and then 0.93×.
 */
export const RIDGE_LAMBDA = 1;

/**
 * The ridge fit of `s`: W [k, d] and b [k] (a Linear layer's weight and bias) minimising
 * Σ‖W x + b − y‖² + λ‖W‖², with λ = `lambda` · tr(C)/d for the feature covariance C (the bias is not penalised:
 * the fit is on centred features, b = ȳ − W x̄).
 */
export function ridgeFit(s: RidgeStats, lambda = RIDGE_LAMBDA): { weight: Float64Array; bias: Float64Array } {
  const { n, d, k } = s;
  if (!(n >= 1 && d >= 1 && k >= 1)) {
    throw new TorchError("ridgeFit", `needs n, d, k >= 1, got ${n}, ${d}, ${k}`);
  }
  const sizes: [string, ArrayLike<number>, number][] = [
    ["sumX", s.sumX, d],
    ["sumY", s.sumY, k],
    ["xtx", s.xtx, d * d],
    ["xty", s.xty, d * k],
  ];
  for (const [name, a, want] of sizes) {
    if (a.length !== want) {
      throw new TorchError("ridgeFit", `${name} has ${a.length} values, expected ${want}`);
    }
  }
  const mx = Float64Array.from(s.sumX, (v) => v / n), my = Float64Array.from(s.sumY, (v) => v / n);
  // centred second moments: C = Σxxᵀ − n x̄x̄ᵀ, D = Σxyᵀ − n x̄ȳᵀ
  const c = new Float64Array(d * d), r = new Float64Array(d * k);
  let trace = 0;
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) c[i * d + j] = s.xtx[i * d + j] - n * mx[i] * mx[j];
    for (let j = 0; j < k; j++) r[i * k + j] = s.xty[i * k + j] - n * mx[i] * my[j];
    trace += c[i * d + i];
  }
  const lam = lambda * Math.max(trace / d, 1e-12);
  for (let i = 0; i < d; i++) c[i * d + i] += lam;
  const w = choleskySolve(c, r, d, k); // [d, k]
  const weight = new Float64Array(k * d), bias = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    let b = my[j];
    for (let i = 0; i < d; i++) {
      weight[j * d + i] = w[i * k + j];
      b -= w[i * k + j] * mx[i];
    }
    bias[j] = b;
  }
  for (const v of weight) if (!Number.isFinite(v)) throw new TorchError("ridgeFit", "the fit is not finite");
  return { weight, bias };
}

/** Solves A X = B for a symmetric positive-definite A [d, d] and B [d, k] (Cholesky, in place on copies). */
export function choleskySolve(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  d: number,
  k: number,
): Float64Array {
  const l = Float64Array.from(a);
  for (let j = 0; j < d; j++) {
    let diag = l[j * d + j];
    for (let p = 0; p < j; p++) diag -= l[j * d + p] * l[j * d + p];
    if (!(diag > 0)) {
      throw new TorchError("choleskySolve", `the matrix is not positive definite (pivot ${j})`);
    }
    const ljj = Math.sqrt(diag);
    l[j * d + j] = ljj;
    for (let i = j + 1; i < d; i++) {
      let v = l[i * d + j];
      for (let p = 0; p < j; p++) v -= l[i * d + p] * l[j * d + p];
      l[i * d + j] = v / ljj;
    }
  }
  const x = Float64Array.from(b);
  for (let c = 0; c < k; c++) {
    for (let i = 0; i < d; i++) { // L z = b
      let v = x[i * k + c];
      for (let p = 0; p < i; p++) v -= l[i * d + p] * x[p * k + c];
      x[i * k + c] = v / l[i * d + i];
    }
    for (let i = d - 1; i >= 0; i--) { // Lᵀ x = z
      let v = x[i * k + c];
      for (let p = i + 1; p < d; p++) v -= l[p * d + i] * x[p * k + c];
      x[i * k + c] = v / l[i * d + i];
    }
  }
  return x;
}
