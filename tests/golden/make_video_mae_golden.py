"""Golden values for tests/model_test.ts: an independent PyTorch reference of the video MAE.

The reference is written plainly in torch.nn after VideoMAE's `modeling_pretrain.py` (pre-norm blocks with
LayerNorm eps 1e-6; attention with a fused bias-free qkv Linear plus separate q_bias / v_bias and a zero key
bias; MLP fc1 -> exact GELU -> fc2; a tubelet Conv3d patch embedding; the encoder over the visible tokens,
selected with a boolean mask as VideoMAE does; encoder_to_decoder without bias; mask_token; the decoder over
cat(visible + pos, mask_token + pos), predicting the last Nm tokens). One deliberate difference from VideoMAE,
matching layerlock: the fixed position embeddings are a 3-d sin-cos table (VideoMAE uses a 1-d table over the
flattened token index), implemented here from its description in src/nn/pos_embed.ts and, as VideoMAE's
table, stored in float32.

Every parameter is randomised (norm weights and all biases included) so bias and ordering bugs show. Parameters
and the input are float32 values, saved as F32; the whole computation is then done in float64 (the f32
values are exact in f64), and the outputs and gradients are saved as F64, so the test compares float64
against float64 with a tight tolerance.

The file's metadata also carries the state-dict names and shapes of this reference built at the `tiny` and
`base` sizes (on the meta device: nothing is allocated) and their parameter counts.

Regenerate with: .venv/bin/python3 tests/golden/make_video_mae_golden.py (the values are reproducible; the
safetensors library writes the metadata entries in a varying order, so the bytes of the header may change).
"""

import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))

# The small configuration (mirrored in tests/model_test.ts). The token grid is (2, 2, 3): height and width
# differ, and both widths split unevenly (encoder 32: time 12, height 10, width 10; decoder 20: 8, 6, 6), so
# axis mix-ups show.
CFG = dict(
    in_chans=3,
    frames=4,
    height=8,
    width=12,
    patch=4,
    tubelet=2,
    encoder_dim=32,
    encoder_depth=2,
    encoder_heads=4,
    mlp_ratio=4.0,
    decoder_dim=20,
    decoder_depth=1,
    decoder_heads=2,
)
BATCH = 2
NUM_VISIBLE = 5  # of 12 tokens; 7 masked


# ------------------------------------------------------------------------------------ position table


def sincos_1d(positions, d):
    """[positions, d]: d/2 sines then d/2 cosines of p * omega_i, omega_i = 1 / 10000^(i / (d/2))."""
    half = d // 2
    omega = 1.0 / np.power(10000.0, np.arange(half, dtype=np.float64) / half)
    angles = np.arange(positions, dtype=np.float64)[:, None] * omega[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_3d(grid, dim):
    """[T*H*W, dim] float32: per token (t, h, w), in (t, h, w) order, cat(time, height, width) tables."""
    t, h, w = grid
    dh = 2 * (dim // 6)
    dt = dim - 2 * dh
    et, eh, ew = sincos_1d(t, dt), sincos_1d(h, dh), sincos_1d(w, dh)
    tt, hh, ww = np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij")
    table = np.concatenate([et[tt.ravel()], eh[hh.ravel()], ew[ww.ravel()]], axis=1)
    # VideoMAE keeps its table as a FloatTensor; so does layerlock.
    return torch.from_numpy(table).float()


# ------------------------------------------------------------------------------ VideoMAE-style modules


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = None
            self.v_bias = None
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv_bias = None
        if self.q_bias is not None:
            qkv_bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias, requires_grad=False), self.v_bias))
        qkv = F.linear(input=x, weight=self.qkv.weight, bias=qkv_bias)
        qkv = qkv.reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * self.scale
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, -1)
        return self.proj(x)


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x


class PatchEmbed(nn.Module):
    def __init__(self, in_chans, embed_dim, tubelet, patch):
        super().__init__()
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=(tubelet, patch, patch), stride=(tubelet, patch, patch))

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.patch_embed = PatchEmbed(c["in_chans"], c["encoder_dim"], c["tubelet"], c["patch"])
        self.grid = (c["frames"] // c["tubelet"], c["height"] // c["patch"], c["width"] // c["patch"])
        self.register_buffer("pos_embed", sincos_3d(self.grid, c["encoder_dim"]).unsqueeze(0), persistent=False)
        self.blocks = nn.ModuleList(
            [Block(c["encoder_dim"], c["encoder_heads"], c["mlp_ratio"]) for _ in range(c["encoder_depth"])]
        )
        self.norm = nn.LayerNorm(c["encoder_dim"], eps=1e-6)

    def embed(self, x):
        return self.patch_embed(x) + self.pos_embed.type_as(x).detach()

    def forward(self, x, mask):
        x = self.embed(x)
        B, _, C = x.shape
        x_vis = x[~mask].reshape(B, -1, C)  # ~mask: visible, in token order
        for blk in self.blocks:
            x_vis = blk(x_vis)
        return self.norm(x_vis)


class Decoder(nn.Module):
    def __init__(self, c, num_classes):
        super().__init__()
        self.blocks = nn.ModuleList(
            [Block(c["decoder_dim"], c["decoder_heads"], c["mlp_ratio"]) for _ in range(c["decoder_depth"])]
        )
        self.norm = nn.LayerNorm(c["decoder_dim"], eps=1e-6)
        self.head = nn.Linear(c["decoder_dim"], num_classes)

    def forward(self, x, return_token_num):
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x[:, -return_token_num:]))


class PretrainVideoMAE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.encoder = Encoder(c)
        self.decoder = Decoder(c, c["tubelet"] * c["patch"] ** 2 * c["in_chans"])
        self.encoder_to_decoder = nn.Linear(c["encoder_dim"], c["decoder_dim"], bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c["decoder_dim"]))
        self.register_buffer(
            "pos_embed", sincos_3d(self.encoder.grid, c["decoder_dim"]).unsqueeze(0), persistent=False
        )

    def forward(self, x, mask):
        x_vis = self.encoder_to_decoder(self.encoder(x, mask))
        B, _, C = x_vis.shape
        pos = self.pos_embed.expand(B, -1, -1).type_as(x).detach()
        pos_vis = pos[~mask].reshape(B, -1, C)
        pos_mask = pos[mask].reshape(B, -1, C)
        x_full = torch.cat([x_vis + pos_vis, self.mask_token + pos_mask], dim=1)
        return self.decoder(x_full, pos_mask.shape[1])


def pixel_targets(x, tubelet, patch):
    """VideoMAE's normalised pixel targets: b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2 c), per-tubelet
    per-channel normalised with the unbiased std."""
    B, C, T, H, W = x.shape
    t, h, w = T // tubelet, H // patch, W // patch
    v = x.reshape(B, C, t, tubelet, h, patch, w, patch).permute(0, 2, 4, 6, 3, 5, 7, 1)
    v = v.reshape(B, t * h * w, tubelet * patch * patch, C)
    v = (v - v.mean(dim=-2, keepdim=True)) / (v.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6)
    return v.reshape(B, t * h * w, -1)


# ------------------------------------------------------------------------------------------- presets

PRESETS = {
    "tiny": dict(encoder_dim=192, encoder_depth=12, encoder_heads=4, decoder_dim=96, decoder_depth=2, decoder_heads=3),
    "base": dict(encoder_dim=768, encoder_depth=12, encoder_heads=12, decoder_dim=384, decoder_depth=4, decoder_heads=6),
}
PRESET_GEOMETRY = dict(in_chans=3, frames=16, height=224, width=224, patch=16, tubelet=2, mlp_ratio=4.0)


def preset_spec(name):
    with torch.device("meta"):
        m = PretrainVideoMAE({**PRESET_GEOMETRY, **PRESETS[name]})
    sd = m.state_dict()
    return [[k, list(v.shape)] for k, v in sd.items()], sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------------------------------------- main


def main():
    torch.manual_seed(1234)
    model = PretrainVideoMAE(CFG)
    g = torch.Generator().manual_seed(20240607)
    params = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name.endswith("norm.weight"):
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=g)
            elif p.dim() >= 2 and name != "mask_token":
                fan_in = p[0].numel()
                v = torch.randn(p.shape, generator=g) * (1.5 / math.sqrt(fan_in))
            else:  # biases, q_bias, v_bias, mask_token
                v = 0.3 * torch.randn(p.shape, generator=g)
            params[name] = v.float().contiguous()
    model.load_state_dict(params, strict=True)
    model.double()

    grid = model.encoder.grid
    n = grid[0] * grid[1] * grid[2]
    x32 = torch.randn(BATCH, CFG["in_chans"], CFG["frames"], CFG["height"], CFG["width"], generator=g).float()
    x = x32.double()
    keep, masked = [], []
    for _ in range(BATCH):
        perm = torch.randperm(n, generator=g)
        keep.append(perm[:NUM_VISIBLE].sort().values)
        masked.append(perm[NUM_VISIBLE:].sort().values)
    keep = torch.stack(keep).long()
    masked = torch.stack(masked).long()
    bool_mask = torch.zeros(BATCH, n, dtype=torch.bool)
    bool_mask.scatter_(1, masked, True)
    assert torch.equal(torch.nonzero(~bool_mask)[:, 1].reshape(BATCH, -1), keep)

    with torch.no_grad():
        embedded = model.encoder.embed(x)
        vis = embedded[~bool_mask].reshape(BATCH, -1, CFG["encoder_dim"])
        block0 = model.encoder.blocks[0](vis)
        encoded = model.encoder(x, bool_mask)
    pred = model(x, bool_mask)
    targets = pixel_targets(x, CFG["tubelet"], CFG["patch"])
    labels = targets[bool_mask].reshape(BATCH, -1, targets.shape[-1])
    loss = F.mse_loss(pred, labels)
    loss.backward()
    named = dict(model.named_parameters())

    out = {k: v for k, v in params.items()}
    out["input"] = x32.contiguous()
    out["keep"] = keep.contiguous()
    out["masked"] = masked.contiguous()
    out["pos.encoder"] = model.encoder.pos_embed[0].float().contiguous()
    out["pos.decoder"] = model.pos_embed[0].float().contiguous()
    out["out.embed"] = embedded.contiguous()
    out["out.block0"] = block0.contiguous()
    out["out.encoder"] = encoded.contiguous()
    out["out.pred"] = pred.detach().contiguous()
    out["out.targets"] = targets.contiguous()
    out["out.loss"] = loss.detach().reshape(1).contiguous()
    for name in ["encoder.blocks.0.attn.qkv.weight", "mask_token", "encoder.patch_embed.proj.weight"]:
        out["grad." + name] = named[name].grad.contiguous()

    meta = {"torch": torch.__version__, "config": json.dumps(CFG), "batch": str(BATCH)}
    for preset in PRESETS:
        spec, count = preset_spec(preset)
        meta[f"{preset}.state_dict"] = json.dumps(spec, separators=(",", ":"))
        meta[f"{preset}.num_params"] = str(count)
    path = os.path.join(HERE, "video_mae.safetensors")
    save_file(out, path, metadata=meta)
    print(f"wrote {path}: {os.path.getsize(path)} bytes, loss {loss.item():.6f}, base params {meta['base.num_params']}")


if __name__ == "__main__":
    main()
