/**
 * Error paths: each gives a TorchError naming the operation and what was wrong, never a crash, and leaves no
 * live tensors behind. Covers libtorch's own errors, the binding's argument checks, use after dispose, and
 * invalid, null and stale handles reaching the shim.
 * @module
 */
import assert from "node:assert/strict";
import * as torch from "../../mod.ts";
import {
  autocast,
  currentScope,
  isAutocastEnabled,
  liveTensors,
  scope,
  Tensor,
  tensor,
  TorchError,
} from "../../mod.ts";
import { lib } from "../../ffi/lib.ts";
import { checkHandle, checkStatus, lastError } from "../../ffi/check.ts";
import { BINARY_OP, REDUCE_OP, UNARY_OP } from "../../ffi/symbols.ts";
import { leakFreeTest } from "../helpers.ts";

/** Asserts that fn throws a TorchError for `op` whose message matches every pattern. */
function assertTorchError(fn: () => unknown, op: string, ...patterns: (RegExp | string)[]): TorchError {
  let caught: unknown = null;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== null, `expected a TorchError from ${op}, but nothing was thrown`);
  assert.ok(caught instanceof TorchError, `expected a TorchError from ${op}, got ${String(caught)}`);
  assert.ok(caught instanceof Error);
  assert.equal(caught.name, "TorchError");
  assert.equal(caught.op, op, `op of: ${caught.message}`);
  assert.ok(caught.message.startsWith(`${op}: `), `message starts with the op: ${caught.message}`);
  for (const p of patterns) {
    const ok = typeof p === "string" ? caught.message.includes(p) : p.test(caught.message);
    assert.ok(ok, `message ${JSON.stringify(caught.message)} should match ${String(p)}`);
  }
  return caught;
}

// ------------------------------------------------------------------------------ libtorch's errors

leakFreeTest("matmul of [2,3] by [4,5] names both shapes", () => {
  scope(() => {
    const a = torch.ones([2, 3]), b = torch.ones([4, 5]);
    // libtorch: "mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"
    assertTorchError(() => a.matmul(b), "matmul", "cannot be multiplied", /\b2x3\b/, /\b4x5\b/);
    assertTorchError(() => torch.matmul(a, b), "matmul", "2x3", "4x5");
    assertTorchError(() => torch.linear(a, torch.ones([4, 5])), "linear", "2x3", "5x4");
    assertTorchError(
      () => torch.bmm(torch.ones([2, 2, 3]), torch.ones([2, 4, 4])),
      "bmm",
      "[2, 3]",
      "[2, 4]",
    );
  });
});

leakFreeTest("add of non-broadcastable shapes names the mismatching sizes", () => {
  scope(() => {
    const a = torch.ones([2, 3]), b = torch.ones([4, 3]);
    const msg = /size of tensor a \(2\) must match the size of tensor b \(4\) at non-singleton dimension 0/;
    assertTorchError(() => a.add(b), "add", msg);
    assertTorchError(() => a.add(b, 2), "add", msg);
    assertTorchError(() => a.sub(b), "sub", msg);
    assertTorchError(() => a.mul(b), "mul", msg);
    assertTorchError(() => a.div(b), "div", msg);
    assertTorchError(() => a.maximum(b), "maximum", msg);
    assertTorchError(() => a.add_(b), "add_", msg);
    assertTorchError(() => torch.ones([2, 3]).expand([4, 3]), "expand", "(4)", "(2)", "[4, 3]");
  });
});

leakFreeTest("dtype mismatches that libtorch rejects", () => {
  scope(() => {
    const f = torch.ones([2, 3]),
      l = torch.ones([3, 2], { dtype: "i64" }),
      d = torch.ones([4, 3], { dtype: "f64" });
    assertTorchError(() => f.matmul(l), "matmul", "same dtype", "float", "long");
    assertTorchError(() => torch.linear(f, d), "linear", "same dtype", "float", "double");
    assertTorchError(
      () => torch.bmm(torch.ones([1, 2, 3]), torch.ones([1, 3, 4], { dtype: "f64" })),
      "bmm",
      "Float",
      "Double",
    );
    assertTorchError(() => f.indexSelect(0, torch.tensor([0])), "indexSelect", "int32 or int64");
    assertTorchError(() => torch.where(f, f, f), "where", "boolean", "Float");
    assertTorchError(
      () => torch.crossEntropy(f, torch.tensor([0, 1])),
      "crossEntropy",
      // torch 2.13 says "... target dtype ...", 2.11 "expected scalar type Long but found Float"
      /target dtype|expected scalar type Long/,
      "Float",
    );
    // mseLoss of f32 and f64 is not an error: libtorch promotes to f64
    assert.equal(torch.mseLoss(f, torch.ones([2, 3], { dtype: "f64" })).dtype, "f64");
    // but it refuses (rather than broadcasting) a target of another shape
    assertTorchError(
      () => torch.mseLoss(f, torch.ones([3, 2])),
      "mseLoss",
      "[2, 3]",
      "[3, 2]",
      "no broadcasting",
    );
  });
});

leakFreeTest("reshape and view to the wrong element count", () => {
  scope(() => {
    const a = torch.ones([2, 3]);
    assertTorchError(() => a.reshape([4, 2]), "reshape", "[4, 2]", "size 6");
    assertTorchError(() => a.reshape([-1, 4]), "reshape", "[-1, 4]", "size 6");
    assertTorchError(() => a.view([7]), "view", "[7]", "size 6");
    assertTorchError(() => a.transpose(0, 1).view([6]), "view", "reshape");
    assertTorchError(() => a.reshape([2.5, 2]), "reshape", "integers", "2.5");
  });
});

leakFreeTest("index and dimension errors", () => {
  scope(() => {
    const a = torch.ones([2, 3]);
    assertTorchError(() => a.select(0, 5), "select", "index 5 out of range", "[2, 3]");
    assertTorchError(() => a.select(1, -4), "select", "-4", "out of range");
    assertTorchError(() => a.select(2, 0), "select", /out of range|Dimension/);
    assertTorchError(() => a.narrow(1, 2, 2), "narrow", "exceeds dimension size");
    assertTorchError(() => a.transpose(0, 3), "transpose", "Dimension out of range", "3");
    assertTorchError(() => a.permute([0, 0]), "permute", "duplicate");
    assertTorchError(() => a.size(2), "size", "dim 2", "2-d");
    assertTorchError(
      () => a.gather(1, torch.tensor([[0, 7]], { dtype: "i64" })),
      "gather",
      "index 7",
      "size 3",
    );
    assertTorchError(
      () => torch.crossEntropy(a, torch.tensor([0, 5], { dtype: "i64" })),
      "crossEntropy",
      "Target 5",
      "out of bounds",
    );
    assertTorchError(() => a.split(0), "split", "split_size");
  });
});

leakFreeTest("cat and stack of empty or mismatched lists", () => {
  scope(() => {
    assertTorchError(() => torch.cat([]), "cat", "non-empty list");
    assertTorchError(() => torch.stack([]), "stack", "non-empty");
    assertTorchError(
      () => torch.cat([torch.ones([2, 2]), torch.ones([3, 3])]),
      "cat",
      "Expected size 2 but got size 3",
    );
    assertTorchError(() => torch.stack([torch.ones([2]), torch.ones([3])]), "stack", "[2]", "[3]");
    assertTorchError(() => torch.cat([torch.ones([2]), 3 as unknown as Tensor]), "cat", "element 1");
  });
});

leakFreeTest("item() of a multi-element tensor", () => {
  scope(() => {
    assertTorchError(() => torch.ones([2, 3]).item(), "item", "6 elements", "scalar");
    assertTorchError(() => torch.zeros([0]).item(), "item", "0 elements");
    // NaN is a value, not an error
    assert.ok(Number.isNaN(torch.full([1], NaN).item()));
    assert.ok(Number.isNaN(torch.zeros([]).div(0).item()));
  });
});

leakFreeTest("backward errors", () => {
  scope(() => {
    const plain = torch.ones([2]);
    assertTorchError(() => plain.sum().backward(), "backward", "does not require grad");
    const x = torch.ones([2], { requiresGrad: true });
    assertTorchError(
      () => torch.noGrad(() => x.mul(2).sum()).backward(),
      "backward",
      "does not require grad",
    );
    assertTorchError(() => x.mul(2).backward(), "backward", "scalar output", "[2]");
    const y = x.mul(x).sum();
    y.backward();
    assertTorchError(() => y.backward(), "backward", "second time");
    assertTorchError(() => x.mul(2).backward(torch.ones([3])), "backward", /shape|size/i);
  });
});

leakFreeTest("autograd flag and gradient errors", () => {
  scope(() => {
    assertTorchError(
      () => torch.ones([2], { dtype: "i64" }).requiresGrad_(),
      "requiresGrad_",
      "floating point",
    );
    const x = torch.ones([2], { requiresGrad: true });
    const y = x.mul(2);
    assertTorchError(() => y.requiresGrad_(false), "requiresGrad_", "leaf", "detach");
    assert.equal(y.requiresGrad, true);
    y.requiresGrad_(true); // asking a non-leaf for what it already has is fine, as in PyTorch
    assertTorchError(() => x.add_(1), "add_", "leaf Variable that requires grad", "in-place");
    // a gradient must match its tensor's shape, dtype and device (PyTorch's .grad setter checks)
    assertTorchError(() => x.setGrad(torch.ones([3])), "setGrad", "shape [3]", "shape [2]");
    assertTorchError(() => x.setGrad(torch.ones([2], { dtype: "f64" })), "setGrad", "Double", "Float");
    assert.equal(x.grad, null, "a refused gradient is not set");
    x.setGrad(torch.full([2], 3));
    assert.deepEqual(Array.from(x.grad!.toArray() as Float32Array), [3, 3]);
  });
});

leakFreeTest("bad dtype and device strings in factories", () => {
  // Unknown dtype/device names are TorchErrors of `dtype` or `device` (src/torch/dtype.ts) naming the value.
  const bad = "f33" as torch.DType, dev = "tpu" as torch.Device;
  assertTorchError(() => torch.zeros([2], { dtype: bad }), "dtype", "unknown dtype 'f33'");
  assertTorchError(() => torch.ones([2], { device: dev }), "device", "unknown device 'tpu'");
  assertTorchError(() => torch.randn([2], { dtype: "float" as torch.DType }), "dtype", "'float'");
  assertTorchError(() => torch.tensor([1, 2], { dtype: bad }), "dtype", "'f33'");
  assert.throws(() => torch.full([2], 1, { device: "cuda:x" as torch.Device }), /'cuda:x'/);
  scope(() => {
    assertTorchError(() => torch.ones([2]).to(bad), "dtype", "'f33'");
    // a valid device that is not there is libtorch's error
    if (!torch.cuda.isAvailable()) {
      assertTorchError(() => torch.zeros([2], { device: "cuda" }), "zeros", "CUDA");
      assertTorchError(() => torch.ones([2]).cuda(), "to", /cuda/i);
    }
    assertTorchError(() => torch.zeros([-1]), "zeros", "non-negative");
  });
});

leakFreeTest("tensor() with a shape that does not match the data", () => {
  assertTorchError(() => tensor([1, 2, 3], { shape: [2, 2] }), "tensor", "[2, 2]", "3 elements");
  assertTorchError(() => tensor(new Float32Array(3), { shape: [2, 2] }), "tensor", "[2, 2]", "4", "3");
  assertTorchError(() => tensor(new Float64Array(6), { shape: [4, -1] }), "tensor", "[4, -1]");
  assertTorchError(() => tensor([[1, 2], [3]]), "tensor", "ragged");
  assertTorchError(() => tensor(["a", "b"] as unknown as number[]), "tensor", "unsupported element");
});

leakFreeTest("argument checks of the binding", () => {
  scope(() => {
    const a = torch.ones([1, 1, 2, 2, 2]);
    assertTorchError(
      () => torch.conv3d(a, torch.ones([1, 1, 1, 1, 1]), null, { stride: [1, 1] }),
      "conv3d",
      "stride",
    );
    assertTorchError(
      () => torch.conv3d(a, torch.ones([1, 3, 1, 1, 1])),
      "conv3d",
      "3 channels",
      "1 channels",
    );
    assertTorchError(
      () =>
        torch.crossEntropy(torch.ones([2, 3]), torch.zeros([2], { dtype: "i64" }), {
          reduction: "avg" as "mean",
        }),
      "crossEntropy",
      "reduction",
      "avg",
    );
    assertTorchError(() => torch.mseLoss(a, a, "all" as "sum"), "mseLoss", "all");
    assertTorchError(() => torch.dropout(a, 1.5), "dropout", "[0, 1]");
    assertTorchError(() => torch.layerNorm(torch.ones([2, 3]), [4]), "layerNorm", "[4]", "[2, 3]");
    assertTorchError(() => a.sum([]), "sum", "empty dim list");
    assertTorchError(() => a.mean(0.5), "mean", "integer");
    assertTorchError(() => torch.ones([2]).clamp(), "clamp", "min or max");
    assertTorchError(() => torch.manualSeed(-1), "manualSeed", "-1");
  });
});

leakFreeTest("autocast with dtype f32 is refused, and leaves autocast off", () => {
  let ran = false;
  assertTorchError(
    () =>
      autocast("f32", () => {
        ran = true;
      }),
    "autocast",
    "bf16 or f16",
    "f32",
  );
  assertTorchError(() => autocast("f64", () => 0, "cpu"), "autocast", "f64");
  assert.equal(ran, false);
  assert.equal(isAutocastEnabled("cuda"), false);
  assert.equal(isAutocastEnabled("cpu"), false);
});

// --------------------------------------------------------------------------------------- disposal

leakFreeTest("use after dispose throws for every kind of method", () => {
  const base = liveTensors();
  const t = torch.ones([2, 3]);
  assert.deepEqual(t.shape, [2, 3]); // cache the shape: it must not outlive the tensor
  t.dispose();
  assert.equal(t.disposed, true);
  assert.equal(liveTensors(), base);
  assert.equal(t.toString(), "Tensor(disposed)");
  const uses: [string, () => unknown][] = [
    ["shape", () => t.shape],
    ["size", () => t.size(0)],
    ["ndim", () => t.ndim],
    ["numel", () => t.numel],
    ["dtype", () => t.dtype],
    ["device", () => t.device],
    ["strides", () => t.strides],
    ["requiresGrad", () => t.requiresGrad],
    ["requiresGrad_", () => t.requiresGrad_()],
    ["isContiguous", () => t.isContiguous()],
    ["toArray", () => t.toArray()],
    ["toList", () => t.toList()],
    ["item", () => t.item()],
    ["add", () => t.add(1)],
    ["matmul", () => t.matmul(t)],
    ["reshape", () => t.reshape([6])],
    ["split", () => t.split(1)],
    ["sum", () => t.sum()],
    ["to", () => t.to("f64")],
    ["clone", () => t.clone()],
    ["detach", () => t.detach()],
    ["add_", () => t.add_(1)],
    ["fill_", () => t.fill_(0)],
    ["backward", () => t.backward()],
    ["grad", () => t.grad],
    ["setGrad", () => t.setGrad(null)],
    ["zeroGrad", () => t.zeroGrad()],
  ];
  for (const [name, use] of uses) {
    assert.throws(use, (e) => {
      assert.ok(e instanceof TorchError, `${name}: ${String(e)}`);
      assert.equal(e.op, "tensor", name);
      assert.match(e.message, /use of a disposed tensor/, name);
      return true;
    });
  }
  // as an argument of another op
  scope(() => {
    const live = torch.ones([2, 3]);
    const args: [string, () => unknown][] = [
      ["add", () => live.add(t)],
      ["mul", () => live.mul(t)],
      ["matmul", () => torch.matmul(live, t)],
      ["cat", () => torch.cat([live, t])],
      ["stack", () => torch.stack([t, live])],
      ["where", () => torch.where(live.gt(0), live, t)],
      ["linear", () => torch.linear(live, t)],
      ["mseLoss", () => torch.mseLoss(live, t)],
      ["copy_", () => live.copy_(t)],
      ["setGrad", () => live.setGrad(t)],
      ["backward", () => live.backward(t)],
      ["clipGradNorm", () => torch.clipGradNorm([live, t])],
      ["zerosLike", () => torch.zerosLike(t)],
    ];
    for (const [name, use] of args) {
      assert.throws(use, (e) => e instanceof TorchError && /use of a disposed tensor/.test(e.message), name);
    }
    // the live tensor is unharmed
    assert.deepEqual(live.shape, [2, 3]);
  });
});

leakFreeTest("double dispose is a no-op", () => {
  const base = liveTensors();
  const t = torch.ones([3]);
  const alias = t.alias();
  assert.equal(liveTensors(), base + 2);
  t.dispose();
  assert.equal(liveTensors(), base + 1);
  t.dispose();
  t[Symbol.dispose]();
  assert.equal(liveTensors(), base + 1, "the second dispose freed nothing else");
  // the alias holds its own reference: still usable
  assert.deepEqual(Array.from(alias.toArray() as Float32Array), [1, 1, 1]);
  {
    using u = alias;
    u.dispose(); // `using` disposes again at the end of the block
  }
  assert.equal(liveTensors(), base);
  // a scope disposing an already disposed tensor is fine too
  scope(() => torch.ones([2]).dispose());
  assert.equal(liveTensors(), base);
});

// -------------------------------------------------------------------------------- invalid handles

/**
 * Wraps a handle that this test does not own in a Tensor. It must not be registered in a scope (the scope
 * would free a handle that is not its own); the tests dispose it only to check that this fails cleanly.
 */
function forged(handle: number): Tensor {
  assert.equal(currentScope(), null, "forged tensors must be made outside any scope");
  return new Tensor(handle);
}

leakFreeTest("an invalid handle reaching the shim is a clear error, not a crash", () => {
  const base = liveTensors();
  const fake = forged(12345678);
  assert.equal(fake.disposed, false);
  const invalid = /invalid tensor handle 12345678 \(freed, or never created\)/;
  assertTorchError(() => fake.shape, "shape", invalid);
  assertTorchError(() => fake.ndim, "ndim", invalid);
  assertTorchError(() => fake.numel, "numel", invalid);
  assertTorchError(() => fake.dtype, "dtype", invalid);
  assertTorchError(() => fake.requiresGrad, "requiresGrad", invalid);
  assertTorchError(() => fake.item(), "item", invalid);
  assertTorchError(() => fake.add(1), "add", invalid);
  assertTorchError(() => fake.exp(), "exp", invalid);
  assertTorchError(() => fake.reshape([2]), "reshape", invalid);
  assertTorchError(() => fake.sum(), "sum", invalid);
  assertTorchError(() => fake.backward(), "backward", invalid);
  assertTorchError(() => fake.grad, "grad", invalid);
  assertTorchError(() => fake.toArray(), "dtype", invalid); // toArray reads the dtype first
  scope(() => {
    const live = torch.ones([2]);
    assertTorchError(() => live.add(fake), "add", invalid);
    assertTorchError(() => live.matmul(fake), "matmul", invalid);
    assertTorchError(() => torch.linear(live, fake), "linear", "invalid weight handle 12345678");
    assertTorchError(() => torch.cat([live, fake]), "cat", "invalid tensor handle 12345678 at position 1");
    assertTorchError(() => live.backward(fake), "backward", /invalid optional tensor handle 12345678/);
    assertTorchError(() => torch.clipGradNorm([fake]), "clipGradNorm", "invalid param handle 12345678");
  });
  assert.equal(liveTensors(), base, "no handle was created or freed");
  // disposing it fails cleanly once; afterwards the object counts as disposed
  assertTorchError(() => fake.dispose(), "dispose", "invalid tensor handle 12345678");
  assert.equal(fake.disposed, true);
  fake.dispose();
  assert.equal(liveTensors(), base);
});

leakFreeTest("a null handle reaching the shim is a clear error", () => {
  const base = liveTensors();
  // new Tensor(0) is what a disposed tensor looks like: the binding stops it before the shim
  const zero = forged(0);
  assert.equal(zero.disposed, true);
  assertTorchError(() => zero.add(1), "tensor", "use of a disposed tensor");
  zero.dispose();
  // calling the shim directly with 0 where a tensor is required
  assert.equal(lib.ll_unary(0, 0), 0);
  assert.match(lastError(), /^neg: null tensor handle$/);
  assertTorchError(() => checkHandle(lib.ll_matmul(0, 0), "matmul"), "matmul", "null tensor handle");
  assertTorchError(() => checkStatus(lib.ll_dim(0), "ndim"), "ndim", "null tensor handle");
  assertTorchError(() => checkStatus(lib.ll_backward(0, 0, 0), "backward"), "backward", "null tensor handle");
  scope(() => {
    const x = torch.ones([2, 3]);
    assertTorchError(
      () => checkHandle(lib.ll_linear(x.handle, 0, 0), "linear"),
      "linear",
      "null weight handle",
    );
  });
  // freeing 0 is a no-op; a negative handle is invalid
  assert.equal(lib.ll_free(0), 0);
  assert.equal(lib.ll_free(-5), -1);
  assert.match(lastError(), /invalid tensor handle -5/);
  assert.equal(liveTensors(), base);
});

/** camelCase → the shim's snake_case op name. */
const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

leakFreeTest("every generated op code reaches the shim's op of the same name (enums of native/ll.h)", () => {
  // A null handle fails inside each op's guard, whose error names the op the code selected.
  for (const [name, code] of Object.entries(BINARY_OP)) {
    assert.equal(lib.ll_binary(code, 0, 0), 0);
    assert.equal(lastError(), `${snake(name)}: null tensor handle`, `binary code ${code}`);
  }
  for (const [name, code] of Object.entries(UNARY_OP)) {
    assert.equal(lib.ll_unary(code, 0), 0);
    assert.equal(
      lastError(),
      `${name === "geluTanh" ? "gelu" : snake(name)}: null tensor handle`,
      `unary ${code}`,
    );
  }
  for (const [name, code] of Object.entries(REDUCE_OP)) {
    assert.equal(lib.ll_reduce(code, 0, new Float64Array(1), 0, 0), 0);
    assert.equal(lastError(), `${name}: null tensor handle`, `reduce code ${code}`);
  }
  // and the binding's methods use them: a logical op and a reduction give their own answers
  scope(() => {
    const a = tensor([true, false, true]), b = tensor([true, true, false]);
    assert.deepEqual(Array.from(a.logicalXor(b).toArray() as Uint8Array), [0, 1, 1]);
    assert.equal(tensor([1, 5, 3]).amax().item(), 5);
    assert.equal(tensor([1, 5, 3]).amin().item(), 1);
  });
  // unknown codes are refused, not mapped to some op
  assert.equal(lib.ll_unary(99, 0), 0);
  assert.match(lastError(), /null tensor handle|unknown unary op code 99/);
});

leakFreeTest(
  "item(), numel and liveTensors come back through out-parameters: a failure is an error, never a value",
  () => {
    const t = torch.ones([2]);
    const h = t.handle;
    t.dispose();
    const out = new Float64Array([123]);
    assert.equal(lib.ll_item(h, out), -1);
    assert.match(lastError(), /^item: /);
    assert.equal(out[0], 123, "a failing ll_item leaves its output alone");
    assert.equal(lib.ll_numel(h, out), -1);
    assert.match(lastError(), /^numel: /);
    assert.equal(lib.ll_live_tensors(out), 0);
    assert.equal(out[0], liveTensors());
  },
);

leakFreeTest("a stale handle is detected, even after its slot is reused", () => {
  const base = liveTensors();
  const t = torch.ones([2]);
  const stale = t.handle;
  t.dispose();
  const fresh = torch.full([3], 7); // likely takes the same slot, with a new generation
  const fake = forged(stale);
  assertTorchError(() => fake.shape, "shape", `invalid tensor handle ${stale}`);
  assertTorchError(() => fake.add(1), "add", `invalid tensor handle ${stale}`);
  assertTorchError(() => fake.dispose(), "dispose", `invalid tensor handle ${stale}`);
  // the tensor that now lives in that slot is untouched
  assert.deepEqual(Array.from(fresh.toArray() as Float32Array), [7, 7, 7]);
  assert.equal(liveTensors(), base + 1);
  fresh.dispose();
  assert.equal(liveTensors(), base);
});

leakFreeTest("after an error, later operations work and report their own errors", () => {
  scope(() => {
    const a = torch.ones([2, 3]);
    assertTorchError(() => a.matmul(a), "matmul", "2x3");
    assert.deepEqual(a.matmul(a.transpose(0, 1)).shape, [2, 2]);
    assertTorchError(() => a.select(0, 9), "select", "index 9");
    assertTorchError(() => a.reshape([5]), "reshape", "[5]");
  });
});
