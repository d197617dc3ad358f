/**
 * `deno task bench`: per-op overhead and kernel throughput through the public Tensor API, each beside the same
 * loop in Python PyTorch run in the same invocation on the same machine. Prints a table and writes
 * `runs/bench/latest.json`: an array of {name, unit, ours, reference, ratio} (ratio = ours / reference; lower is
 * better).
 * @module
 */
import * as torch from "../mod.ts";
import { pythonWithTorch } from "./common.ts";

interface Case {
  name: string;
  description: string;
  /** Minimum iterations per round; raised so that a round lasts at least ROUND_MS on this machine. */
  iters: number;
  repeats: number;
  cuda: boolean;
  setup: () => { run: () => void; sync?: () => void; teardown: () => void };
}

const CASES: Case[] = [
  {
    name: "add_4_cpu",
    description: "add two 4-element f32 tensors, dispose the result",
    iters: 200_000,
    repeats: 7,
    cuda: false,
    setup: () => {
      const a = torch.tensor(new Float32Array([1, 2, 3, 4]));
      const b = torch.tensor(new Float32Array([1, 2, 3, 4]));
      return {
        run: () => a.add(b).dispose(),
        teardown: () => {
          a.dispose();
          b.dispose();
        },
      };
    },
  },
  {
    name: "matmul_512_cpu",
    description: "512x512 f32 matmul, dispose the result",
    iters: 100,
    repeats: 5,
    cuda: false,
    setup: () => {
      torch.manualSeed(0);
      const a = torch.randn([512, 512]);
      const b = torch.randn([512, 512]);
      return {
        run: () => a.matmul(b).dispose(),
        teardown: () => {
          a.dispose();
          b.dispose();
        },
      };
    },
  },
  {
    name: "add_4_cuda",
    description: "CUDA: add two 4-element f32 tensors, dispose (launch-bound)",
    iters: 100_000,
    repeats: 5,
    cuda: true,
    setup: () => {
      const a = torch.tensor(new Float32Array([1, 2, 3, 4]), { device: "cuda" });
      const b = torch.tensor(new Float32Array([1, 2, 3, 4]), { device: "cuda" });
      return {
        run: () => a.add(b).dispose(),
        sync: () => torch.cuda.synchronize(),
        teardown: () => {
          a.dispose();
          b.dispose();
        },
      };
    },
  },
  {
    name: "matmul_8192_bf16_cuda",
    description: "CUDA: 8192^3 bf16 matmul",
    iters: 50,
    repeats: 5,
    cuda: true,
    setup: () => {
      const a = torch.randn([8192, 8192], { device: "cuda", dtype: "bf16" });
      const b = torch.randn([8192, 8192], { device: "cuda", dtype: "bf16" });
      return {
        run: () => a.matmul(b).dispose(),
        sync: () => torch.cuda.synchronize(),
        teardown: () => {
          a.dispose();
          b.dispose();
        },
      };
    },
  },
  mlpCase(
    "mlp_8x256_f32_cpu",
    "8-layer GELU MLP forward+backward, batch 64, width 256, f32",
    "cpu",
    8,
    256,
    200,
    5,
  ),
  mlpCase(
    "mlp_24x1024_bf16_cuda",
    "CUDA: 24-layer GELU MLP forward+backward, batch 64, width 1024, bf16",
    "cuda",
    24,
    1024,
    200,
    5,
  ),
];

/** An MLP of `layers` linear+GELU layers, forward + backward of the mean output, grads dropped each step. */
function mlpCase(
  name: string,
  description: string,
  device: torch.Device,
  layers: number,
  width: number,
  iters: number,
  repeats: number,
): Case {
  return {
    name,
    description,
    iters,
    repeats,
    cuda: device !== "cpu",
    setup: () => {
      torch.manualSeed(0);
      const dtype: torch.DType = device === "cpu" ? "f32" : "bf16";
      const ws = torch.scope(() =>
        Array.from(
          { length: layers },
          () =>
            torch.noGrad(() => torch.randn([width, width], { device, dtype }).mul(1 / Math.sqrt(width)))
              .requiresGrad_(),
        )
      );
      const x = torch.randn([64, width], { device, dtype });
      return {
        run: () => {
          torch.scope(() => {
            let h = x;
            for (const w of ws) h = torch.linear(h, w).gelu();
            h.mean().backward();
          });
          for (const w of ws) w.zeroGrad();
        },
        sync: device === "cpu" ? undefined : () => torch.cuda.synchronize(),
        teardown: () => {
          for (const w of ws) w.dispose();
          x.dispose();
        },
      };
    },
  };
}

const ROUND_MS = 250;

function bestMicros(c: Case): number {
  const { run, sync, teardown } = c.setup();
  try {
    for (let i = 0; i < Math.max(1, c.iters / 10); i++) run();
    sync?.();
    // Calibrate once: short rounds are at the mercy of thread wake-ups and timer resolution.
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) run();
    sync?.();
    const perIterMs = (performance.now() - t0) / 5;
    c.iters = Math.max(c.iters, Math.ceil(ROUND_MS / Math.max(perIterMs, 1e-6)));
    let best = Infinity;
    for (let r = 0; r < c.repeats; r++) {
      const t0 = performance.now();
      for (let i = 0; i < c.iters; i++) run();
      sync?.();
      best = Math.min(best, (performance.now() - t0) * 1000 / c.iters);
    }
    return best;
  } finally {
    teardown();
  }
}

async function reference(cases: Case[]): Promise<Record<string, number>> {
  const py = pythonWithTorch();
  const script = new URL("./reference.py", import.meta.url).pathname;
  const arg = JSON.stringify(cases.map((c) => ({ name: c.name, iters: c.iters, repeats: c.repeats })));
  const r = await new Deno.Command(py, { args: [script, arg], stdout: "piped", stderr: "piped" }).output();
  if (!r.success) {
    throw new Error(`the PyTorch reference (${py}) failed:\n${new TextDecoder().decode(r.stderr)}`);
  }
  return JSON.parse(new TextDecoder().decode(r.stdout).trim().split("\n").pop()!);
}

const hasCuda = torch.cuda.isAvailable();
const cases = CASES.filter((c) => !c.cuda || hasCuda);
console.log(
  `torch ${torch.torchVersion()}, ${torch.getNumThreads()} CPU threads, CUDA ${
    hasCuda ? `available (${torch.cuda.deviceCount()} device(s))` : "not available"
  }`,
);
// Two alternating rounds of ours and the reference, keeping each side's best, even out machine drift.
const ours: Record<string, number> = {};
const ref: Record<string, number> = {};
for (let round = 0; round < 2; round++) {
  for (const c of cases) ours[c.name] = Math.min(ours[c.name] ?? Infinity, bestMicros(c));
  const r = await reference(cases);
  for (const c of cases) ref[c.name] = Math.min(ref[c.name] ?? Infinity, r[c.name]);
}

const rows = cases.map((c) => ({
  name: c.name,
  unit: "us/iter",
  ours: Number(ours[c.name].toFixed(4)),
  reference: Number(ref[c.name].toFixed(4)),
  ratio: Number((ours[c.name] / ref[c.name]).toFixed(3)),
}));
console.log("");
console.log("| case | what | layerlock (µs) | PyTorch (µs) | ratio |");
console.log("| --- | --- | ---: | ---: | ---: |");
for (const [i, r] of rows.entries()) {
  console.log(`| ${r.name} | ${cases[i].description} | ${r.ours} | ${r.reference} | ${r.ratio} |`);
}
const dir = new URL("../runs/bench/", import.meta.url);
await Deno.mkdir(dir, { recursive: true });
await Deno.writeTextFile(new URL("latest.json", dir), JSON.stringify(rows, null, 2) + "\n");
console.log(`\nwrote runs/bench/latest.json (live tensors now: ${torch.liveTensors()})`);
