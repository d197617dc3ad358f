// Training: overfitting one batch, exact resumption from checkpoints, steady memory, configuration errors,
// and the command line (Ctrl-C saves a checkpoint; --resume continues).
import assert from "node:assert/strict";
import { checkpointStep } from "../src/train/checkpoint.ts";
import * as torch from "../mod.ts";
import { ConfigError, parseConfig, type TrainConfig } from "../src/config.ts";
import { batchToTensor } from "../src/data/clip_tensor.ts";
import { MovingShapes } from "../src/data/moving_shapes.ts";
import { makeBatchSource } from "../src/data/source.ts";
import { disposeMask, makeMask } from "../src/models/masking.ts";
import { maskedMse, pixelTargets } from "../src/models/targets.ts";
import { VideoMAE } from "../src/models/video_mae.ts";
import { AdamW } from "../src/optim/adamw.ts";
import { train } from "../src/train/trainer.ts";
import { modelConfig } from "../src/config.ts";
import { formatEvent, type StepRecord, type TrainEvent } from "../src/train/events.ts";
import { CLI_PERMISSIONS, noLeak, tempDir } from "./helpers.ts";

/** A model small enough to train in seconds on 2 cores. */
const SMALL = {
  model: {
    encoderDim: 48,
    encoderDepth: 2,
    encoderHeads: 3,
    decoderDim: 24,
    decoderDepth: 1,
    decoderHeads: 3,
  },
  data: { frames: 4, size: 16, prefetch: 2 },
  optim: { batchSize: 4, lr: 2e-3, warmupSteps: 2, steps: 12 },
  log: { every: 1, checkpointEvery: 100 },
};

function smallConfig(extra: Record<string, unknown> = {}): TrainConfig {
  const raw = structuredClone(SMALL) as Record<string, Record<string, unknown>>;
  for (const [k, v] of Object.entries(extra)) {
    raw[k] = typeof v === "object" && v !== null ? { ...(raw[k] ?? {}), ...v } : v as Record<string, unknown>;
  }
  return parseConfig(raw);
}

const tempRun = () => tempDir("train_");

const quiet = () => {};

Deno.test("a run folder that cannot be used is an IoError naming it, before anything native is made", async () => {
  const dir = await tempRun();
  const file = `${dir}/not-a-folder`;
  await Deno.writeTextFile(file, "x");
  const before = torch.liveTensors();
  await assert.rejects(
    () => train(smallConfig(), { runDir: file, resume: false, data: makeBatchSource, onEvent: quiet }),
    (e) =>
      e instanceof torch.IoError && e.code === "io" && e.where.startsWith(file) && e.message.includes(file),
  );
  assert.equal(torch.liveTensors(), before);
});

Deno.test("resuming from a corrupt checkpoint fails clearly, frees everything and leaves the file as it was", async () => {
  const dir = await tempRun();
  const cfg = smallConfig({ optim: { steps: 4 } });
  await train(cfg, { runDir: dir, resume: false, data: makeBatchSource, onEvent: quiet });
  const [ckpt] = [...Deno.readDirSync(`${dir}/checkpoints`)].map((e) => `${dir}/checkpoints/${e.name}`);
  const bytes = await Deno.readFile(ckpt);
  const cut = bytes.subarray(0, bytes.length - 100);
  await Deno.writeFile(ckpt, cut);
  const before = torch.liveTensors();
  await assert.rejects(
    () => train(cfg, { runDir: dir, resume: true, data: makeBatchSource, onEvent: quiet }),
    // the only checkpoint does not read back: an IoError naming it (with one intact, resume falls back to it)
    (e) =>
      e instanceof torch.IoError && e.message.includes(`no checkpoint can be read: ${ckpt} is unreadable`),
  );
  assert.equal(torch.liveTensors(), before, "nothing native left behind");
  assert.deepEqual(await Deno.readFile(ckpt), cut, "the checkpoint is untouched");
});

Deno.test("a single batch is overfit: the loss falls by a large factor", () =>
  noLeak(() => {
    torch.manualSeed(0);
    const cfg = smallConfig();
    const mcfg = modelConfig(cfg);
    const model = new VideoMAE(mcfg);
    const opt = new AdamW(model.namedParameters().map(([name, param]) => ({ name, param })), {
      lr: 3e-3,
      weightDecay: 0,
    });
    const ds = new MovingShapes({ frames: 4, size: 16, seed: 1 });
    const x = batchToTensor(ds.batch([0, 1, 2, 3]));
    const mask = makeMask("tube", 4, model.encoder.grid, 0.75);
    const target = torch.noGrad(() => pixelTargets(x, mcfg.tubelet, mcfg.patch));
    const losses: number[] = [];
    for (let i = 0; i < 250; i++) {
      losses.push(torch.scope(() => {
        const loss = maskedMse(model.forward(x, mask.keep, mask.masked), target, mask.masked);
        loss.backward();
        return loss.item();
      }));
      opt.step();
      opt.zeroGrad();
    }
    const first = losses[0], last = losses[losses.length - 1];
    assert.ok(last < first / 10, `loss ${first} -> ${last}: expected a drop by more than 10x`);
    for (const t of [x, target]) t.dispose();
    disposeMask(mask);
    opt.dispose();
    model.dispose();
  }));

Deno.test("N steps straight equal N/2 steps + resume + N/2 steps, loss for loss (CPU)", async () => {
  const before = torch.liveTensors();
  const cfg = smallConfig({ device: "cpu" });
  const straight = await tempRun(), split = await tempRun();
  const a = await train(cfg, { runDir: straight, resume: false, data: makeBatchSource, onEvent: quiet });
  const b1 = await train(cfg, {
    runDir: split,
    resume: false,
    data: makeBatchSource,
    onEvent: quiet,
    stopAfter: 6,
  });
  assert.equal(b1.step, 6);
  const b2 = await train(cfg, { runDir: split, resume: true, data: makeBatchSource, onEvent: quiet });
  assert.equal(b2.step, 12);
  const resumed = [...b1.losses, ...b2.losses];
  assert.deepEqual(resumed.map((l) => l.step), a.losses.map((l) => l.step));
  assert.deepEqual(resumed.map((l) => l.loss), a.losses.map((l) => l.loss), "losses after resumption differ");
  // the checkpoints hold the same weights
  const wa = torch.scope(() =>
    torch.loadSafetensors(a.checkpoint!).tensors["model.decoder.head.weight"].toArray()
  );
  const wb = torch.scope(() =>
    torch.loadSafetensors(b2.checkpoint!).tensors["model.decoder.head.weight"].toArray()
  );
  assert.deepEqual(wa, wb);
  assert.equal(torch.liveTensors(), before);
  await Deno.remove(straight, { recursive: true });
  await Deno.remove(split, { recursive: true });
});

Deno.test("the live tensor count is the same at step 10 and step 100", async () => {
  const dir = await tempRun();
  const cfg = smallConfig({
    optim: { steps: 100, warmupSteps: 5 },
    log: { every: 10 },
    layerlock: { mode: "mae" },
  });
  await train(cfg, { runDir: dir, resume: false, data: makeBatchSource, onEvent: quiet });
  const recs = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(recs.map((r) => r.step), [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
  for (const r of recs) {
    for (const k of ["step", "loss", "lr", "time"]) assert.equal(typeof r[k], "number", k);
  }
  assert.equal(recs[9].liveTensors, recs[0].liveTensors, "live tensors grew between step 10 and 100");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("data waiting is measured per step, shown in the progress line, and warned about when it dominates", async () => {
  const cfg = smallConfig({ optim: { steps: 10 }, log: { every: 5, checkpointEvery: 100 } });
  // a source that takes 40 ms per batch, on top of the real loader: the step itself takes a few ms here
  const slow = async (c: TrainConfig, state: unknown | null) => {
    const inner = await makeBatchSource(c, state);
    return {
      next: async () => {
        await new Promise((r) => setTimeout(r, 40));
        return await inner.next();
      },
      state: () => inner.state(),
      close: () => inner.close(),
    };
  };
  const run = async (warn: number) => {
    const events: TrainEvent[] = [];
    await train({ ...cfg, log: { ...cfg.log, dataWaitWarn: warn } }, {
      runDir: await tempRun(),
      resume: false,
      data: slow,
      onEvent: (e) => events.push(e),
    });
    return events;
  };
  const events = await run(0.25);
  const logs = events.filter((e) => e.kind === "log").map((e) => (e as { record: StepRecord }).record);
  assert.ok(logs.every((r) => r.dataWaitMs! >= 35), JSON.stringify(logs.map((r) => r.dataWaitMs)));
  assert.match(formatEvent(events.find((e) => e.kind === "log")!)!.text, /data \d+\.\d ms\/step/);
  const warnings = events.filter((e) => e.kind === "slowData");
  assert.equal(warnings.length, 1); // at most once per 10 logging windows
  assert.match(
    formatEvent(warnings[0])!.text,
    /warning: at step 5 training waited on data for \d+% of the time/,
  );
  assert.equal((await run(1)).filter((e) => e.kind === "slowData").length, 0);
});

Deno.test("files the data source skips are counted in metrics.jsonl and returned", async () => {
  const cfg = smallConfig({ optim: { steps: 6 }, log: { every: 2, checkpointEvery: 100 } });
  let n = 0;
  const source = async (c: TrainConfig, state: unknown | null) => {
    const inner = await makeBatchSource(c, state);
    return {
      next: async () => {
        const b = await inner.next();
        return ++n === 3 ? { ...b, skipped: ["bad.mp4"] } : b;
      },
      state: () => inner.state(),
      close: () => inner.close(),
    };
  };
  const dir = await tempRun();
  const r = await train(cfg, { runDir: dir, resume: false, data: source, onEvent: quiet });
  assert.deepEqual(r.skippedFiles, ["bad.mp4"]);
  const recs = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(recs.map((x) => x.skippedFiles), [undefined, 1, 1]);
});

Deno.test("a run directory with checkpoints is not overwritten without --resume", async () => {
  const dir = await tempRun();
  const cfg = smallConfig({ optim: { steps: 3, warmupSteps: 1 } });
  await train(cfg, { runDir: dir, resume: false, data: makeBatchSource, onEvent: quiet });
  const before = torch.liveTensors();
  await assert.rejects(
    () => train(cfg, { runDir: dir, resume: false, data: makeBatchSource, onEvent: quiet }),
    /already holds checkpoints/,
  );
  assert.equal(torch.liveTensors(), before);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("configuration errors name the offending key", () => {
  const bad = (raw: unknown, ...want: RegExp[]) => {
    assert.throws(() => parseConfig(raw), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      for (const w of want) assert.match(e.message, w);
      return true;
    });
  };
  bad({ optim: { lr: "fast" } }, /optim\.lr/);
  bad({ optim: { lr: -1, batchSize: 0 } }, /optim\.lr/, /optim\.batchSize/);
  bad({ model: { preset: "enormous" } }, /model\.preset/);
  bad({ model: { widht: 3 } }, /model/, /widht/);
  bad({ data: { source: "folder" } }, /data\.path/);
  bad({ optim: { steps: 10, warmupSteps: 10 } }, /optim\.warmupSteps/);
  bad({ data: { size: 30 } }, /data\.size: must be a multiple of model\.patch \(8\)/);
  bad({ data: { frames: 5 } }, /data\.frames: must be a multiple of model\.tubelet \(2\)/);
  for (const name of [".", "..", ".hidden", "../x", "a/b", ""]) bad({ name }, /name/);
  // the warmup scales down with a short run (a tenth of it below 600 steps) unless given
  assert.equal(parseConfig({ optim: { steps: 40 } }).optim.warmupSteps, 4);
  assert.equal(parseConfig({ optim: { steps: 5000 } }).optim.warmupSteps, 60);
  assert.equal(parseConfig({ optim: { steps: 40, warmupSteps: 7 } }).optim.warmupSteps, 7);
  bad({ mask: { ratio: 1.5 } }, /mask\.ratio/);
  bad({ optim: { lr: Infinity } }, /optim\.lr/); // --set optim.lr=1e999 parses to Infinity
  bad({ optim: { clipGrad: -Infinity, weightDecay: NaN } }, /optim\.clipGrad/, /optim\.weightDecay/);
  assert.equal(parseConfig({}).model.preset, "tiny");
});

async function cli(args: string[], onStderr?: (text: string, child: Deno.ChildProcess) => void) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...CLI_PERMISSIONS, "src/cli/train.ts", ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let err = "";
  const dec = new TextDecoder();
  const reader = (async () => {
    for await (const chunk of child.stderr) {
      err += dec.decode(chunk);
      onStderr?.(err, child);
    }
  })();
  const out = new TextDecoder().decode(await new Response(child.stdout).arrayBuffer());
  await reader;
  const status = await child.status;
  return { code: status.code, out, err };
}

Deno.test("command line: Ctrl-C saves a checkpoint and --resume finishes the run", async () => {
  const name = `tmp/cli_${Date.now()}`;
  const flags = [
    "--name",
    name.replace("/", "_"),
    "--steps",
    "30",
    "--warmup",
    "2",
    "--set",
    "model.encoderDim=48",
    "--set",
    "model.encoderDepth=2",
    "--set",
    "model.decoderDim=24",
    "--set",
    "model.decoderDepth=1",
    "--frames",
    "4",
    "--size",
    "16",
    "--batch-size",
    "2",
    "--set",
    "log.every=1",
  ];
  // the run holds after step 3 until a signal (debug.holdAt): Ctrl-C lands there whatever the machine's speed
  let sent = false;
  const first = await cli([...flags, "--set", "debug.holdAt=3"], (text, child) => {
    if (!sent && text.includes("holding after step 3 until a signal")) {
      sent = true;
      child.kill("SIGINT");
    }
  });
  const runDir = `runs/${name.replace("/", "_")}`;
  assert.equal(first.code, 130, first.err);
  assert.match(first.err, /interrupted at step \d+; checkpoint saved/);
  const ckpts = [...Deno.readDirSync(`${runDir}/checkpoints`)].map((e) => e.name);
  assert.equal(ckpts.length, 1);
  const stoppedAt = checkpointStep(ckpts[0]);
  assert.equal(stoppedAt, 3);
  // a change to the configuration is refused, naming the key, with or without --resume
  for (const extra of [["--lr", "0.5"], ["--resume", "--lr", "0.5"]]) {
    const changed = await cli([...flags, ...extra]);
    assert.equal(changed.code, 2, changed.err);
    assert.match(changed.err, /another configuration.*optim\.lr \(saved 0\.001, given 0\.5\)/);
  }
  // the same command again continues the run
  const resumed = await cli(flags);
  assert.equal(resumed.code, 0, resumed.err);
  assert.match(
    resumed.err,
    new RegExp(`resumed from .*step_0*${stoppedAt}\\.safetensors at step ${stoppedAt}`),
  );
  assert.ok(Deno.statSync(`${runDir}/checkpoints/step_0000030.safetensors`).isFile);
  const steps = (await Deno.readTextFile(`${runDir}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l).step
  );
  assert.equal(steps[steps.length - 1], 30);
  await Deno.remove(runDir, { recursive: true });
});

Deno.test("command line: a --name whose folder is a file is a one-line error naming it, exit 1", async () => {
  const name = `ll-test-file-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir("runs", { recursive: true });
  await Deno.writeTextFile(`runs/${name}`, "not a folder");
  try {
    const r = await cli(["--name", name, "--steps", "2", "--warmup", "1", "--frames", "4", "--size", "16"]);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, new RegExp(`train: cannot write the run folder runs/${name}: `));
    assert.ok(!/\n\s+at /.test(r.err), `no stack trace:\n${r.err}`);
  } finally {
    await Deno.remove(`runs/${name}`);
  }
});

Deno.test("command line: without --name a second run goes to runs/default-2, never over the first", async () => {
  const cwd = await tempDir("names_");
  const script = new URL("../src/cli/train.ts", import.meta.url).pathname;
  const run = () =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-ffi",
        "--allow-read",
        "--allow-env",
        "--allow-write=runs",
        script,
        "--steps",
        "2",
        "--warmup",
        "1",
        "--frames",
        "4",
        "--size",
        "16",
        "--set",
        "model.encoderDepth=2",
        "--set",
        "data.prefetch=0",
      ],
      cwd,
      stdout: "piped",
      stderr: "piped",
    }).output();
  for (let i = 0; i < 2; i++) {
    const r = await run();
    assert.ok(r.success, new TextDecoder().decode(r.stderr));
  }
  for (const d of ["default", "default-2"]) {
    assert.ok(Deno.statSync(`${cwd}/runs/${d}/checkpoints/step_0000002.safetensors`).isFile, d);
    assert.equal(JSON.parse(Deno.readTextFileSync(`${cwd}/runs/${d}/config.json`)).name, d);
  }
  await Deno.remove(cwd, { recursive: true });
});
