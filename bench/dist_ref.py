"""The reference side of bench/dist.ts: all-reduce time of Python's torch.distributed (Gloo) on the same sizes,
with the same number of processes on the same machine. Prints one JSON line: {size_bytes: seconds per call}.

    python bench/dist_ref.py WORLD PORT SIZE_BYTES[,SIZE_BYTES...] MIN_SECONDS
"""
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank, world, port, sizes, min_s, queue):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    out = {}
    for size in sizes:
        t = torch.ones(size // 4, dtype=torch.float32)
        for _ in range(3):  # warm up (connections, buffers)
            dist.all_reduce(t)
        # every rank runs the same number of calls: rank 0's estimate for min_s seconds, broadcast
        t0 = time.perf_counter()
        dist.all_reduce(t)
        one = time.perf_counter() - t0
        n = torch.tensor([max(5, int(min_s / max(one, 1e-6)))], dtype=torch.int64)
        dist.broadcast(n, 0)
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(int(n[0])):
            dist.all_reduce(t)
        out[str(size)] = (time.perf_counter() - t0) / int(n[0])
    if rank == 0:
        queue.put(out)
    dist.destroy_process_group()


def main():
    world, port = int(sys.argv[1]), int(sys.argv[2])
    sizes = [int(s) for s in sys.argv[3].split(",")]
    min_s = float(sys.argv[4])
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, world, port, sizes, min_s, queue)) for r in range(world)]
    for p in procs:
        p.start()
    out = queue.get(timeout=600)
    for p in procs:
        p.join()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
