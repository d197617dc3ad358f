// Data-parallel training on c10d (Gloo, CPU), with real processes on this machine: the collectives and the
// gradient reducer against values computed here, N ranks × batch B equal to 1 rank × batch N·B (MAE, and
// LayerLock across freezes, whose frozen blocks then leave the all-reduce), a dead rank ending the others with
// a clear error within the timeout, and the launch environment's validation.
import assert from "node:assert/strict";
import * as torch from "../mod.ts";
import { ConfigError } from "../src/errors.ts";
import { distBackends } from "../src/torch/dist.ts";
import { launchEnv } from "../src/train/launch.ts";
import { CLI_PERMISSIONS, tempDir } from "./helpers.ts";

const GLOO = distBackends().gloo;
const ignore = !GLOO; // the build says why (Gloo's headers missing); single-process training is unaffected

/** A port for a job's store: random in a range no other test uses (the store fails clearly if it is taken). */
function freePort(): number {
  return 30000 + Math.floor(Math.random() * 20000);
}

interface RankResult {
  code: number;
  out: string;
  err: string;
}

/** Starts `n` processes of `args` (a deno script and its arguments) as ranks of one job; returns each one's output. */
async function runRanks(
  n: number,
  args: string[],
  opts: {
    env?: Record<string, string>;
    onStderr?: (rank: number, text: string, kill: (rank: number, signal: Deno.Signal) => void) => void;
  } = {},
): Promise<RankResult[]> {
  const port = String(freePort());
  const children = Array.from({ length: n }, (_, rank) => {
    const child = new Deno.Command(Deno.execPath(), {
      // the CLI with its task's permissions; the test's own worker script with the test permissions
      args: ["run", ...(args[0].startsWith("tests/") ? ["-q", "-P=dev"] : CLI_PERMISSIONS), ...args],
      env: {
        RANK: String(rank),
        LOCAL_RANK: String(rank),
        WORLD_SIZE: String(n),
        LOCAL_WORLD_SIZE: String(n),
        MASTER_ADDR: "127.0.0.1",
        MASTER_PORT: port,
        OMP_NUM_THREADS: "1",
        ...opts.env,
      },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return { rank, child };
  });
  const kill = (rank: number, signal: Deno.Signal) => {
    try {
      children[rank].child.kill(signal);
    } catch { /* already gone */ }
  };
  return await Promise.all(children.map(async ({ rank, child }) => {
    let err = "";
    const dec = new TextDecoder();
    const reader = (async () => {
      for await (const chunk of child.stderr) {
        err += dec.decode(chunk);
        opts.onStderr?.(rank, err, kill);
      }
    })();
    const out = dec.decode(await new Response(child.stdout).arrayBuffer());
    await reader;
    return { code: (await child.status).code, out, err };
  }));
}

const lastJson = (r: RankResult) => {
  assert.equal(r.code, 0, `rank exited ${r.code}: ${r.err}`);
  return JSON.parse(r.out.trim().split("\n").pop()!);
};

Deno.test({
  name: "collectives over 2 processes (Gloo): sum, avg, max, broadcast, all-gather, reduce-scatter, store",
  ignore,
  async fn() {
    const rs = (await runRanks(2, ["tests/dist_worker.ts", "collectives"])).map(lastJson);
    for (const r of rs) {
      // rank 0 contributes [1, 10, 0], [[0, 2], [3, 0]]; rank 1 [2, 20, -1], [[1, 2], [3, 4]]
      assert.deepEqual(r.sum, [[3, 30, -1], [1, 4, 6, 4]]);
      assert.deepEqual(r.avg, [1.5, 1]); // ([1, 0] + [2, 2]) / 2
      assert.deepEqual(r.max, [1, 0]);
      assert.deepEqual(r.broadcast, [8, 9]); // rank 1's [7·1 + 1, 7·1 + 2]
      assert.deepEqual(r.allGather, [0, 0.5, 1, 1.5]);
      assert.equal(r.greeting, "hello from rank 0");
      assert.equal(r.count, 3); // 1 + 2
      assert.match(r.badShape, /allGather: .*world size \(2\) times the input's elements/);
      // payload bytes: sum 7 f32 + avg 2 + max 2 + broadcast 2 + all-gather 2 + reduce-scatter 4 = 19 × 4
      assert.equal(r.bytes, 19 * 4);
      assert.equal(r.distLive, 0);
      assert.ok(r.liveTensorsReturned);
    }
    // reduce-scatter of arange(4)·(r+1) summed over r = arange(4)·3: rank 0 keeps [0, 3], rank 1 [6, 9]
    assert.deepEqual(rs[0].reduceScatter, [0, 3]);
    assert.deepEqual(rs[1].reduceScatter, [6, 9]);
  },
});

for (const overlap of [true, false]) {
  Deno.test({
    name:
      `gradient reducer (${overlap ? "overlapped" : "after backward"}): means over ranks, buckets, frozen ` +
      "parameters leave them",
    ignore,
    async fn() {
      const rs = (await runRanks(2, ["tests/dist_worker.ts", "reducer", overlap ? "overlap" : "no-overlap"]))
        .map(lastJson);
      for (const r of rs) {
        // rank r's gradient of w is (r+1)·[1, 2, 3]: the mean over ranks 1 and 2 is 1.5·[1, 2, 3]
        assert.deepEqual(r.gradW, [1.5, 3, 4.5]);
        assert.deepEqual(r.gradB, [1.5, 1.5]);
        assert.equal(r.smallBuckets, 3);
        assert.equal(r.allBuckets, 1); // 7 floats in one 25 MiB bucket
        assert.equal(r.allBytes, 7 * 4);
        // frozen: only w and b are communicated
        assert.equal(r.frozenBytes, 5 * 4);
        assert.deepEqual(r.gradW2, [1.5, 3, 4.5]);
        assert.equal(r.rebuilds, 2);
        // b got no gradient on any rank: it stays without one; w's is the mean of (r+1)·[1, 1, 1]
        assert.equal(r.unusedGradDefined, false);
        assert.deepEqual(r.gradW3, [1.5, 1.5, 1.5]);
        assert.equal(r.distLive, 0);
        assert.ok(r.liveTensorsReturned);
      }
    },
  });
}

Deno.test({
  name: "a rank that dies ends the others within the timeout with an error naming the collective",
  ignore,
  async fn() {
    const rs = await runRanks(2, ["tests/dist_worker.ts", "die"], { env: { LL_TEST_TIMEOUT_MS: "8000" } });
    assert.equal(rs[1].code, 3);
    const r0 = lastJson(rs[0]);
    assert.ok(r0.error, "rank 0 should have failed");
    assert.match(r0.error, /all-reduce failed on rank 0 of 2 \(gloo/);
    assert.ok(r0.seconds < 20, `took ${r0.seconds} s`);
  },
});

Deno.test({
  name: "a rank that hangs makes the others fail at the timeout, naming it",
  ignore,
  async fn() {
    const rs = await runRanks(2, ["tests/dist_worker.ts", "hang"], {
      env: { LL_TEST_TIMEOUT_MS: "4000" },
      onStderr: (rank, text, kill) => {
        if (rank === 0 && text.includes("rank 0 done")) kill(1, "SIGKILL");
      },
    });
    const r0 = lastJson(rs[0]);
    assert.match(r0.error, /all-reduce failed on rank 0 of 2 \(gloo, timeout 4000 ms\)/);
    assert.ok(r0.seconds >= 3.5 && r0.seconds < 15, `failed after ${r0.seconds} s`);
    assert.match(r0.who, /^rank 1 did not answer \(dead or hung/);
  },
});

/** The flags of the small data-parallel training runs. */
function smallRun(name: string, batch: number, extra: string[] = [], steps = 12): string[] {
  return [
    "src/cli/train.ts",
    "--name",
    name,
    "--steps",
    String(steps),
    "--warmup",
    "2",
    "--batch-size",
    String(batch),
    "--frames",
    "4",
    "--size",
    "16",
    "--device",
    "cpu",
    "--set",
    "model.encoderDim=48",
    "--set",
    "model.encoderDepth=3",
    "--set",
    "model.encoderHeads=3",
    "--set",
    "model.decoderDim=24",
    "--set",
    "model.decoderDepth=1",
    "--set",
    "log.every=1",
    "--set",
    "log.floorClips=0",
    "--set",
    "data.prefetch=2", // the read-ahead worker: each rank's shard is drawn there
    "--set",
    "optim.lr=1e-3",
    ...extra,
  ];
}

/** The largest absolute difference between the tensors of two checkpoints (weights, or the optimiser state). */
function maxDiff(
  a: string,
  b: string,
  part: "weights" | "optim" = "weights",
): { diff: number; names: number } {
  return torch.scope(() => {
    const x = torch.loadSafetensors(a).tensors, y = torch.loadSafetensors(b).tensors;
    const pick = (k: string) => !k.startsWith("rng.") && k.startsWith("optim.") === (part === "optim");
    const names = Object.keys(x).filter(pick);
    assert.deepEqual(names.sort(), Object.keys(y).filter(pick).sort());
    let diff = 0;
    for (const k of names) diff = Math.max(diff, x[k].sub(y[k]).abs().max().item());
    return { diff, names: names.length };
  });
}

const metrics = (runDir: string) =>
  Deno.readTextFileSync(`${runDir}/metrics.jsonl`).trim().split("\n").map((l) => JSON.parse(l));

for (const mode of ["mae", "layerlock"]) {
  Deno.test({
    name: `${mode}: 2 ranks × batch 2 train the same weights as 1 rank × batch 4, and so does ZeRO-1` +
      (mode === "layerlock" ? ", across two freezes; frozen blocks leave the all-reduce" : ""),
    ignore,
    async fn() {
      const dir = (await tempDir("dist_")).replace(/^runs\//, "");
      const sched = mode === "layerlock"
        ? [
          "--set",
          "layerlock.pixelSteps=4",
          "--set",
          "layerlock.interval=3",
          "--set",
          "layerlock.maxFrozen=2",
        ]
        : [];
      const common = ["--set", `layerlock.mode=${mode}`, ...sched];
      const one = `${dir}_one`.replace(/\//g, "_"), two = `${dir}_two`.replace(/\//g, "_");
      const zero = `${dir}_zero`.replace(/\//g, "_");
      const [single] = await runRanks(1, smallRun(one, 4, common), { env: { WORLD_SIZE: "1" } });
      assert.equal(single.code, 0, single.err);
      const pair = await runRanks(2, smallRun(two, 2, common));
      for (const r of pair) assert.equal(r.code, 0, r.err);
      const pairZero = await runRanks(2, smallRun(zero, 2, [...common, "--set", "dist.zero=true"]));
      for (const r of pairZero) assert.equal(r.code, 0, r.err);
      const ck = (n: string) => `runs/${n}/checkpoints/step_0000012.safetensors`;
      const { diff, names } = maxDiff(ck(one), ck(two));
      assert.ok(names > 10);
      assert.ok(diff < 1e-4, `weights differ by ${diff}`);
      // ZeRO-1: the same weights, and its gathered optimiser state is the unsharded one (same keys and values)
      const z = maxDiff(ck(two), ck(zero));
      assert.ok(z.diff < 1e-5, `ZeRO-1 weights differ by ${z.diff}`);
      console.log(
        `  ${mode}: max |Δw| 2 ranks vs 1 ${diff.toExponential(1)}, ZeRO-1 vs unsharded ${
          z.diff.toExponential(1)
        }`,
      );
      const zo = maxDiff(ck(two), ck(zero), "optim");
      assert.ok(zo.names > 10 && zo.diff < 1e-5, `ZeRO-1 optimiser state differs by ${zo.diff}`);
      // the losses logged (means over both ranks) match the single process's
      const m1 = metrics(`runs/${one}`), m2 = metrics(`runs/${two}`);
      assert.equal(m2.length, 12);
      for (let i = 0; i < 12; i++) assert.ok(Math.abs(m1[i].loss - m2[i].loss) < 1e-4, `step ${i + 1}`);
      assert.ok(m2.every((r) => r.worldSize === 2 && r.globalBatch === 4));
      // sharded: a reduce-scatter of the whole (padded) gradient and an all-gather of half of it, 1.5× the bytes
      // of the all-reduce's payload (the same traffic on the wire: an all-reduce is those two)
      const mz = metrics(`runs/${zero}`);
      const ratio = mz[0].commBytes / m2[0].commBytes;
      assert.ok(ratio > 1.49 && ratio < 1.52, `ZeRO-1 / all-reduce bytes ${ratio}`);
      const bytes = m2.map((r) => r.commBytes as number);
      if (mode === "layerlock") {
        // frozen depth 0 → 1 → 2: the bytes per step fall at each freeze
        const byDepth = new Map<number, number>();
        for (const r of m2) byDepth.set(r.frozenDepth, r.commBytes);
        assert.deepEqual([...byDepth.keys()], [0, 1, 2]);
        assert.ok(
          byDepth.get(1)! < byDepth.get(0)! && byDepth.get(2)! < byDepth.get(1)!,
          JSON.stringify([...byDepth]),
        );
      } else {
        assert.ok(bytes.every((b) => b === bytes[0] && b > 0));
      }
      // rank 0 alone wrote the run
      assert.ok(!pair[1].out.includes("outputs:"));
      if (mode === "layerlock") {
        const zb = new Map<number, number>();
        for (const r of mz) zb.set(r.frozenDepth, r.commBytes);
        assert.ok(zb.get(2)! < zb.get(1)! && zb.get(1)! < zb.get(0)!, JSON.stringify([...zb]));
        // resumed for 3 more steps, the sharded run loads the gathered state into its shards and stays equal
        for (const n of [two, zero]) {
          const path = `runs/${n}/config.json`, cfg = JSON.parse(Deno.readTextFileSync(path));
          cfg.optim.steps = 15;
          Deno.writeTextFileSync(path, JSON.stringify(cfg));
          for (const r of await runRanks(2, ["src/cli/train.ts", "--name", n, "--resume"])) {
            assert.equal(r.code, 0, r.err);
          }
        }
        const ck15 = (n: string) => `runs/${n}/checkpoints/step_0000015.safetensors`;
        const r15 = maxDiff(ck15(two), ck15(zero)), o15 = maxDiff(ck15(two), ck15(zero), "optim");
        assert.ok(r15.diff < 1e-5 && o15.diff < 1e-5, `after resuming: ${r15.diff}, ${o15.diff}`);
      }
      for (const n of [one, two, zero]) await Deno.remove(`runs/${n}`, { recursive: true });
    },
  });
}

Deno.test({
  name: "a NaN on one rank rolls every rank back to the same checkpoint; the job ends at the same step",
  ignore,
  async fn() {
    const name = `dist_nan_${Date.now()}`;
    const flags = smallRun(name, 2, [
      "--set",
      "log.checkpointEvery=4",
      "--set",
      "nonFinite.policy=rollback",
      "--set",
      "debug.nanAtSteps=[6]",
      "--set",
      "debug.nanRank=1",
    ]);
    const rs = await runRanks(2, flags);
    for (const r of rs) assert.equal(r.code, 0, r.err);
    assert.match(rs[0].err, /the loss became NaN at step 6: rolling back to .*step_0000004\.safetensors/);
    const recs = metrics(`runs/${name}`);
    const rb = recs.filter((r) => r.event === "rollback");
    assert.deepEqual(rb.map((r) => [r.step, r.badStep]), [[4, 6]]);
    assert.deepEqual(
      recs.filter((r) => r.event === undefined).map((r) => r.step),
      Array.from({ length: 12 }, (_, i) => i + 1),
    );
    assert.ok(recs.every((r) => r.event !== undefined || Number.isFinite(r.loss)));
    await Deno.remove(`runs/${name}`, { recursive: true });
  },
});

Deno.test({
  name:
    "a killed rank stops the job with an error within the timeout; --resume continues it, on 2 ranks or on 1",
  ignore,
  async fn() {
    const name = `dist_kill_${Date.now()}`;
    // rank 1 holds after step 9 (debug.holdAt) and is killed there: rank 0 is then waiting in the next step's
    // all-reduce, whatever the machine's speed
    const hold = ["--set", "debug.holdAt=9", "--set", "debug.holdRank=1"];
    const flags = smallRun(
      name,
      2,
      ["--set", "log.checkpointEvery=4", "--set", "dist.timeoutS=10", ...hold],
      40,
    );
    let killedAt = 0;
    const first = await runRanks(2, flags, {
      onStderr: (rank, text, kill) => {
        if (!killedAt && rank === 1 && text.includes("rank 1: holding after step 9")) {
          killedAt = performance.now();
          kill(1, "SIGKILL");
        }
      },
    });
    // from the kill to the end of the job: the 10 s timeout, then the failure report (a margin for a loaded machine)
    const seconds = (performance.now() - killedAt) / 1000;
    assert.ok(killedAt, `rank 1 never held after step 9:\n${first[0].err}\n${first[1].err}`);
    assert.notEqual(first[0].code, 0);
    assert.match(first[0].err, /failed on rank 0 of 2 \(gloo/);
    assert.match(first[0].err, /rank 1 did not answer \(dead or hung; it last reached step \d+\)/);
    assert.ok(seconds < 60, `the job took ${seconds} s to stop after the kill`);
    const ckpts = [...Deno.readDirSync(`runs/${name}/checkpoints`)].map((e) => e.name).sort();
    assert.ok(ckpts.length >= 1, "no checkpoint before the kill");
    const resumeFlags = ["src/cli/train.ts", "--name", name, "--resume"];
    const again = await runRanks(2, resumeFlags);
    for (const r of again) assert.equal(r.code, 0, r.err);
    assert.match(again[0].err, /resumed from .*step_\d+\.safetensors/);
    const steps = metrics(`runs/${name}`).map((r) => r.step);
    assert.equal(steps[steps.length - 1], 40);
    // a different world size: the model and optimiser load on one process, which trains on alone
    const cfgPath = `runs/${name}/config.json`;
    const cfg = JSON.parse(Deno.readTextFileSync(cfgPath));
    cfg.optim.steps = 44;
    Deno.writeTextFileSync(cfgPath, JSON.stringify(cfg));
    const [alone] = await runRanks(1, resumeFlags, { env: { WORLD_SIZE: "1" } });
    assert.equal(alone.code, 0, alone.err);
    const last = metrics(`runs/${name}`).pop();
    assert.equal(last.step, 44);
    assert.equal(last.worldSize, undefined);
    await Deno.remove(`runs/${name}`, { recursive: true });
  },
});

Deno.test("launch environment: absent is one process; torchrun's variables are read; mistakes name the variable", () => {
  const env = (vars: Record<string, string>) => (k: string) => vars[k];
  assert.equal(launchEnv(env({})), null);
  const e = launchEnv(env({
    RANK: "3",
    WORLD_SIZE: "4",
    LOCAL_RANK: "1",
    LOCAL_WORLD_SIZE: "2",
    MASTER_ADDR: "node0",
    MASTER_PORT: "29400",
    TORCHELASTIC_USE_AGENT_STORE: "True",
    TORCHELASTIC_RESTART_COUNT: "2",
  }))!;
  assert.deepEqual(e, {
    rank: 3,
    worldSize: 4,
    localRank: 1,
    localWorldSize: 2,
    masterAddr: "node0",
    masterPort: 29400,
    agentStore: true,
    restartCount: 2,
  });
  const bad = (vars: Record<string, string>, key: string) =>
    assert.throws(
      () => launchEnv(env(vars)),
      (err) => err instanceof ConfigError && err.message.includes(key),
    );
  bad({ WORLD_SIZE: "2", RANK: "2", MASTER_ADDR: "a", MASTER_PORT: "1" }, "RANK");
  bad({ WORLD_SIZE: "2", RANK: "0", MASTER_PORT: "1" }, "MASTER_ADDR");
  bad({ WORLD_SIZE: "2", RANK: "x", MASTER_ADDR: "a", MASTER_PORT: "1" }, "RANK");
  bad({ WORLD_SIZE: "2", RANK: "1", MASTER_ADDR: "a", MASTER_PORT: "70000" }, "MASTER_PORT");
  bad({ WORLD_SIZE: "2", MASTER_ADDR: "a", MASTER_PORT: "1" }, "RANK");
});
