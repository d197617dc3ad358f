/**
 * The pure modules load no native code: a subprocess with no FFI permission imports and uses them
 * (tests/fixtures/pure_modules.ts), and its results are checked against the same functions run here.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../src/config.ts";
import { resolveSchedule, scheduleAt } from "../src/layerlock/schedule.ts";
import { PRESETS } from "../src/models/presets.ts";
import { MovingShapes } from "../src/data/moving_shapes.ts";
import { BatchSampler } from "../src/data/sampler.ts";

Deno.test("pure modules: the configuration, schedule, presets, errors, data generators, sampler and launch environment run without --allow-ffi", async () => {
  const fixture = new URL("./fixtures/pure_modules.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--allow-read", "--allow-env", fixture],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `the fixture failed without --allow-ffi:\n${stderr}`);
  const r = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
  // the same computations in this (FFI-enabled) process
  const cfg = parseConfig({ optim: { steps: 100, warmupSteps: 10 }, layerlock: { mode: "layerlock" } });
  const sched = resolveSchedule(cfg.layerlock, PRESETS.tiny.encoderDepth, cfg.optim.steps);
  assert.deepEqual(r.stageAt60, JSON.parse(JSON.stringify(scheduleAt(sched, 60))));
  assert.ok(Math.abs(r.lrAt5 - 0.5) < 1e-12, `warmup at step 5 of 10 is half the peak, got ${r.lrAt5}`);
  const batch = new MovingShapes({ frames: 4, size: 16, seed: 3 }).batch([0, 1]);
  assert.equal(r.batchBytes, 2 * 4 * 16 * 16 * 3);
  assert.deepEqual(r.labels, Array.from(batch.labels!.direction));
  assert.equal(r.fashionSplit, "val");
  assert.match(r.configError, /^config:invalid config:\n {2}optim\.lr: /);
  assert.deepEqual(r.codes, ["native", "data"]);
  assert.equal(r.experimentSteps, 400);
  assert.deepEqual(r.shard, new BatchSampler(10, 4, 1).next().slice(2));
  assert.equal(r.launch.rank, 1);
  assert.equal(r.launch.localRank, 1);
  assert.equal(r.ffiDenied, true, "the fixture could open the shim: it was not run without FFI permission");
});
