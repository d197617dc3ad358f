"""The PyTorch-ecosystem reference of `deno task bench:video`: the same clips decoded with PyAV (FFmpeg's
libraries through Python, as VideoMAE-style loaders do with decord/PyAV), cropped with NumPy, resized with
torch's bilinear interpolation and mirrored, in a multiprocessing pool of N workers (a DataLoader's
num_workers). Reads the clip plans (file, frame indices, crop, flip) written by bench/video_decode.ts, so both
sides do the same work; prints {"workers": N, "clips": K, "seconds": S} as JSON.

    python3 bench/video_ref.py PLANS.json WORKERS SIZE
"""
import json
import sys
import time
from multiprocessing import Pool


def init():
    import torch
    torch.set_num_threads(1)


def decode(plan):
    import av
    import numpy as np
    import torch
    import torch.nn.functional as F

    size = plan["size"]
    want = plan["frames"]
    c = plan["crop"]
    with av.open(plan["path"]) as container:
        s = container.streams.video[0]
        s.thread_type = "SLICE"
        s.codec_context.thread_count = 1
        tb = float(s.time_base)
        fps = float(s.average_rate)
        start = s.start_time or 0
        first = want[0]
        if first > 0:
            container.seek(start + int((first - 0.5) / fps / tb), stream=s, backward=True)
        got = {}
        last = None
        for frame in container.decode(s):
            idx = round((frame.pts - start) * tb * fps)
            last = frame
            if idx in want and idx not in got:
                got[idx] = frame.to_ndarray(format="rgb24")
            if idx >= want[-1]:
                break
        if not got:
            got[want[0]] = last.to_ndarray(format="rgb24")
    keys = sorted(got)
    frames = []
    for i in want:
        k = max([j for j in keys if j <= i] or [keys[0]])
        frames.append(got[k][c["y"]:c["y"] + c["h"], c["x"]:c["x"] + c["w"]])
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    if c["flip"]:
        x = x.flip(-1)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy().nbytes


def main():
    plans = json.load(open(sys.argv[1]))
    workers = int(sys.argv[2])
    size = int(sys.argv[3])
    for p in plans:
        p["size"] = size
    with Pool(workers, initializer=init) as pool:
        pool.map(decode, plans[:workers * 2])  # warm-up: imports, first opens
        t0 = time.perf_counter()
        n = sum(1 for _ in pool.imap_unordered(decode, plans, chunksize=1))
        dt = time.perf_counter() - t0
    print(json.dumps({"workers": workers, "clips": n, "seconds": dt}))


if __name__ == "__main__":
    main()
