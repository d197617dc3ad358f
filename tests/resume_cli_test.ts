/**
 * Runs that survive preemption, through the command line as a cluster job sees it: SIGTERM checkpoints and
 * exits 143; re-running the identical command continues the run (no --resume needed), after a SIGKILL too, with
 * metrics.jsonl cut back to the checkpoint's step; a newest checkpoint cut in half is passed over, named, for
 * the previous intact one; a complete run is a no-op and a longer --steps extends it; a copied run folder
 * resumes into itself, not into the folder its config.json names; --help lists every flag with its default; a
 * CUDA request on a CPU box is one line with one prefix.
 * @module
 */
import assert from "node:assert/strict";
import { checkpointStep } from "../src/train/checkpoint.ts";
import { CLI_PERMISSIONS } from "./helpers.ts";
import { TRAIN_FLAG_PATHS } from "../src/cli/flags.ts";
import { cuda } from "../mod.ts";

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
  const out = dec.decode(await new Response(child.stdout).arrayBuffer());
  await reader;
  return { code: (await child.status).code, out, err };
}

const TINY = [
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
  "log.floorClips=0",
  "--set",
  "threads=1",
];

const steps = (runDir: string) =>
  Deno.readTextFileSync(`${runDir}/metrics.jsonl`).trim().split("\n").map((l) =>
    JSON.parse(l).step as number
  );
const ckpts = (runDir: string) => [...Deno.readDirSync(`${runDir}/checkpoints`)].map((e) => e.name).sort();

Deno.test("preemption: SIGTERM, SIGKILL and a cut checkpoint; the same command resumes each time", async () => {
  const name = `ll-preempt-${crypto.randomUUID().slice(0, 8)}`, runDir = `runs/${name}`;
  const cmd = [
    "--name",
    name,
    "--steps",
    "40",
    ...TINY,
    "--set",
    "log.every=1",
    "--set",
    "log.checkpointEvery=10",
    "--set",
    "log.keep=5",
  ];
  // The run holds after the chosen step until a signal comes (debug.holdAt), so the signal lands there on a
  // machine of any speed: never a race between a printed line and the rest of the run.
  const holdAt = (step: number) => ["--set", `debug.holdAt=${step}`];
  const killWhenHeld = (signal: Deno.Signal, step: number) => {
    let sent = false;
    return (text: string, child: Deno.ChildProcess) => {
      if (!sent && text.includes(`holding after step ${step} until a signal`)) {
        sent = true;
        child.kill(signal);
      }
    };
  };
  try {
    // SIGTERM (a cluster's preemption notice) at step 13: finish the step, checkpoint, exit 143
    const a = await cli([...cmd, ...holdAt(13)], killWhenHeld("SIGTERM", 13));
    assert.equal(a.code, 143, a.err);
    const first = ckpts(runDir);
    const termAt = checkpointStep(first[first.length - 1]);
    assert.equal(termAt, 13, `${first}`);
    // the hold is for the invocation that asked for it: config.json does not keep it for the next one
    assert.equal(JSON.parse(Deno.readTextFileSync(`${runDir}/config.json`)).debug.holdAt, undefined);
    // the same command continues; SIGKILL (no notice) after the next checkpoint at a multiple of 10
    const target = (Math.floor(termAt / 10) + 1) * 10;
    const b = await cli([...cmd, ...holdAt(target + 3)], killWhenHeld("SIGKILL", target + 3));
    assert.equal(b.code, 137, b.err);
    assert.match(b.out, /holds a run; continuing it/);
    assert.match(b.err, new RegExp(`resumed from .*step_0*${termAt}\\.safetensors at step ${termAt}`));
    const newest = `${runDir}/checkpoints/step_${String(target).padStart(7, "0")}.safetensors`;
    assert.ok(Deno.statSync(newest).isFile);
    assert.ok(Math.max(...steps(runDir)) > target, "the killed run logged steps past its last checkpoint");
    // a temporary file a kill left in the middle of a save is removed on the next start
    Deno.writeTextFileSync(`${runDir}/checkpoints/step_0000099.safetensors.tmp`, "half a checkpoint");
    // the newest checkpoint cut in half (a kill while it was copied elsewhere, a bad disk): passed over, named
    const bytes = Deno.readFileSync(newest);
    Deno.writeFileSync(newest, bytes.subarray(0, bytes.length >> 1));
    const c = await cli(cmd);
    assert.equal(c.code, 0, c.err);
    assert.match(
      c.err,
      new RegExp(
        `warning: resuming from .*step_0*${termAt}\\.safetensors: the newer .*step_0*${target}\\.safetensors is unreadable`,
      ),
    );
    assert.ok(!ckpts(runDir).some((f) => f.endsWith(".tmp")), "the stale temporary file was removed");
    // metrics.jsonl: every step once, in order, to the end (the records past each resumed checkpoint were cut)
    assert.deepEqual(steps(runDir), Array.from({ length: 40 }, (_, i) => i + 1));
    // a complete run: nothing to do, exit 0; a longer --steps continues it
    const d = await cli(cmd);
    assert.equal(d.code, 0, d.err);
    assert.match(d.out, /is complete \(step 40 of 40\); nothing to do/);
    const e = await cli([...cmd, "--steps", "44"]);
    assert.equal(e.code, 0, e.err);
    assert.match(e.out, /resuming with optim\.steps = 44 \(was 40\)/);
    assert.equal(steps(runDir).at(-1), 44);
  } finally {
    await Deno.remove(runDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("kill -9 at random moments, during training and during checkpoint writes: always resumes, same end", async () => {
  const name = `ll-kill-${crypto.randomUUID().slice(0, 8)}`, runDir = `runs/${name}`;
  const cmd = [
    "--name",
    name,
    "--steps",
    "60",
    ...TINY,
    "--set",
    "log.every=1",
    "--set",
    "log.checkpointEvery=1", // a checkpoint every step: kills land inside saves too
    "--set",
    "log.keep=2",
  ];
  let seed = 7;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const lastLogged = () => {
    try {
      return Math.max(0, ...steps(runDir));
    } catch {
      return 0; // nothing logged yet
    }
  };
  try {
    // Each attempt sends SIGKILL when it prints a random step h: the kill lands in that step's checkpoint write
    // (one every step), in the next step, or at the latest while the run holds after step h + 1
    // (debug.holdAt), so every kill lands on a machine of any speed, at a moment the machine's speed picks.
    for (let attempt = 0; attempt < 5; attempt++) {
      const h = lastLogged() + 2 + Math.floor(rand() * 8); // at most 50 after five attempts
      let sent = false;
      const r = await cli([...cmd, "--set", `debug.holdAt=${h + 1}`], (text, child) => {
        if (!sent && new RegExp(`step ${h}/60`).test(text)) {
          sent = true;
          child.kill("SIGKILL");
        }
      });
      assert.equal(r.code, 137, `attempt ${attempt} (kill at step ${h}) ended with ${r.code}: ${r.err}`);
    }
    const done = await cli(cmd);
    assert.equal(done.code, 0, done.err);
    // the end: 60 steps, each logged once, and the checkpoints intact
    assert.deepEqual(steps(runDir), Array.from({ length: 60 }, (_, i) => i + 1));
    const left = ckpts(runDir);
    assert.ok(left.includes("step_0000060.safetensors"), `${left}`);
    assert.ok(!left.some((f) => f.endsWith(".tmp")), `a temporary file was left: ${left}`);
    const { verifyCheckpoint } = await import("../src/train/checkpoint.ts");
    for (const f of left) verifyCheckpoint(`${runDir}/checkpoints/${f}`);
  } finally {
    await Deno.remove(runDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("resume: a copied run folder continues into itself, not into the run its config.json names", async () => {
  const a = `ll-copy-a-${crypto.randomUUID().slice(0, 8)}`, b = a.replace("copy-a", "copy-b");
  try {
    const r = await cli([
      "--name",
      a,
      "--steps",
      "4",
      "--warmup",
      "1",
      ...TINY,
      "--set",
      "log.checkpointEvery=2",
    ]);
    assert.equal(r.code, 0, r.err);
    const before = ckpts(`runs/${a}`);
    await new Deno.Command("cp", { args: ["-r", `runs/${a}`, `runs/${b}`] }).output();
    const c = await cli(["--name", b, "--resume", "--steps", "6"]);
    assert.equal(c.code, 0, c.err);
    assert.ok(ckpts(`runs/${b}`).includes("step_0000006.safetensors"));
    assert.deepEqual(ckpts(`runs/${a}`), before, "the original run was not touched");
    assert.equal(JSON.parse(Deno.readTextFileSync(`runs/${b}/config.json`)).name, a); // the copy's own file
  } finally {
    for (const n of [a, b]) await Deno.remove(`runs/${n}`, { recursive: true }).catch(() => {});
  }
});

Deno.test("command line: --help lists every flag with its default; refusals are one prefixed line", async () => {
  const h = await cli(["--help"]);
  assert.equal(h.code, 0);
  for (const [flag, key] of Object.entries(TRAIN_FLAG_PATHS)) {
    assert.match(h.out, new RegExp(`--${flag} X +${key.replace(".", "\\.")} \\(default `), flag);
  }
  assert.match(h.out, /optim\.clipGrad = 0/);
  // the other tools print their usage (every flag) for --help / -h
  for (
    const [tool, flag, want] of [["experiment", "--help", /--modes/], ["embed", "-h", /--run NAME/]] as const
  ) {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...CLI_PERMISSIONS, `src/cli/${tool}.ts`, flag],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(r.code, 0, tool);
    assert.match(new TextDecoder().decode(r.stdout), want);
  }
  for (const bad of [["--name", ".."], ["--size", "30"], ["--steps", "5", "--warmup", "9"]]) {
    const r = await cli(bad);
    assert.equal(r.code, 2, r.err);
    assert.doesNotMatch(r.err, /^\s+at /m, "no stack trace");
  }
  if (!cuda.isAvailable()) {
    const r = await cli([
      "--device",
      "cuda",
      "--name",
      `ll-nocuda-${crypto.randomUUID().slice(0, 8)}`,
      ...TINY,
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /^train: device: "cuda" was requested/m);
    assert.doesNotMatch(r.err, /train: train:/);
    assert.doesNotMatch(r.err, /^\s+at /m);
  }
});
