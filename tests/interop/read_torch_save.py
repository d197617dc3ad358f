"""Loads a checkpoint written by saveTorchFile with `torch.load(path, weights_only=True)`, for tests/pickle_test.ts
to check that PyTorch reads what it wrote.

Usage: python read_torch_save.py INPUT_PATH OUTPUT_SAFETENSORS

Writes the tensors, as "key.name", to OUTPUT_SAFETENSORS (torch's `safetensors` package; contiguous copies, so
the values compare bit for bit) and prints JSON:
{"type": type of the loaded object, "groups": {key: type of its value}, "names": {key: [names in order]},
 "shared": [["key.a", "key.b"], ...] (pairs of tensors on one storage), "requires_grad": [names],
 "devices": [devices]}.
"""

import json
import sys

import torch
from safetensors.torch import save_file


def main() -> None:
    path, out = sys.argv[1], sys.argv[2]
    d = torch.load(path, weights_only=True)
    info = {"type": type(d).__name__, "groups": {}, "names": {}, "shared": [], "requires_grad": [], "devices": []}
    flat = {}
    for key, group in d.items():
        info["groups"][key] = type(group).__name__
        info["names"][key] = list(group)
        for name, t in group.items():
            flat[f"{key}.{name}"] = t
    names = list(flat)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ta, tb = flat[a], flat[b]
            if ta.untyped_storage().nbytes() > 0 and ta.untyped_storage().data_ptr() == tb.untyped_storage().data_ptr():
                info["shared"].append([a, b])
    info["requires_grad"] = [n for n, t in flat.items() if t.requires_grad]
    info["devices"] = sorted({str(t.device) for t in flat.values()})
    save_file({k: v.detach().clone().contiguous() for k, v in flat.items()}, out)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
