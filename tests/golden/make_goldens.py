#!/usr/bin/env python3
"""Generates tests/golden/ops.json: PyTorch reference outputs for tests/ops_test.ts.

Deterministic: a fixed seed, small inputs made here, one CPU thread. Run from the repository root with the
project's Python (the one libtorch was installed into):

    .venv/bin/python3 tests/golden/make_goldens.py

Each case is {name, op, inputs: [{shape, dtype, data}], args, expected: [{shape, dtype, data}]} and may carry
`tol: {rtol, atol}` to override the per-dtype tolerance of ops_test.ts. Data is flat, row-major; f16/bf16 values
are stored widened to f32 (exact); non-finite floats are the strings "nan", "inf", "-inf"; bools are 0/1.
`stats` holds analytic moments for the statistical tests of the random initialisers.
"""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20240607)
torch.set_num_threads(1)

DT = {
    torch.float32: "f32",
    torch.float64: "f64",
    torch.float16: "f16",
    torch.bfloat16: "bf16",
    torch.int32: "i32",
    torch.int64: "i64",
    torch.uint8: "u8",
    torch.bool: "bool",
}
TD = {v: k for k, v in DT.items()}


def num(v):
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
    return v


def enc(t):
    t = t.detach()
    dt = DT[t.dtype]
    flat = t.reshape(-1)
    if dt in ("f16", "bf16"):
        flat = flat.float()
    if dt == "bool":
        flat = flat.to(torch.uint8)
    return {"shape": list(t.shape), "dtype": dt, "data": [num(v) for v in flat.tolist()]}


CASES = []


def case(name, op, inputs, args, expected, tol=None):
    if isinstance(expected, torch.Tensor):
        expected = [expected]
    c = {
        "name": name,
        "op": op,
        "inputs": [enc(t) for t in inputs],
        "args": args,
        "expected": [enc(t) for t in expected],
    }
    if tol is not None:
        c["tol"] = tol
    CASES.append(c)


def randn(*shape, dtype=torch.float32):
    return torch.randn(shape, dtype=torch.float64).to(dtype)


def pos(*shape, dtype=torch.float32):
    return (torch.rand(shape, dtype=torch.float64) * 2 + 0.1).to(dtype)


# ------------------------------------------------------------------ creation
for dt in ("f32", "f64", "i32", "i64", "u8", "bool", "bf16", "f16"):
    case(f"zeros {dt}", "zeros", [], {"shape": [2, 3], "dtype": dt}, torch.zeros(2, 3, dtype=TD[dt]))
    case(f"ones {dt}", "ones", [], {"shape": [3, 1, 2], "dtype": dt}, torch.ones(3, 1, 2, dtype=TD[dt]))
case("zeros default f32 0-d", "zeros", [], {"shape": []}, torch.zeros([]))
case("ones default f32", "ones", [], {"shape": [4]}, torch.ones(4))
case("full f32", "full", [], {"shape": [2, 2], "value": 2.5}, torch.full((2, 2), 2.5))
case("full i64", "full", [], {"shape": [3], "value": -7, "dtype": "i64"}, torch.full((3,), -7, dtype=torch.int64))
case("full f64", "full", [], {"shape": [1, 3], "value": 0.1, "dtype": "f64"}, torch.full((1, 3), 0.1, dtype=torch.float64))
case("full bf16", "full", [], {"shape": [2], "value": 0.1, "dtype": "bf16"}, torch.full((2,), 0.1, dtype=torch.bfloat16))
case("arange end", "arange", [], {"start": 5}, torch.arange(5))
case("arange start end", "arange", [], {"start": 2, "end": 9}, torch.arange(2, 9))
case("arange negative step", "arange", [], {"start": 10, "end": 1, "step": -3}, torch.arange(10, 1, -3))
case("arange float step", "arange", [], {"start": 0, "end": 1, "step": 0.25}, torch.arange(0, 1, 0.25))
case("arange f64", "arange", [], {"start": -1.5, "end": 2, "step": 0.5, "dtype": "f64"},
     torch.arange(-1.5, 2, 0.5, dtype=torch.float64))
case("arange i32", "arange", [], {"start": 0, "end": 6, "step": 2, "dtype": "i32"},
     torch.arange(0, 6, 2, dtype=torch.int32))
case("eye square", "eye", [], {"n": 3}, torch.eye(3))
case("eye rect", "eye", [], {"n": 2, "m": 4}, torch.eye(2, 4))
case("eye i64", "eye", [], {"n": 3, "m": 2, "dtype": "i64"}, torch.eye(3, 2, dtype=torch.int64))

# tensor(...) from typed arrays of each host dtype: rebuilt by the harness, returned unchanged.
for name, t in [
    ("f32", randn(2, 3)),
    ("f64", randn(3, 2, dtype=torch.float64)),
    ("i32", torch.randint(-1000, 1000, (2, 2, 2), dtype=torch.int32)),
    ("i64", torch.randint(-(2**40), 2**40, (5,), dtype=torch.int64)),
    ("u8", torch.randint(0, 256, (4, 3), dtype=torch.uint8)),
    ("bool", torch.rand(3, 3) > 0.5),
    ("bf16", randn(2, 4, dtype=torch.bfloat16)),
    ("f16", randn(4, 2, dtype=torch.float16)),
    ("f32 0-d", randn()),
    ("f32 empty", randn(0, 3)),
]:
    case(f"tensor from typed array {name}", "identity", [t], {}, t.clone())

# tensor(Uint8Array, {dtype: "bool"}): any nonzero byte is true
u8b = torch.tensor([0, 2, 1, 255, 0, 128], dtype=torch.uint8)
case("tensor from Uint8Array as bool", "u8AsBool", [u8b], {}, u8b.bool())

# tensor(...) from nested arrays (args.data), with and without a dtype.
NESTED = [
    ("f32 default", [[1.5, -2.0, 3.25], [0.1, 1e-3, -7.0]], None),
    ("bool default", [[True, False], [False, True]], None),
    ("f64", [[0.1, 0.2], [0.3, -1e-12]], "f64"),
    ("i64 truncates", [2.7, -2.7, 5.0, 1e12], "i64"),
    ("i32", [[1, -2], [3, 4]], "i32"),
    ("u8", [0, 7, 255], "u8"),
    ("bool from numbers", [0, 2, -1, 0], "bool"),
    ("bf16", [0.1, -3.3, 1000.5], "bf16"),
    ("f16", [[0.1, -3.3], [65504.0, 1e-4]], "f16"),
    ("scalar", 3.5, None),
]
for name, data, dt in NESTED:
    kw = {} if dt is None else {"dtype": TD[dt]}
    args = {"data": data}
    if dt is not None:
        args["dtype"] = dt
    case(f"tensor nested {name}", "tensorNested", [], args, torch.tensor(data, **kw))

# dtype conversions
conv_src = torch.tensor([0.0, -0.0, 1.0, -1.5, 2.7, -2.7, 0.1, 1e-3, 3.14159, 1000.7, -65504.0, 1e-8], dtype=torch.float32)
for dst in ("bf16", "f16", "i64", "i32", "bool", "f64", "u8"):
    src = conv_src.abs() if dst == "u8" else conv_src
    case(f"to f32->{dst}", "to", [src], {"dtype": dst}, src.to(TD[dst]))
for src_dt in ("bf16", "f16", "i64", "bool", "f64", "u8", "i32"):
    if src_dt == "bool":
        src = torch.rand(10) > 0.4
    elif src_dt in ("i64", "i32"):
        src = torch.randint(-50, 50, (10,)).to(TD[src_dt])
    elif src_dt == "u8":
        src = torch.randint(0, 256, (10,)).to(torch.uint8)
    else:
        src = randn(10).to(TD[src_dt])
    case(f"to {src_dt}->f32", "to", [src], {"dtype": "f32"}, src.float())
b16 = randn(6, dtype=torch.bfloat16)
case("to bf16->f16", "to", [b16], {"dtype": "f16"}, b16.half())
case("float/double/half/bfloat16/long/bool methods", "convMethods", [conv_src], {},
     [conv_src.float(), conv_src.double(), conv_src.half(), conv_src.bfloat16(), conv_src.long(), conv_src.bool()])

# ------------------------------------------------------------------ views and indexing
x = randn(2, 3, 4)
case("reshape", "reshape", [x], {"shape": [4, 6]}, x.reshape(4, 6))
case("reshape -1", "reshape", [x], {"shape": [-1, 2]}, x.reshape(-1, 2))
xt = x.transpose(0, 2)
case("reshape of transposed (copy)", "reshapeT", [x], {"shape": [24]}, xt.reshape(24))
case("view", "view", [x], {"shape": [6, -1]}, x.view(6, -1))
case("permute", "permute", [x], {"dims": [2, 0, 1]}, x.permute(2, 0, 1))
case("permute negative", "permute", [x], {"dims": [-1, -2, -3]}, x.permute(-1, -2, -3))
case("transpose", "transpose", [x], {"dim0": 0, "dim1": 2}, x.transpose(0, 2))
case("transpose negative", "transpose", [x], {"dim0": -1, "dim1": 1}, x.transpose(-1, 1))
case("contiguous of permuted", "contiguousP", [x], {"dims": [1, 2, 0]}, x.permute(1, 2, 0).contiguous())
case("flatten all", "flatten", [x], {}, x.flatten())
case("flatten 1..2", "flatten", [x], {"start": 1, "end": 2}, x.flatten(1, 2))
case("flatten 0..1", "flatten", [x], {"start": 0, "end": 1}, x.flatten(0, 1))
case("unsqueeze 0", "unsqueeze", [x], {"dim": 0}, x.unsqueeze(0))
case("unsqueeze -1", "unsqueeze", [x], {"dim": -1}, x.unsqueeze(-1))
y = randn(1, 3, 1, 2)
case("squeeze all", "squeeze", [y], {}, y.squeeze())
case("squeeze dim", "squeeze", [y], {"dim": 2}, y.squeeze(2))
case("squeeze non-1 dim is a no-op", "squeeze", [y], {"dim": 1}, y.squeeze(1))
z = randn(3, 1)
case("expand", "expand", [z], {"shape": [2, 3, 4]}, z.expand(2, 3, 4))
case("expand -1", "expand", [z], {"shape": [-1, 5]}, z.expand(-1, 5))
case("narrow", "narrow", [x], {"dim": 2, "start": 1, "length": 2}, x.narrow(2, 1, 2))
case("narrow negative dim", "narrow", [x], {"dim": -2, "start": 0, "length": 1}, x.narrow(-2, 0, 1))
case("select", "select", [x], {"dim": 1, "index": 2}, x.select(1, 2))
case("select negative index", "select", [x], {"dim": 0, "index": -1}, x.select(0, -1))
a, b, c = randn(2, 3), randn(1, 3), randn(2, 3)
case("cat dim 0", "cat", [a, b, c], {"dim": 0}, torch.cat([a, b, c], 0))
case("cat dim -1", "cat", [a, c], {"dim": -1}, torch.cat([a, c], -1))
case("stack dim 0", "stack", [a, c], {"dim": 0}, torch.stack([a, c], 0))
case("stack dim 2", "stack", [a, c], {"dim": 2}, torch.stack([a, c], 2))
s = randn(7, 2)
case("split uneven", "split", [s], {"size": 3, "dim": 0}, list(s.split(3, 0)))
case("split dim 1", "split", [s], {"size": 1, "dim": 1}, list(s.split(1, 1)))
case("chunk", "chunk", [s], {"chunks": 3, "dim": 0}, list(s.chunk(3, 0)))
case("chunk dim -1", "chunk", [s], {"chunks": 2, "dim": -1}, list(s.chunk(2, -1)))
m = randn(4, 5)
idx = torch.tensor([3, 0, 0, 2])
case("indexSelect dim 0", "indexSelect", [m, idx], {"dim": 0}, m.index_select(0, idx))
idx32 = torch.tensor([4, 1], dtype=torch.int32)
case("indexSelect dim 1 i32 index", "indexSelect", [m, idx32], {"dim": 1}, m.index_select(1, idx32))
gi = torch.randint(0, 5, (4, 3))
case("gather dim 1", "gather", [m, gi], {"dim": 1}, m.gather(1, gi))
gi0 = torch.randint(0, 4, (2, 5))
case("gather dim 0", "gather", [m, gi0], {"dim": 0}, m.gather(0, gi0))
dst = torch.zeros(3, 5)
src = randn(2, 5)
si = torch.tensor([[0, 1, 2, 0, 1], [2, 0, 1, 1, 2]])  # no duplicate targets per column: deterministic
case("scatter dim 0", "scatter", [dst, si, src], {"dim": 0}, dst.scatter(0, si, src))
si1 = torch.tensor([[4, 0], [1, 3]])
src1 = randn(2, 2)
case("scatter dim 1", "scatter", [m[:2].clone(), si1, src1], {"dim": 1}, m[:2].scatter(1, si1, src1))
mask = torch.rand(4, 5) > 0.5
case("maskedFill", "maskedFill", [m, mask], {"value": -1e9}, m.masked_fill(mask, -1e9))
rowmask = torch.tensor([True, False, False, True, False])
case("maskedFill broadcast", "maskedFill", [m, rowmask], {"value": 0.5}, m.masked_fill(rowmask, 0.5))
mi = torch.randint(-5, 5, (6,))
mim = mi > 0
case("maskedFill i64", "maskedFill", [mi, mim], {"value": 9}, mi.masked_fill(mim, 9))
cond = torch.rand(3, 1, 4) > 0.5
wa, wb = randn(3, 2, 4), randn(2, 1)
case("where broadcast", "where", [cond, wa, wb], {}, torch.where(cond, wa, wb))
wa64 = randn(3, 2, 4, dtype=torch.float64)
case("where f64", "where", [cond, wa64, wa64.neg()], {}, torch.where(cond, wa64, -wa64))
u = randn(3, 6)
case("argsort last", "argsort", [u], {}, u.argsort())
case("argsort dim 0 descending", "argsort", [u], {"dim": 0, "descending": True}, u.argsort(0, descending=True))
tv, ti = u.topk(3)
case("topk", "topk", [u], {"k": 3}, [tv, ti])
tv, ti = u.topk(2, dim=0, largest=False)
case("topk smallest dim 0", "topk", [u], {"k": 2, "dim": 0, "largest": False}, [tv, ti])

# ------------------------------------------------------------------ elementwise
A, B = randn(3, 4), randn(4)
Bc = randn(3, 1)
A64, B64 = randn(2, 3, dtype=torch.float64), randn(2, 1, dtype=torch.float64)
Ai = torch.randint(-10, 10, (3, 4))
Bi = torch.randint(1, 5, (4,))
case("add broadcast", "add", [A, B], {}, A + B)
case("add alpha", "add", [A, Bc], {"alpha": -2.5}, torch.add(A, Bc, alpha=-2.5))
case("add scalar", "add", [A], {"scalar": 1.25}, A + 1.25)
case("add scalar alpha", "add", [A], {"scalar": 1.5, "alpha": 2}, torch.add(A, 1.5, alpha=2))
case("add f64", "add", [A64, B64], {}, A64 + B64)
case("add i64 stays i64", "add", [Ai, Bi], {}, Ai + Bi)
case("add i64 scalar", "add", [Ai], {"scalar": 3}, Ai + 3)
case("add i64 + f32 promotes", "add", [Ai, A], {}, Ai + A)
case("add i64 alpha", "add", [Ai, Bi], {"alpha": 3}, torch.add(Ai, Bi, alpha=3))
case("sub broadcast", "sub", [A, Bc], {}, A - Bc)
case("sub scalar", "sub", [A], {"scalar": 0.75}, A - 0.75)
case("mul broadcast", "mul", [A, B], {}, A * B)
case("mul scalar", "mul", [A], {"scalar": -3.0}, A * -3.0)
case("mul f64", "mul", [A64, B64], {}, A64 * B64)
Dp = pos(4)
case("div broadcast", "div", [A, Dp], {}, A / Dp)
case("div scalar", "div", [A], {"scalar": 4.0}, A / 4.0)
case("div i64 is true division", "div", [Ai, Bi], {}, Ai / Bi)
case("div i64 by scalar", "div", [Ai], {"scalar": 4}, Ai / 4)
case("neg", "neg", [A], {}, -A)
case("neg i64", "neg", [Ai], {}, -Ai)
case("abs", "abs", [A], {}, A.abs())
case("abs i64", "abs", [Ai], {}, Ai.abs())
P = pos(3, 4)
case("pow tensor exponent", "pow", [P, B], {}, P.pow(B))
case("pow scalar 2", "pow", [A], {"scalar": 2}, A.pow(2))
case("pow scalar 0.5", "pow", [P], {"scalar": 0.5}, P.pow(0.5))
case("pow scalar -1.5", "pow", [P], {"scalar": -1.5}, P.pow(-1.5))
case("pow i64 scalar", "pow", [Ai], {"scalar": 3}, Ai.pow(3))
case("sqrt", "sqrt", [P], {}, P.sqrt())
case("sqrt negative is nan", "sqrt", [torch.tensor([-1.0, 0.0, 4.0])], {}, torch.tensor([-1.0, 0.0, 4.0]).sqrt())
case("rsqrt", "rsqrt", [P], {}, P.rsqrt())
case("exp", "exp", [A], {}, A.exp())
case("log", "log", [P], {}, P.log())
case("log of 0 and -1", "log", [torch.tensor([0.0, -1.0, 1.0])], {}, torch.tensor([0.0, -1.0, 1.0]).log())
case("tanh", "tanh", [A * 3], {}, (A * 3).tanh())
case("sigmoid", "sigmoid", [A * 3], {}, (A * 3).sigmoid())
case("relu", "relu", [A], {}, A.relu())
G = randn(50) * 3
case("gelu exact", "gelu", [G], {}, F.gelu(G))
case("gelu tanh", "gelu", [G], {"approximate": "tanh"}, F.gelu(G, approximate="tanh"))
case("gelu f64", "gelu", [G.double()], {}, F.gelu(G.double()))
case("exp bf16", "exp", [A.bfloat16()], {}, A.bfloat16().exp())
case("sigmoid f16", "sigmoid", [A.half()], {}, A.half().sigmoid())
case("clamp min", "clamp", [A], {"min": -0.5}, A.clamp(min=-0.5))
case("clamp max", "clamp", [A], {"max": 0.25}, A.clamp(max=0.25))
case("clamp both", "clamp", [A], {"min": -0.5, "max": 0.5}, A.clamp(-0.5, 0.5))
case("clamp i64", "clamp", [Ai], {"min": -3, "max": 4}, Ai.clamp(-3, 4))
Ac = A.clone()
Ac[0, :2] = B[:2]  # some equal elements for eq/le/ge
for op in ("eq", "ne", "lt", "le", "gt", "ge"):
    case(f"{op} broadcast", op, [Ac, B], {}, getattr(torch, op)(Ac, B))
    case(f"{op} scalar", op, [Ai], {"scalar": 2}, getattr(torch, op)(Ai, 2))
case("eq scalar float", "eq", [torch.tensor([0.5, 1.0, 0.5])], {"scalar": 0.5}, torch.tensor([0.5, 1.0, 0.5]) == 0.5)
L1 = torch.rand(3, 4) > 0.5
L2 = torch.rand(4) > 0.5
for op in ("logicalAnd", "logicalOr", "logicalXor"):
    fn = {"logicalAnd": torch.logical_and, "logicalOr": torch.logical_or, "logicalXor": torch.logical_xor}[op]
    case(f"{op} bool broadcast", op, [L1, L2], {}, fn(L1, L2))
    case(f"{op} float nonzero", op, [Ai.float(), Bi - 2], {}, fn(Ai.float(), Bi - 2))
case("logicalNot bool", "logicalNot", [L1], {}, L1.logical_not())
case("logicalNot float", "logicalNot", [Ai.float()], {}, Ai.float().logical_not())
case("maximum broadcast", "maximum", [A, B], {}, torch.maximum(A, B))
case("minimum broadcast", "minimum", [A, Bc], {}, torch.minimum(A, Bc))
case("maximum scalar", "maximum", [A], {"scalar": 0.1}, A.clamp(min=0.1))
case("minimum scalar", "minimum", [A], {"scalar": -0.1}, A.clamp(max=-0.1))
case("maximum i64", "maximum", [Ai, Bi], {}, torch.maximum(Ai, Bi))
case("maximum nan propagates", "maximum", [torch.tensor([float("nan"), 1.0]), torch.tensor([0.0, float("nan")])], {},
     torch.maximum(torch.tensor([float("nan"), 1.0]), torch.tensor([0.0, float("nan")])))
case("rsub", "rsub", [A], {"scalar": 2.0}, 2.0 - A)
case("square/reciprocal/sign/floor/sin/cos/erf", "misc", [A], {},
     [A.square(), A.reciprocal(), A.sign(), A.floor(), A.sin(), A.cos(), A.erf()])

# ------------------------------------------------------------------ reductions
R = randn(3, 4, 5)
R64 = randn(4, 6, dtype=torch.float64)
case("sum all", "sum", [R], {}, R.sum())
case("sum dim", "sum", [R], {"dim": 1}, R.sum(1))
case("sum dims keepdim", "sum", [R], {"dim": [0, 2], "keepdim": True}, R.sum([0, 2], keepdim=True))
case("sum negative dim", "sum", [R], {"dim": -1}, R.sum(-1))
case("sum i64", "sum", [Ai], {"dim": 0}, Ai.sum(0))
case("sum bool counts", "sum", [L1], {}, L1.sum())
case("sum f64", "sum", [R64], {"dim": 1}, R64.sum(1))
case("mean all", "mean", [R], {}, R.mean())
case("mean dim keepdim", "mean", [R], {"dim": 2, "keepdim": True}, R.mean(2, keepdim=True))
case("mean dims", "mean", [R], {"dim": [0, 1]}, R.mean([0, 1]))
case("mean f64", "mean", [R64], {"dim": 0}, R64.mean(0))
for corr in (0, 1):
    case(f"var all c{corr}", "var", [R], {"correction": corr}, R.var(correction=corr))
    case(f"var dim c{corr}", "var", [R], {"dim": 1, "correction": corr}, R.var(1, correction=corr))
    case(f"var dims keepdim c{corr}", "var", [R], {"dim": [0, 2], "correction": corr, "keepdim": True},
         R.var([0, 2], correction=corr, keepdim=True))
    case(f"std all c{corr}", "std", [R], {"correction": corr}, R.std(correction=corr))
    case(f"std dim c{corr}", "std", [R], {"dim": -1, "correction": corr}, R.std(-1, correction=corr))
    case(f"std dims keepdim f64 c{corr}", "std", [R64], {"dim": [1], "correction": corr, "keepdim": True},
         R64.std([1], correction=corr, keepdim=True))
case("var default correction", "var", [R], {"dim": 0}, R.var(0))
case("std default correction", "std", [R], {}, R.std())
case("max all", "max", [R], {}, R.max())
case("min all", "min", [R], {}, R.min())
mv, mi_ = R.max(1)
case("max dim", "max", [R], {"dim": 1}, [mv, mi_])
mv, mi_ = R.max(-1, keepdim=True)
case("max dim keepdim", "max", [R], {"dim": -1, "keepdim": True}, [mv, mi_])
mv, mi_ = R.min(0)
case("min dim", "min", [R], {"dim": 0}, [mv, mi_])
mv, mi_ = R.min(2, keepdim=True)
case("min dim keepdim", "min", [R], {"dim": 2, "keepdim": True}, [mv, mi_])
Ap = torch.randperm(12).reshape(3, 4) - 6  # distinct values: unambiguous indices
mv, mi_ = Ap.max(1)
case("max dim i64", "max", [Ap], {"dim": 1}, [mv, mi_])
case("amax all", "amax", [R], {}, R.amax())
case("amax dims", "amax", [R], {"dim": [0, 2]}, R.amax([0, 2]))
case("amax dim keepdim", "amax", [R], {"dim": 1, "keepdim": True}, R.amax(1, keepdim=True))
case("amin all", "amin", [R], {}, R.amin())
case("amin dim", "amin", [R], {"dim": -1}, R.amin(-1))
case("amin dims keepdim", "amin", [R], {"dim": [1, 2], "keepdim": True}, R.amin([1, 2], keepdim=True))
case("argmax all", "argmax", [R], {}, R.argmax())
case("argmax dim", "argmax", [R], {"dim": 1}, R.argmax(1))
case("argmax dim keepdim", "argmax", [R], {"dim": -1, "keepdim": True}, R.argmax(-1, keepdim=True))
for p in (1, 2):
    case(f"norm p{p} all", "norm", [R], {"p": p}, torch.linalg.vector_norm(R, p))
    case(f"norm p{p} dim", "norm", [R], {"p": p, "dim": 2}, torch.linalg.vector_norm(R, p, dim=2))
    case(f"norm p{p} dims keepdim", "norm", [R], {"p": p, "dim": [0, 1], "keepdim": True},
         torch.linalg.vector_norm(R, p, dim=[0, 1], keepdim=True))
case("norm default p", "norm", [R64], {}, torch.linalg.vector_norm(R64))

# ------------------------------------------------------------------ nn
M1, M2 = randn(3, 4), randn(4, 5)
case("matmul 2d", "matmul", [M1, M2], {}, M1 @ M2)
Bt1, Bt2 = randn(2, 1, 3, 4), randn(3, 4, 2)
case("matmul broadcast batch", "matmul", [Bt1, Bt2], {}, Bt1 @ Bt2)
v4 = randn(4)
case("matmul matrix-vector", "matmul", [M1, v4], {}, M1 @ v4)
case("matmul vector-matrix", "matmul", [v4, M2], {}, v4 @ M2)
case("matmul vector-vector", "matmul", [v4, v4], {}, v4 @ v4)
case("matmul f64", "matmul", [M1.double(), M2.double()], {}, M1.double() @ M2.double())
case("matmul bf16", "matmul", [M1.bfloat16(), M2.bfloat16()], {}, M1.bfloat16() @ M2.bfloat16())
bb1, bb2 = randn(3, 2, 4), randn(3, 4, 3)
case("bmm", "bmm", [bb1, bb2], {}, torch.bmm(bb1, bb2))
case("matmul function", "matmulFn", [bb1, bb2], {}, torch.matmul(bb1, bb2))
lx, lw, lb = randn(2, 3, 6), randn(4, 6), randn(4)
case("linear with bias", "linear", [lx, lw, lb], {}, F.linear(lx, lw, lb))
case("linear without bias", "linear", [lx, lw], {}, F.linear(lx, lw))
case("linear 1-d input", "linear", [lx[0, 0], lw, lb], {}, F.linear(lx[0, 0], lw, lb))
cx = randn(2, 3, 5, 6, 7)
cw = randn(4, 3, 3, 2, 3) * 0.3
cb = randn(4)
case("conv3d default", "conv3d", [cx, cw, cb], {}, F.conv3d(cx, cw, cb))
case("conv3d stride padding", "conv3d", [cx, cw, cb], {"stride": 2, "padding": 1},
     F.conv3d(cx, cw, cb, stride=2, padding=1))
case("conv3d per-dim stride padding no bias", "conv3d", [cx, cw], {"stride": [1, 2, 3], "padding": [0, 1, 2]},
     F.conv3d(cx, cw, None, stride=(1, 2, 3), padding=(0, 1, 2)))
case("conv3d dilation", "conv3d", [cx, cw, cb], {"dilation": [2, 1, 2], "padding": 1},
     F.conv3d(cx, cw, cb, dilation=(2, 1, 2), padding=1))
cwg = randn(6, 1, 1, 2, 2)
cxg = randn(1, 3, 2, 4, 4)
case("conv3d groups", "conv3d", [cxg, cwg], {"groups": 3}, F.conv3d(cxg, cwg, None, groups=3))
# a patch embedding as in a video ViT: kernel == stride
pe_w = randn(8, 3, 2, 4, 4) * 0.1
pe_x = randn(1, 3, 4, 8, 8)
pe_b = randn(8)
case("conv3d patch embed", "conv3d", [pe_x, pe_w, pe_b], {"stride": [2, 4, 4]}, F.conv3d(pe_x, pe_w, pe_b, stride=(2, 4, 4)))
lnx = randn(2, 3, 8) * 2 + 1
lnw, lnb = randn(8), randn(8)
case("layerNorm affine", "layerNorm", [lnx, lnw, lnb], {"shape": [8]}, F.layer_norm(lnx, [8], lnw, lnb))
case("layerNorm no affine", "layerNorm", [lnx], {"shape": [8]}, F.layer_norm(lnx, [8]))
case("layerNorm weight only", "layerNorm", [lnx, lnw], {"shape": [8]}, F.layer_norm(lnx, [8], lnw))
lnw2 = randn(3, 8)
case("layerNorm 2 dims eps", "layerNorm", [lnx, lnw2, lnw2 * 0.5], {"shape": [3, 8], "eps": 1e-3},
     F.layer_norm(lnx, [3, 8], lnw2, lnw2 * 0.5, eps=1e-3))
case("layerNorm f64", "layerNorm", [lnx.double(), lnw.double(), lnb.double()], {"shape": [8]},
     F.layer_norm(lnx.double(), [8], lnw.double(), lnb.double()))
sx = randn(2, 3, 5) * 4
for d in (-1, 1, 0):
    case(f"softmax dim {d}", "softmax", [sx], {"dim": d}, sx.softmax(d))
    case(f"logSoftmax dim {d}", "logSoftmax", [sx], {"dim": d}, sx.log_softmax(d))
case("softmax function", "softmaxFn", [sx], {"dim": -1}, F.softmax(sx, -1))
case("logSoftmax function", "logSoftmaxFn", [sx], {"dim": 2}, F.log_softmax(sx, 2))
case("softmax large logits", "softmax", [torch.tensor([[1000.0, 1001.0, -1000.0]])], {"dim": -1},
     torch.tensor([[1000.0, 1001.0, -1000.0]]).softmax(-1))
q, k, v = randn(2, 3, 4, 8), randn(2, 3, 6, 8), randn(2, 3, 6, 8)
case("sdpa no mask", "sdpa", [q, k, v], {}, F.scaled_dot_product_attention(q, k, v))
bmask = torch.rand(4, 6) > 0.3
bmask[:, 0] = True  # no fully masked rows
case("sdpa bool mask", "sdpa", [q, k, v, bmask], {}, F.scaled_dot_product_attention(q, k, v, attn_mask=bmask))
fmask = randn(2, 1, 4, 6)
case("sdpa float mask", "sdpa", [q, k, v, fmask], {}, F.scaled_dot_product_attention(q, k, v, attn_mask=fmask))
qc, kc, vc = randn(2, 2, 5, 4), randn(2, 2, 5, 4), randn(2, 2, 5, 4)
case("sdpa causal", "sdpa", [qc, kc, vc], {"isCausal": True}, F.scaled_dot_product_attention(qc, kc, vc, is_causal=True))
case("sdpa scale", "sdpa", [q, k, v], {"scale": 0.5}, F.scaled_dot_product_attention(q, k, v, scale=0.5))
case("sdpa f64 causal", "sdpa", [qc.double(), kc.double(), vc.double()], {"isCausal": True},
     F.scaled_dot_product_attention(qc.double(), kc.double(), vc.double(), is_causal=True))
mi1, mt1 = randn(3, 4), randn(3, 4)
for red in ("mean", "sum", "none"):
    case(f"mseLoss {red}", "mseLoss", [mi1, mt1], {"reduction": red}, F.mse_loss(mi1, mt1, reduction=red))
case("mseLoss default", "mseLoss", [mi1, mt1], {}, F.mse_loss(mi1, mt1))
logits = randn(6, 5) * 2
tgt = torch.tensor([0, 4, 2, 2, 1, 3])
cew = pos(5)
tgt_ign = torch.tensor([0, -100, 2, 7, 1, 7])
for red in ("mean", "sum", "none"):
    case(f"crossEntropy {red}", "crossEntropy", [logits, tgt], {"reduction": red},
         F.cross_entropy(logits, tgt, reduction=red))
    case(f"crossEntropy weights {red}", "crossEntropy", [logits, tgt, cew], {"reduction": red},
         F.cross_entropy(logits, tgt, weight=cew, reduction=red))
    case(f"crossEntropy labelSmoothing {red}", "crossEntropy", [logits, tgt], {"reduction": red, "labelSmoothing": 0.1},
         F.cross_entropy(logits, tgt, reduction=red, label_smoothing=0.1))
    case(f"crossEntropy ignoreIndex {red}", "crossEntropy", [logits, torch.where(tgt_ign == 7, 3, tgt_ign)],
         {"reduction": red}, F.cross_entropy(logits, torch.where(tgt_ign == 7, 3, tgt_ign), reduction=red))
    tgt7c = torch.where(tgt_ign == -100, 0, tgt_ign)  # class 7 does not exist: ignored by ignore_index=7
    case(f"crossEntropy ignoreIndex 7 weights smoothing {red}", "crossEntropy", [logits, tgt7c, cew],
         {"reduction": red, "ignoreIndex": 7, "labelSmoothing": 0.2},
         F.cross_entropy(logits, tgt7c, weight=cew, reduction=red, ignore_index=7, label_smoothing=0.2))
case("crossEntropy default", "crossEntropy", [logits, tgt], {}, F.cross_entropy(logits, tgt))
ptgt = torch.softmax(randn(6, 5), -1)
case("crossEntropy probability targets", "crossEntropy", [logits, ptgt], {}, F.cross_entropy(logits, ptgt))
lg3 = randn(2, 5, 3)
tg3 = torch.randint(0, 5, (2, 3))
case("crossEntropy [N, C, d] logits", "crossEntropy", [lg3, tg3], {}, F.cross_entropy(lg3, tg3))
case("crossEntropy f64", "crossEntropy", [logits.double(), tgt], {"labelSmoothing": 0.05},
     F.cross_entropy(logits.double(), tgt, label_smoothing=0.05))

# ------------------------------------------------------------------ in place (the harness mutates a clone)
I1, I2 = randn(3, 4), randn(4)
case("add_ tensor", "add_", [I1, I2], {}, I1.clone().add_(I2))
case("add_ tensor alpha", "add_", [I1, I2], {"alpha": -0.5}, I1.clone().add_(I2, alpha=-0.5))
case("add_ scalar", "add_", [I1], {"scalar": 2.5}, I1.clone().add_(2.5))
case("add_ scalar alpha", "add_", [I1], {"scalar": 2.5, "alpha": 2}, I1.clone().add_(2.5, alpha=2))
case("add_ i64", "add_", [Ai, Bi], {"alpha": 2}, Ai.clone().add_(Bi, alpha=2))
case("mul_ tensor", "mul_", [I1, I2], {}, I1.clone().mul_(I2))
case("mul_ scalar", "mul_", [I1], {"scalar": -1.5}, I1.clone().mul_(-1.5))
case("mul_ i64 scalar", "mul_", [Ai], {"scalar": 3}, Ai.clone().mul_(3))
case("copy_ broadcast", "copy_", [I1, I2], {}, I1.clone().copy_(I2))
case("copy_ converts dtype", "copy_", [I1, Ai], {}, I1.clone().copy_(Ai))
case("copy_ into i64 truncates", "copy_", [Ai, I1 * 5], {}, Ai.clone().copy_(I1 * 5))
case("zero_", "zero_", [I1], {}, I1.clone().zero_())
case("fill_", "fill_", [I1], {"value": 0.3}, I1.clone().fill_(0.3))
case("fill_ i64", "fill_", [Ai], {"value": -4}, Ai.clone().fill_(-4))
case("fill_ bf16", "fill_", [I1.bfloat16()], {"value": 0.3}, I1.bfloat16().fill_(0.3))
# in-place updates through views write into the base tensor
W = I1.clone()
W.narrow(1, 1, 2).fill_(7.0)
case("fill_ through narrow view", "viewWrite", [I1], {"view": "narrow", "value": 7.0}, W)
W = I1.clone()
W.select(0, 2).mul_(-2.0)
case("mul_ through select view", "viewWrite", [I1], {"view": "select", "value": -2.0}, W)
W = I1.clone()
Wv = randn(4, 3)
W.t().add_(Wv, alpha=0.5)
case("add_ through transposed view", "viewWrite", [I1, Wv], {"view": "transpose", "value": 0.5}, W)
W = I1.clone()
W.view(12).narrow(0, 5, 7).zero_()
case("zero_ through view + narrow", "viewWrite", [I1], {"view": "view"}, W)

# ------------------------------------------------------------------ AdamW
def adamw_case(name, shapes, hyper, nsteps):
    params0 = [randn(*s) for s in shapes]
    grads = [[randn(*s) for s in shapes] for _ in range(nsteps)]
    ps = [p.clone().requires_grad_(True) for p in params0]
    opt = torch.optim.AdamW(ps, lr=hyper["lr"], betas=(hyper.get("beta1", 0.9), hyper.get("beta2", 0.999)),
                            weight_decay=hyper.get("weightDecay", 0.01), eps=hyper.get("eps", 1e-8),
                            foreach=False)
    per_step = []
    for s in range(nsteps):
        for p, g in zip(ps, grads[s]):
            p.grad = g.clone()
        opt.step()
        per_step.append([p.detach().clone() for p in ps])
    st = [opt.state[p] for p in ps]
    expected = [t for step in per_step for t in step]
    expected += [x["exp_avg"] for x in st] + [x["exp_avg_sq"] for x in st] + [x["step"].float() for x in st]
    inputs = params0 + [g for step in grads for g in step]
    for impl in ("fused", "foreach"):
        case(f"adamwStep {name} {impl}", "adamw", inputs, {"n": len(shapes), "steps": nsteps, "hyper": {**hyper, "impl": impl}},
             expected)


adamw_case("defaults", [(4, 3), (5,)], {"lr": 1e-2}, 3)
adamw_case("custom hyper", [(2, 3, 2)], {"lr": 0.1, "beta1": 0.8, "beta2": 0.95, "weightDecay": 0.2, "eps": 1e-6}, 2)
adamw_case("no weight decay", [(6,), (2, 2)], {"lr": 3e-3, "weightDecay": 0.0}, 3)

# ------------------------------------------------------------------ seeded random streams (same generator as libtorch)
torch.manual_seed(1234)
case("randn after manualSeed(1234)", "seeded", [], {"seed": 1234, "fn": "randn", "shape": [3, 5]}, torch.randn(3, 5))
torch.manual_seed(7)
case("rand after manualSeed(7)", "seeded", [], {"seed": 7, "fn": "rand", "shape": [10]}, torch.rand(10))
torch.manual_seed(99)
case("randint after manualSeed(99)", "seeded", [], {"seed": 99, "fn": "randint", "low": -5, "high": 5, "shape": [12]},
     torch.randint(-5, 5, (12,)))
torch.manual_seed(20240607)


# ------------------------------------------------------------------ analytic moments for the statistical tests
def Phi(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def phi(x):
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def trunc_moments(mu, sd, a, b):
    al, be = (a - mu) / sd, (b - mu) / sd
    Z = Phi(be) - Phi(al)
    mean = mu + sd * (phi(al) - phi(be)) / Z
    var = sd * sd * (1 + (al * phi(al) - be * phi(be)) / Z - ((phi(al) - phi(be)) / Z) ** 2)
    return {"mean": mean, "std": math.sqrt(var)}


STATS = {
    "truncNormal": [
        {"args": [0, 1, -2, 2], **trunc_moments(0, 1, -2, 2)},
        {"args": [1, 2, -1, 4], **trunc_moments(1, 2, -1, 4)},
        {"args": [0, 0.02, -0.04, 0.04], **trunc_moments(0, 0.02, -0.04, 0.04)},
    ],
}

# sanity: torch's own trunc_normal_ agrees with the analytic moments
for s in STATS["truncNormal"]:
    t = torch.nn.init.trunc_normal_(torch.empty(200_000, dtype=torch.float64), *s["args"])
    assert abs(t.mean().item() - s["mean"]) < 0.02 * s["args"][1], s
    assert abs(t.std().item() - s["std"]) < 0.02 * s["args"][1], s

out = {"torch": torch.__version__, "cases": CASES, "stats": STATS}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops.json")
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"), allow_nan=False)
    f.write("\n")
print(f"wrote {len(CASES)} cases, {os.path.getsize(path)} bytes to {path}")
