/**
 * Shared test helpers: leak checks around a test body, numeric comparison, small training runs.
 * @module
 */
import assert from "node:assert/strict";
import { type DType, liveTensors, type Tensor, tensorFromBytes, train, type TrainConfig } from "../mod.ts";
import { ELEMENT_SIZE } from "../src/torch/dtype.ts";
import { floorClips, makeBatchSource } from "../src/data/source.ts";
import type { TrainOptions } from "../src/train/trainer.ts";
import type { TrainEvent } from "../src/train/events.ts";
import { Rng } from "../src/data/rng.ts";

/** Runs fn and asserts that the live native tensor count returns to its value before the call. */
export function noLeak<T>(fn: () => T): T {
  const before = liveTensors();
  const r = fn();
  assert.equal(liveTensors(), before, `live tensors: ${liveTensors()} after vs ${before} before`);
  return r;
}

/** A Deno.test whose body must leave no live tensors behind. */
export function leakFreeTest(name: string, fn: () => void): void {
  Deno.test(name, () => noLeak(fn));
}

/** Asserts |a - b| <= atol + rtol·|b| elementwise; reports the worst element. */
export function assertClose(
  actual: ArrayLike<number> | Tensor,
  expected: ArrayLike<number>,
  { rtol = 1e-5, atol = 1e-6, msg = "" } = {},
): void {
  const a = "toArray" in actual ? Array.from(actual.toArray() as ArrayLike<number | bigint>, Number) : actual;
  assert.equal(a.length, expected.length, `${msg} length ${a.length} vs expected ${expected.length}`);
  let worst = -1, worstErr = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Number(expected[i]), v = Number(a[i]);
    if (Number.isNaN(e) && Number.isNaN(v)) continue;
    const err = Math.abs(v - e) - (atol + rtol * Math.abs(e));
    if (!(err <= 0) && (worst < 0 || err > worstErr)) {
      worst = i;
      worstErr = err;
    }
  }
  if (worst >= 0) {
    assert.fail(
      `${msg} element ${worst}: got ${a[worst]}, expected ${expected[worst]} (rtol ${rtol}, atol ${atol})`,
    );
  }
}

/**
 * Uniform numbers in [0, 1) from the library's seeded generator (mulberry32, src/data/rng.ts) for test data, so
 * every run checks the same points.
 */
export function prng(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.float();
}

/** `n` pseudo-random bytes from the library's seeded generator (the same bytes for the same seed). */
export function randomBytes(n: number, seed: number): Uint8Array {
  const rng = new Rng(seed), out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.nextU32() & 0xff;
  return out;
}

/** Every dtype the binding stores. */
const ALL_DTYPES: DType[] = ["f32", "f64", "f16", "bf16", "i64", "i32", "u8", "bool"];

/**
 * One tensor of each dtype with every shape kind (n-d, 0-d, empty), named `<dtype>.<kind>`; float dtypes hold
 * arbitrary bit patterns (NaN payloads, infinities, subnormals, -0) from `seed`, so bytes must pass unchanged.
 */
export function dtypeSamples(seed: number): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const dt of ALL_DTYPES) {
    for (const [kind, shape] of [["nd", [2, 3, 4]], ["scalar", []], ["empty", [0, 5]]] as const) {
      const n = shape.reduce((a: number, b: number) => a * b, 1);
      let bytes = randomBytes(n * ELEMENT_SIZE[dt], seed++);
      if (dt === "bool") bytes = bytes.map((b) => b & 1);
      out[`${dt}.${kind}`] = tensorFromBytes(bytes, [...shape], dt);
    }
  }
  return out;
}

/** The number of elements of a shape. */
export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** The model of the small training runs in tests: a 4-block, 48-wide encoder (3 heads) and a 1-block decoder. */
export const SMALL_MODEL = {
  encoderDim: 48,
  encoderDepth: 4,
  encoderHeads: 3,
  decoderDim: 24,
  decoderDepth: 1,
  decoderHeads: 3,
} as const;

/** The data of the small training runs in tests: 4 frames of 16×16 moving shapes, read in the same thread. */
export const SMALL_DATA = { frames: 4, size: 16, prefetch: 0 } as const;

/** A fresh temporary folder under runs/tmp (the only place the test task may write). */
export async function tempDir(prefix: string): Promise<string> {
  await Deno.mkdir("runs/tmp", { recursive: true });
  return await Deno.makeTempDir({ dir: "runs/tmp", prefix });
}

/**
 * Trains `cfg` in a temporary folder (removed afterwards) and returns how much `counter` (e.g. `hostReads`) grew
 * over each logging window after the first, which also holds the run's set-up.
 */
export async function growthPerWindow(cfg: TrainConfig, counter: () => number): Promise<number[]> {
  const dir = await tempDir("per_window_");
  const marks: number[] = [];
  try {
    await train(cfg, {
      runDir: dir,
      resume: false,
      data: makeBatchSource,
      onEvent: (e) => {
        if (e.kind === "log") marks.push(counter());
      },
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return marks.slice(1).map((m, i) => m - marks[i]);
}

/**
 * Trains `cfg` fresh into `dir` on its embedded data, with the floors' held-out clips (and any further `opts`),
 * collecting the events it reports; `records()` reads back its metrics.jsonl.
 */
export async function trainCollecting(cfg: TrainConfig, dir: string, opts: Partial<TrainOptions> = {}) {
  const events: TrainEvent[] = [];
  const r = await train(cfg, {
    runDir: dir,
    resume: false,
    data: makeBatchSource,
    floorClips: (n) => floorClips(cfg, n),
    onEvent: (e) => events.push(e),
    ...opts,
  });
  const records = () =>
    Deno.readTextFileSync(`${dir}/metrics.jsonl`).trim().split("\n").map((l) => JSON.parse(l));
  return { r, events, records };
}

/** The permissions a test gives a `deno run` of a command-line tool: those of its task (deno.json's "run" set). */
export const CLI_PERMISSIONS = ["-q", "-P=run"];

/** Asserts that two tensor maps have the same names (in order, if given), dtypes, shapes and bytes. */
export function assertSameTensors(
  actual: Record<string, Tensor>,
  expected: Record<string, Tensor>,
  order?: string[],
): void {
  // in file order, as far as an object keeps it: JavaScript lists integer-like keys ("7") first
  if (order) assert.deepEqual(Object.keys(actual), Object.keys(Object.fromEntries(order.map((k) => [k, 0]))));
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
  for (const [name, e] of Object.entries(expected)) {
    const a = actual[name];
    assert.equal(a.dtype, e.dtype, `${name} dtype`);
    assert.deepEqual(a.shape, e.shape, `${name} shape`);
    assert.deepEqual(a.toBytes(), e.toBytes(), `${name} bytes`);
  }
}
