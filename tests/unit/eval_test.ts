// Evaluation: svdvals against hand-computed singular values, collapse metrics on constructed features, linear
// and attentive probes on synthetic features whose answers are known, and feature extraction from a small
// video MAE encoder (shapes, depth = k is runBlocks(0, k) mean-pooled, full depth is forward(x, null)).
import assert from "node:assert/strict";
import {
  arange,
  cat,
  getRngState,
  manualSeed,
  randint,
  randn,
  scope,
  setRngState,
  svdvals,
  type Tensor,
  tensor,
  TorchError,
} from "../../mod.ts";
import { noGrad } from "../../src/torch/autograd.ts";
import {
  collapseMetrics,
  effectiveRank,
  entropyRank,
  featureStd,
  meanPairwiseCosine,
} from "../../src/eval/collapse.ts";
import { depthFromFraction, extractFeatures } from "../../src/eval/features.ts";
import {
  AttentiveProbe,
  probeWithSeeds,
  standardizeTokens,
  trainAttentiveProbe,
  trainAttentiveProbes,
  trainLinearProbe,
} from "../../src/eval/probe.ts";
import { type VideoMAEConfig, VideoMAEEncoder } from "../../src/models/video_mae.ts";
import { assertClose, leakFreeTest } from "../helpers.ts";

// ------------------------------------------------------------------------------------------ svdvals

/** 3 × 3 matrix product of row-major number arrays. */
function mm3(a: number[][], b: number[][]): number[][] {
  return a.map((r) => [0, 1, 2].map((j) => r[0] * b[0][j] + r[1] * b[1][j] + r[2] * b[2][j]));
}
const T = (a: number[][]) => [0, 1, 2].map((i) => a.map((r) => r[i]));

// Two rotations with exact 3-4-5 cosines: about z (cos 0.6, sin 0.8) and about x (cos 0.8, sin 0.6).
const RZ = [[0.6, -0.8, 0], [0.8, 0.6, 0], [0, 0, 1]];
const RX = [[1, 0, 0], [0, 0.8, -0.6], [0, 0.6, 0.8]];
/** RZ · diag(3, 2, 1) · RXᵀ: singular values 3, 2, 1 by construction. */
const ROTATED = mm3(mm3(RZ, [[3, 0, 0], [0, 2, 0], [0, 0, 1]]), T(RX));

leakFreeTest("svdvals: a rotated diag(3, 2, 1) has singular values 3, 2, 1 (f64 and f32)", () => {
  using a = tensor(ROTATED, { dtype: "f64" });
  using s = a.svdvals();
  assert.deepEqual(s.shape, [3]);
  assertClose(s, [3, 2, 1], { rtol: 0, atol: 1e-12 });
  using a32 = tensor(ROTATED);
  using s32 = svdvals(a32);
  assert.equal(s32.dtype, "f32");
  assertClose(s32, [3, 2, 1], { rtol: 0, atol: 1e-5 });
});

leakFreeTest("svdvals: rectangular, rank-deficient and batched matrices", () => {
  scope(() => {
    // [[1, 2], [2, 4]] = [1, 2]ᵀ[1, 2]: one singular value ‖[1, 2]‖² = 5, the other 0.
    assertClose(tensor([[1, 2], [2, 4]], { dtype: "f64" }).svdvals(), [5, 0], { rtol: 0, atol: 1e-12 });
    // Wide [2, 3] and tall [3, 2] (its transpose) give min(M, N) = 2 values, sorted descending.
    const wide = tensor([[0, 3, 0], [4, 0, 0]], { dtype: "f64" });
    assertClose(wide.svdvals(), [4, 3], { rtol: 0, atol: 1e-12 });
    assertClose(wide.transpose(0, 1).svdvals(), [4, 3], { rtol: 0, atol: 1e-12 });
    // A batch [2, 3, 3]: the rotated matrix and 2 × the identity.
    const batch = tensor([ROTATED, [[2, 0, 0], [0, 2, 0], [0, 0, 2]]], { dtype: "f64" });
    const s = batch.svdvals();
    assert.deepEqual(s.shape, [2, 3]);
    assertClose(s, [3, 2, 1, 2, 2, 2], { rtol: 0, atol: 1e-12 });
    // The Frobenius norm is the root of the sum of squared singular values, for any matrix.
    manualSeed(1);
    const r = randn([7, 5], { dtype: "f64" });
    const sv = r.svdvals();
    assertClose([sv.square().sum().sqrt().item()], [r.norm().item()], { rtol: 1e-12 });
  });
});

leakFreeTest("svdvals: an integer or 1-d input is a TorchError naming the op", () => {
  using i = tensor([[1, 2], [3, 4]], { dtype: "i64" });
  assert.throws(() => i.svdvals(), (e: Error) => e instanceof TorchError && e.message.includes("svdvals"));
  using v = tensor([1, 2, 3]);
  assert.throws(() => svdvals(v), (e: Error) => e instanceof TorchError && e.message.includes("svdvals"));
});

// ------------------------------------------------------------------------------------------ collapse

leakFreeTest("collapse: identical rows → effective rank 1, featureStd 0, meanCosine 1", () => {
  manualSeed(2);
  using x = scope(() => randn([1, 32]).expand([64, 32]).contiguous());
  const m = collapseMetrics(x);
  assert.equal(m.n, 64);
  assert.equal(m.dim, 32);
  assert.ok(Math.abs(m.effectiveRank - 1) < 1e-3, `effective rank ${m.effectiveRank}`);
  assert.ok(m.featureStd < 1e-6, `featureStd ${m.featureStd}`);
  assert.ok(Math.abs(m.meanCosine - 1) < 1e-6, `meanCosine ${m.meanCosine}`);
  // A constant row that is not exactly representable after averaging (0.1) still counts as collapsed.
  using c = tensor(new Float64Array(512 * 8).fill(0.1), { shape: [512, 8] });
  assert.ok(Math.abs(effectiveRank(c) - 1) < 1e-3, `constant 0.1: ${effectiveRank(c)}`);
});

leakFreeTest("collapse: isotropic Gaussian features (N 512, D 32) → near-full rank, cosine ≈ 0", () => {
  manualSeed(3);
  using x = randn([512, 32]);
  const m = collapseMetrics(x);
  assert.ok(m.effectiveRank > 0.8 * 32 && m.effectiveRank <= 32, `effective rank ${m.effectiveRank}`);
  assert.ok(Math.abs(m.meanCosine) < 0.01, `meanCosine ${m.meanCosine}`);
  // Each coordinate of a random unit vector in 32-d has standard deviation 1/sqrt(32).
  assert.ok(Math.abs(m.featureStd * Math.sqrt(32) - 1) < 0.05, `featureStd ${m.featureStd}`);
  // The same features shifted far from the origin: centring keeps the rank, the cosine goes to 1.
  using shifted = x.add(100);
  assert.ok(Math.abs(effectiveRank(shifted) - m.effectiveRank) < 1e-3);
  assert.ok(meanPairwiseCosine(shifted) > 0.99);
});

leakFreeTest("collapse: a rank-3 construction has effective rank ≤ 3", () => {
  manualSeed(4);
  scope(() => {
    // N 256 samples in a 3-d subspace of 48-d, with unequal spreads along the three directions.
    const coeff = randn([256, 3], { dtype: "f64" }).mul(tensor([3, 2, 1], { dtype: "f64" }));
    const x = coeff.matmul(randn([3, 48], { dtype: "f64" }));
    const r = effectiveRank(x);
    assert.ok(r <= 3 && r > 2, `effective rank ${r}`);
    // Rank 1 along one direction, with a per-sample scale: exactly one direction.
    const line = randn([100, 1], { dtype: "f64" }).matmul(randn([1, 16], { dtype: "f64" }));
    assert.ok(Math.abs(effectiveRank(line) - 1) < 1e-6, `rank-1: ${effectiveRank(line)}`);
  });
});

leakFreeTest("collapse: the entropy rank of known spectra; bad shapes are TorchErrors", () => {
  assert.equal(entropyRank([1, 1, 1, 1]), 4);
  assertClose([entropyRank([2, 1, 1])], [Math.exp(1.5 * Math.log(2))], { rtol: 1e-12 });
  assert.equal(entropyRank([5, 0, 0]), 1);
  assert.equal(entropyRank([0, 0]), 1);
  assert.equal(entropyRank([1, 1e-20], 1e-10), 1);
  using one = randn([1, 8]);
  assert.throws(() => featureStd(one), /at least 2 samples/);
  using flat = randn([8]);
  assert.throws(() => meanPairwiseCosine(flat), /expected features \[N, D\]/);
});

// ------------------------------------------------------------------------------------------ probes

/** Gaussian clusters: class means 2·randn in D dims, unit noise. */
function clusters(n: number, d: number, classes: number, means: Tensor): { x: Tensor; y: Tensor } {
  return scope(() => {
    const y = randint(0, classes, [n]);
    const x = means.indexSelect(0, y).add(randn([n, d]).mul(0.5));
    return { x, y };
  });
}

leakFreeTest("linear probe: separable clusters > 95% test accuracy; random labels stay near chance", () => {
  manualSeed(5);
  scope(() => {
    const means = randn([4, 16]).mul(2);
    const train = clusters(400, 16, 4, means), test = clusters(400, 16, 4, means);
    const opts = { epochs: 30, lr: 1e-2, weightDecay: 1e-4, batchSize: 64, seed: 0 };
    const r = trainLinearProbe(train.x, train.y, test.x, test.y, opts);
    assert.ok(r.accuracy > 0.95, `accuracy ${r.accuracy}`);
    assert.ok(r.trainAccuracy > 0.95 && r.loss < 0.3, JSON.stringify(r));
    // The same features with labels drawn independently of them: nothing to learn.
    const rnd = trainLinearProbe(train.x, randint(0, 4, [400]), test.x, randint(0, 4, [400]), opts);
    assert.ok(Math.abs(rnd.accuracy - 0.25) < 0.1, `random-label accuracy ${rnd.accuracy}`);
  });
});

leakFreeTest(
  "linear probe: a seed reproduces its result exactly, leaves torch's RNG alone, seeds vary",
  () => {
    manualSeed(6);
    scope(() => {
      const means = randn([3, 8]).mul(0.7); // overlapping classes, so seeds give different accuracies
      const train = clusters(150, 8, 3, means), test = clusters(150, 8, 3, means);
      const run = (seed: number) =>
        trainLinearProbe(train.x, train.y, test.x, test.y, { epochs: 3, lr: 1e-2, batchSize: 32, seed });
      const before = getRngState();
      const a = run(7);
      const after = getRngState();
      assert.deepEqual(after.toArray(), before.toArray(), "the probe changed torch's generator state");
      setRngState(before);
      assert.deepEqual(run(7), a);
      const stats = probeWithSeeds(run, [0, 1, 2]);
      assert.equal(stats.values.length, 3);
      assert.ok(stats.values.every((v) => v >= 0 && v <= 1), JSON.stringify(stats));
      assert.ok(new Set(stats.values).size > 1, `seeds gave identical accuracies ${stats.values}`);
    });
  },
);

leakFreeTest("probeWithSeeds: mean and Bessel-corrected std over seeds", () => {
  const s = probeWithSeeds((seed) => [0.5, 0.7, 0.9][seed], [0, 1, 2]);
  assertClose([s.mean, s.std], [0.7, 0.2], { rtol: 1e-12 });
  assert.deepEqual(s.values, [0.5, 0.7, 0.9]);
  const one = probeWithSeeds(() => ({ accuracy: 0.8, trainAccuracy: 1, loss: 0 }), [3]);
  assert.deepEqual(one, { mean: 0.8, std: 0, values: [0.8] });
  assert.throws(() => probeWithSeeds(() => 1, []), /no seeds/);
});

leakFreeTest("probes: bad shapes, labels and options are TorchErrors", () => {
  scope(() => {
    const x = randn([10, 4]), y = randint(0, 2, [10]);
    assert.throws(() => trainLinearProbe(x, y.narrow(0, 0, 9), x, y), /training labels must be \[10\]/);
    assert.throws(() => trainLinearProbe(x, y.float(), x, y), /must be integers/);
    assert.throws(() => trainLinearProbe(x, y, randn([10, 5]), y), /width 5/);
    assert.throws(() => trainLinearProbe(x, y, x, y, { epochs: 0 }), /epochs must be a positive integer/);
    assert.throws(() => trainLinearProbe(x, y, x, y, { numClasses: 1 }), /out of range for 1 classes/);
    assert.throws(() => trainAttentiveProbe(x, y, x, y), /\[N, T, D\]/);
    const tok = randn([10, 3, 6]);
    assert.throws(() => trainAttentiveProbe(tok, y, tok, y, { heads: 4 }), /not divisible by 4 heads/);
  });
});

/**
 * Token sets whose class is carried by one token: each of T tokens holds a class prototype (D − 1 dims) plus
 * a marker dimension; the marked token (at a random position) holds the sample's class, the others random
 * classes. Mean pooling mixes the true class with T − 1 distractors; attention can pick the marked token.
 */
function markedTokens(n: number, t: number, protos: Tensor): { x: Tensor; y: Tensor } {
  return scope(() => {
    const [c, d1] = protos.shape;
    const y = randint(0, c, [n]);
    const pos = randint(0, t, [n]);
    const cls = randint(0, c, [n, t]).scatter(1, pos.unsqueeze(1), y.unsqueeze(1));
    const content = protos.indexSelect(0, cls.flatten()).reshape([n, t, d1]);
    const marker = arange(t, undefined, 1, { dtype: "i64" }).unsqueeze(0).eq(pos.unsqueeze(1)).float().mul(3);
    const x = cat([marker.unsqueeze(2), content], 2).add(randn([n, t, d1 + 1]).mul(0.1));
    return { x, y };
  });
}

leakFreeTest("attentive probe: the class is carried by one marked token among 6 → high accuracy", () => {
  manualSeed(8);
  scope(() => {
    const protos = randn([4, 15]);
    const train = markedTokens(512, 6, protos), test = markedTokens(256, 6, protos);
    const opts = { epochs: 40, lr: 3e-3, weightDecay: 0, batchSize: 64, seed: 0, heads: 2 };
    const r = trainAttentiveProbe(train.x, train.y, test.x, test.y, opts);
    assert.ok(r.accuracy > 0.9, `attentive accuracy ${JSON.stringify(r)}`);
    // A linear probe on the mean-pooled tokens sees the true class diluted by five distractors.
    const lin = trainLinearProbe(train.x.mean(1), train.y, test.x.mean(1), test.y, opts);
    assert.ok(lin.accuracy < r.accuracy - 0.1, `linear ${lin.accuracy} vs attentive ${r.accuracy}`);
  });
});

leakFreeTest(
  "attentive probes trained together: each as accurate as alone; forwardMany = each forward",
  () => {
    manualSeed(8);
    scope(() => {
      const protos = randn([4, 15]);
      const train = markedTokens(512, 6, protos), test = markedTokens(256, 6, protos);
      // a second label: the class parity (a different function of the same marked token)
      const parity = (y: Tensor) =>
        tensor(Int32Array.from(Array.from(y.toArray() as ArrayLike<number | bigint>, (v) => Number(v) % 2)))
          .long();
      const opts = { epochs: 40, lr: 3e-3, weightDecay: 0, batchSize: 64, seed: 0, heads: 2 };
      const [a, b] = trainAttentiveProbes(train.x, [train.y, parity(train.y)], test.x, [
        test.y,
        parity(test.y),
      ], opts);
      assert.ok(a.accuracy > 0.9 && b.accuracy > 0.9, `accuracies ${a.accuracy}, ${b.accuracy}`);
      // trained alone with the same seed: the same first probe (its initialisation and batches come first)
      const alone = trainAttentiveProbe(train.x, train.y, test.x, test.y, opts);
      assert.ok(
        Math.abs(alone.accuracy - a.accuracy) < 0.05,
        `alone ${alone.accuracy} vs together ${a.accuracy}`,
      );
      assert.throws(
        () => trainAttentiveProbes(train.x, [train.y], test.x, [], opts),
        /one test label set per/,
      );
    });
    using p = new AttentiveProbe(12, 4, 3), q = new AttentiveProbe(12, 6, 3);
    for (const m of [p, q]) {
      m.inputStandardized = true;
      noGrad(() => scope(() => m.namedParameters().forEach(([, t]) => t.copy_(randn(t.shape).mul(0.5)))));
    }
    scope(() => {
      const xs = standardizeTokens(randn([5, 7, 12]));
      const [lp, lq] = AttentiveProbe.forwardMany([p, q], xs);
      assertClose(lp, p.forward(xs).toArray() as Float32Array, { atol: 1e-5 });
      assertClose(lq, q.forward(xs).toArray() as Float32Array, { atol: 1e-5 });
    });
  },
);

leakFreeTest("attentive probe: logits [B, C], parameters named, batch rows independent", () => {
  using p = new AttentiveProbe(8, 5, 2);
  assert.deepEqual(p.namedParameters().map(([n]) => n), [
    "query",
    "norm.weight",
    "norm.bias",
    "q.weight",
    "q.bias",
    "kv.weight",
    "kv.bias",
    "proj.weight",
    "proj.bias",
    "head.weight",
    "head.bias",
  ]);
  noGrad(() =>
    scope(() => {
      const x = randn([3, 4, 8]);
      const out = p.forward(x);
      assert.deepEqual(out.shape, [3, 5]);
      assertClose(p.forward(x.narrow(0, 1, 1)), out.narrow(0, 1, 1).toArray() as Float32Array, {
        atol: 1e-6,
      });
      // Token order does not matter to attention pooling (no position information in the readout).
      const perm = tensor([3, 1, 0, 2], { dtype: "i64" });
      assertClose(p.forward(x.indexSelect(1, perm)), out.toArray() as Float32Array, { atol: 1e-6 });
    })
  );
});

leakFreeTest(
  "attentive probe: the factored forward equals keys-and-values attention, values and gradients",
  () => {
    using p = new AttentiveProbe(12, 4, 3);
    // non-trivial norm, biases and query, so every term of the factorisation is exercised
    noGrad(() =>
      scope(() => {
        for (const [, t] of p.namedParameters()) t.copy_(randn(t.shape).mul(0.5));
      })
    );
    const x = randn([5, 7, 12]);
    const grads = (f: (x: Tensor) => Tensor) =>
      scope(() => {
        const out = f(x);
        out.square().sum().backward();
        const g = p.namedParameters().map(([, t]) => t.grad!.toArray() as Float32Array);
        for (const [, t] of p.namedParameters()) t.zeroGrad();
        return { out: out.toArray() as Float32Array, g };
      });
    const a = grads((v) => p.forward(v)), b = grads((v) => p.forwardReference(v));
    // tokens standardised beforehand (as trainAttentiveProbe does once): the same function and gradients
    const c = grads((v) => {
      p.inputStandardized = true;
      try {
        return p.forward(standardizeTokens(v));
      } finally {
        p.inputStandardized = false;
      }
    });
    assertClose(c.out, b.out, { atol: 1e-5, rtol: 1e-5 });
    c.g.forEach((g, i) =>
      assertClose(g, b.g[i], { atol: 1e-4, rtol: 1e-4, msg: `standardised ${p.namedParameters()[i][0]}` })
    );
    assertClose(a.out, b.out, { atol: 1e-5, rtol: 1e-5 });
    a.g.forEach((g, i) => assertClose(g, b.g[i], { atol: 1e-4, rtol: 1e-4, msg: p.namedParameters()[i][0] }));
    x.dispose();
  },
);

// ------------------------------------------------------------------------------------------ features

const SMALL: VideoMAEConfig = {
  inChans: 3,
  frames: 4,
  height: 16,
  width: 16,
  patch: 8,
  tubelet: 2,
  encoderDim: 32,
  encoderDepth: 3,
  encoderHeads: 2,
  mlpRatio: 2,
  decoderDim: 16,
  decoderDepth: 1,
  decoderHeads: 2,
  qkvBias: true,
  posEmbed: "sincos",
};

leakFreeTest("extractFeatures: shapes, depth k = runBlocks(0, k) mean-pooled, full depth = forward", () => {
  manualSeed(9);
  using enc = new VideoMAEEncoder(SMALL);
  scope(() => {
    const clips = randn([3, 3, 4, 16, 16]);
    const full = extractFeatures(enc, clips);
    assert.deepEqual(full.tokens.shape, [3, 8, 32]);
    assert.deepEqual(full.pooled.shape, [3, 32]);
    assert.equal(full.tokens.requiresGrad, false);
    assert.ok(enc.training, "the encoder's training mode was not restored");
    const ref = noGrad(() => enc.forward(clips, null));
    assertClose(full.tokens, ref.toArray() as Float32Array, { atol: 1e-6 });
    assertClose(full.pooled, ref.mean(1).toArray() as Float32Array, { atol: 1e-6 });
    for (const k of [0, 1, 2]) {
      const f = extractFeatures(enc, clips, { depth: k });
      const h = noGrad(() => enc.runBlocks(enc.embed(clips), 0, k));
      assertClose(f.tokens, h.toArray() as Float32Array, { atol: 1e-6, msg: `depth ${k}` });
      assertClose(f.pooled, h.mean(1).toArray() as Float32Array, { atol: 1e-6, msg: `depth ${k}` });
    }
    // In chunks of 2 clips (2 + 1): the same features.
    const chunked = extractFeatures(enc, clips, { depth: 2, batchSize: 2 });
    const whole = extractFeatures(enc, clips, { depth: 2 });
    assertClose(chunked.tokens, whole.tokens.toArray() as Float32Array, { atol: 1e-6 });
    enc.eval();
    extractFeatures(enc, clips, { depth: 1 });
    assert.equal(enc.training, false, "an encoder in eval mode was switched to training");
    enc.train();
    assert.throws(() => extractFeatures(enc, clips, { depth: 4 }), /depth must be an integer in 0\.\.3/);
    assert.throws(() => extractFeatures(enc, clips.select(0, 0)), /expected clips \[B, C, T, H, W\]/);
  });
});

Deno.test("depthFromFraction: rounds fraction × depth, checks its arguments", () => {
  assert.equal(depthFromFraction(0, 12), 0);
  assert.equal(depthFromFraction(0.5, 12), 6);
  assert.equal(depthFromFraction(1 / 3, 12), 4);
  assert.equal(depthFromFraction(0.75, 12), 9);
  assert.equal(depthFromFraction(1, 12), 12);
  assert.equal(depthFromFraction(0.58, 25), 15); // 0.58 × 25 is 14.499999999999998 in binary
  assert.throws(() => depthFromFraction(1.5, 12), /fraction must be in \[0, 1\]/);
  assert.throws(() => depthFromFraction(0.5, -1), /non-negative integer/);
});
