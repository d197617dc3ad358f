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
import { TorchError } from "../../ffi/errors.ts";
import { noGrad } from "../autograd.ts";
import { randperm, zeros } from "../creation.ts";
import type { Device } from "../dtype.ts";
import { crossEntropy, scaledDotProductAttention } from "../functional.ts";
import { Module } from "../nn/module.ts";
import { checkHeads, type InitOptions, LayerNorm, Linear } from "../nn/layers.ts";
import { AdamW } from "../optim/adamw.ts";
import { warmupCosine } from "../optim/schedule.ts";
import { getRngState, manualSeed, setRngState } from "../runtime.ts";
import { scope } from "../scope.ts";
import type { Tensor } from "../tensor.ts";

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
   * The parameters and the function are those of the usual formulation (`forwardReference`); only the order
   * of the arithmetic differs (2·H·D per token instead of 2·D²).
   */
  forward(x: Tensor): Tensor {
    return scope(() => {
      const [b] = x.shape;
      const h = this.heads, dh = this.headDim, d = this.dim;
      const xn = this.norm.forward(x); // [B, T, D]
      const w = this.kv.weight, bias = this.kv.bias!; // [2D, D], [2D]
      const q = this.q.forward(this.own("query")).reshape([h, 1, dh]); // [H, 1, Dh]
      const u = q.bmm(w.narrow(0, 0, d).reshape([h, dh, d])).reshape([h, d]); // [H, D]
      const att = xn.matmul(u.transpose(0, 1)).mul(1 / Math.sqrt(dh)).softmax(1); // [B, T, H]
      const z = att.transpose(1, 2).bmm(xn); // [B, H, D]: each head's weighted mean of the tokens
      const wv = w.narrow(0, d, d).reshape([h, dh, d]).transpose(1, 2); // [H, D, Dh]
      const y = z.transpose(0, 1).bmm(wv).transpose(0, 1).add(bias.narrow(0, d, d).reshape([h, dh])); // [B, H, Dh]
      return this.head.forward(this.proj.forward(y.reshape([b, d])));
    });
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

/** Trains `model` on (x, y) with cross-entropy and AdamW; returns the mean loss of the last epoch. */
function fit(model: Classifier, x: Tensor, y: Tensor, o: FitOptions): number {
  const n = x.shape[0];
  const perEpoch = Math.ceil(n / o.batchSize);
  const total = o.epochs * perEpoch;
  const lrAt = total > 1
    ? warmupCosine({ baseLr: o.lr, minLr: 0, warmupSteps: 0, totalSteps: total })
    : () => o.lr;
  using opt = new AdamW(
    model.namedParameters().map(([name, param]) => ({ name, param })),
    {
      lr: o.lr,
      betas: [0.9, 0.999],
      weightDecay: o.weightDecay,
      // Decay on weight matrices only: not on biases, norms or the learned query.
      noDecay: (name, p) => p.ndim <= 1 || name === "query",
    },
  );
  model.train();
  let step = 0, lastLoss = 0;
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    const last = epoch === o.epochs - 1;
    let sum = 0;
    scope(() => {
      const perm = randperm(n, { dtype: "i64" }).to({ device: x.device });
      for (let i = 0; i < n; i += o.batchSize) {
        const m = Math.min(o.batchSize, n - i);
        scope(() => {
          const idx = perm.narrow(0, i, m);
          const loss = crossEntropy(model.forward(x.indexSelect(0, idx)), y.indexSelect(0, idx));
          loss.backward();
          opt.step(lrAt(step++));
          opt.zeroGrad();
          if (last) sum += loss.item() * m;
        });
      }
    });
    if (last) lastLoss = sum / n;
  }
  model.eval();
  return lastLoss;
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

/** Trains `make()`'s classifier on the training set and scores it on both sets; frees everything. */
function runProbe(
  make: (numClasses: number, device: Device) => Classifier,
  trainX: Tensor,
  trainY: Tensor,
  testX: Tensor,
  testY: Tensor,
  r: Resolved,
  op: string,
): ProbeResult {
  const numClasses = classCount(trainY, testY, r.numClasses, op);
  const device = trainX.device;
  return withSeed(r.seed, device, () =>
    scope(() => {
      using model = make(numClasses, device);
      const ytr = trainY.to({ dtype: "i64", device }), yte = testY.to({ dtype: "i64", device });
      const loss = fit(model, trainX, ytr, r);
      return {
        accuracy: accuracy(model, testX, yte, r.batchSize),
        trainAccuracy: accuracy(model, trainX, ytr, r.batchSize),
        loss,
      };
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
    return runProbe(
      (c, device) => new LinearProbe(d, c, { device }),
      xtr,
      trainY,
      xte,
      testY,
      r,
      op,
    );
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
  const op = "trainAttentiveProbe";
  checkSet(trainTokens, trainY, 3, "training", op);
  checkSet(testTokens, testY, 3, "test", op);
  const d = trainTokens.shape[2];
  if (testTokens.shape[2] !== d) {
    throw new TorchError(op, `test tokens have width ${testTokens.shape[2]}, training tokens ${d}`);
  }
  const heads = opts.heads ?? [8, 4, 2, 1].find((h) => d % h === 0)!;
  checkHeads(d, heads);
  const r = resolve(opts, 0.05, op);
  return scope(() => {
    const xtr = trainTokens.detach().to({ dtype: "f32" });
    const xte = testTokens.detach().to({ dtype: "f32", device: xtr.device });
    return runProbe(
      (c, device) => new AttentiveProbe(d, c, heads, { device }),
      xtr,
      trainY,
      xte,
      testY,
      r,
      op,
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
