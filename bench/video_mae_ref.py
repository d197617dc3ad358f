"""A PyTorch reference of layerlock's VideoMAE training step, for bench/train_step.ts (same architecture,
same shapes, same masking and loss): run side by side on the same card.

Usage: python3 bench/video_mae_ref.py '<json: {preset dims..., frames, size, patch, tubelet, batch, steps, warmup, amp}>'
Prints JSON: {"ms_per_step": ..., "peak_bytes": ..., "params": ...}.
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = round(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def gather(x, ids):
    return x.gather(1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class VideoMAE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.grid = (c["frames"] // c["tubelet"], c["size"] // c["patch"], c["size"] // c["patch"])
        n = self.grid[0] * self.grid[1] * self.grid[2]
        k = (c["tubelet"], c["patch"], c["patch"])
        self.patch_embed = nn.Conv3d(3, c["encoderDim"], k, k)
        self.register_buffer("pos", torch.randn(1, n, c["encoderDim"]) * 0.02)
        self.blocks = nn.ModuleList([Block(c["encoderDim"], c["encoderHeads"], c["mlpRatio"]) for _ in range(c["encoderDepth"])])
        self.norm = nn.LayerNorm(c["encoderDim"], eps=1e-6)
        self.encoder_to_decoder = nn.Linear(c["encoderDim"], c["decoderDim"], bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c["decoderDim"]))
        self.register_buffer("dpos", torch.randn(1, n, c["decoderDim"]) * 0.02)
        self.dblocks = nn.ModuleList([Block(c["decoderDim"], c["decoderHeads"], c["mlpRatio"]) for _ in range(c["decoderDepth"])])
        self.dnorm = nn.LayerNorm(c["decoderDim"], eps=1e-6)
        self.head = nn.Linear(c["decoderDim"], 3 * c["tubelet"] * c["patch"] ** 2)

    def forward(self, x, keep, masked):
        t = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos
        h = gather(t, keep)
        for blk in self.blocks:
            h = blk(h)
        h = self.encoder_to_decoder(self.norm(h))
        b, nm = masked.shape
        pos = self.dpos.expand(b, -1, -1)
        h = torch.cat([h + gather(pos, keep), self.mask_token.expand(b, nm, -1) + gather(pos, masked)], 1)
        for blk in self.dblocks:
            h = blk(h)
        return self.head(self.dnorm(h[:, -nm:]))


def targets(x, tubelet, patch):
    b, c, t, h, w = x.shape
    p = x.reshape(b, c, t // tubelet, tubelet, h // patch, patch, w // patch, patch)
    p = p.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, -1, tubelet * patch * patch, c)
    p = (p - p.mean(2, keepdim=True)) / (p.var(2, keepdim=True).sqrt() + 1e-6)
    return p.flatten(2)


def tube_mask(b, grid, ratio, device):
    t, h, w = grid
    hw = h * w
    nm = math.floor(ratio * hw)
    perm = torch.rand(b, hw, device=device).argsort(1)
    off = torch.arange(0, t * hw, hw, device=device).reshape(1, t, 1)
    keep = perm[:, : hw - nm].sort(1).values.unsqueeze(1).add(off).reshape(b, -1)
    masked = perm[:, hw - nm :].sort(1).values.unsqueeze(1).add(off).reshape(b, -1)
    return keep, masked


def main():
    c = json.loads(sys.argv[1])
    dev = c["device"]
    torch.manual_seed(0)
    model = VideoMAE(c).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=True)
    params = sum(p.numel() for p in model.parameters())
    # "compile": a torch.compile mode for the model (forward and backward; the mask, targets and the fused AdamW
    # stay eager, as a researcher would write it), e.g. "max-autotune-no-cudagraphs", "reduce-overhead", "default"
    mode = c.get("compile")
    if mode:
        model = torch.compile(model, mode=mode)
    x = torch.randn(c["batch"], 3, c["frames"], c["size"], c["size"], device=dev)

    def step():
        keep, masked = tube_mask(c["batch"], model.grid, 0.9, dev)
        with torch.no_grad():
            tgt = targets(x, c["tubelet"], c["patch"])
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=c["amp"] and dev == "cuda"):
            pred = model(x, keep, masked)
        loss = F.mse_loss(pred.float(), gather(tgt, masked))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t_compile = time.perf_counter()
    for _ in range(c["warmup"]):
        step()
    if dev == "cuda":
        torch.cuda.synchronize()
    warmup_s = time.perf_counter() - t_compile
    cuda = dev == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    best = float("inf")
    for _ in range(c["rounds"]):
        t0 = time.perf_counter()
        for _ in range(c["steps"]):
            step()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / c["steps"] * 1e3)
    peak = torch.cuda.max_memory_allocated() if cuda else 0
    # where a step's time goes: forward (mask, targets, model, loss), backward, optimizer (synchronised phases)
    def now():
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    phases = {"forward": float("inf"), "backward": float("inf"), "optimizer": float("inf")}
    for _ in range(c["steps"]):
        t0 = now()
        keep, masked = tube_mask(c["batch"], model.grid, 0.9, dev)
        with torch.no_grad():
            tgt = targets(x, c["tubelet"], c["patch"])
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=c["amp"] and dev == "cuda"):
            pred = model(x, keep, masked)
        loss = F.mse_loss(pred.float(), gather(tgt, masked))
        t1 = now()
        loss.backward()
        t2 = now()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = now()
        for k, v in zip(phases, (t1 - t0, t2 - t1, t3 - t2)):
            phases[k] = min(phases[k], v * 1e3)
    print(json.dumps({"ms_per_step": best, "peak_bytes": peak, "params": params, "compile": mode or None,
                      "phases": phases, "warmup_s": warmup_s}))


main()
