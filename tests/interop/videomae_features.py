"""Loads a layerlock checkpoint, strictly, into a PyTorch encoder with VideoMAE's module names that builds its
own fixed position table the way VideoMAE does (`get_sinusoid_encoding_table`: a 1-d sinusoid table over the
flattened token index, sines on even channels, cosines on odd ones), and writes its features of every token
of an input clip. Used by tests/videomae_interop_test.ts.

    python videomae_features.py CHECKPOINT INPUT OUTPUT CONFIG_JSON

CONFIG_JSON holds the model sizes (in_chans, encoder_dim, encoder_depth, encoder_heads, mlp_ratio, frames,
height, width, tubelet, patch). INPUT is a safetensors file with `x` [B, C, T, H, W]; OUTPUT gets `features`
[B, N, D].
"""

import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
from make_video_mae_golden import Encoder  # noqa: E402  (the VideoMAE-named reference modules)


def sinusoid_table(n_position, dim):
    """VideoMAE's table: [1, n, dim] float32, channel j of token p = sin/cos(p / 10000^(2*(j//2)/dim))."""
    j = np.arange(dim)
    angles = np.arange(n_position, dtype=np.float64)[:, None] / np.power(10000.0, 2 * (j // 2) / dim)[None, :]
    table = np.where(j % 2 == 0, np.sin(angles), np.cos(angles))
    return torch.FloatTensor(table).unsqueeze(0)


def main():
    ckpt_path, input_path, output_path, cfg_json = sys.argv[1:5]
    c = json.loads(cfg_json)
    enc = Encoder(c)
    n = (c["frames"] // c["tubelet"]) * (c["height"] // c["patch"]) * (c["width"] // c["patch"])
    enc.register_buffer("pos_embed", sinusoid_table(n, c["encoder_dim"]), persistent=False)
    prefix = "model.encoder."
    state = {k[len(prefix):]: v for k, v in load_file(ckpt_path).items() if k.startswith(prefix)}
    enc.load_state_dict(state, strict=True)  # every name and shape must match, nothing missing or extra
    enc.eval()
    x = load_file(input_path)["x"]
    mask = torch.zeros(x.shape[0], n, dtype=torch.bool)  # nothing masked: every token
    with torch.no_grad():
        feats = enc(x, mask)
    save_file({"features": feats.contiguous()}, output_path)
    print(json.dumps({"tokens": n, "loaded": len(state)}))


if __name__ == "__main__":
    main()
