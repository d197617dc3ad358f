/**
 * Non-finite recovery (src/train/trainer.ts, `nonFinite.*`), with a NaN injected at a chosen step through
 * `debug.nanAtSteps`: `stop` names the exact step — found at the logging step after it, from per-step losses
 * kept on the device — and leaves every checkpoint predating it; `rollback` reloads the newest checkpoint, skips
 * the offending batch, scales the lr from then on, records the event in metrics.jsonl and ends with finite
 * weights; a resumed process keeps the lr scale; `maxRollbacks` bounds it; nothing native is left behind.
 * @module
 */
import assert from "node:assert/strict";
import * as torch from "../../mod.ts";
import { parseConfig, type TrainConfig } from "../../src/config.ts";
import { makeBatchSource } from "../../src/data/source.ts";
import { train } from "../../src/train/trainer.ts";
import type { TrainEvent } from "../../src/train/events.ts";
import { tempDir } from "../helpers.ts";

function config(extra: Record<string, Record<string, unknown>>): TrainConfig {
  const base: Record<string, Record<string, unknown>> = {
    model: {
      encoderDim: 48,
      encoderDepth: 2,
      encoderHeads: 3,
      decoderDim: 24,
      decoderDepth: 1,
      decoderHeads: 3,
    },
    data: { frames: 4, size: 16, prefetch: 0 },
    optim: { batchSize: 2, lr: 2e-3, warmupSteps: 2, steps: 16 },
    log: { every: 4, checkpointEvery: 6, floorClips: 0 },
  };
  for (const [k, v] of Object.entries(extra)) base[k] = { ...(base[k] ?? {}), ...v };
  return parseConfig(base);
}

const records = (dir: string) =>
  Deno.readTextFileSync(`${dir}/metrics.jsonl`).trim().split("\n").map((l) => JSON.parse(l));

Deno.test("non-finite: stop names the exact step; every checkpoint predates it", async () => {
  const dir = await tempDir("nan_stop_");
  const before = torch.liveTensors();
  // step 9 (0-based) is the 10th trained: found at the logging step 12, after the checkpoint of step 6
  const cfg = config({ debug: { nanAtSteps: [9] } });
  await assert.rejects(
    () => train(cfg, { runDir: dir, resume: false, data: makeBatchSource, onEvent: () => {} }),
    (e: Error) =>
      e instanceof torch.TorchError &&
      /the loss became NaN at step 9; the checkpoints were written before it/.test(
        e.message,
      ) && /newest: .*step_0000006/.test(e.message),
  );
  assert.deepEqual([...Deno.readDirSync(`${dir}/checkpoints`)].map((e) => e.name), [
    "step_0000006.safetensors",
  ]);
  assert.equal(torch.liveTensors(), before, "nothing native left behind");
});

Deno.test("non-finite: rollback reloads, skips the batch, scales the lr, and finishes; a resume keeps the lr scale", async () => {
  const dir = await tempDir("nan_rollback_");
  const before = torch.liveTensors();
  const events: TrainEvent[] = [];
  const cfg = config({ debug: { nanAtSteps: [9] }, nonFinite: { policy: "rollback", lrScale: 0.5 } });
  const r = await train(cfg, {
    runDir: dir,
    resume: false,
    data: makeBatchSource,
    onEvent: (e) => events.push(e),
  });
  assert.equal(r.step, 16);
  assert.equal(r.rollbacks, 1);
  assert.deepEqual(r.skippedSteps, [9]);
  const warning = events.find((e) => e.kind === "warning");
  assert.ok(
    warning &&
      /loss became NaN at step 9: rolling back to .*step_0000006.*lr × 0\.5/.test(
        (warning as { message: string }).message,
      ),
  );
  const recs = records(dir);
  const rb = recs.find((x) => x.event === "rollback");
  assert.deepEqual([rb.step, rb.badStep, rb.rollbacks, rb.lrFactor, rb.skip], [6, 9, 1, 0.5, [9]]);
  // every logged loss is finite, each logging step once, in order
  const logged = recs.filter((x) => x.event === undefined);
  assert.deepEqual(logged.map((x) => x.step), [4, 8, 12, 16]);
  assert.ok(logged.every((x) => Number.isFinite(x.loss)));
  // the lr after the rollback is halved (the schedule's value × 0.5 at the logging step)
  const sched = (await import("../../src/optim/schedule.ts")).warmupCosine({
    baseLr: cfg.optim.lr,
    minLr: cfg.optim.minLr,
    warmupSteps: cfg.optim.warmupSteps,
    totalSteps: cfg.optim.steps,
  });
  assert.ok(Math.abs(logged[0].lr - sched(3)) < 1e-12, "before the rollback the lr is the schedule's");
  for (const [i, st] of [[1, 7], [2, 11], [3, 15]]) {
    assert.ok(
      Math.abs(logged[i].lr - 0.5 * sched(st)) < 1e-12,
      `step ${st + 1}: ${logged[i].lr} vs ${0.5 * sched(st)}`,
    );
  }
  // the weights are finite
  const ckpts = [...Deno.readDirSync(`${dir}/checkpoints`)].map((e) => e.name).sort();
  const { tensors } = torch.loadSafetensors(`${dir}/checkpoints/${ckpts[ckpts.length - 1]}`);
  for (const [k, t] of Object.entries(tensors)) {
    if (k.startsWith("model.")) assert.ok((t.toArray() as Float32Array).every(Number.isFinite), k);
    t.dispose();
  }
  // the checkpoints record the recovery (skipped steps, lr scale): a resumed process (a longer run) keeps the lr scale
  const longer = parseConfig({
    ...structuredClone(cfg),
    optim: { ...cfg.optim, steps: 20 },
    debug: { nanAtSteps: [] },
  });
  const again = await train(longer, { runDir: dir, resume: true, data: makeBatchSource, onEvent: () => {} });
  assert.equal(again.step, 20);
  assert.equal(again.rollbacks, 0);
  const sched20 = (await import("../../src/optim/schedule.ts")).warmupCosine({
    baseLr: cfg.optim.lr,
    minLr: cfg.optim.minLr,
    warmupSteps: cfg.optim.warmupSteps,
    totalSteps: 20,
  });
  const last = records(dir).filter((x) => x.event === undefined).at(-1);
  assert.equal(last.step, 20);
  assert.ok(Math.abs(last.lr - 0.5 * sched20(19)) < 1e-12, `${last.lr} vs ${0.5 * sched20(19)}`);
  assert.equal(torch.liveTensors(), before, "nothing native left behind");
});

Deno.test("non-finite: rollbacks are bounded by maxRollbacks", async () => {
  const dir = await tempDir("nan_bound_");
  const cfg = config({
    debug: { nanAtSteps: [2, 3, 5] },
    nonFinite: { policy: "rollback", maxRollbacks: 2 },
    log: { every: 1 },
  });
  await assert.rejects(
    () => train(cfg, { runDir: dir, resume: false, data: makeBatchSource, onEvent: () => {} }),
    /the loss became NaN at step 5, after 2 rollback\(s\)/,
  );
  assert.equal(records(dir).filter((x) => x.event === "rollback").length, 2);
});
