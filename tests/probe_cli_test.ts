/**
 * `deno task probe`: probes of a checkpoint's frozen encoder on a small labelled video set made with ffmpeg's
 * test sources (SMPTE colour bars vs the moving test pattern, 4 training, 2 validation and 2 test videos per
 * class), through the command line: the report, the cache, and clean one-line usage errors. And the library
 * side in-process: feature extraction and the probe protocol leave no tensor alive.
 * @module
 */
import assert from "node:assert/strict";
import * as torch from "../mod.ts";
import { parseConfig } from "../src/config.ts";
import { ffmpegAvailable, VideoFolder } from "../src/data/mod.ts";
import { defaultIndex } from "../src/data/registry.ts";
import { chanceLevel, extractClipFeatures, probeSplits } from "../src/eval/folder_probe.ts";
import { VideoMAE } from "../src/models/video_mae.ts";
import { saveSafetensors } from "../src/torch/safetensors.ts";
import { CHECKPOINT_FORMAT } from "../src/train/checkpoint.ts";
import { modelConfig } from "../src/config.ts";
import { CLI_PERMISSIONS, SMALL_MODEL, tempDir } from "./helpers.ts";

const haveFfmpeg = await ffmpegAvailable() && await ffmpegAvailable("ffprobe");
if (!haveFfmpeg) console.warn("probe CLI tests skipped: ffmpeg/ffprobe not found");

async function ffmpegMake(args: string[]): Promise<void> {
  const r = await new Deno.Command("ffmpeg", { args: ["-v", "error", "-y", ...args], stderr: "piped" })
    .output();
  if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
}

/** The small model's configuration: 4 frames of 16×16, every frame, patch 8 (8 tokens per clip). */
const CFG = parseConfig({
  name: "probe_test",
  seed: 3,
  device: "cpu",
  model: { ...SMALL_MODEL, patch: 8 },
  data: { source: "folder", path: "unused", frames: 4, size: 16, frameStride: 1 },
});

/**
 * Two classes of short videos, each video a little different (size, rate, start): `bars` (SMPTE bars) and
 * `pattern` (ffmpeg's moving test pattern). Lists in three formats (CSV, spaces, tabs), relative to the root.
 */
async function makeVideos(dir: string): Promise<void> {
  const sizes = ["32x32", "48x32", "40x40", "64x48", "32x48", "56x40", "36x36", "44x32"];
  const make = (i: number, src: string, name: string) =>
    ffmpegMake(["-f", "lavfi", "-i", `${src}=size=${sizes[i]}:rate=${8 + i}`, "-t", "1", `${dir}/${name}`]);
  await Deno.mkdir(`${dir}/clips`);
  const jobs: Promise<void>[] = [];
  for (let i = 0; i < 8; i++) {
    jobs.push(make(i, i % 2 ? "smptehdbars" : "smptebars", `clips/bars_${i}.mp4`));
    jobs.push(make(i, "testsrc", `clips/pattern_${i}.mp4`));
  }
  await Promise.all(jobs);
  const lines = (ids: number[], sep: string) =>
    ids.flatMap((i) => [`clips/bars_${i}.mp4${sep}bars`, `clips/pattern_${i}.mp4${sep}pattern`]).join("\n") +
    "\n";
  await Deno.writeTextFile(`${dir}/train.csv`, "# training videos\n" + lines([0, 1, 2, 3], ","));
  await Deno.writeTextFile(`${dir}/val.txt`, lines([4, 5], " "));
  await Deno.writeTextFile(`${dir}/test.tsv`, lines([6, 7], "\t"));
}

/** A checkpoint of the small model (its initialisation: the CLI needs weights and the config metadata). */
function makeCheckpoint(path: string): void {
  const before = torch.liveTensors();
  torch.manualSeed(11);
  const model = new VideoMAE(modelConfig(CFG), "cpu");
  torch.scope(() => {
    const sd: Record<string, torch.Tensor> = {};
    for (const [k, t] of Object.entries(model.stateDict())) sd[`model.${k}`] = t;
    saveSafetensors(path, sd, { format: CHECKPOINT_FORMAT, step: "7", config: JSON.stringify(CFG) });
  });
  model.dispose();
  assert.equal(torch.liveTensors(), before);
}

function cli(args: string[]): Promise<Deno.CommandOutput> {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...CLI_PERMISSIONS, "--allow-run", "src/cli/probe.ts", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("probe task: runs src/cli/probe.ts with ffmpeg permitted where apt installs it, writing to runs/ only", async () => {
  const config = JSON.parse(await Deno.readTextFile("deno.json"));
  assert.match(config.tasks.probe, /^deno task build && deno run -q -P=run src\/cli\/probe\.ts$/);
  const set = config.permissions.run;
  for (const p of ["/usr/bin/ffmpeg", "/usr/bin/ffprobe"]) assert.ok(set.run.includes(p), p);
  assert.deepEqual([set.write, set.ffi], [["runs"], ["native/build"]]);
});

Deno.test({
  name: "probe CLI: report on labelled videos (far above chance, untrained baseline), cache, one-line errors",
  ignore: !haveFfmpeg,
  async fn() {
    const dir = await tempDir("probe_cli_");
    try {
      await makeVideos(dir);
      makeCheckpoint(`${dir}/ckpt.safetensors`);
      const out = `${dir}/out`;
      const args = [
        "--checkpoint",
        `${dir}/ckpt.safetensors`,
        "--baseline",
        "--data-path",
        dir,
        "--train-list",
        `${dir}/train.csv`,
        "--val-list",
        "val.txt", // relative to --data-path
        "--test-list",
        `${dir}/test.tsv`,
        "--clips-per-video",
        "2",
        "--linear-epochs",
        "100",
        "--linear-lr",
        "0.01,0.1",
        "--attentive-epochs",
        "30",
        "--attentive-lr",
        "0.003,0.01",
        "--seeds",
        "0,1",
        "--device",
        "cpu",
        "--out",
        out,
      ];
      let t = performance.now();
      const first = await cli(args);
      const firstSeconds = (performance.now() - t) / 1000;
      assert.ok(first.success, text(first.stderr) + text(first.stdout));
      const report = JSON.parse(await Deno.readTextFile(`${out}/report.json`));
      assert.deepEqual(report.classes, { bars: 0, pattern: 1 });
      assert.deepEqual(
        report.data.splits.map((s: { name: string; clips: number }) => [s.name, s.clips]),
        [["train", 16], ["val", 8], ["test", 8]],
      );
      assert.deepEqual(report.data.splits[0].clipsPerClass, { bars: 8, pattern: 8 });
      assert.equal(report.chance.test.majority, 0.5);
      assert.equal(report.probeSettings.reported, "test");
      assert.deepEqual(report.encoders.map((e: { kind: string }) => e.kind), ["checkpoint", "untrained"]);
      for (const e of report.encoders) {
        assert.equal(e.cache.train.cached, false);
        for (const name of ["linear", "attentive"]) {
          const p = e.probes[name];
          assert.equal(p.grid.length, 2);
          assert.ok(p.grid.some((g: { lr: number }) => g.lr === p.chosen.lr));
          assert.equal(p.test.values.length, 2);
          for (const s of [p.val, p.test]) assert.ok(s.mean >= 0 && s.mean <= 1 && s.std >= 0);
          // the easy two-class task is probed far above chance (50%)
          assert.ok(p.test.mean >= 0.85, `${e.kind} ${name}: test ${JSON.stringify(p.test)}`);
        }
      }
      const md = await Deno.readTextFile(`${out}/report.md`);
      assert.match(md, /\| checkpoint \(step 7\) \| linear \|/);
      assert.match(md, /\| untrained \(init seed 3\) \| attentive \|/);
      assert.match(md, /\| chance \(always the training majority class\) \| \| \| 50\.0% \| 50\.0% \|/);

      // the same inputs again: every split's features come from the cache; the numbers are the same
      t = performance.now();
      const second = await cli(args);
      const secondSeconds = (performance.now() - t) / 1000;
      assert.ok(second.success, text(second.stderr));
      const log = text(second.stdout);
      assert.equal(log.match(/from the cache/g)?.length, 6, log);
      assert.doesNotMatch(log, /extracting/);
      const again = JSON.parse(await Deno.readTextFile(`${out}/report.json`));
      for (const [k, e] of again.encoders.entries()) {
        for (const s of ["train", "val", "test"]) assert.equal(e.cache[s].cached, true);
        assert.deepEqual(e.probes, report.encoders[k].probes);
      }
      console.log(
        `probe CLI: first run ${firstSeconds.toFixed(1)} s (extract ${
          report.seconds.extract.toFixed(1)
        } s, ` +
          `probes ${report.seconds.probe.toFixed(1)} s), cached run ${secondSeconds.toFixed(1)} s`,
      );

      // usage mistakes: one line on stderr, exit code 2
      await Deno.writeTextFile(`${dir}/bad_val.txt`, "clips/bars_4.mp4 bars\nclips/pattern_4.mp4 dog\n");
      await Deno.writeTextFile(`${dir}/one_class.txt`, "clips/bars_0.mp4,bars\nclips/bars_1.mp4,bars\n");
      const common = ["--checkpoint", `${dir}/ckpt.safetensors`, "--data-path", dir, "--out", out];
      const cases: [string[], RegExp][] = [
        [
          [...common, "--train-list", "train.csv", "--val-list", "bad_val.txt"],
          /^probe: .*bad_val\.txt:2: label 'dog' is not one of the 2 classes of the training list$/,
        ],
        [
          [...common, "--train-list", "train.csv", "--val-list", "nope.txt"],
          /^probe: --val-list nope\.txt: no such file/,
        ],
        [
          [...common, "--train-list", "one_class.txt", "--val-list", "val.txt"],
          /has 1 class; probing needs 2/,
        ],
        [
          ["--checkpoint", `${dir}/missing.safetensors`, "--data-path", dir],
          /^probe: checkpoint .* does not exist$/,
        ],
        [
          [...common, "--train-list", "train.csv", "--val-list", "val.txt", "--probes", "knn"],
          /--probes: expected/,
        ],
        [[...common, "--bogus"], /^probe: Unknown option '--bogus'/],
      ];
      for (const [a, re] of cases) {
        const r = await cli(a);
        const err = text(r.stderr).trim();
        assert.equal(r.code, 2, `${a.join(" ")}: exit ${r.code}\n${err}`);
        assert.equal(err.split("\n").length, 1, err);
        assert.match(err, re);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(defaultIndex(dir)).catch(() => {}); // the probe index the CLI kept for the folder
    }
  },
});

Deno.test({
  name: "probe library: extraction from a labelled folder and the probe protocol leave no tensor alive",
  ignore: !haveFfmpeg,
  async fn() {
    const dir = await tempDir("probe_lib_");
    try {
      await makeVideos(dir);
      const before = torch.liveTensors();
      torch.manualSeed(5);
      const model = new VideoMAE(modelConfig(CFG), "cpu");
      const open = (list: string, labelMap?: Record<string, number>) =>
        VideoFolder.open(dir, {
          list: `${dir}/${list}`,
          labelMap,
          frames: 4,
          size: 16,
          stride: 1,
          augment: false,
          clipsPerVideo: 2,
          seed: 0,
        });
      const train = await open("train.csv");
      const val = await open("val.txt", { ...train.classes! });
      const ftr = await extractClipFeatures(train, [model.encoder], { depth: 2, batchSize: 5 });
      const fva = await extractClipFeatures(val, [model.encoder], { depth: 2, tokens: false });
      model.dispose();
      assert.deepEqual(ftr.features[0].pooled.shape, [16, 48]);
      assert.deepEqual(ftr.features[0].tokens!.shape, [16, 8, 48]);
      assert.equal(fva.features[0].tokens, null);
      // clip i is video i mod 8, and carries its class
      const v = train.videos;
      assert.deepEqual(Array.from(ftr.classes), Array.from({ length: 16 }, (_, i) => v[i % v.length].label));
      assert.deepEqual([...ftr.classes].filter((c) => c === 1).length, 8);
      const out = probeSplits(
        { ...ftr.features[0], classes: ftr.classes },
        { ...fva.features[0], classes: fva.classes },
        null,
        {
          probes: { linear: { epochs: 20, batchSize: 256, lrs: [0.1], weightDecays: [1e-4] } },
          seeds: [0],
          numClasses: 2,
        },
        "cpu",
      );
      assert.equal(out.linear!.reported, "val");
      assert.equal(out.linear!.test, null);
      assert.ok(out.linear!.val.mean >= 0.9, JSON.stringify(out.linear));
      for (const f of [...ftr.features, ...fva.features]) {
        f.pooled.dispose();
        f.tokens?.dispose();
      }
      assert.equal(torch.liveTensors(), before);
      const c = chanceLevel(Int32Array.from([0, 0, 1]), Int32Array.from([1, 1, 0, 1]), 2);
      assert.deepEqual(c, { majorityClass: 0, majority: 0.25, uniform: 0.5 });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
