/**
 * Warm start (`init`, `train --init SOURCE`): a run starts from another run's weights bit for bit with a fresh
 * optimiser, LayerLock then freezes from its first step (`layerlock.pixelSteps=0`), an architecture that differs
 * from the source's is refused naming the key, and on the command line the run takes the source's architecture.
 * @module
 */
import assert from "node:assert/strict";
import { checkpointStep, listCheckpoints } from "../src/train/checkpoint.ts";
import { parseConfig, type TrainConfig } from "../src/config.ts";
import { ConfigError } from "../src/errors.ts";
import { loadInitWeights } from "../src/interop/import.ts";
import { loadSafetensors } from "../src/torch/safetensors.ts";
import * as torch from "../mod.ts";
import { CLI_PERMISSIONS, SMALL_DATA, SMALL_MODEL, tempDir, trainCollecting } from "./helpers.ts";

const cfgOf = (over: Record<string, unknown>): TrainConfig =>
  parseConfig({
    model: { ...SMALL_MODEL, posEmbed: "videomae" },
    data: SMALL_DATA,
    optim: { batchSize: 2, steps: 8, warmupSteps: 1, lr: 3e-3 },
    log: { every: 2, checkpointEvery: 1000, floorClips: 8 },
    ...over,
  });

const run = (cfg: TrainConfig, dir: string, stopAfter?: number) =>
  trainCollecting(cfg, dir, { loadInit: loadInitWeights, stopAfter });

/** The model.* tensors of a checkpoint, as bytes by name. */
function modelBytes(path: string): Map<string, Uint8Array> {
  return torch.scope(() => {
    const { tensors } = loadSafetensors(path);
    return new Map(
      Object.entries(tensors).filter(([k]) => k.startsWith("model.")).map(([k, t]) => [k, t.toBytes()]),
    );
  });
}

Deno.test("init: a run starts from another run's weights bit for bit, and LayerLock freezes from its first step", async () => {
  const before = torch.liveTensors();
  const a = await tempDir("init_a_"), b = await tempDir("init_b_"), c = await tempDir("init_c_");
  await run(cfgOf({ layerlock: { mode: "mae" } }), a);
  const source = listCheckpoints(`${a}/checkpoints`).at(-1)!;
  // no step: the checkpoint of step 0 holds exactly the source's model
  const { events } = await run(
    cfgOf({ init: source, layerlock: { mode: "layerlock", pixelSteps: 0 } }),
    b,
    0,
  );
  const start = listCheckpoints(`${b}/checkpoints`)[0];
  assert.equal(checkpointStep(start), 0);
  assert.deepEqual(modelBytes(start), modelBytes(source));
  const init = events.find((e) => e.kind === "init");
  assert.ok(init && init.kind === "init" && init.source === source);
  // a few steps: the first is already a latent stage (block 1 frozen, target h1)
  const trained = await run(
    cfgOf({ init: `${a}`, layerlock: { mode: "layerlock", pixelSteps: 0, interval: 2 } }),
    c,
  );
  assert.equal(trained.r.losses[0].frozenDepth, 1);
  assert.ok(
    trained.r.losses.every((l) => l.pixel === null && l.latent !== null),
    "latents from the first step",
  );
  assert.equal(torch.liveTensors(), before, "nothing left alive");
});

Deno.test("init: another architecture than the source's is refused, naming the key", async () => {
  const a = await tempDir("init_arch_");
  await run(cfgOf({ layerlock: { mode: "mae" }, optim: { batchSize: 2, steps: 2, warmupSteps: 1 } }), a);
  const wider = cfgOf({ init: a, model: { ...SMALL_MODEL, posEmbed: "videomae", encoderDepth: 3 } });
  await assert.rejects(
    async () => run(wider, await tempDir("init_arch_b_")),
    (e) => e instanceof ConfigError && /model\.encoderDepth \(4 there, 3 here\)/.test(e.message),
  );
});

Deno.test("train --init: the command line takes the source's architecture and trains from it", async () => {
  const a = await tempDir("init_cli_");
  await run(cfgOf({ layerlock: { mode: "mae" }, optim: { batchSize: 2, steps: 2, warmupSteps: 1 } }), a);
  const name = `ll-init-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...CLI_PERMISSIONS,
        "src/cli/train.ts",
        "--name",
        name,
        "--init",
        a,
        "--steps",
        "2",
        "--warmup",
        "1",
        "--frames",
        "4",
        "--size",
        "16",
        "--batch-size",
        "2",
        "--set",
        "layerlock.pixelSteps=0",
        "--set",
        "log.floorClips=8",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(r.stderr);
    assert.equal(r.code, 0, err);
    assert.match(err, new RegExp(`started from ${a}`));
    const saved = JSON.parse(Deno.readTextFileSync(`runs/${name}/config.json`));
    assert.equal(saved.init, a);
    assert.deepEqual([saved.model.encoderDim, saved.model.encoderDepth, saved.model.posEmbed], [
      48,
      4,
      "videomae",
    ]);
  } finally {
    await Deno.remove(`runs/${name}`, { recursive: true }).catch(() => {});
  }
});
