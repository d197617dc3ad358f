/**
 * Graph-captured training steps (src/train/step_graph.ts) on the CPU: the per-stage cycle of warm-ups, capture
 * and replays with a counting backend; the trainer's graph path under the emulated backend (each replay re-runs
 * the captured step with its capture's host values) trains exactly as the eager loop, re-captures once per
 * schedule stage, reads nothing from the device per step, leaks nothing, and falls back to eager steps when a
 * capture fails; configurations graphs cannot run are refused or warned about. Inference-mode targets.
 * The CUDA graphs themselves are tested in cuda_test.ts (on a GPU).
 * @module
 */
import assert from "node:assert/strict";
import * as torch from "../mod.ts";
import { parseConfig, type TrainConfig } from "../src/config.ts";
import { makeBatchSource } from "../src/data/source.ts";
import type { TrainEvent } from "../src/train/events.ts";
import {
  emulatedBackend,
  type GraphBackend,
  GraphCaptureError,
  type StageGraph,
  StepGraphs,
} from "../src/train/step_graph.ts";
import { train } from "../src/train/trainer.ts";
import { latentTargets } from "../src/layerlock/objective.ts";
import { VideoMAE } from "../src/models/video_mae.ts";
import { growthPerWindow, noLeak, tempDir } from "./helpers.ts";

/** A backend that logs what is asked of it; `failCapture` makes captures throw. */
function countingBackend(log: string[], failCapture = false): GraphBackend {
  let n = 0;
  return {
    kind: "emulated",
    create(): StageGraph {
      const id = ++n;
      let fn: (() => void) | null = null;
      log.push(`create ${id}`);
      return {
        warmup: (f) => {
          log.push(`warmup ${id}`);
          f();
        },
        capture: (f) => {
          log.push(`capture ${id}`);
          if (failCapture) throw new Error("not capturable");
          fn = f;
        },
        replay: () => {
          log.push(`replay ${id}`);
          fn!();
        },
        dispose: () => log.push(`dispose ${id}`),
      };
    },
  };
}

Deno.test("StepGraphs: warm-ups, one capture then replays per stage; a new stage frees the old graph", () => {
  const log: string[] = [], ran: string[] = [];
  const g = new StepGraphs(countingBackend(log), 2);
  const runs = [];
  for (
    const [key, step] of [["a", 0], ["a", 1], ["a", 2], ["a", 3], ["a", 4], ["b", 5], ["b", 6], [
      "b",
      7,
    ]] as const
  ) {
    runs.push(g.run(key, () => ran.push(`${key}${step}`)));
  }
  assert.deepEqual(runs, ["warmup", "warmup", "capture", "replay", "replay", "warmup", "warmup", "capture"]);
  // a replay re-runs the step as captured (a2), never the step passed to it (a3, a4)
  assert.deepEqual(ran, ["a0", "a1", "a2", "a2", "a2", "b5", "b6", "b7"]);
  assert.deepEqual(log, [
    "create 1",
    "warmup 1",
    "warmup 1",
    "capture 1",
    "replay 1",
    "replay 1",
    "replay 1",
    "dispose 1",
    "create 2",
    "warmup 2",
    "warmup 2",
    "capture 2",
    "replay 2",
  ]);
  assert.deepEqual(g.stats, { warmups: 4, captures: 2, replays: 4, released: 1 });
  g.dispose();
  assert.equal(log.at(-1), "dispose 2");
  assert.equal(g.stats.released, 2);
});

Deno.test("StepGraphs: a failed capture frees the graph and throws GraphCaptureError; invalidate restarts", () => {
  const log: string[] = [];
  const g = new StepGraphs(countingBackend(log, true), 1);
  assert.equal(g.run("s", () => {}), "warmup");
  assert.throws(
    () => g.run("s", () => {}),
    (e) => e instanceof GraphCaptureError && /not capturable/.test(e.message),
  );
  assert.deepEqual(log, ["create 1", "warmup 1", "capture 1", "dispose 1"]);
  assert.equal(g.key, null);
  const ok = new StepGraphs(countingBackend([]), 1);
  ok.run("s", () => {});
  ok.run("s", () => {});
  assert.equal(ok.run("s", () => {}), "replay");
  ok.invalidate(); // e.g. after a rollback: warm up and capture again
  assert.equal(ok.run("s", () => {}), "warmup");
  assert.throws(() => new StepGraphs(emulatedBackend(), 0), torch.TorchError);
});

Deno.test("emulated replays refuse what a real capture refuses: host reads and tensors made from host memory", () =>
  noLeak(() => {
    using x = torch.ones([4]);
    const w0 = torch.hostWrites();
    torch.scope(() => {
      torch.tensor([1, 2]);
    });
    assert.equal(torch.hostWrites(), w0 + 1, "tensor() from host data is an upload");
    torch.scope(() => {
      x.add(1).mul(x);
    });
    assert.equal(torch.hostWrites(), w0 + 1, "computation is not");
    const cases: [string, () => void, RegExp][] = [
      [
        "reads",
        () => torch.scope(() => x.sum().item()),
        /read tensor data on the host 1 time\(s\) and made 0/,
      ],
      [
        "uploads",
        () =>
          torch.scope(() => {
            x.add(torch.tensor([1, 1, 1, 1]));
          }),
        /host 0 time\(s\) and made 1 tensor/,
      ],
    ];
    for (const [what, step, msg] of cases) {
      const g = new StepGraphs(emulatedBackend(), 1);
      g.run("s", step); // a warm-up may do anything
      assert.throws(() => g.run("s", step), msg, what);
      g.dispose();
    }
    const ok = new StepGraphs(emulatedBackend(), 1);
    for (let i = 0; i < 3; i++) {
      ok.run("s", () => {
        x.add_(1);
      });
    }
    ok.dispose();
  }));

const MODEL = {
  encoderDim: 48,
  encoderDepth: 2,
  encoderHeads: 3,
  decoderDim: 24,
  decoderDepth: 1,
  decoderHeads: 3,
};

function config(mode: string, graphs: string, extra: Record<string, unknown> = {}): TrainConfig {
  return parseConfig({
    model: MODEL,
    data: { frames: 4, size: 16, prefetch: 0 },
    optim: { batchSize: 2, steps: 16, warmupSteps: 2, clipGrad: 1 },
    layerlock: { mode },
    log: { every: 4, checkpointEvery: 1000, floorClips: 4 },
    graphs: { mode: graphs, warmup: 2 },
    ...extra,
  });
}

async function run(cfg: TrainConfig, events: TrainEvent[] = []) {
  const dir = await tempDir("graphs_");
  try {
    const r = await train(cfg, {
      runDir: dir,
      resume: false,
      data: makeBatchSource,
      onEvent: (e) => events.push(e),
    });
    const w = torch.scope(() => {
      const t = torch.loadSafetensors(r.checkpoint!).tensors;
      return Object.fromEntries(
        Object.keys(t).sort().map((k) => [k, Array.from(t[k].toArray() as Float32Array)]),
      );
    });
    return { r, w, records: events.flatMap((e) => e.kind === "log" ? [e.record] : []) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

for (const mode of ["layerlock", "mae"]) {
  Deno.test(`graphs.mode=emulate trains exactly as eager steps (${mode}; a capture per stage)`, async () => {
    const before = torch.liveTensors();
    const eager = await run(config(mode, "off"));
    const events: TrainEvent[] = [];
    const graphed = await run(config(mode, "emulate"), events);
    assert.equal(torch.liveTensors(), before, "tensors left behind");
    assert.deepEqual(graphed.r.losses, eager.r.losses, "losses differ from the eager run's");
    assert.deepEqual(graphed.w, eager.w, "final weights and optimiser state differ from the eager run's");
    // layerlock (depth 2, 16 steps) has stages pixels → h1 → h2 frozen…; mae has one stage
    const stages = 1 + events.filter((e) => e.kind === "stage").length;
    const last = graphed.records.at(-1)!;
    assert.equal(last.graphCaptures, stages);
    // per stage, 2 warm-ups run eagerly; every other step ran from the graph
    const fromGraph = graphed.records.reduce((a, r) => a + r.graphSteps!, 0);
    assert.equal(fromGraph, 16 - 2 * stages);
    if (mode === "layerlock") {
      assert.ok(stages >= 2, `expected a freeze within 16 steps, got ${stages} stage(s)`);
    }
    assert.equal(eager.records[0].graphSteps, undefined);
  });
}

Deno.test("graphs.mode=emulate: no host read per step (reads per logging window do not grow with its length)", async () => {
  const runOf = (every: number) =>
    config("layerlock", "emulate", {
      optim: { batchSize: 2, steps: 4 * every, warmupSteps: 1, clipGrad: 1 },
      log: { every, checkpointEvery: 1000, floorClips: 0 },
    });
  const short = await growthPerWindow(runOf(4), torch.hostReads);
  const long = await growthPerWindow(runOf(8), torch.hostReads);
  assert.deepEqual(long, short, `reads per window of 8 steps ${long} vs of 4 steps ${short}`);
});

Deno.test("a failed capture: one warning, then eager steps with the same results", async () => {
  const eager = await run(config("layerlock", "off"));
  const events: TrainEvent[] = [];
  const failing = await run(config("layerlock", "emulate", { debug: { failCapture: true } }), events);
  const warnings = events.flatMap((e) => e.kind === "warning" ? [e.message] : []);
  assert.equal(warnings.length, 1, warnings.join("\n"));
  assert.match(
    warnings[0],
    /capturing the CUDA graph of stage .* failed: .*debug.failCapture.*training goes on without CUDA graphs/,
  );
  assert.deepEqual(failing.r.losses, eager.r.losses);
  assert.deepEqual(failing.w, eager.w);
});

Deno.test("graphs: refused where they cannot run, naming why; auto on the CPU is eager and silent", async () => {
  const before = torch.liveTensors();
  await assert.rejects(
    () => run(config("mae", "on")),
    /graphs.mode=on: CUDA graphs cannot be used: the device is the CPU/,
  );
  await assert.rejects(
    () =>
      run(
        config("latent-unfrozen", "emulate", {
          layerlock: { mode: "latent-unfrozen", unfrozenWeight: "cosine" },
        }),
      ),
    /graphs.mode=emulate: .*a loss weight changes at every step \(latent-unfrozen's cosine weight/,
  );
  assert.equal(torch.liveTensors(), before, "a refused run leaves no tensors behind");
  const events: TrainEvent[] = [];
  const auto = await run(config("mae", "auto"), events);
  assert.equal(events.filter((e) => e.kind === "warning").length, 0);
  assert.equal(auto.records[0].graphSteps, undefined);
});

Deno.test("inference mode: targets are inference tensors, equal to no-grad ones, and train through a gather", () =>
  noLeak(() => {
    torch.manualSeed(3);
    const model = new VideoMAE({
      encoderDim: 32,
      encoderDepth: 2,
      encoderHeads: 2,
      mlpRatio: 2,
      decoderDim: 16,
      decoderDepth: 1,
      decoderHeads: 2,
      inChans: 3,
      frames: 4,
      height: 16,
      width: 16,
      patch: 8,
      tubelet: 2,
      qkvBias: true,
      posEmbed: "sincos",
      gelu: "none",
    });
    try {
      torch.scope(() => {
        const x = torch.randn([2, 3, 4, 16, 16]);
        const [t] = latentTargets(model, x, [2], "layernorm");
        assert.equal(torch.isInferenceTensor(t), true);
        const ref = torch.noGrad(() => {
          const h = model.encoder.hiddenStates(x, [2])[0];
          return torch.layerNorm(h, [h.shape[2]], null, null, 1e-6);
        });
        assert.equal(torch.isInferenceTensor(ref), false);
        assert.deepEqual(t.toArray(), ref.toArray());
        // used directly where autograd must save it: refused; through a gather (a normal tensor): trains
        const w = torch.ones([t.shape[2]]).requiresGrad_(true);
        assert.throws(() => t.mul(w).sum().backward(), /[Ii]nference tensors cannot be saved for backward/);
        const g = t.narrow(1, 0, 3).contiguous();
        assert.equal(torch.isInferenceTensor(g), false);
        g.mul(w).sum().backward();
        assert.ok(w.grad !== null);
        w.zeroGrad();
        // nesting restores the mode
        torch.inferenceMode(() => torch.inferenceMode(() => {}));
        assert.equal(torch.isInferenceTensor(torch.zeros([1])), false);
      });
    } finally {
      model.dispose();
    }
  }));

Deno.test("graphs.mode=emulate = eager with every target, re-initialised heads, the pixel loss kept, loss on all tokens", async () => {
  const layerlock = {
    mode: "layerlock",
    target: "all",
    headInit: "reinit",
    keepPixelLoss: true,
    latentLossOn: "all",
  };
  const eager = await run(config("layerlock", "off", { layerlock }));
  const graphed = await run(config("layerlock", "emulate", { layerlock }));
  assert.deepEqual(graphed.r.losses, eager.r.losses);
  assert.deepEqual(graphed.w, eager.w);
  assert.ok(graphed.records.at(-1)!.graphCaptures! >= 2);
});
