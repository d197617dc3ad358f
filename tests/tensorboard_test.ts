/**
 * TensorBoard logging (`log.tensorboard`, src/train/tensorboard.ts): CRC-32C against its standard check values,
 * the TFRecord mask and an Event's protobuf bytes by hand, then a training run (stopped half-way and resumed:
 * two events files) whose events TensorBoard's own EventAccumulator reads back (tests/interop/read_tensorboard.py)
 * holding exactly the numbers of metrics.jsonl, and an events file cut mid-record read up to the cut.
 * @module
 */
import assert from "node:assert/strict";
import { crc32c } from "../src/checksum.ts";
import { parseConfig, type TrainConfig } from "../src/config.ts";
import { parseExperimentConfig, runName } from "../src/experiment/config.ts";
import { runExperiment } from "../src/experiment/run.ts";
import { floorClips, makeBatchSource } from "../src/data/source.ts";
import {
  encodeEvent,
  flattenScalars,
  maskCrc,
  TensorBoardWriter,
  tfRecord,
} from "../src/train/tensorboard.ts";
import { train } from "../src/train/trainer.ts";
import { SMALL_DATA, SMALL_MODEL, tempDir } from "./helpers.ts";
import { pythonWith } from "./python_env.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

// ------------------------------------------------------------------------------ the format, by hand

Deno.test("crc32c: the standard check value and the iSCSI test vectors (RFC 3720 B.4); it continues", () => {
  assert.equal(crc32c(enc("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa, "32 zero bytes");
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43, "32 bytes of 0xff");
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e, "0x00..0x1f");
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c, "0x1f..0x00");
  assert.equal(crc32c(enc("6789"), crc32c(enc("12345"))), 0xe3069283, "continued from the first part's CRC");
});

Deno.test("maskCrc: rotated right by 15 bits plus 0xa282ead8, modulo 2^32 (by hand)", () => {
  // 0xe3069283: its low 15 bits 0x1283 move to the top (0x1283 << 17 = 0x25060000), its top 17 bits
  // 0xe3069283 >>> 15 = 0x1c60d to the bottom: 0x2507c60d; + 0xa282ead8 = 0xc78ab0e5 (no carry out)
  assert.equal(maskCrc(0xe3069283), 0xc78ab0e5);
  // all ones rotate to all ones; 0xffffffff + 0xa282ead8 = 0x1a282ead7, which wraps to 0xa282ead7
  assert.equal(maskCrc(0xffffffff), 0xa282ead7);
  assert.equal(maskCrc(0), 0xa282ead8);
  // 1 rotated right by 15 is 1 << 17
  assert.equal(maskCrc(1), (0x20000 + 0xa282ead8) >>> 0);
});

Deno.test("tfRecord and encodeEvent: the bytes, by hand", () => {
  const data = enc("abc");
  const rec = tfRecord(data);
  const view = new DataView(rec.buffer);
  assert.equal(rec.length, 8 + 4 + 3 + 4);
  assert.equal(hex(rec.subarray(0, 8)), "03 00 00 00 00 00 00 00", "the length, uint64 little-endian");
  assert.equal(view.getUint32(8, true), maskCrc(crc32c(rec.subarray(0, 8))), "the length's masked CRC");
  assert.equal(hex(rec.subarray(12, 15)), "61 62 63");
  assert.equal(view.getUint32(15, true), maskCrc(crc32c(data)), "the data's masked CRC");
  // wall_time 1.5 (field 1, fixed64: tag 0x09), file_version (field 3, length-delimited: tag 0x1a, 13 bytes)
  assert.equal(
    hex(encodeEvent({ wallTime: 1.5, fileVersion: "brain.Event:2" })),
    "09 00 00 00 00 00 00 f8 3f 1a 0d " + hex(enc("brain.Event:2")),
  );
  // step 300 (field 2, varint: tag 0x10, 300 = 0b10_0101100 → ac 02), summary (field 5: tag 0x2a) holding one
  // Value (field 1: tag 0x0a) { tag "loss" (0a 04 ...), simple_value 0.5 (field 2, fixed32: tag 0x15) }
  const value = `0a 04 ${hex(enc("loss"))} 15 00 00 00 3f`; // 11 bytes
  assert.equal(
    hex(encodeEvent({ wallTime: 1.5, step: 300, scalars: [["loss", 0.5]] })),
    `09 00 00 00 00 00 00 f8 3f 10 ac 02 2a 0d 0a 0b ${value}`,
  );
  // a simple_value of 0 is written (it is in a oneof); a negative step is ten bytes of two's complement
  assert.equal(hex(encodeEvent({ wallTime: 0, scalars: [["z", 0]] })).slice(-14), "15 00 00 00 00");
  assert.equal(
    hex(encodeEvent({ wallTime: 0, step: -1 })),
    "09 00 00 00 00 00 00 00 00 10 ff ff ff ff ff ff ff ff ff 01",
  );
  assert.throws(() => encodeEvent({ wallTime: 0, step: 1.5 }), /a step must be an integer/);
});

Deno.test("flattenScalars: numbers by '/'-joined tags; the step, strings, arrays and non-finite values left out", () => {
  assert.deepEqual(
    flattenScalars({
      step: 7,
      loss: 0.25,
      target: "h2",
      eval: { effectiveRank: 3.5, nan: NaN, deep: { x: -1 } },
      pixelLoss: null,
      skip: [1, 2],
      flag: true,
      inf: -Infinity,
      huge: 1e39, // not finite as float32
    }),
    [["loss", 0.25], ["eval/effectiveRank", 3.5], ["eval/deep/x", -1]],
  );
});

// ------------------------------------------------------------------------------ read back by TensorBoard

const INTEROP = decodeURIComponent(new URL("./interop/", import.meta.url).pathname);

interface ReadBack {
  fileVersion: number;
  scalars: Record<string, [number, number][]>;
  other: Record<string, unknown>;
}

async function readTensorBoard(python: string, path: string): Promise<ReadBack> {
  const r = await new Deno.Command(python, { args: [`${INTEROP}read_tensorboard.py`, path] }).output();
  const err = new TextDecoder().decode(r.stderr);
  assert.ok(r.success, `read_tensorboard.py failed (exit ${r.code}):\n${err}`);
  return JSON.parse(new TextDecoder().decode(r.stdout));
}

/** Every number of the records by tag (nested keys joined with `/`), as [step, value], in order. */
function expectedScalars(records: Record<string, unknown>[]): Map<string, [number, number][]> {
  const out = new Map<string, [number, number][]>();
  for (const r of records) {
    const walk = (o: Record<string, unknown>, prefix: string) => {
      for (const [k, v] of Object.entries(o)) {
        if (prefix === "" && k === "step") continue;
        if (typeof v === "number" && Number.isFinite(v)) {
          if (!out.has(prefix + k)) out.set(prefix + k, []);
          out.get(prefix + k)!.push([r.step as number, v]);
        } else if (v && typeof v === "object" && !Array.isArray(v)) {
          walk(v as Record<string, unknown>, `${prefix}${k}/`);
        }
      }
    };
    walk(r, "");
  }
  return out;
}

/** Asserts that `got` holds exactly the scalars of `want`, at the same steps, equal to float32 precision. */
function assertSameScalars(got: ReadBack["scalars"], want: Map<string, [number, number][]>): number {
  assert.deepEqual(Object.keys(got).sort(), [...want.keys()].sort(), "the same tags");
  let compared = 0;
  for (const [tag, points] of want) {
    const g = got[tag];
    assert.deepEqual(g.map(([s]) => s), points.map(([s]) => s), `${tag}: the same steps`);
    points.forEach(([step, v], i) => {
      const tb = g[i][1];
      assert.ok(
        Math.abs(tb - v) <= 1e-6 * Math.abs(v),
        `${tag} at step ${step}: TensorBoard ${tb}, metrics ${v}`,
      );
      compared++;
    });
  }
  return compared;
}

function tbConfig(): TrainConfig {
  return parseConfig({
    model: SMALL_MODEL,
    data: SMALL_DATA,
    optim: { batchSize: 2, steps: 16, warmupSteps: 2, lr: 3e-3 },
    layerlock: { pixelSteps: 4, interval: 4, maxFrozen: 3 },
    log: { every: 2, checkpointEvery: 1000, floorClips: 8, tensorboard: true },
  });
}

Deno.test("log.tensorboard: TensorBoard's EventAccumulator reads every number of metrics.jsonl, and nothing else", async () => {
  const cfg = tbConfig();
  const dir = await tempDir("tensorboard_");
  try {
    const opts = {
      runDir: dir,
      data: makeBatchSource,
      floorClips: (n: number) => floorClips(cfg, n),
      onEvent: () => {},
      // nested numbers (eval/...), one of them not finite (left out, as metrics.jsonl writes it null)
      evaluate: { every: 4, fn: (_m: unknown, at: number) => ({ at, half: at / 2, nan: NaN }) },
    };
    // half, then a resume: two events files, which TensorBoard merges
    const first = await train(cfg, { ...opts, resume: false, stopAfter: 8 });
    assert.equal(first.step, 8);
    const second = await train(cfg, { ...opts, resume: true });
    assert.equal(second.step, 16);
    const files = [...Deno.readDirSync(`${dir}/tb`)].map((e) => e.name).sort();
    assert.equal(files.length, 2, `one events file per invocation: ${files}`);
    for (const f of files) assert.match(f, /^events\.out\.tfevents\.\d{10}\.[A-Za-z0-9._-]+$/);
    const records = Deno.readTextFileSync(`${dir}/metrics.jsonl`).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.equal(records.length, 8);
    const want = expectedScalars(records);
    for (
      const tag of [
        "loss",
        "pixelLoss",
        "latentLoss",
        "pixelFloor",
        "latentFloor",
        "lr",
        "frozenDepth",
        "stepsPerSec",
        "dataWaitMs",
        "liveTensors",
        "time",
        "eval/at",
        "eval/half",
      ]
    ) assert.ok(want.has(tag), `the run logged ${tag}`);
    assert.ok(!want.has("target") && !want.has("eval/nan"));

    const env = await pythonWith("tensorboard");
    if (env.skip !== null) {
      console.warn(env.skip);
      return;
    }
    const got = await readTensorBoard(env.python, `${dir}/tb`);
    assert.equal(got.fileVersion, 2, "brain.Event:2");
    assert.deepEqual(got.other, {}, "scalars only");
    const compared = assertSameScalars(got.scalars, want);
    console.log(`tensorboard: ${compared} scalars of ${records.length} records (${want.size} tags) compared`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TensorBoardWriter: a second file in the same second gets another name; a file cut mid-record is read up to the cut", async () => {
  const env = await pythonWith("tensorboard");
  if (env.skip !== null) {
    console.warn(env.skip);
    return;
  }
  const dir = await tempDir("tensorboard_cut_");
  try {
    const w = TensorBoardWriter.open(dir);
    const other = TensorBoardWriter.open(dir); // in the same second, most likely: another name all the same
    other.close();
    assert.ok(
      other.path === `${w.path}.1` || !other.path.startsWith(w.path),
      `${w.path}, then ${other.path}`,
    );
    const sizes: number[] = [];
    for (let step = 1; step <= 3; step++) {
      w.scalars(step, { a: step / 4, nested: { b: -step } });
      sizes.push(Deno.statSync(w.path).size);
    }
    w.close();
    const whole = Deno.readFileSync(w.path);
    const read = async (n: number) => {
      Deno.writeFileSync(w.path, whole.subarray(0, n));
      return (await readTensorBoard(env.python, w.path)).scalars;
    };
    const two = { a: [[1, 0.25], [2, 0.5]], "nested/b": [[1, -1], [2, -2]] };
    assert.deepEqual(await read(whole.length), {
      a: [...two.a, [3, 0.75]],
      "nested/b": [...two["nested/b"], [3, -3]],
    });
    assert.deepEqual(await read(whole.length - 3), two, "cut in the last record's data CRC");
    assert.deepEqual(await read(sizes[1] + 5), two, "cut in the last record's length");
    assert.deepEqual(await read(sizes[1] + 20), two, "cut in the last record's data");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("log.tensorboard in the experiment: each run's probe accuracies join its scalars at the final step", async () => {
  const name = `tmp/exp_tb_${Date.now()}`;
  const e = parseExperimentConfig({
    name,
    modes: ["mae"],
    seeds: [0],
    baselines: [],
    evalEvery: 4,
    probe: { trainClips: 16, evalClips: 16, linearEpochs: 2, attentiveEpochs: 2, seeds: [0] },
    train: {
      device: "cpu",
      threads: 1,
      optim: { steps: 8, batchSize: 2, warmupSteps: 2 },
      data: { frames: 4, size: 32, prefetch: 0 },
      model: { patch: 16, encoderDepth: 3 },
      log: { floorClips: 8, every: 2, tensorboard: true },
    },
  });
  try {
    const results = await runExperiment(e, () => {});
    const run = results.modes[0].runs[0];
    const env = await pythonWith("tensorboard");
    if (env.skip !== null) {
      console.warn(env.skip);
      return;
    }
    const got = await readTensorBoard(env.python, `runs/${name}/${runName("mae", 0)}/tb`);
    const p = run.probes;
    const probes = {
      "probe/linearGarment": p.linearShape.mean,
      "probe/linearDirection": p.linearDirection.mean,
      "probe/attentiveGarment": p.attentiveShape.mean,
      "probe/attentiveDirection": p.attentiveDirection.mean,
    };
    const want = expectedScalars(run.metrics as unknown as Record<string, unknown>[]);
    for (const [tag, v] of Object.entries(probes)) want.set(tag, [[8, v]]);
    const compared = assertSameScalars(got.scalars, want);
    console.log(`tensorboard (experiment): ${compared} scalars compared, 4 of them probes`);
  } finally {
    await Deno.remove(`runs/${name}`, { recursive: true }).catch(() => {});
  }
});
