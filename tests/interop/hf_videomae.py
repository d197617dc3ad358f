"""transformers' side of tests/interop_hf_test.ts: small random VideoMAE models saved by `save_pretrained`, with
transformers' outputs on a fixed clip, and our exported folders loaded by `from_pretrained`.

    python hf_videomae.py make OUT [--eps E] [--mean-pooling] [--v4-names] [--base-only] [--geometry F S]
                                   [--bin] [--max-shard-size SIZE]
    python hf_videomae.py load DIR IO OUT [--encoder-only]

`make` writes OUT/model (a VideoMAEForPreTraining, or with --base-only a VideoMAEModel, every parameter
randomised: norm weights, biases, the key bias and the mask token too, so a wrong mapping shows) and
OUT/io.safetensors: `x` [2, 3, T, H, W] (our layout; transformers takes [B, T, C, H, W]), `tokens` (the
encoder's last_hidden_state), `logits` (the pretraining decoder's predictions of the masked tokens `masked`,
with `keep` visible; not with --base-only) and, with --geometry F S, `x_geo` and `tokens_geo` of the same
weights in a model built for F frames of S×S (transformers builds its own position table for it). --v4-names
rewrites the weights in transformers 4's spelling (q_bias / v_bias, no key bias); --bin then writes them as
pytorch_model.bin (torch.save) instead of model.safetensors; --max-shard-size shards them (an index file).

`load` loads DIR with `from_pretrained(output_loading_info=True)` — VideoMAEForPreTraining (and VideoMAEModel),
or VideoMAEModel alone with --encoder-only — runs it on IO's `x` and writes OUT: `tokens` (last_hidden_state),
`pooled` (their mean) and, for the pretraining model, `logits` at IO's `keep`/`masked` when IO has them.
Prints the loading reports as JSON.
"""

import argparse
import json
import os

import torch
from safetensors.torch import load_file, save_file
from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEModel

TINY = dict(
    hidden_size=48,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=192,
    patch_size=8,
    tubelet_size=2,
    num_frames=4,
    image_size=16,
    decoder_hidden_size=24,
    decoder_num_hidden_layers=1,
    decoder_num_attention_heads=3,
    decoder_intermediate_size=96,
    use_mean_pooling=False,
    norm_pix_loss=False,
)
KEEP = [0, 2, 5, 7]
MASKED = [1, 3, 4, 6]


def randomise(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "layernorm" in name or name.endswith("norm.weight") or name.endswith("norm.bias"):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * noise)
            else:
                p.copy_(0.1 * noise)


def bool_mask(n, batch):
    m = torch.zeros(batch, n, dtype=torch.bool)
    m[:, MASKED] = True
    return m


def make(a):
    cfg = VideoMAEConfig(**TINY, layer_norm_eps=a.eps)
    if a.mean_pooling:
        cfg.use_mean_pooling = True
    torch.manual_seed(0)
    model = (VideoMAEModel if a.base_only else VideoMAEForPreTraining)(cfg).eval()
    randomise(model)
    folder = os.path.join(a.out, "model")
    model.save_pretrained(folder, **({"max_shard_size": a.max_shard_size} if a.max_shard_size else {}))
    if a.v4_names:
        path = os.path.join(folder, "model.safetensors")
        sd = load_file(path)
        renamed = {}
        for k, v in sd.items():
            if k.endswith("attention.attention.key.bias"):
                continue
            k = k.replace("attention.attention.query.bias", "attention.attention.q_bias")
            k = k.replace("attention.attention.value.bias", "attention.attention.v_bias")
            renamed[k] = v
        save_file(renamed, path, metadata={"format": "pt"})
    if a.bin:
        path = os.path.join(folder, "model.safetensors")
        torch.save(load_file(path), os.path.join(folder, "pytorch_model.bin"))
        os.remove(path)
    base = model if a.base_only else model.videomae
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, TINY["num_frames"], TINY["image_size"], TINY["image_size"], generator=g)
    out = {"x": x}
    with torch.no_grad():
        out["tokens"] = base(x.permute(0, 2, 1, 3, 4)).last_hidden_state.contiguous()
        if not a.base_only:
            n = out["tokens"].shape[1]
            out["logits"] = model(x.permute(0, 2, 1, 3, 4), bool_masked_pos=bool_mask(n, 2)).logits.contiguous()
            out["keep"] = torch.tensor([KEEP, KEEP], dtype=torch.int64)
            out["masked"] = torch.tensor([MASKED, MASKED], dtype=torch.int64)
        if a.geometry:
            frames, size = a.geometry
            cfg2 = VideoMAEConfig(**{**cfg.to_dict(), "num_frames": frames, "image_size": size})
            other = VideoMAEModel(cfg2).eval()
            other.load_state_dict(base.state_dict(), strict=True)
            x2 = torch.randn(2, 3, frames, size, size, generator=g)
            out["x_geo"] = x2
            out["tokens_geo"] = other(x2.permute(0, 2, 1, 3, 4)).last_hidden_state.contiguous()
    save_file(out, os.path.join(a.out, "io.safetensors"))
    print(json.dumps({"tokens": list(out["tokens"].shape), "eps": a.eps}))


def report(info):
    return {k: sorted(info[k]) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}


def load(a):
    io = load_file(a.io)
    x = io["x"].permute(0, 2, 1, 3, 4)
    result, out = {}, {}
    with torch.no_grad():
        if a.encoder_only:
            model, info = VideoMAEModel.from_pretrained(a.dir, output_loading_info=True)
            result["VideoMAEModel"] = report(info)
            tokens = model.eval()(x).last_hidden_state
        else:
            model, info = VideoMAEForPreTraining.from_pretrained(a.dir, output_loading_info=True)
            result["VideoMAEForPreTraining"] = report(info)
            model.eval()
            tokens = model.videomae(x).last_hidden_state
            if "keep" in io:
                n = tokens.shape[1]
                mask = torch.zeros(x.shape[0], n, dtype=torch.bool)
                mask.scatter_(1, io["masked"], True)
                out["logits"] = model(x, bool_masked_pos=mask).logits.contiguous()
            _, info2 = VideoMAEModel.from_pretrained(a.dir, output_loading_info=True)
            result["VideoMAEModel"] = report(info2)
    out["tokens"] = tokens.contiguous()
    out["pooled"] = tokens.mean(1).contiguous()
    save_file(out, a.out)
    print(json.dumps(result))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out")
    m.add_argument("--eps", type=float, default=1e-6)
    m.add_argument("--mean-pooling", action="store_true")
    m.add_argument("--v4-names", action="store_true")
    m.add_argument("--base-only", action="store_true")
    m.add_argument("--geometry", type=int, nargs=2)
    m.add_argument("--bin", action="store_true")
    m.add_argument("--max-shard-size")
    ld = sub.add_parser("load")
    ld.add_argument("dir")
    ld.add_argument("io")
    ld.add_argument("out")
    ld.add_argument("--encoder-only", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    make(a) if a.cmd == "make" else load(a)


if __name__ == "__main__":
    main()
