"""PyTorch reference for bench/main.ts: the same loops, run in the same invocation.

Usage: python3 bench/reference.py '<json list of case names>'  ->  prints a JSON object name -> microseconds.
Each case is timed as the best of `repeats` rounds of `iters` iterations, exactly as bench/main.ts does.
"""
import json
import sys
import time

import torch

CASES = json.loads(sys.argv[1])


def best_us(fn, iters, repeats, sync=None):
    for _ in range(max(1, iters // 10)):
        fn()
    if sync:
        sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        if sync:
            sync()
        best = min(best, (time.perf_counter() - t0) / iters * 1e6)
    return best


out = {}
for case in CASES:
    name, iters, repeats = case["name"], case["iters"], case["repeats"]
    if name == "add_4_cpu":
        a = torch.tensor([1.0, 2, 3, 4])
        b = torch.tensor([1.0, 2, 3, 4])

        def f():
            c = torch.add(a, b)
            del c

        out[name] = best_us(f, iters, repeats)
    elif name == "matmul_512_cpu":
        torch.manual_seed(0)
        a = torch.randn(512, 512)
        b = torch.randn(512, 512)
        out[name] = best_us(lambda: torch.matmul(a, b), iters, repeats)
    elif name == "add_4_cuda":
        a = torch.tensor([1.0, 2, 3, 4], device="cuda")
        b = torch.tensor([1.0, 2, 3, 4], device="cuda")
        out[name] = best_us(lambda: torch.add(a, b), iters, repeats, torch.cuda.synchronize)
    elif name == "matmul_8192_bf16_cuda":
        a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        out[name] = best_us(lambda: torch.matmul(a, b), iters, repeats, torch.cuda.synchronize)
    elif name.startswith("mlp_"):
        # mlp_<layers>x<width>_<dtype>_<device>
        _, shape, dt, dev = name.split("_")
        layers, width = (int(v) for v in shape.split("x"))
        dtype = torch.float32 if dt == "f32" else torch.bfloat16
        torch.manual_seed(0)
        with torch.no_grad():
            ws = [(torch.randn(width, width, device=dev, dtype=dtype) / width**0.5).requires_grad_() for _ in range(layers)]
        x = torch.randn(64, width, device=dev, dtype=dtype)

        def f():
            h = x
            for w in ws:
                h = torch.nn.functional.gelu(torch.nn.functional.linear(h, w))
            h.mean().backward()
            for w in ws:
                w.grad = None

        out[name] = best_us(f, iters, repeats, torch.cuda.synchronize if dev == "cuda" else None)
    else:
        raise SystemExit(f"unknown case {name}")
print(json.dumps(out))
