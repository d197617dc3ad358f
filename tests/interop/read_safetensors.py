"""Loads a safetensors file with Python's `safetensors` package and prints its contents as JSON, for
tests/safetensors_test.ts to compare with what it wrote.

Usage: python read_safetensors.py INPUT_PATH

Output: {"metadata": {...}, "tensors": {name: {"dtype", "shape", "values"}}}. Floating-point values are given
as their bit patterns (f16/bf16 as 16-bit, f32 as 32-bit, f64 as 64-bit unsigned integers, the 64-bit ones as
decimal strings) so the comparison is bit-exact; i64 values are decimal strings (JSON numbers lose precision
past 2**53); i32/u8 are numbers; bool values are true/false.
"""

import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

BITS = {
    torch.float16: (torch.int16, 1 << 16),
    torch.bfloat16: (torch.int16, 1 << 16),
    torch.float32: (torch.int32, 1 << 32),
    torch.float64: (torch.int64, 1 << 64),
}


def describe(t: torch.Tensor) -> dict:
    flat = t.reshape(-1)
    if t.dtype in BITS:
        int_type, modulus = BITS[t.dtype]
        values = [v % modulus for v in flat.view(int_type).tolist()]
        if t.dtype == torch.float64:
            values = [str(v) for v in values]
    elif t.dtype == torch.int64:
        values = [str(v) for v in flat.tolist()]
    else:
        values = flat.tolist()
    return {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape), "values": values}


def main() -> None:
    path = sys.argv[1]
    tensors = load_file(path)
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
    print(json.dumps({"metadata": metadata, "tensors": {k: describe(v) for k, v in tensors.items()}}))


if __name__ == "__main__":
    main()
