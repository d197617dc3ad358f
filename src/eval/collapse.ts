/**
 * Collapse metrics of a feature matrix [N, D] (N samples, D dimensions): whether a representation has
 * collapsed to a point or to a low-dimensional subspace.
 *
 * - `featureStd`: the mean over dimensions of the per-dimension standard deviation of the L2-normalised
 *   features (SimSiam's collapse monitor). A collapsed representation gives 0; isotropic features give about
 *   1/sqrt(D), the most a unit vector's coordinates can spread on average.
 * - `effectiveRank`: exp of the entropy of the normalised singular values p_i = s_i / Σ s of the centred
 *   features (Roy & Vetterli 2007; RankMe). Between 1 and min(N, D): 1 for one direction, D for isotropic.
 * - `meanPairwiseCosine`: the mean cosine similarity between distinct rows (1 when every row points the same
 *   way, about 0 for isotropic features).
 *
 * Everything is computed in float64 on the features' device; the results are plain numbers and no tensor is
 * left alive.
 * @module
 */
import { TorchError } from "../errors.ts";
import { noGrad } from "../torch/autograd.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";

/** The collapse metrics of a feature matrix. */
export interface CollapseMetrics {
  /** Mean per-dimension standard deviation of the L2-normalised features (0 when collapsed). */
  featureStd: number;
  /** exp(entropy) of the normalised singular values of the centred features, in [1, min(N, D)]. */
  effectiveRank: number;
  /** Mean cosine similarity between distinct rows. */
  meanCosine: number;
  /** N: the number of samples. */
  n: number;
  /** D: the feature width. */
  dim: number;
}

/** Rows with an L2 norm below this are treated as zero vectors when normalising. */
const NORM_EPS = 1e-12;

/**
 * Singular values of the centred features that are at most this fraction of the uncentred features'
 * Frobenius norm count as zero: what is left after centring identical rows is rounding noise, which would
 * otherwise spread over every direction and look like full rank.
 */
const RANK_RTOL = 1e-10;

function checkFeatures(x: Tensor, op: string): [number, number] {
  const s = x.shape;
  if (s.length !== 2) throw new TorchError(op, `expected features [N, D], got [${s.join(", ")}]`);
  if (s[0] < 2) throw new TorchError(op, `need at least 2 samples, got ${s[0]}`);
  if (s[1] < 1) throw new TorchError(op, `need at least 1 dimension, got ${s[1]}`);
  return [s[0], s[1]];
}

/** The rows of [N, D] scaled to unit L2 norm (zero rows stay zero), in f64. */
function normalizedRows(x: Tensor): Tensor {
  const x64 = x.to({ dtype: "f64" });
  return x64.div(x64.norm(2, 1, true).clamp(NORM_EPS));
}

/**
 * The mean over dimensions of the standard deviation (over samples, with Bessel's correction, as SimSiam's
 * `F.normalize(z, dim=1).std(dim=0).mean()`) of the L2-normalised features [N, D]. Near 0 when the
 * representation has collapsed; about 1/sqrt(D) for isotropic features.
 */
export function featureStd(x: Tensor): number {
  checkFeatures(x, "featureStd");
  return noGrad(() => scope(() => normalizedRows(x).std(0).mean().item()));
}

/**
 * The effective rank of the features [N, D]: exp(−Σ p_i log p_i) with p_i = s_i / Σ_j s_j, where s are the
 * singular values of the features centred over samples. Singular values below 1e-10 × the Frobenius norm of
 * the uncentred features are treated as zero (rounding noise of the centring); when none is left (every row
 * the same) the effective rank is 1, the value for a single direction (as RankMe's ε convention gives).
 */
export function effectiveRank(x: Tensor): number {
  checkFeatures(x, "effectiveRank");
  const s = noGrad(() =>
    scope(() => {
      const x64 = x.to({ dtype: "f64" });
      const tol = x64.norm().item() * RANK_RTOL;
      const sv = x64.sub(x64.mean(0, true)).svdvals().toArray() as Float64Array;
      return { sv, tol };
    })
  );
  return entropyRank(s.sv, s.tol);
}

/** exp(entropy) of the singular values above `tol`, normalised to sum 1; 1 when none is above `tol`. */
export function entropyRank(singularValues: ArrayLike<number>, tol = 0): number {
  let sum = 0;
  for (let i = 0; i < singularValues.length; i++) {
    const v = singularValues[i];
    if (v > tol) sum += v;
  }
  if (!(sum > 0)) return 1;
  let h = 0;
  for (let i = 0; i < singularValues.length; i++) {
    const v = singularValues[i];
    if (v > tol) {
      const p = v / sum;
      h -= p * Math.log(p);
    }
  }
  return Math.exp(h);
}

/**
 * The mean cosine similarity over the N(N−1) ordered pairs of distinct rows of [N, D], computed without the
 * N × N matrix: Σ_{i≠j} ẑ_i·ẑ_j = ‖Σ_i ẑ_i‖² − Σ_i ‖ẑ_i‖² for the unit rows ẑ (a zero row has cosine 0 with
 * everything).
 */
export function meanPairwiseCosine(x: Tensor): number {
  const [n] = checkFeatures(x, "meanPairwiseCosine");
  return noGrad(() =>
    scope(() => {
      const z = normalizedRows(x);
      const total = z.sum(0).square().sum().item();
      const self = z.square().sum().item();
      return (total - self) / (n * (n - 1));
    })
  );
}

/** All collapse metrics of the features [N, D] at once. */
export function collapseMetrics(x: Tensor): CollapseMetrics {
  const [n, dim] = checkFeatures(x, "collapseMetrics");
  return {
    featureStd: featureStd(x),
    effectiveRank: effectiveRank(x),
    meanCosine: meanPairwiseCosine(x),
    n,
    dim,
  };
}
