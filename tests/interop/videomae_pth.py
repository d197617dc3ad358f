"""VideoMAE's side of tests/interop_hf_test.ts: checkpoints in the layouts VideoMAE's and VideoMAEv2's code save
with torch.save, and our `export --format videomae` read back as VideoMAE's code reads it.

    python videomae_pth.py write SRC OUTDIR [--resize T H W]
    python videomae_pth.py check FILE SRC CONFIG_JSON

`write` takes SRC (a safetensors file whose `model.*` tensors are a state dict in VideoMAE's pretraining names,
as our checkpoints hold them) and writes OUTDIR/*.pth, each printed in a JSON list with what an import should
find: the pretraining layout under `model` beside `epoch`, `optimizer` (AdamW state with tensors) and an
`argparse.Namespace` under `args`; under `module` with torch.compile's `_orig_mod.` prefix; bare with
DistributedDataParallel's `module.` prefix; a fine-tuning checkpoint (encoder names bare, no final norm,
`fc_norm` and a classification `head`); the encoder under `backbone.` and under `encoder.` in a `state_dict`;
an encoder whose q/v biases are one joined `attn.qkv.bias` (with a nonzero key third); and the legacy
(pre-zip) format, which is refused. With --resize, OUTDIR/pos_resized.safetensors holds SRC's learned
`encoder.pos_embed` resized by `F.interpolate(mode="trilinear", align_corners=False)` from its grid (recorded
in SRC's metadata as `grid`) to T×H×W.

`check` loads FILE with `torch.load(weights_only=True)` as VideoMAE's fine-tuning code does and prints JSON:
the top-level keys, whether every tensor equals SRC's, whether the state dict loads strictly into a
VideoMAE-named pretraining model (tests/golden/make_video_mae_golden.py, CONFIG_JSON's sizes), and which keys
VideoMAE's fine-tuning loader (`encoder.`/`backbone.` stripped) leaves for the encoder.
"""

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
from make_video_mae_golden import Encoder, PretrainVideoMAE  # noqa: E402


def ours(path):
    return {k[6:]: v for k, v in load_file(path).items() if k.startswith("model.")}


def optimizer_state(sd):
    params = [torch.nn.Parameter(v.clone()) for v in list(sd.values())[:3]]
    opt = torch.optim.AdamW(params, lr=1e-3)
    sum((p * p).sum() for p in params).backward()
    opt.step()
    return opt.state_dict()


def write(a):
    sd = ours(a.src)
    os.makedirs(a.outdir, exist_ok=True)
    args = argparse.Namespace(model="pretrain_videomae_tiny", batch_size=8, lr=1.5e-4, mask_ratio=0.9)
    enc = {k[8:]: v for k, v in sd.items() if k.startswith("encoder.")}
    has_decoder = any(k.startswith("decoder.") for k in sd)
    cases = []

    def save(name, obj, **expect):
        path = os.path.join(a.outdir, name)
        torch.save(obj, path, **({"_use_new_zipfile_serialization": False} if name == "legacy.pth" else {}))
        cases.append({"file": path, **expect})

    extra = {"epoch": 3, "optimizer": optimizer_state(sd), "args": args}
    save("pretrain.pth", {"model": sd, **extra}, decoder=has_decoder, container="model")
    save("pretrain_compiled.pth", {"module": {f"_orig_mod.{k}": v for k, v in sd.items()}, "epoch": 3, "args": args},
         decoder=has_decoder, container="module")
    save("pretrain_ddp_bare.pth", {f"module.{k}": v for k, v in sd.items()}, decoder=has_decoder, container=None)
    dim = enc["patch_embed.proj.weight"].shape[0]
    g = torch.Generator().manual_seed(5)
    finetune = {k: v for k, v in enc.items() if not k.startswith("norm.")}
    finetune.update({
        "fc_norm.weight": torch.ones(dim), "fc_norm.bias": torch.zeros(dim),
        "head.weight": torch.randn(7, dim, generator=g), "head.bias": torch.zeros(7),
    })
    save("finetune.pth", {"model": finetune, **extra}, decoder=False, container="model", fresh_norm=True)
    save("backbone.pth", {"model": {f"backbone.{k}": v for k, v in enc.items()}, "epoch": 1}, decoder=False,
         container="model")
    save("encoder_prefix.pth", {"state_dict": {f"encoder.{k}": v for k, v in enc.items()}}, decoder=False,
         container="state_dict")
    joined = {}
    for k, v in enc.items():
        if k.endswith("attn.q_bias"):
            pre = k[: -len("q_bias")]
            key_third = torch.randn(v.shape, generator=g)
            joined[pre + "qkv.bias"] = torch.cat([v, key_third, enc[pre + "v_bias"]])
        elif not k.endswith("attn.v_bias"):
            joined[k] = v
    save("qkv_bias_joined.pth", joined, decoder=False, container=None)
    save("legacy.pth", {"model": sd}, refused=True)
    if a.resize:
        with safe_open(a.src, "pt") as f:
            grid = json.loads(f.metadata()["grid"])
        pos = sd["encoder.pos_embed"]  # [1, N, D]
        d = pos.shape[-1]
        x = pos.reshape(1, *grid, d).permute(0, 4, 1, 2, 3)
        y = F.interpolate(x, size=tuple(a.resize), mode="trilinear", align_corners=False)
        save_file({"pos": y.permute(0, 2, 3, 4, 1).reshape(1, -1, d).contiguous()},
                  os.path.join(a.outdir, "pos_resized.safetensors"))
    print(json.dumps(cases))


def check(a):
    c = json.loads(a.config)
    ckpt = torch.load(a.file, map_location="cpu", weights_only=True)
    sd = ckpt["model"]
    ref = ours(a.src)
    equal = sorted(sd) == sorted(ref) and all(torch.equal(sd[k], ref[k]) for k in ref)
    model = PretrainVideoMAE(c)
    model.load_state_dict(sd, strict=True)  # every name and shape of VideoMAE's pretraining model
    # VideoMAE's run_class_finetuning.py: take `model` (or `module`), strip `backbone.` / `encoder.`, load
    new = {}
    for k, v in sd.items():
        new[k[9:] if k.startswith("backbone.") else k[8:] if k.startswith("encoder.") else k] = v
    encoder = Encoder(c)
    report = encoder.load_state_dict(new, strict=False)
    print(json.dumps({
        "top": sorted(ckpt.keys()),
        "equal": equal,
        "tensors": len(sd),
        "finetune_missing": sorted(report.missing_keys),
        "finetune_unused": sorted(report.unexpected_keys),
    }))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("src")
    w.add_argument("outdir")
    w.add_argument("--resize", type=int, nargs=3)
    ch = sub.add_parser("check")
    ch.add_argument("file")
    ch.add_argument("src")
    ch.add_argument("config")
    a = p.parse_args()
    torch.set_num_threads(1)
    write(a) if a.cmd == "write" else check(a)


if __name__ == "__main__":
    main()
