/**
 * Probes: small classifiers trained on frozen features with cross-entropy and AdamW, from a fixed seed, and
 * scored by top-1 accuracy on held-out features.
 *
 * - `trainLinearProbe`: a linear classifier on pooled features [N, D], standardised with the training set's
 *   per-dimension mean and standard deviation.
 * - `trainAttentiveProbe`: the attentive readout of 4DS / V-JEPA on token sets [N, T, D]: a learned query
 *   attends over the layer-normalised tokens (one multi-head cross-attention layer), then a linear classifier.
 * - `probeWithSeeds`: the mean and spread of a probe's accuracy over several seeds.
 *
 * Training uses a cosine learning-rate decay from `lr` to 0 over all steps, reshuffles the training set each
 * epoch (torch's CPU generator), and leaves the caller's generator state as it was. Nothing is left alive.
 * @module
 */
import { TorchError } from "../errors.ts";
import { noGrad } from "../torch/autograd.ts";
import { randperm, zeros } from "../torch/creation.ts";
import type { Device } from "../torch/dtype.ts";
import { cat, crossEntropy, layerNorm, scaledDotProductAttention } from "../torch/functional.ts";
import { Module } from "../nn/module.ts";
import { checkHeads, type InitOptions, LayerNorm, Linear } from "../nn/layers.ts";
import { AdamW } from "../optim/adamw.ts";
import { warmupCosine } from "../optim/schedule.ts";
import { getRngState, manualSeed, setRngState } from "../torch/runtime.ts";
import { scope } from "../torch/scope.ts";
import type { Tensor } from "../torch/tensor.ts";

/** Options of the probes. */
export interface ProbeOptions {
  /** Passes over the training set (default 50). */
  epochs?: number;
  /** Peak learning rate, decayed to 0 by a cosine (default 1e-3). */
  lr?: number;
  /** AdamW's decoupled weight decay on weight matrices (default 1e-4 linear, 0.05 attentive). */
  weightDecay?: number;
  /** Samples per step (default 256; the last batch of an epoch may be smaller). */
  batchSize?: number;
  /** Seed of the initialisation and the shuffling (default 0). */
  seed?: number;
  /** Number of classes (default: the largest label in the training or test set, plus 1). */
  numClasses?: number;
}

/** Options of `trainAttentiveProbe`. */
export interface AttentiveProbeOptions extends ProbeOptions {
  /** Attention heads of the readout; must divide D (default: the first of 8, 4, 2, 1 that does). */
  heads?: number;
}

/** The outcome of training a probe. */
export interface ProbeResult {
  /** Top-1 accuracy on the test set, in [0, 1]. */
  accuracy: number;
  /** Top-1 accuracy on the training set after training. */
  trainAccuracy: number;
  /** The mean training loss over the last epoch. */
  loss: number;
}

/** Mean and spread of a probe's accuracy over seeds. */
export interface SeedStats {
  /** Mean accuracy. */
  mean: number;
  /** Sample standard deviation (Bessel-corrected; 0 for one seed). */
  std: number;
  /** The accuracy of each seed, in the order of the seeds. */
  values: number[];
}

/** A linear classifier on [B, D] features. */
export class LinearProbe extends Module {
  /** The classifier. */
  readonly head: Linear;
  /** Creates a classifier from dim features to numClasses logits. */
  constructor(readonly dim: number, readonly numClasses: number, o: InitOptions = {}) {
    super();
    this.head = this.child("head", new Linear(dim, numClasses, true, o));
  }
  /** Logits [B, numClasses] of features [B, D]. */
  forward(x: Tensor): Tensor {
    return this.head.forward(x);
  }
}

/**
 * The attentive readout: a learned query token attends over the tokens of each sample (LayerNorm on the
 * tokens, multi-head cross-attention with q / kv / output projections), and a linear classifier reads the
 * attended vector.
 */
export class AttentiveProbe extends Module {
  /** Norm of the input tokens. */
  readonly norm: LayerNorm;
  /** Query projection (of the learned query). */
  readonly q: Linear;
  /** Fused key / value projection of the tokens. */
  readonly kv: Linear;
  /** Output projection of the attended vector. */
  readonly proj: Linear;
  /** The classifier. */
  readonly head: Linear;
  /** Width of one head. */
  readonly headDim: number;
  /** `forward`'s input is already standardised per token (see `standardizeTokens`); default false. */
  inputStandardized: boolean;
  /** Creates a readout over tokens of width dim with `heads` heads, predicting numClasses logits. */
  constructor(
    readonly dim: number,
    readonly numClasses: number,
    readonly heads: number,
    o: InitOptions = {},
  ) {
    super();
    checkHeads(dim, heads);
    this.headDim = dim / heads;
    this.inputStandardized = false;
    this.param("query", noGrad(() => zeros([1, 1, dim], o).truncNormal_(0, 0.02, -0.04, 0.04)));
    this.norm = this.child("norm", new LayerNorm(dim, 1e-6, true, o));
    this.q = this.child("q", new Linear(dim, dim, true, o));
    this.kv = this.child("kv", new Linear(dim, 2 * dim, true, o));
    this.proj = this.child("proj", new Linear(dim, dim, true, o));
    this.head = this.child("head", new Linear(dim, numClasses, true, o));
  }
  /**
   * Logits [B, numClasses] of token sets [B, T, D].
   *
   * With a single query the cross-attention factors through the tokens' width, so it is computed without
   * projecting every token to keys and values (which costs 2·D² per token, the bulk of the probe):
   * - the logits of head h are q_h·(W_k,h x_t + b_k,h)/√Dh = x_t·(W_k,hᵀ q_h)/√Dh + c_h, and a constant c_h
   *   does not change a softmax over t, so u_h = W_k,hᵀ q_h [D] is formed once and dotted with every token;
   * - the attention weights sum to 1, so Σ_t a_t (W_v,h x_t + b_v,h) = W_v,h (Σ_t a_t x_t) + b_v,h: the tokens
   *   are averaged with each head's weights first and projected once per head.
   * - the token norm's affine map folds in the same way: with standardised tokens s_t, the logits are
   *   s_t·(γ ⊙ u_h)/√Dh plus a constant, and Σ_t a_t (γ ⊙ s_t + β) = γ ⊙ (Σ_t a_t s_t) + β.
   * The parameters and the function are those of the usual formulation (`forwardReference`); only the order
   * of the arithmetic differs (2·H·D per token instead of 2·D²). With `inputStandardized` set, `x` must already
   * be standardised per token (`layerNorm` without affine, eps 1e-6), which a probe's training does once for
   * its whole training set instead of in every batch of every epoch.
   */
  forward(x: Tensor): Tensor {
    return scope(() => {
      const xs = this.inputStandardized ? x : standardizeTokens(x); // [B, T, D]
      const parts = this.#parts();
      const att = xs.matmul(parts.u.transpose(0, 1)).mul(1 / Math.sqrt(this.headDim)).softmax(1); // [B, T, H]
      const z = att.transpose(1, 2).bmm(xs); // [B, H, D]: each head's weighted mean of the tokens
      return this.#readout(z, parts, x.shape[0]);
    });
  }

  /**
   * The logits of several probes of the same width and heads on the same standardised tokens [B, T, D], with one
   * pass over the tokens for all of them: their logit directions are stacked into one matrix and their
   * attention-weighted means taken in one batched product. Each result equals `probes[k].forward(xs)`.
   */
  static forwardMany(probes: AttentiveProbe[], xs: Tensor): Tensor[] {
    if (probes.length === 1) return [probes[0].forward(xs)];
    return scope(() => {
      const [b] = xs.shape;
      const h = probes[0].heads, dh = probes[0].headDim, d = probes[0].dim;
      if (probes.some((p) => p.heads !== h || p.dim !== d || !p.inputStandardized)) {
        throw new TorchError(
          "AttentiveProbe.forwardMany",
          "probes must share width and heads and take standardised input",
        );
      }
      const parts = probes.map((p) => p.#parts());
      const u = cat(parts.map((q) => q.u), 0); // [K·H, D]
      const att = xs.matmul(u.transpose(0, 1)).mul(1 / Math.sqrt(dh)).softmax(1); // [B, T, K·H]
      const z = att.transpose(1, 2).bmm(xs); // [B, K·H, D]
      return probes.map((p, k) => p.#readout(z.narrow(1, k * h, h), parts[k], b));
    });
  }

  /** The folded logit directions [H, D] (γ ⊙ W_k,hᵀ q_h) and the norm's affine map. */
  #parts(): { u: Tensor; gamma: Tensor; beta: Tensor } {
    const h = this.heads, dh = this.headDim, d = this.dim;
    const gamma = this.norm.namedParameters().find(([n]) => n === "weight")![1];
    const beta = this.norm.namedParameters().find(([n]) => n === "bias")![1];
    const q = this.q.forward(this.own("query")).reshape([h, 1, dh]); // [H, 1, Dh]
    const u = q.bmm(this.kv.weight.narrow(0, 0, d).reshape([h, dh, d])).reshape([h, d]).mul(gamma); // [H, D]
    return { u, gamma, beta };
  }

  /** Logits from each head's attention-weighted mean of the standardised tokens z [B, H, D]. */
  #readout(z: Tensor, p: { gamma: Tensor; beta: Tensor }, b: number): Tensor {
    const h = this.heads, dh = this.headDim, d = this.dim;
    const w = this.kv.weight, bias = this.kv.bias!;
    const zn = z.mul(p.gamma).add(p.beta); // the weighted mean of the normalised tokens
    const wv = w.narrow(0, d, d).reshape([h, dh, d]).transpose(1, 2); // [H, D, Dh]
    const y = zn.transpose(0, 1).bmm(wv).transpose(0, 1).add(bias.narrow(0, d, d).reshape([h, dh])); // [B, H, Dh]
    return this.head.forward(this.proj.forward(y.reshape([b, d])));
  }

  /** The same logits as `forward`, computed the usual way (keys and values of every token); for tests. */
  forwardReference(x: Tensor): Tensor {
    return scope(() => {
      const [b, t] = x.shape;
      const h = this.heads, dh = this.headDim;
      // [B, T, 2D] -> [2, B, H, T, Dh]
      const kv = this.kv.forward(this.norm.forward(x)).reshape([b, t, 2, h, dh]).permute([2, 0, 3, 1, 4]);
      const q = this.q.forward(this.own("query")).reshape([1, 1, h, dh]).transpose(1, 2).expand([
        b,
        -1,
        -1,
        -1,
      ]);
      const y = scaledDotProductAttention(q, kv.select(0, 0), kv.select(0, 1)); // [B, H, 1, Dh]
      return this.head.forward(this.proj.forward(y.reshape([b, this.dim])));
    });
  }
}

/** Tokens [..., D] standardised over their last dimension: the probe's token norm without its affine map. */
export function standardizeTokens(x: Tensor): Tensor {
  return layerNorm(x, [x.shape[x.shape.length - 1]], null, null, 1e-6);
}

interface Classifier extends Module {
  forward(x: Tensor): Tensor;
}

function positiveInt(v: number, name: string, op: string): number {
  if (!Number.isInteger(v) || v < 1) throw new TorchError(op, `${name} must be a positive integer, got ${v}`);
  return v;
}

/** Checks features and labels; returns the number of samples. */
function checkSet(x: Tensor, y: Tensor, rank: number, what: string, op: string): number {
  const s = x.shape, ys = y.shape;
  if (s.length !== rank) {
    const want = rank === 2 ? "[N, D]" : "[N, T, D]";
    throw new TorchError(op, `${what} features must be ${want}, got [${s.join(", ")}]`);
  }
  if (ys.length !== 1 || ys[0] !== s[0]) {
    throw new TorchError(op, `${what} labels must be [${s[0]}], got [${ys.join(", ")}]`);
  }
  if (y.dtype !== "i64" && y.dtype !== "i32") {
    throw new TorchError(op, `${what} labels must be integers (i64 or i32), got ${y.dtype}`);
  }
  if (s[0] < 1) throw new TorchError(op, `the ${what} set is empty`);
  return s[0];
}

/** The number of classes: given, or 1 + the largest label; checks that every label is in range. */
function classCount(trainY: Tensor, testY: Tensor, given: number | undefined, op: string): number {
  const lo = Math.min(trainY.amin().item(), testY.amin().item());
  const hi = Math.max(trainY.amax().item(), testY.amax().item());
  if (lo < 0) throw new TorchError(op, `labels must be >= 0, got ${lo}`);
  const c = given ?? hi + 1;
  positiveInt(c, "numClasses", op);
  if (hi >= c) throw new TorchError(op, `label ${hi} is out of range for ${c} classes`);
  return c;
}

/** Top-1 accuracy of a classifier on (x, y), in batches, without autograd. */
function accuracy(model: Classifier, x: Tensor, y: Tensor, batchSize: number): number {
  return noGrad(() =>
    scope(() => {
      const n = x.shape[0];
      let correct = 0;
      for (let i = 0; i < n; i += batchSize) {
        const m = Math.min(batchSize, n - i);
        correct += scope(() => model.forward(x.narrow(0, i, m)).argmax(1).eq(y.narrow(0, i, m)).sum().item());
      }
      return correct / n;
    })
  );
}

interface FitOptions {
  epochs: number;
  lr: number;
  weightDecay: number;
  batchSize: number;
}

/**
 * Trains `models` together on shared batches of x, model k on labels ys[k], with cross-entropy and one AdamW
 * over all their parameters (AdamW is per parameter, so this equals training each alone on the same batches);
 * `forwardAll` gives every model's logits of a batch (default: each model's own forward; it may share work).
 * Returns each model's mean loss over the last epoch.
 */
function fit(
  models: Classifier[],
  x: Tensor,
  ys: Tensor[],
  o: FitOptions,
  forwardAll: (xb: Tensor) => Tensor[] = (xb) => models.map((m) => m.forward(xb)),
): number[] {
  const n = x.shape[0];
  const perEpoch = Math.ceil(n / o.batchSize);
  const total = o.epochs * perEpoch;
  const lrAt = total > 1
    ? warmupCosine({ baseLr: o.lr, minLr: 0, warmupSteps: 0, totalSteps: total })
    : () => o.lr;
  using opt = new AdamW(
    models.flatMap((model, k) =>
      model.namedParameters().map(([name, param]) => ({ name: `${k}.${name}`, param }))
    ),
    {
      lr: o.lr,
      betas: [0.9, 0.999],
      weightDecay: o.weightDecay,
      // Decay on weight matrices only: not on biases, norms or the learned query.
      noDecay: (name, p) => p.ndim <= 1 || name.endsWith(".query"),
    },
  );
  for (const m of models) m.train();
  let step = 0;
  const lastLoss = models.map(() => 0);
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    const last = epoch === o.epochs - 1;
    scope(() => {
      const perm = randperm(n, { dtype: "i64" }).to({ device: x.device });
      for (let i = 0; i < n; i += o.batchSize) {
        const m = Math.min(o.batchSize, n - i);
        scope(() => {
          const idx = perm.narrow(0, i, m);
          const logits = forwardAll(x.indexSelect(0, idx));
          const losses = logits.map((l, k) => crossEntropy(l, ys[k].indexSelect(0, idx)));
          (losses.length === 1 ? losses[0] : losses.reduce((a, b) => a.add(b))).backward();
          opt.step(lrAt(step++));
          opt.zeroGrad();
          if (last) losses.forEach((l, k) => lastLoss[k] += l.item() * m);
        });
      }
    });
  }
  for (const m of models) m.eval();
  return lastLoss.map((v) => v / n);
}

interface Resolved extends FitOptions {
  seed: number;
  numClasses: number | undefined;
}

function resolve(opts: ProbeOptions, defaultDecay: number, op: string): Resolved {
  const r: Resolved = {
    epochs: opts.epochs ?? 50,
    lr: opts.lr ?? 1e-3,
    weightDecay: opts.weightDecay ?? defaultDecay,
    batchSize: opts.batchSize ?? 256,
    seed: opts.seed ?? 0,
    numClasses: opts.numClasses,
  };
  positiveInt(r.epochs, "epochs", op);
  positiveInt(r.batchSize, "batchSize", op);
  if (!(Number.isFinite(r.lr) && r.lr > 0)) {
    throw new TorchError(op, `lr must be a finite number > 0, got ${r.lr}`);
  }
  if (!(Number.isFinite(r.weightDecay) && r.weightDecay >= 0)) {
    throw new TorchError(op, `weightDecay must be a finite number >= 0, got ${r.weightDecay}`);
  }
  if (!Number.isInteger(r.seed) || r.seed < 0) {
    throw new TorchError(op, `seed must be a non-negative integer, got ${r.seed}`);
  }
  return r;
}

/**
 * Runs `fn` with torch seeded to `seed`, then puts back the CPU generator (and the generator of `device`
 * when it is a CUDA device) as they were, so a probe does not disturb the caller's random stream.
 */
function withSeed<T>(seed: number, device: Device, fn: () => T): T {
  const cuda = device.startsWith("cuda");
  const cpuState = getRngState("cpu");
  let devState: Tensor | null = null;
  try {
    if (cuda) devState = getRngState(device);
    manualSeed(seed);
    return fn();
  } finally {
    setRngState(cpuState, "cpu");
    cpuState.dispose();
    if (devState !== null) {
      setRngState(devState, device);
      devState.dispose();
    }
  }
}

/**
 * Trains one `make()` classifier per label set (ys[k] on the training set, scored with testYs[k]) together on
 * shared batches, and scores each on both sets; frees everything. With one label set this is one probe.
 */
function runProbes(
  make: (numClasses: number, device: Device) => Classifier,
  trainX: Tensor,
  trainYs: Tensor[],
  testX: Tensor,
  testYs: Tensor[],
  r: Resolved,
  op: string,
  forwardAll?: (models: Classifier[], xb: Tensor) => Tensor[],
): ProbeResult[] {
  const counts = trainYs.map((y, k) => classCount(y, testYs[k], r.numClasses, op));
  const device = trainX.device;
  return withSeed(r.seed, device, () =>
    scope(() => {
      const models = counts.map((c) => make(c, device));
      try {
        const ytr = trainYs.map((y) => y.to({ dtype: "i64", device }));
        const yte = testYs.map((y) => y.to({ dtype: "i64", device }));
        const losses = fit(models, trainX, ytr, r, forwardAll && ((xb) => forwardAll(models, xb)));
        return models.map((model, k) => ({
          accuracy: accuracy(model, testX, yte[k], r.batchSize),
          trainAccuracy: accuracy(model, trainX, ytr[k], r.batchSize),
          loss: losses[k],
        }));
      } finally {
        for (const m of models) m.dispose();
      }
    }));
}

/**
 * Trains a linear probe on pooled features `trainX` [N, D] with labels `trainY` [N] (i64) and returns its top-1
 * accuracy on (`testX`, `testY`). Both sets are standardised with the training set's per-dimension mean and
 * standard deviation (population; dimensions with std < 1e-6 are only centred). Defaults: 50 epochs, lr 1e-3,
 * weight decay 1e-4, batch 256, seed 0.
 */
export function trainLinearProbe(
  trainX: Tensor,
  trainY: Tensor,
  testX: Tensor,
  testY: Tensor,
  opts: ProbeOptions = {},
): ProbeResult {
  const op = "trainLinearProbe";
  checkSet(trainX, trainY, 2, "training", op);
  checkSet(testX, testY, 2, "test", op);
  const d = trainX.shape[1];
  if (testX.shape[1] !== d) {
    throw new TorchError(op, `test features have width ${testX.shape[1]}, training features ${d}`);
  }
  const r = resolve(opts, 1e-4, op);
  return scope(() => {
    const [xtr, xte] = noGrad(() => {
      const tr = trainX.detach().to({ dtype: "f32" });
      const te = testX.detach().to({ dtype: "f32", device: tr.device });
      const mean = tr.mean(0, true);
      const std = tr.std(0, { correction: 0, keepdim: true });
      const scale = std.lt(1e-6).float().add(std).reciprocal(); // 1/std, or ~1 where std is ~0
      return [tr.sub(mean).mul(scale), te.sub(mean).mul(scale)];
    });
    return runProbes((c, device) => new LinearProbe(d, c, { device }), xtr, [trainY], xte, [testY], r, op)[0];
  });
}

/**
 * Trains an attentive probe (`AttentiveProbe`) on token sets `trainTokens` [N, T, D] with labels `trainY` [N]
 * (i64) and returns its top-1 accuracy on (`testTokens` [M, T', D], `testY`). Defaults: 50 epochs, lr 1e-3,
 * weight decay 0.05, batch 256, seed 0, the first of 8, 4, 2, 1 heads that divides D.
 */
export function trainAttentiveProbe(
  trainTokens: Tensor,
  trainY: Tensor,
  testTokens: Tensor,
  testY: Tensor,
  opts: AttentiveProbeOptions = {},
): ProbeResult {
  return trainAttentiveProbes(trainTokens, [trainY], testTokens, [testY], opts)[0];
}

/**
 * One attentive probe per label set (`trainYs[k]`, scored with `testYs[k]`) on the same tokens, trained together
 * on shared batches: each probe is trained exactly as `trainAttentiveProbe` would train it (its own parameters,
 * optimizer state and loss), but the passes over the tokens — the standardisation, the attention logits and the
 * attention-weighted means — are shared (`AttentiveProbe.forwardMany`), which is most of the cost.
 */
export function trainAttentiveProbes(
  trainTokens: Tensor,
  trainYs: Tensor[],
  testTokens: Tensor,
  testYs: Tensor[],
  opts: AttentiveProbeOptions = {},
): ProbeResult[] {
  const op = "trainAttentiveProbe";
  if (trainYs.length === 0 || trainYs.length !== testYs.length) {
    throw new TorchError(
      op,
      `one test label set per training label set, got ${trainYs.length} and ${testYs.length}`,
    );
  }
  trainYs.forEach((y, k) => {
    checkSet(trainTokens, y, 3, "training", op);
    checkSet(testTokens, testYs[k], 3, "test", op);
  });
  const d = trainTokens.shape[2];
  if (testTokens.shape[2] !== d) {
    throw new TorchError(op, `test tokens have width ${testTokens.shape[2]}, training tokens ${d}`);
  }
  const heads = opts.heads ?? [8, 4, 2, 1].find((h) => d % h === 0)!;
  checkHeads(d, heads);
  const r = resolve(opts, 0.05, op);
  return scope(() => {
    // standardised once here rather than in every batch of every epoch (the probe's norm folds in its affine map)
    const [xtr, xte] = noGrad(() => [
      standardizeTokens(trainTokens.detach().to({ dtype: "f32" })),
      standardizeTokens(testTokens.detach().to({ dtype: "f32", device: trainTokens.device })),
    ]);
    return runProbes(
      (c, device) => {
        const p = new AttentiveProbe(d, c, heads, { device });
        p.inputStandardized = true;
        return p;
      },
      xtr,
      trainYs,
      xte,
      testYs,
      r,
      op,
      (models, xb) => AttentiveProbe.forwardMany(models as AttentiveProbe[], xb),
    );
  });
}

/**
 * Runs a probe once per seed and summarises its accuracy: `fn(seed)` returns an accuracy or a `ProbeResult`.
 * E.g. `probeWithSeeds((seed) => trainLinearProbe(xtr, ytr, xte, yte, { seed }), [0, 1, 2])`.
 */
export function probeWithSeeds(
  fn: (seed: number) => number | ProbeResult,
  seeds: readonly number[],
): SeedStats {
  if (seeds.length === 0) throw new TorchError("probeWithSeeds", "no seeds given");
  const values = seeds.map((s) => {
    const r = fn(s);
    return typeof r === "number" ? r : r.accuracy;
  });
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const std = values.length < 2
    ? 0
    : Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1));
  return { mean, std, values };
}
