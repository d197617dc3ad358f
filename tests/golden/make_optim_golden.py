#!/usr/bin/env python3
"""Generates tests/golden/optim.json: torch.optim.AdamW reference runs for tests/optim_test.ts.

Run from the repository root with the project's Python (the one libtorch was installed into):

    .venv/bin/python3 tests/golden/make_optim_golden.py

Setup: a handful of named parameters split into two param groups the way src/optim/adamw.ts splits them by
default (weight_decay 0.05 for matrices, 0 for biases, norms, pos_embed, mask_token and other <= 1-d tensors),
betas (0.9, 0.95), eps 1e-8, and 5 steps with fixed gradients and a per-step learning rate. Parameter
"late.weight" has no gradient for the first two steps (torch skips it: no decay, no state) and "frozen.weight"
never has one. The lrs are large so that weight decay moves the values far beyond the test tolerance.

The run is recorded for torch's foreach and fused implementations. Data is flat, row-major f32 values (stored
as the exact doubles); `after[k]` holds every parameter after step k+1, `state` the final exp_avg/exp_avg_sq/step.
"""
import json

import torch

torch.manual_seed(20240611)
torch.set_num_threads(1)

SHAPES = {
    "patch_embed.proj.weight": [4, 3],
    "patch_embed.proj.bias": [4],
    "pos_embed": [1, 2, 3],
    "mask_token": [1, 1, 3],
    "blocks.0.norm1.weight": [3],
    "blocks.0.attn.qkv.weight": [3, 2, 2],
    "blocks.0.attn.qkv.bias": [6],
    "late.weight": [2, 3],
    "frozen.weight": [3, 2],
}
NO_DECAY = [
    "patch_embed.proj.bias",
    "pos_embed",
    "mask_token",
    "blocks.0.norm1.weight",
    "blocks.0.attn.qkv.bias",
]
STEPS = 5
LRS = [0.1, 0.2, 0.15, 0.05, 0.1]
LATE_FROM = 2  # "late.weight" first gets a gradient at step index 2 (the third step)
BETAS = (0.9, 0.95)
WD = 0.05
EPS = 1e-8


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


init = {n: torch.randn(s) for n, s in SHAPES.items()}
grads = []
for k in range(STEPS):
    g = {}
    for n, s in SHAPES.items():
        if n == "frozen.weight" or (n == "late.weight" and k < LATE_FROM):
            continue
        g[n] = torch.randn(s) * (0.5 + k)  # growing scale, so the moments matter
    grads.append(g)


def run(impl):
    params = {n: t.clone().requires_grad_(n != "frozen.weight") for n, t in init.items()}
    decay = [params[n] for n in SHAPES if n not in NO_DECAY]
    no_decay = [params[n] for n in NO_DECAY]
    kw = {"fused": True} if impl == "fused" else {"foreach": True}
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LRS[0], betas=BETAS, eps=EPS, **kw,
    )
    after = []
    for k in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = LRS[k]
        for n, p in params.items():
            p.grad = grads[k][n].clone() if n in grads[k] else None
        opt.step()
        after.append({n: flat(p) for n, p in params.items()})
    state = {}
    for n, p in params.items():
        if p in opt.state:
            st = opt.state[p]
            state[n] = {
                "exp_avg": flat(st["exp_avg"]),
                "exp_avg_sq": flat(st["exp_avg_sq"]),
                "step": float(st["step"]),
            }
    return {"after": after, "state": state}


out = {
    "torch": torch.__version__,
    "betas": list(BETAS),
    "weight_decay": WD,
    "eps": EPS,
    "lrs": LRS,
    "shapes": SHAPES,
    "no_decay": NO_DECAY,
    "init": {n: flat(t) for n, t in init.items()},
    "grads": [{n: flat(t) for n, t in g.items()} for g in grads],
    "runs": {"foreach": run("foreach"), "fused": run("fused")},
}
with open("tests/golden/optim.json", "w") as f:
    json.dump(out, f, indent=None, separators=(",", ":"))
    f.write("\n")
print("wrote tests/golden/optim.json")
