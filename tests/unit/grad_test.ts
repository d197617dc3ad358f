/**
 * Gradient checks: analytic gradients from `backward()` against float64 central finite differences, for every
 * differentiable op a video ViT uses; and the autograd API (explicit gradients, accumulation, zeroGrad,
 * setGrad, detach, grad mode, requiresGrad_, clipGradNorm).
 * @module
 */
import assert from "node:assert/strict";
import * as torch from "../../mod.ts";
import {
  clipGradNorm,
  enableGrad,
  isGradEnabled,
  noGrad,
  scope,
  type Tensor,
  tensor,
  TorchError,
} from "../../mod.ts";
import { assertClose, leakFreeTest, numel, prng } from "../helpers.ts";

// ---------------------------------------------------------------------------------------- helpers

/** A differentiable input of `gradcheck`: its shape, and either fixed data or a sampling range. */
interface Input {
  shape: number[];
  /** Fixed values (row-major); sampled from [lo, hi) when omitted. */
  data?: ArrayLike<number>;
  /** Sampling range (default [-1, 1)). */
  lo?: number;
  hi?: number;
  /** Points that sampled values keep at least `margin` away from (kinks, clamp bounds, poles). */
  avoid?: number[];
  margin?: number;
}

function sample(spec: Input, rng: () => number): Float64Array {
  if (spec.data !== undefined) {
    assert.equal(spec.data.length, numel(spec.shape), "gradcheck: data does not match its shape");
    return Float64Array.from(spec.data);
  }
  const lo = spec.lo ?? -1, hi = spec.hi ?? 1, avoid = spec.avoid ?? [], margin = spec.margin ?? 0.05;
  const out = new Float64Array(numel(spec.shape));
  for (let i = 0; i < out.length; i++) {
    let v: number;
    do v = lo + (hi - lo) * rng(); while (avoid.some((p) => Math.abs(v - p) < margin));
    out[i] = v;
  }
  return out;
}

interface CheckOptions {
  eps?: number;
  rtol?: number;
  atol?: number;
  seed?: number;
}

/**
 * Checks the gradients of `fn` with respect to each of its inputs. `fn` maps f64 tensors to an f64 tensor of
 * any shape; the checked scalar is sum(fn(...) × w) for a fixed random weight w of the output's shape, so
 * every output element contributes with its own weight. Analytic gradients come from backward() on leaves
 * with requiresGrad; numeric ones from central differences, each evaluation on fresh tensors under noGrad.
 */
function gradcheck(
  name: string,
  fn: (...xs: Tensor[]) => Tensor,
  inputs: Input[],
  { eps = 1e-6, rtol = 1e-6, atol = 1e-7, seed = 1 }: CheckOptions = {},
): void {
  const rng = prng(seed);
  const data = inputs.map((spec) => sample(spec, rng));
  const { grads, weight, outShape } = scope(() => {
    const leaves = data.map((d, i) => tensor(d, { shape: inputs[i].shape, requiresGrad: true }));
    const out = fn(...leaves);
    assert.equal(out.dtype, "f64", `${name}: output dtype`);
    assert.ok(out.requiresGrad && out.hasGradFn, `${name}: output is not part of the graph`);
    const shape = out.shape;
    const weight = Float64Array.from({ length: numel(shape) }, () => 0.5 + rng());
    out.mul(tensor(weight, { shape })).sum().backward();
    const grads = leaves.map((leaf, i) => {
      const g = leaf.grad;
      assert.ok(g !== null, `${name}: input ${i} got no gradient`);
      assert.deepEqual(g.shape, inputs[i].shape, `${name}: gradient ${i} shape`);
      return g.toArray() as Float64Array;
    });
    return { grads, weight, outShape: shape };
  });
  const objective = (): number =>
    scope(() =>
      noGrad(() => {
        const out = fn(...data.map((d, i) => tensor(d, { shape: inputs[i].shape })));
        assert.deepEqual(out.shape, outShape);
        assert.equal(out.hasGradFn, false);
        const y = out.toArray() as Float64Array;
        let s = 0;
        for (let j = 0; j < y.length; j++) s += y[j] * weight[j];
        return s;
      })
    );
  for (let i = 0; i < data.length; i++) {
    const d = data[i];
    const numeric = new Float64Array(d.length);
    for (let j = 0; j < d.length; j++) {
      const v = d[j];
      d[j] = v + eps;
      const fp = objective();
      d[j] = v - eps;
      const fm = objective();
      d[j] = v;
      numeric[j] = (fp - fm) / (2 * eps);
    }
    assertClose(grads[i], numeric, { rtol, atol, msg: `${name}: d/d input ${i}` });
  }
}

/** A Deno test that runs a gradcheck and must leave no live tensors. */
function check(
  name: string,
  fn: (...xs: Tensor[]) => Tensor,
  inputs: Input[],
  opts: CheckOptions = {},
): void {
  leakFreeTest(`gradcheck: ${name}`, () => gradcheck(name, fn, inputs, opts));
}

const f64 = { dtype: "f64" } as const;
const vals = (t: Tensor): number[] => Array.from(t.toArray() as Float64Array);
const i64 = (data: number[], shape?: number[]) => tensor(data, { dtype: "i64", shape });
const bools = (data: number[], shape: number[]) => tensor(data.map((v) => v !== 0), { shape });

leakFreeTest("gradcheck itself: rejects a wrong gradient", () => {
  // x · detach(x) has analytic gradient x (the detached factor is a constant) but numeric gradient 2x.
  assert.throws(
    () => gradcheck("wrong", (x) => x.mul(x.detach()), [{ shape: [3], lo: 0.5, hi: 1 }]),
    /d\/d input 0/,
  );
});

// ------------------------------------------------------------------------------------ elementwise

check("add with broadcasting", (a, b) => a.add(b), [{ shape: [2, 3, 4] }, { shape: [3, 1] }]);
check("add with alpha", (a, b) => a.add(b, 2.5), [{ shape: [2, 3] }, { shape: [1, 3] }]);
check("add scalar", (a) => a.add(3), [{ shape: [5] }]);
check("sub with broadcasting", (a, b) => a.sub(b), [{ shape: [2, 1, 4] }, { shape: [3, 4] }]);
check("sub scalar and rsub", (a) => a.sub(1.5).mul(a.rsub(2)), [{ shape: [2, 3] }]);
check("mul with broadcasting", (a, b) => a.mul(b), [{ shape: [4, 1] }, { shape: [1, 5] }]);
check("mul by itself", (a) => a.mul(a), [{ shape: [6] }]);
check("div with broadcasting", (a, b) => a.div(b), [{ shape: [2, 3] }, { shape: [3], lo: 0.5, hi: 2 }]);
check("div scalar", (a) => a.div(-3), [{ shape: [2, 2] }]);
check("pow tensor exponent", (a, b) => a.pow(b), [{ shape: [2, 3], lo: 0.5, hi: 2 }, {
  shape: [2, 3],
  lo: -2,
  hi: 2,
}]);
check("pow scalar exponents", (a) => a.pow(3).add(a.pow(-0.5)), [{ shape: [2, 3], lo: 0.5, hi: 2 }]);
check("neg", (a) => a.neg(), [{ shape: [3, 2] }]);
check("sqrt", (a) => a.sqrt(), [{ shape: [3, 2], lo: 0.2, hi: 3 }]);
check("rsqrt", (a) => a.rsqrt(), [{ shape: [3, 2], lo: 0.2, hi: 3 }]);
check("exp", (a) => a.exp(), [{ shape: [3, 2], lo: -2, hi: 2 }]);
check("log", (a) => a.log(), [{ shape: [3, 2], lo: 0.2, hi: 3 }]);
check("tanh", (a) => a.tanh(), [{ shape: [3, 2], lo: -2, hi: 2 }]);
check("sigmoid", (a) => a.sigmoid(), [{ shape: [3, 2], lo: -3, hi: 3 }]);
check("relu away from its kink", (a) => a.relu(), [{ shape: [4, 3], avoid: [0] }]);
check("gelu exact", (a) => a.gelu(), [{ shape: [4, 3], lo: -3, hi: 3 }]);
check("gelu tanh approximation", (a) => a.gelu("tanh"), [{ shape: [4, 3], lo: -3, hi: 3 }]);
check("square, abs, reciprocal, erf", (a) => a.square().add(a.abs()).add(a.reciprocal()).add(a.erf()), [
  { shape: [2, 3], lo: -2, hi: 2, avoid: [0], margin: 0.2 },
]);
check("clamp both bounds", (a) => a.clamp(-0.5, 0.5), [{ shape: [4, 3], avoid: [-0.5, 0.5] }]);
check("clamp min only", (a) => a.clamp(0.1), [{ shape: [4, 3], avoid: [0.1] }]);
check("clamp max only", (a) => a.clamp(null, -0.2), [{ shape: [4, 3], avoid: [-0.2] }]);

// ----------------------------------------------------------------------------- linear algebra, nn

check("matmul 2-d", (a, b) => a.matmul(b), [{ shape: [3, 4] }, { shape: [4, 5] }]);
check("matmul batched with broadcasting", (a, b) => torch.matmul(a, b), [{ shape: [2, 3, 4] }, {
  shape: [4, 5],
}]);
check("matmul vector by matrix", (a, b) => a.matmul(b), [{ shape: [4] }, { shape: [4, 3] }]);
check("bmm", (a, b) => torch.bmm(a, b), [{ shape: [2, 3, 4] }, { shape: [2, 4, 5] }]);
check("linear with bias", (x, w, b) => torch.linear(x, w, b), [{ shape: [2, 3, 4] }, { shape: [5, 4] }, {
  shape: [5],
}]);
check("linear without bias", (x, w) => torch.linear(x, w), [{ shape: [3, 4] }, { shape: [2, 4] }]);
check(
  "conv3d patch embedding (kernel = stride = 2)",
  (x, w, b) => torch.conv3d(x, w, b, { stride: [2, 2, 2] }),
  [{ shape: [1, 2, 2, 4, 4] }, { shape: [3, 2, 2, 2, 2] }, { shape: [3] }],
);
check(
  "conv3d with padding, no bias",
  (x, w) => torch.conv3d(x, w, null, { padding: 1 }),
  [{ shape: [1, 1, 2, 3, 3] }, { shape: [2, 1, 2, 2, 2] }],
);
check(
  "layerNorm with affine",
  (x, w, b) => torch.layerNorm(x, [4], w, b),
  [{ shape: [2, 3, 4] }, { shape: [4], lo: 0.5, hi: 1.5 }, { shape: [4] }],
);
check("layerNorm without affine", (x) => torch.layerNorm(x, [4]), [{ shape: [2, 3, 4] }]);
check(
  "layerNorm over two dims",
  (x, w, b) => torch.layerNorm(x, [3, 4], w, b, 1e-6),
  [{ shape: [2, 3, 4] }, { shape: [3, 4] }, { shape: [3, 4] }],
);
check("softmax last dim", (x) => torch.softmax(x, -1), [{ shape: [3, 5], lo: -2, hi: 2 }]);
check("softmax dim 0", (x) => x.softmax(0), [{ shape: [3, 5], lo: -2, hi: 2 }]);
check("logSoftmax", (x) => torch.logSoftmax(x, 1), [{ shape: [2, 4, 3], lo: -2, hi: 2 }]);
check(
  "scaledDotProductAttention",
  (q, k, v) => torch.scaledDotProductAttention(q, k, v),
  [{ shape: [1, 2, 3, 4] }, { shape: [1, 2, 5, 4] }, { shape: [1, 2, 5, 4] }],
);
check(
  "scaledDotProductAttention causal, explicit scale",
  (q, k, v) => torch.scaledDotProductAttention(q, k, v, { isCausal: true, scale: 0.7 }),
  [{ shape: [2, 4, 3] }, { shape: [2, 4, 3] }, { shape: [2, 4, 3] }],
);
leakFreeTest("gradcheck: scaledDotProductAttention with masks", () => {
  using additive = tensor([0, -1, 0.5, -2, 0, 0, 1, -0.5, 0], { ...f64, shape: [3, 3] });
  using boolean = bools([1, 0, 1, 1, 1, 0, 0, 1, 1], [3, 3]);
  const inputs = [{ shape: [2, 3, 4] }, { shape: [2, 3, 4] }, { shape: [2, 3, 4] }];
  gradcheck(
    "sdpa additive mask",
    (q, k, v) => torch.scaledDotProductAttention(q, k, v, { attnMask: additive }),
    inputs,
  );
  gradcheck(
    "sdpa boolean mask",
    (q, k, v) => torch.scaledDotProductAttention(q, k, v, { attnMask: boolean }),
    inputs,
  );
});
leakFreeTest("gradcheck: mseLoss (input and target, each reduction)", () => {
  const inputs = [{ shape: [3, 4] }, { shape: [3, 4] }];
  gradcheck("mseLoss mean", (x, y) => torch.mseLoss(x, y), inputs);
  gradcheck("mseLoss sum", (x, y) => torch.mseLoss(x, y, "sum"), inputs);
  gradcheck("mseLoss none", (x, y) => torch.mseLoss(x, y, "none"), inputs);
});
leakFreeTest("gradcheck: crossEntropy (logits)", () => {
  using target = i64([0, 3, 1, 4]);
  using withIgnored = i64([2, -100, 1, 0]);
  using weight = tensor([1, 2, 0.5, 1, 3], f64);
  const logits = [{ shape: [4, 5], lo: -2, hi: 2 }];
  gradcheck("crossEntropy mean", (x) => torch.crossEntropy(x, target), logits);
  gradcheck("crossEntropy sum", (x) => torch.crossEntropy(x, target, { reduction: "sum" }), logits);
  gradcheck("crossEntropy none", (x) => torch.crossEntropy(x, target, { reduction: "none" }), logits);
  gradcheck(
    "crossEntropy label smoothing",
    (x) => torch.crossEntropy(x, target, { labelSmoothing: 0.1 }),
    logits,
  );
  gradcheck("crossEntropy ignoreIndex", (x) => torch.crossEntropy(x, withIgnored), logits);
  gradcheck("crossEntropy class weights", (x) => torch.crossEntropy(x, target, { weight }), logits);
});
check(
  "crossEntropy with class-probability targets",
  (x, p) => torch.crossEntropy(x, p.softmax(1)),
  [{ shape: [3, 4], lo: -2, hi: 2 }, { shape: [3, 4] }],
);

// ------------------------------------------------------------------------------------- reductions

check("sum all", (x) => x.sum(), [{ shape: [2, 3, 4] }]);
check("sum over one dim", (x) => x.sum(1), [{ shape: [2, 3, 4] }]);
check("sum over dims, keepdim", (x) => x.sum([0, 2], true), [{ shape: [2, 3, 4] }]);
check("mean all", (x) => x.mean(), [{ shape: [2, 3, 4] }]);
check("mean over dims", (x) => x.mean([-1, 0]), [{ shape: [2, 3, 4] }]);
check("var all", (x) => x.var(), [{ shape: [2, 3, 4] }]);
check("var over dim", (x) => x.var(1), [{ shape: [2, 3, 4] }]);
check("var population, keepdim", (x) => x.var([0, 2], { correction: 0, keepdim: true }), [{
  shape: [2, 3, 4],
}]);
check("std all", (x) => x.std(), [{ shape: [2, 3, 4] }]);
check("std over dims", (x) => x.std([1, 2]), [{ shape: [2, 3, 4] }]);
check("std over last dim, keepdim", (x) => x.std(-1, { keepdim: true }), [{ shape: [2, 3, 4] }]);

// ----------------------------------------------------------------------------- views and indexing

check("reshape", (x) => x.reshape([4, -1]).mul(x.reshape([4, 6])), [{ shape: [2, 3, 4] }]);
check("view, flatten, unsqueeze, squeeze", (x) => x.view([6, 4]).flatten().unsqueeze(0).squeeze(0), [{
  shape: [2, 3, 4],
}]);
check("permute", (x) => x.permute([2, 0, 1]).matmul(x.permute([2, 1, 0])), [{ shape: [2, 3, 4] }]);
check("transpose (non-contiguous result)", (x) => x.transpose(0, 1).contiguous(), [{ shape: [3, 4] }]);
check("narrow", (x) => x.narrow(1, 1, 2), [{ shape: [2, 4, 3] }]);
check("select", (x) => x.select(1, 2).mul(x.select(0, 0)), [{ shape: [3, 3] }]);
check("cat", (a, b) => torch.cat([a, b, a], 1), [{ shape: [2, 3] }, { shape: [2, 1] }]);
check("stack", (a, b) => torch.stack([a, b], -1), [{ shape: [2, 3] }, { shape: [2, 3] }]);
check("expand", (x) => x.expand([2, 3, 4]), [{ shape: [3, 1] }]);
check("split and chunk", (x) => {
  const [a, b] = x.split(3, 1), [c, d] = x.chunk(2, 0);
  return a.sum().mul(b.sum(1, true)).add(c.mul(d).sum());
}, [{ shape: [2, 5] }]);
leakFreeTest("gradcheck: gather, indexSelect (repeated indices), maskedFill, where", () => {
  using gatherIndex = i64([3, 0, 0, 1, 2, 2], [2, 3]);
  using rows = i64([2, 0, 2, 1]);
  using mask = bools([1, 0, 0, 1, 0, 1], [2, 3]);
  using cond = bools([1, 0, 1], [3]);
  gradcheck("gather", (x) => x.gather(1, gatherIndex), [{ shape: [2, 4] }]);
  gradcheck("indexSelect", (x) => x.indexSelect(0, rows), [{ shape: [3, 2] }]);
  gradcheck("maskedFill", (x) => x.maskedFill(mask, -4), [{ shape: [2, 3] }]);
  gradcheck("where", (a, b) => torch.where(cond, a, b), [{ shape: [2, 3] }, { shape: [3] }]);
});

// ------------------------------------------------------------------------------------ a composite

check(
  "a pre-norm attention block (layerNorm, linear, sdpa, gelu, residual)",
  (x, g, bn, wqkv, wo, bo) => {
    const h = torch.layerNorm(x, [4], g, bn);
    const [q, k, v] = torch.linear(h, wqkv).chunk(3, -1);
    const heads = (t: Tensor) => t.reshape([2, 3, 2, 2]).transpose(1, 2);
    const a = torch.scaledDotProductAttention(heads(q), heads(k), heads(v));
    return x.add(torch.linear(a.transpose(1, 2).reshape([2, 3, 4]), wo, bo).gelu());
  },
  [
    { shape: [2, 3, 4] },
    { shape: [4], lo: 0.5, hi: 1.5 },
    { shape: [4] },
    { shape: [12, 4] },
    { shape: [4, 4] },
    { shape: [4] },
  ],
);

// ----------------------------------------------------------------------------------- autograd API

leakFreeTest("backward with an explicit gradient", () => {
  using x = tensor([1, 2, 3, 4, 5, 6], { ...f64, shape: [2, 3], requiresGrad: true });
  using g = tensor([1, -1, 2, 0.5, 0, 3], { ...f64, shape: [2, 3] });
  scope(() => x.mul(x).mul(3).backward(g));
  using grad = x.grad!;
  // d(3x²)/dx · g = 6 x g
  assertClose(grad, [6, -12, 36, 12, 0, 108], { rtol: 0, atol: 0 });
});

leakFreeTest("gradients accumulate over two backward calls (retainGraph)", () => {
  using x = tensor([1, -2, 3], { ...f64, requiresGrad: true });
  scope(() => {
    const y = x.mul(x).sum();
    y.backward(undefined, { retainGraph: true });
    assert.deepEqual(vals(x.grad!), [2, -4, 6]);
    y.backward();
  });
  using grad = x.grad!;
  assert.deepEqual(vals(grad), [4, -8, 12]);
});

leakFreeTest("zeroGrad(true) drops the gradient; zeroGrad(false) zeroes it", () => {
  using x = tensor([1, 2], { ...f64, requiresGrad: true });
  assert.equal(x.grad, null);
  scope(() => x.mul(3).sum().backward());
  scope(() => assert.deepEqual(vals(x.grad!), [3, 3]));
  x.zeroGrad(false);
  scope(() => {
    const g = x.grad;
    assert.ok(g !== null, "zeroGrad(false) keeps a gradient tensor");
    assert.deepEqual(vals(g), [0, 0]);
    assert.equal(g.requiresGrad, false);
  });
  // a zeroed gradient accumulates from zero
  scope(() => x.mul(5).sum().backward());
  scope(() => assert.deepEqual(vals(x.grad!), [5, 5]));
  x.zeroGrad(true);
  assert.equal(x.grad, null);
  x.zeroGrad(); // default set-to-none, on a tensor without a gradient: a no-op
  assert.equal(x.grad, null);
});

leakFreeTest("setGrad replaces and clears the gradient", () => {
  using x = tensor([1, 2, 3], { ...f64, requiresGrad: true });
  using g = tensor([0.5, -1, 2], f64);
  x.setGrad(g);
  scope(() => assert.deepEqual(vals(x.grad!), [0.5, -1, 2]));
  // backward accumulates onto the gradient that was set
  scope(() => x.mul(2).sum().backward());
  scope(() => assert.deepEqual(vals(x.grad!), [2.5, 1, 4]));
  x.setGrad(null);
  assert.equal(x.grad, null);
});

leakFreeTest("detach cuts the graph", () => {
  using x = tensor([1, 2, 3], { ...f64, requiresGrad: true });
  scope(() => {
    const d = x.detach();
    assert.equal(d.requiresGrad, false);
    assert.equal(d.hasGradFn, false);
    const y = x.mul(d).sum(); // d/dx (x · stop_grad(x)) = x
    assert.ok(y.hasGradFn);
    y.backward();
    assert.deepEqual(vals(x.grad!), [1, 2, 3]);
    // detach shares storage: an in-place change shows through
    d.mul_(10);
    assert.deepEqual(vals(x), [10, 20, 30]);
    assert.equal(d.mul(2).hasGradFn, false);
  });
});

leakFreeTest("noGrad records no graph and restores the mode, even when fn throws", () => {
  using x = tensor([1, 2], { ...f64, requiresGrad: true });
  assert.equal(isGradEnabled(), true);
  scope(() => {
    const y = noGrad(() => {
      assert.equal(isGradEnabled(), false);
      return x.mul(2).add(1);
    });
    assert.equal(y.hasGradFn, false);
    assert.equal(y.requiresGrad, false);
    assert.equal(isGradEnabled(), true);
    assert.ok(x.mul(2).hasGradFn, "outside noGrad the graph is recorded again");
  });
  assert.throws(() =>
    noGrad(() => {
      throw new Error("boom");
    }), /boom/);
  assert.equal(isGradEnabled(), true);
  // nested: the inner region restores the outer's state
  noGrad(() => {
    assert.throws(() =>
      noGrad(() => {
        throw new RangeError("inner");
      }), RangeError);
    assert.equal(isGradEnabled(), false);
  });
  assert.equal(isGradEnabled(), true);
  assert.throws(
    () => noGrad((async () => {}) as () => unknown),
    (e) => e instanceof TorchError && e.op === "noGrad" && /async callbacks are refused/.test(e.message),
  );
  assert.equal(isGradEnabled(), true);
});

leakFreeTest("enableGrad inside noGrad records the graph", () => {
  using x = tensor([1, 2], { ...f64, requiresGrad: true });
  scope(() => {
    noGrad(() => {
      const a = x.mul(3);
      assert.equal(a.hasGradFn, false);
      const b = enableGrad(() => {
        assert.equal(isGradEnabled(), true);
        return x.mul(3);
      });
      assert.equal(isGradEnabled(), false);
      assert.equal(b.hasGradFn, true);
      assert.throws(() =>
        enableGrad(() => {
          throw new Error("x");
        })
      );
      assert.equal(isGradEnabled(), false);
      // under noGrad, sum records nothing; a graph built in enableGrad can still be backpropagated
      assert.equal(b.sum().hasGradFn, false);
      enableGrad(() => b.sum()).backward();
    });
    assert.deepEqual(vals(x.grad!), [3, 3]);
  });
});

leakFreeTest("requiresGrad_ toggles recording on a leaf", () => {
  using x = tensor([1, 2, 3], f64);
  assert.equal(x.requiresGrad, false);
  assert.equal(x.isLeaf, true);
  scope(() => assert.equal(x.mul(2).hasGradFn, false));
  assert.equal(x.requiresGrad_(), x, "requiresGrad_ returns this");
  assert.equal(x.requiresGrad, true);
  assert.equal(x.isLeaf, true);
  scope(() => {
    const y = x.mul(2);
    assert.equal(y.hasGradFn, true);
    assert.equal(y.isLeaf, false);
    assert.equal(y.requiresGrad, true);
  });
  x.requiresGrad_(false);
  assert.equal(x.requiresGrad, false);
  scope(() => assert.equal(x.mul(2).hasGradFn, false));
  // only leaves can change the flag
  scope(() => {
    x.requiresGrad_(true);
    const y = x.mul(2);
    assert.throws(() => y.requiresGrad_(false), torch.TorchError);
  });
});

leakFreeTest("clipGradNorm: global L2 norm, and clipping to maxNorm", () => {
  using a = tensor([1, 2, 3, 4], { ...f64, shape: [2, 2], requiresGrad: true });
  using b = tensor([0.5, -1.5, 2], { ...f64, requiresGrad: true });
  using c = tensor([7], { ...f64, requiresGrad: true }); // has no gradient: skipped
  scope(() => a.mul(a).sum().add(b.mul(tensor([1, 2, 3], f64)).sum()).backward());
  const ga = [2, 4, 6, 8], gb = [1, 2, 3];
  const expected = Math.sqrt([...ga, ...gb].reduce((s, v) => s + v * v, 0));
  scope(() => {
    const n = clipGradNorm([a, b, c]);
    assert.deepEqual(n.shape, []);
    assertClose([n.item()], [expected], { rtol: 1e-6, atol: 0 });
    // maxNorm 0 (the default) only measures
    assertClose(a.grad!, ga, { rtol: 0, atol: 0 });
    // a maxNorm above the norm leaves the gradients alone
    assertClose([clipGradNorm([a, b, c], expected * 2).item()], [expected], { rtol: 1e-6, atol: 0 });
    assertClose(b.grad!, gb, { rtol: 1e-12, atol: 0 });
  });
  scope(() => {
    const before = clipGradNorm([a, b, c], 2);
    assertClose([before.item()], [expected], { rtol: 1e-6, atol: 0 });
    const after = clipGradNorm([a, b, c]);
    assertClose([after.item()], [2], { rtol: 1e-5, atol: 0 });
    // the direction is kept: every gradient is scaled by the same factor
    const k = 2 / expected;
    assertClose(a.grad!, ga.map((v) => v * k), { rtol: 1e-5, atol: 0 });
    assertClose(b.grad!, gb.map((v) => v * k), { rtol: 1e-5, atol: 0 });
    assert.equal(c.grad, null);
  });
  scope(() => {
    const none = clipGradNorm([c]);
    assert.equal(none.item(), 0);
    assert.equal(clipGradNorm([]).item(), 0);
  });
});
