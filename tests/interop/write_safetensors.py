"""Writes a safetensors file with Python's `safetensors` package, for tests/safetensors_test.ts to read.

Usage: python write_safetensors.py OUTPUT_PATH

The values are fixed here and repeated in the test; keep the two in step.
"""

import sys

import torch
from safetensors.torch import save_file


def main() -> None:
    out = sys.argv[1]
    tensors = {
        "f32": torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4 - 0.5,
        "f64": torch.tensor([1 / 3, -2.0, 1e300], dtype=torch.float64),
        "f16": torch.tensor([1.0, -2.5, 0.1, 65504.0], dtype=torch.float16),
        "bf16": torch.tensor([[1.0, -2.5], [0.1, 3.0e38]], dtype=torch.bfloat16),
        "i64": torch.tensor([2**62 + 1, -(2**40), 0], dtype=torch.int64),
        "i32": torch.tensor([-7, 2**31 - 1], dtype=torch.int32),
        "u8": torch.tensor([0, 1, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True], dtype=torch.bool),
        "scalar": torch.tensor(3.5, dtype=torch.float32),
        "empty": torch.zeros(0, 3, dtype=torch.float32),
        # A non-contiguous source: save_file needs contiguous tensors, so it is made contiguous first.
        "transposed": torch.arange(6, dtype=torch.int32).reshape(2, 3).t().contiguous(),
    }
    save_file(tensors, out, metadata={"step": "42", "note": "written by python"})


if __name__ == "__main__":
    main()
