"""Writes torch.save checkpoints for tests/pickle_test.ts to read with loadTorchFile, each beside the tensors it
should give: NAME.pth and NAME.expected.safetensors (the flattened tensors, written by torch's `safetensors`
package, with the names in file order as JSON under the metadata key "order"). Also writes the malformed inputs
the reader must refuse, and fuzz/NNN.pth: a small checkpoint whose data.pkl has random bytes changed, in a zip
with valid CRCs, so that it is libtorch's unpickler, not the zip reader, that meets the damage.

Usage: python write_torch_save.py OUTPUT_DIR [FUZZ_COUNT]

Flattening, as loadTorchFile does it: dicts and lists/tuples are walked (keys as str(key), indices as numbers,
joined with "."), tensors kept, everything else skipped; a container is not entered again inside itself.
"""

import argparse
import collections
import json
import os
import random
import sys
import zipfile

import torch
from safetensors.torch import save_file

try:
    import numpy as np
except ImportError:  # numpy scalars are one case among many; the rest is written without it
    np = None


class Attention(torch.nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)


class Block(torch.nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(dim)
        self.attn = Attention(dim)


class Encoder(torch.nn.Module):
    def __init__(self, dim: int, depth: int) -> None:
        super().__init__()
        self.patch_embed = torch.nn.Conv3d(3, dim, (2, 4, 4), (2, 4, 4))
        self.blocks = torch.nn.ModuleList(Block(dim) for _ in range(depth))
        self.register_buffer("pos_embed", torch.randn(1, 8, dim))


class Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder(8, 2)
        self.head = torch.nn.Linear(8, 3)


def flatten(obj, prefix: str, out: dict, open_ids: set) -> None:
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
        return
    if isinstance(obj, dict):
        items = [(str(k), v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple)) and not isinstance(obj, torch.Size):
        items = [(str(i), v) for i, v in enumerate(obj)]
    else:
        return
    if id(obj) in open_ids:
        return
    open_ids.add(id(obj))
    for k, v in items:
        flatten(v, f"{prefix}.{k}" if prefix else k, out, open_ids)
    open_ids.discard(id(obj))


def write_case(out_dir: str, name: str, obj, **save_kwargs) -> None:
    torch.save(obj, os.path.join(out_dir, f"{name}.pth"), **save_kwargs)
    flat: dict = {}
    flatten(obj, "", flat, set())
    # safetensors wants each tensor on its own storage, contiguous
    tensors = {k: v.detach().clone().contiguous() for k, v in flat.items()}
    save_file(tensors, os.path.join(out_dir, f"{name}.expected.safetensors"), metadata={"order": json.dumps(list(flat))})


def random_bits(shape, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    """Arbitrary bit patterns (NaN payloads, infinities, subnormals, -0 for floats) of a dtype."""
    n = 1
    for s in shape:
        n *= s
    size = torch.tensor([], dtype=dtype).element_size()
    raw = torch.randint(0, 256, (n * size,), dtype=torch.uint8, generator=gen)
    return raw.view(dtype).reshape(shape)


def videomae_layout(gen: torch.Generator) -> dict:
    model = Model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(2, 3, 4, 8, 8, generator=gen)
    feats = model.encoder.patch_embed(x).flatten(2).transpose(1, 2)
    for blk in model.encoder.blocks:
        feats = feats + blk.attn.proj(blk.attn.qkv(blk.norm1(feats))[..., :8])
    model.head(feats.mean(1)).sum().backward()
    opt.step()
    scaler = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000, "_growth_tracker": 3}
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": 7,
        "scaler": scaler,
        "args": argparse.Namespace(lr=1e-3, model="vit_base"),
    }


def odd_values(gen: torch.Generator) -> dict:
    cyclic: list = [torch.arange(3, dtype=torch.int64)]
    cyclic.append(cyclic)
    with_attrs = collections.OrderedDict(w=torch.ones(2))
    with_attrs.note = "an attribute"  # pickled as the OrderedDict's state (BUILD)
    odd = {
        "args": argparse.Namespace(lr=1e-3, model="vit_base", seed=2**40, neg=-(2**35), shape=(16, 224), tags={"a"}),
        "big": 2**62,
        "blob": b"\x00\x01bytes",
        "size": torch.Size([2, 3]),
        "dtype": torch.float16,
        "device": torch.device("cpu"),
        "none": None,
        "flag": True,
        "nested": [{"w": torch.randn(2, 2, generator=gen)}, (torch.zeros(1), None, "text")],
        "cyclic": cyclic,
        "params": [torch.nn.Parameter(torch.randn(3, generator=gen))],
        "empty": collections.OrderedDict(),
        "with_attrs": with_attrs,
        7: torch.full((2,), 7.0),
        False: torch.tensor(0.5),
        "scalar": torch.tensor(3.25, dtype=torch.float64),
        "zero_size": torch.zeros(0, 4),
    }
    if np is not None:
        odd["np"] = np.float64(1.5)
        odd["np_array"] = np.arange(4)
    return odd


def zip_with(path: str, records: dict) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in records.items():
            z.writestr(f"archive/{name}", data)


def records_of(path: str) -> dict:
    with zipfile.ZipFile(path) as z:
        prefix = z.namelist()[0].split("/")[0] + "/"
        return {n[len(prefix):]: z.read(n) for n in z.namelist()}


def main() -> None:
    out = sys.argv[1]
    fuzz_count = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)

    # (a) VideoMAE's layout: model, optimizer, epoch, scaler and an argparse.Namespace
    write_case(out, "videomae", videomae_layout(gen))
    # (b) under "module", with the prefixes of a wrapped or compiled encoder
    sd = Model().state_dict()
    prefixed = collections.OrderedDict()
    for i, (k, v) in enumerate(sd.items()):
        prefixed[("encoder." if i % 2 else "_orig_mod.encoder.") + k] = v
    write_case(out, "module", {"module": prefixed})
    # (c) a bare state dict
    write_case(out, "bare", Model().state_dict())
    # (d) dtypes, with arbitrary bit patterns
    write_case(
        out,
        "dtypes",
        {
            "bf16": random_bits((3, 5), torch.bfloat16, gen),
            "f16": random_bits((4, 2), torch.float16, gen),
            "f32": random_bits((2, 3, 2), torch.float32, gen),
            "i64": random_bits((5,), torch.int64, gen),
            "f32_special": torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 1e-45]),
            "i64_extremes": torch.tensor([2**63 - 1, -(2**63), 2**53 + 1]),
        },
    )
    # (e) tensors sharing one storage: views, a transpose, a strided column, the same tensor twice, another dtype
    base = torch.arange(24, dtype=torch.float32)
    write_case(
        out,
        "views",
        {
            "base": base,
            "view": base[4:16].view(3, 4),
            "t": base.view(4, 6).t(),
            "col": base.view(4, 6)[:, 1],
            "again": base,
        },
    )
    write_case(out, "odd", odd_values(gen))

    # malformed or unsupported inputs
    torch.save(Model().state_dict(), os.path.join(out, "legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save({"c": torch.ones(2, dtype=torch.complex64)}, os.path.join(out, "complex.pth"))
    torch.save({"s": torch.eye(3).to_sparse()}, os.path.join(out, "sparse.pth"))
    torch.save({"w": torch.ones(2)}, os.path.join(out, "protocol4.pth"), pickle_protocol=4)
    zip_with(os.path.join(out, "no_data_pkl.pth"), {"version": b"3\n", "byteorder": b"little"})
    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    torch.jit.save(scripted, os.path.join(out, "torchscript.pt"))
    good = os.path.join(out, "bare.pth")
    recs = records_of(good)
    short = dict(recs)
    short["data/0"] = recs["data/0"][:-4]
    zip_with(os.path.join(out, "short_record.pth"), short)
    missing = {k: v for k, v in recs.items() if k != "data/1"}
    zip_with(os.path.join(out, "missing_record.pth"), missing)
    # a million tuples, each inside the next (one TUPLE1 opcode each): libtorch frees them recursively
    zip_with(os.path.join(out, "deep.pth"), {"data.pkl": b"\x80\x02K\x01" + b"\x85" * 1_000_000 + b".", "version": b"3\n"})

    # fuzz: data.pkl of a small checkpoint with 1 to 8 random bytes replaced, inserted or removed
    if fuzz_count > 0:
        small = os.path.join(out, "small.pth")
        sm = Model().state_dict()
        extras = {"args": argparse.Namespace(lr=1e-3, tags={"a"}, shape=torch.Size([2, 3])), "epoch": 3, "big": 2**40}
        if np is not None:
            extras["np"] = np.float64(0.5)
        torch.save({"model": sm, "views": [base, base[2:5]], **extras}, small)
        recs = records_of(small)
        pkl = recs["data.pkl"]
        rng = random.Random(1234)
        fuzz_dir = os.path.join(out, "fuzz")
        os.makedirs(fuzz_dir, exist_ok=True)
        for i in range(fuzz_count):
            b = bytearray(pkl)
            for _ in range(rng.randint(1, 8)):
                at = rng.randrange(len(b))
                kind = rng.random()
                if kind < 0.6:
                    b[at] = rng.randrange(256)
                elif kind < 0.8:
                    b.insert(at, rng.randrange(256))
                else:
                    del b[at]
            if rng.random() < 0.2:
                b = b[: rng.randrange(len(b))]
            r = dict(recs)
            r["data.pkl"] = bytes(b)
            zip_with(os.path.join(fuzz_dir, f"{i:03d}.pth"), r)
    print(json.dumps({"numpy": np is not None}))


if __name__ == "__main__":
    main()
