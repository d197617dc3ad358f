/**
 * Property-based tests (fast-check): broadcasting against numpy's rules and a JavaScript reference, view
 * round trips that must reproduce the original exactly, and the memory contract of `scope` / `keep`.
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import * as torch from "../../mod.ts";
import { currentScope, keep, liveTensors, scope, type Tensor, tensor, TorchError } from "../../mod.ts";
import { leakFreeTest, noLeak, numel } from "../helpers.ts";

const RUNS = { numRuns: 100 };

const vals = (t: Tensor): number[] => Array.from(t.toArray() as Float64Array);

/** Deterministic host data for a shape: small multiples of 1/4, so f64 add and mul are exact. */
function hostData(shape: readonly number[], seed: number): Float64Array {
  let s = seed >>> 0;
  return Float64Array.from({ length: numel(shape) }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s >>> 8) % 201 - 100) / 4;
  });
}

/** numpy's broadcasting rule: align trailing dims; sizes must match or be 1. Null when incompatible. */
function broadcastShape(a: readonly number[], b: readonly number[]): number[] | null {
  const r = Math.max(a.length, b.length), out: number[] = [];
  for (let i = 0; i < r; i++) {
    const da = a[i - (r - a.length)] ?? 1, db = b[i - (r - b.length)] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return null;
    out.push(Math.max(da, db));
  }
  return out;
}

/** Elementwise `op` of flat row-major arrays under broadcasting, computed index by index. */
function broadcastRef(
  a: Float64Array,
  sa: readonly number[],
  b: Float64Array,
  sb: readonly number[],
  out: readonly number[],
  op: (x: number, y: number) => number,
): Float64Array {
  const res = new Float64Array(numel(out));
  const idx = new Array<number>(out.length).fill(0);
  const offset = (s: readonly number[]) => {
    let o = 0;
    const lead = out.length - s.length;
    for (let d = 0; d < s.length; d++) o = o * s[d] + (s[d] === 1 ? 0 : idx[lead + d]);
    return o;
  };
  for (let f = 0; f < res.length; f++) {
    let rem = f;
    for (let d = out.length - 1; d >= 0; d--) {
      idx[d] = rem % out[d];
      rem = Math.floor(rem / out[d]);
    }
    res[f] = op(a[offset(sa)], b[offset(sb)]);
  }
  return res;
}

const OPS = {
  add: { js: (x: number, y: number) => x + y, torch: (a: Tensor, b: Tensor) => a.add(b) },
  sub: { js: (x: number, y: number) => x - y, torch: (a: Tensor, b: Tensor) => a.sub(b) },
  mul: { js: (x: number, y: number) => x * y, torch: (a: Tensor, b: Tensor) => a.mul(b) },
};
const opName = fc.constantFrom<keyof typeof OPS>("add", "sub", "mul");

/** Broadcast-compatible shape pairs: each aligned dim is s or 1 per operand; leading dims may be absent. */
const compatiblePair = fc
  .tuple(
    fc.array(fc.tuple(fc.integer({ min: 1, max: 4 }), fc.boolean(), fc.boolean()), { maxLength: 4 }),
    fc.nat(4),
    fc.nat(4),
  )
  .map(([dims, dropA, dropB]) => {
    const a = dims.map(([s, full]) => (full ? s : 1)).slice(Math.min(dropA, dims.length));
    const b = dims.map(([s, , full]) => (full ? s : 1)).slice(Math.min(dropB, dims.length));
    return [a, b] as const;
  });

const shapeArb = (maxRank = 4, maxDim = 4) =>
  fc.array(fc.integer({ min: 1, max: maxDim }), { minLength: 1, maxLength: maxRank });

// ----------------------------------------------------------------------------------- broadcasting

leakFreeTest("broadcasting of compatible shapes: numpy's shape, and values from a JS reference", () => {
  fc.assert(
    fc.property(compatiblePair, opName, fc.integer(), ([sa, sb], name, seed) => {
      const expectShape = broadcastShape(sa, sb);
      assert.ok(expectShape !== null);
      const a = hostData(sa, seed), b = hostData(sb, seed ^ 0x5bd1e995);
      scope(() => {
        const r = OPS[name].torch(tensor(a, { shape: sa }), tensor(b, { shape: sb }));
        assert.deepEqual(r.shape, expectShape);
        assert.deepEqual(vals(r), Array.from(broadcastRef(a, sa, b, sb, expectShape, OPS[name].js)));
        // and the other way round
        const rr = OPS[name].torch(tensor(b, { shape: sb }), tensor(a, { shape: sa }));
        assert.deepEqual(rr.shape, expectShape);
      });
    }),
    RUNS,
  );
});

leakFreeTest("broadcasting of arbitrary shapes: works exactly when numpy's rule allows it", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 3 }),
      fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 3 }),
      (sa, sb) => {
        const expectShape = broadcastShape(sa, sb);
        scope(() => {
          const a = torch.ones(sa, { dtype: "f64" }), b = torch.ones(sb, { dtype: "f64" });
          if (expectShape === null) {
            assert.throws(() => a.add(b), (e) => e instanceof TorchError && e.op === "add");
            assert.throws(() => a.mul(b), (e) => e instanceof TorchError && e.op === "mul");
          } else {
            assert.deepEqual(a.add(b).shape, expectShape);
            assert.deepEqual(a.mul(b).shape, expectShape);
          }
        });
      },
    ),
    RUNS,
  );
});

// ------------------------------------------------------------------------------- view round trips

/** Splits n into `parts` factors by distributing its prime factors, in an order given by `choices`. */
function factorise(n: number, parts: number, choices: readonly number[]): number[] {
  const primes: number[] = [];
  for (let p = 2, m = n; m > 1; p++) {
    while (m % p === 0) {
      primes.push(p);
      m /= p;
    }
  }
  const out = new Array<number>(parts).fill(1);
  primes.forEach((p, i) => (out[(choices[i] ?? i) % parts] *= p));
  return out;
}

/** A tensor with distinct values (0, 1, 2, …) so any misplaced element shows. */
const iota = (shape: readonly number[]) =>
  torch.arange(numel(shape), undefined, 1, { dtype: "f64" }).reshape(shape);

function assertSame(t: Tensor, shape: readonly number[], what: string): void {
  assert.deepEqual(t.shape, shape, `${what}: shape`);
  const v = vals(t);
  for (let i = 0; i < v.length; i++) {
    if (v[i] !== i) assert.fail(`${what}: element ${i} is ${v[i]}`);
  }
}

leakFreeTest("reshape to a random factorisation and back", () => {
  fc.assert(
    fc.property(
      shapeArb(),
      fc.integer({ min: 1, max: 5 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      fc.option(fc.nat(), { nil: undefined }),
      (shape, parts, choices, inferAt) => {
        const target = factorise(numel(shape), parts, choices);
        // optionally leave one size for reshape to infer
        const asked = target.slice();
        if (inferAt !== undefined) asked[inferAt % parts] = -1;
        scope(() => {
          const r = iota(shape).reshape(asked);
          assert.deepEqual(r.shape, target);
          assertSame(r.reshape(shape), shape, `reshape ${shape} → ${asked}`);
          assertSame(r.view(shape), shape, `view back from ${target}`);
        });
      },
    ),
    RUNS,
  );
});

const withPermutation = shapeArb(5).chain((shape) =>
  fc.tuple(
    fc.constant(shape),
    fc.shuffledSubarray(
      shape.map((_, i) => i),
      { minLength: shape.length, maxLength: shape.length },
    ),
  )
);

leakFreeTest("permute by a random permutation, then by its inverse", () => {
  fc.assert(
    fc.property(withPermutation, ([shape, perm]) => {
      const inverse = new Array<number>(perm.length);
      perm.forEach((p, i) => (inverse[p] = i));
      scope(() => {
        const p = iota(shape).permute(perm);
        assert.deepEqual(p.shape, perm.map((d) => shape[d]));
        assertSame(p.permute(inverse), shape, `permute ${perm}`);
        // the same with negative dims
        const neg = perm.map((d) => d - shape.length);
        assertSame(iota(shape).permute(neg).permute(inverse), shape, `permute ${neg}`);
      });
    }),
    RUNS,
  );
});

const withTwoDims = shapeArb().chain((shape) =>
  fc.tuple(
    fc.constant(shape),
    fc.integer({ min: -shape.length, max: shape.length - 1 }),
    fc.integer({ min: -shape.length, max: shape.length - 1 }),
  )
);

leakFreeTest("transpose twice", () => {
  fc.assert(
    fc.property(withTwoDims, ([shape, d0, d1]) => {
      scope(() => {
        const t = iota(shape).transpose(d0, d1);
        const swapped = shape.slice();
        const a = d0 < 0 ? d0 + shape.length : d0, b = d1 < 0 ? d1 + shape.length : d1;
        [swapped[a], swapped[b]] = [swapped[b], swapped[a]];
        assert.deepEqual(t.shape, swapped);
        assertSame(t.transpose(d0, d1), shape, `transpose ${d0}, ${d1}`);
        assertSame(t.transpose(d1, d0).contiguous(), shape, `transpose ${d1}, ${d0}`);
      });
    }),
    RUNS,
  );
});

leakFreeTest("unsqueeze then squeeze", () => {
  fc.assert(
    fc.property(
      shapeArb().chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: -s.length - 1, max: s.length }))),
      ([shape, dim]) => {
        scope(() => {
          const u = iota(shape).unsqueeze(dim);
          assert.equal(u.ndim, shape.length + 1);
          assert.equal(u.size(dim), 1);
          assertSame(u.squeeze(dim), shape, `unsqueeze(${dim}).squeeze(${dim})`);
        });
      },
    ),
    RUNS,
  );
});

leakFreeTest("flatten a random range of dims, then view back", () => {
  fc.assert(
    fc.property(withTwoDims, ([shape, d0, d1]) => {
      const a = d0 < 0 ? d0 + shape.length : d0, b = d1 < 0 ? d1 + shape.length : d1;
      const [start, end] = a <= b ? [a, b] : [b, a];
      scope(() => {
        const f = iota(shape).flatten(start, end);
        const expect = [
          ...shape.slice(0, start),
          numel(shape.slice(start, end + 1)),
          ...shape.slice(end + 1),
        ];
        assert.deepEqual(f.shape, expect);
        assertSame(f.view(shape), shape, `flatten(${start}, ${end})`);
      });
    }),
    RUNS,
  );
});

const withDimAndSize = shapeArb(4, 6).chain((shape) =>
  fc.tuple(
    fc.constant(shape),
    fc.integer({ min: -shape.length, max: shape.length - 1 }),
    fc.integer({ min: 1, max: 7 }),
  )
);

leakFreeTest("split then cat", () => {
  fc.assert(
    fc.property(withDimAndSize, ([shape, dim, size]) => {
      scope(() => {
        const parts = iota(shape).split(size, dim);
        const len = shape.at(dim)!;
        assert.equal(parts.length, Math.ceil(len / size));
        parts.forEach((p, i) => assert.equal(p.size(dim), Math.min(size, len - i * size)));
        assertSame(torch.cat(parts, dim), shape, `split(${size}, ${dim})`);
      });
    }),
    RUNS,
  );
});

leakFreeTest("chunk then cat", () => {
  fc.assert(
    fc.property(withDimAndSize, ([shape, dim, chunks]) => {
      scope(() => {
        const parts = iota(shape).chunk(chunks, dim);
        assert.ok(parts.length >= 1 && parts.length <= chunks);
        assert.equal(parts.reduce((n, p) => n + p.size(dim), 0), shape.at(dim));
        assertSame(torch.cat(parts, dim), shape, `chunk(${chunks}, ${dim})`);
      });
    }),
    RUNS,
  );
});

// ----------------------------------------------------------------------------------------- memory

/** Ops from any tensor of rank ≥ 1 to another of rank ≥ 1 (some allocate several temporaries). */
const MEMORY_OPS: [string, (t: Tensor) => Tensor][] = [
  ["addScalar", (t) => t.add(1.5)],
  ["mulSelf", (t) => t.mul(t)],
  ["tanh", (t) => t.tanh()],
  ["relu", (t) => t.relu()],
  ["neg", (t) => t.neg()],
  ["transpose", (t) => t.transpose(0, -1)],
  ["flatten", (t) => t.flatten()],
  ["unsqueeze", (t) => (t.ndim < 4 ? t.unsqueeze(0) : t.flatten())],
  ["sumKeepdim", (t) => t.sum(0, true)],
  ["softmax", (t) => t.softmax(-1)],
  ["clone", (t) => t.clone()],
  ["detach", (t) => t.detach()],
  ["catSplit", (t) => torch.cat(t.split(1, 0), 0)],
  ["chunkFirst", (t) => t.chunk(2, -1)[0]],
  ["layerNorm", (t) => torch.layerNorm(t, [t.size(-1)])],
  ["stackMax", (t) => torch.stack([t, t.exp()]).max(0).values],
  ["toAndBack", (t) => t.to("f32").double()],
];

const opSequence = fc.array(fc.integer({ min: 0, max: MEMORY_OPS.length - 1 }), {
  minLength: 1,
  maxLength: 12,
});

function runOps(x: Tensor, ops: readonly number[]): Tensor {
  let t = x;
  for (const i of ops) t = MEMORY_OPS[i][1](t);
  return t;
}

leakFreeTest("random op sequences inside scope free every intermediate", () => {
  fc.assert(
    fc.property(shapeArb(3), opSequence, fc.boolean(), (shape, ops, withGrad) => {
      const base = liveTensors();
      scope(() => {
        const x = torch.randn(shape, { dtype: "f64", requiresGrad: withGrad });
        const y = runOps(x, ops);
        if (withGrad && y.requiresGrad) {
          y.sum().backward();
          assert.ok(x.grad !== null);
        }
        assert.ok(liveTensors() > base);
      });
      assert.equal(liveTensors(), base, `after ${ops.map((i) => MEMORY_OPS[i][0]).join(", ")}`);
    }),
    RUNS,
  );
});

leakFreeTest("a tensor returned from a scope survives it, everything else is freed", () => {
  fc.assert(
    fc.property(shapeArb(3), opSequence, (shape, ops) => {
      const base = liveTensors();
      const r = scope(() => runOps(torch.randn(shape), ops));
      assert.equal(liveTensors(), base + 1);
      assert.equal(r.disposed, false);
      assert.equal(r._owner, null, "outside any scope the caller owns it");
      assert.ok(r.numel >= 1);
      r.dispose();
      assert.equal(liveTensors(), base);
    }),
    RUNS,
  );
});

leakFreeTest("tensors returned inside arrays, objects and Maps survive the scope", () => {
  fc.assert(
    fc.property(shapeArb(3), opSequence, opSequence, (shape, ops1, ops2) => {
      const base = liveTensors();
      const r = scope(() => {
        const x = torch.randn(shape);
        const a = runOps(x, ops1), b = runOps(x, ops2);
        return { list: [a, [b]], map: new Map([["a", a]]), n: 3 };
      });
      const [a, [b]] = r.list as [Tensor, Tensor[]];
      assert.equal(liveTensors(), base + (a === b ? 1 : 2));
      assert.equal(r.map.get("a"), a);
      a.dispose();
      b.dispose();
      assert.equal(liveTensors(), base);
    }),
    { numRuns: 50 },
  );
});

leakFreeTest("keep takes a tensor out of the scope's ownership", () => {
  fc.assert(
    fc.property(shapeArb(3), opSequence, fc.nat(20), (shape, ops, pick) => {
      const base = liveTensors();
      let kept: Tensor | null = null, keptArray: Tensor[] = [];
      scope(() => {
        const x = torch.randn(shape);
        const steps: Tensor[] = [x];
        for (const i of ops) steps.push(MEMORY_OPS[i][1](steps[steps.length - 1]));
        kept = keep(steps[pick % steps.length]);
        keptArray = keep([x.add(1), x.mul(2)]);
        assert.equal(kept._owner, null);
      });
      const k = kept as Tensor | null;
      assert.ok(k !== null && !k.disposed);
      assert.ok(keptArray.every((t) => !t.disposed));
      assert.equal(liveTensors(), base + 3);
      k.dispose();
      keptArray.forEach((t) => t.dispose());
      assert.equal(liveTensors(), base);
    }),
    { numRuns: 50 },
  );
});

leakFreeTest("nested scopes move returned tensors to the parent, which frees them unless returned", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 5 }), opSequence, fc.boolean(), (depth, ops, returnIt) => {
      const base = liveTensors();
      let inner: Tensor | null = null;
      const nest = (d: number): Tensor | null => {
        const s = currentScope();
        const t = d === 0 ? runOps(torch.randn([2, 3]), ops) : scope(() => nest(d - 1));
        if (t !== null && s !== null) {
          assert.equal(t._owner, s, "returned tensor belongs to the enclosing scope");
        }
        if (d === 0) inner = t;
        return t;
      };
      const outer = scope(() => {
        const r = scope(() => nest(depth));
        assert.ok(r !== null && !r.disposed);
        assert.equal(r._owner, currentScope());
        return returnIt ? r : null;
      });
      if (returnIt) {
        assert.ok(outer !== null && outer === (inner as Tensor | null) && !outer.disposed);
        assert.equal(liveTensors(), base + 1);
        outer.dispose();
      } else {
        assert.ok((inner as Tensor | null)?.disposed, "the outermost scope freed it");
      }
      assert.equal(liveTensors(), base);
    }),
    { numRuns: 50 },
  );
});

leakFreeTest("a tensor of an outer scope returned by an inner one stays with the outer scope", () => {
  scope(() => {
    const outerScope = currentScope();
    const t = torch.ones([2]);
    const r = scope(() => {
      torch.zeros([3]);
      return t;
    });
    assert.equal(r, t);
    assert.equal(t._owner, outerScope);
    assert.equal(t.disposed, false);
  });
});

leakFreeTest("a scope whose callback throws still frees everything", () => {
  fc.assert(
    fc.property(shapeArb(3), opSequence, fc.nat(12), (shape, ops, throwAt) => {
      const base = liveTensors();
      let made: Tensor[] = [];
      const err = new Error("thrown on purpose");
      assert.throws(
        () =>
          scope(() => {
            let t = torch.randn(shape);
            made = [t];
            for (let i = 0; i < ops.length; i++) {
              if (i === throwAt % ops.length) {
                scope(() => {
                  made.push(t.add(1));
                  throw err;
                });
              }
              t = MEMORY_OPS[ops[i]][1](t);
              made.push(t);
            }
          }),
        (e) => e === err,
      );
      assert.ok(made.every((t) => t.disposed));
      assert.equal(liveTensors(), base);
    }),
    RUNS,
  );
});

Deno.test("scope refuses an async callback with a TorchError and leaves nothing behind", () => {
  noLeak(() => {
    let ran = false;
    const before = currentScope();
    assert.throws(
      () =>
        scope(
          (async () => {
            ran = true;
            return await Promise.resolve(torch.ones([2]));
          }) as unknown as () => Tensor,
        ),
      (e) => e instanceof TorchError && e.op === "scope" && /async callbacks are refused/.test(e.message),
    );
    assert.equal(ran, false, "the async callback never ran");
    assert.equal(currentScope(), before, "the current scope is restored");
  });
  // a plain function that returns a promise is refused too, after its tensors are freed
  noLeak(() => {
    let made: Tensor | null = null;
    let p: Promise<unknown> | null = null;
    assert.throws(() =>
      scope(() => {
        made = torch.ones([2]);
        p = Promise.resolve(made);
        return p;
      }), (e) => e instanceof TorchError && /scope: the callback returned a promise/.test(e.message));
    assert.ok((made as Tensor | null)?.disposed);
    assert.equal(currentScope(), null);
  });
});
