/**
 * safetensors: raw byte access (`Tensor.toBytes`, `tensorFromBytes`), round trips of every dtype through
 * files and memory, interop with Python's `safetensors` package both ways, validation of malformed and
 * truncated files, and atomic writes. Temporary files live under runs/tmp (the test task may write only
 * under runs/) and are removed afterwards.
 * @module
 */
import assert from "node:assert/strict";
import * as torch from "../mod.ts";
import {
  type DType,
  loadSafetensors,
  parseSafetensors,
  readSafetensorsMetadata,
  saveSafetensors,
  scope,
  serializeSafetensors,
  type Tensor,
  tensor,
  tensorFromBytes,
  TorchError,
} from "../mod.ts";
import { assertSameTensors, dtypeSamples, leakFreeTest, noLeak } from "./helpers.ts";

const TMP_ROOT = decodeURIComponent(new URL("../runs/tmp/", import.meta.url).pathname);

/** Runs fn with a fresh directory under runs/tmp, removed afterwards. */
function withTempDir<T>(fn: (dir: string) => T): T {
  Deno.mkdirSync(TMP_ROOT, { recursive: true });
  const dir = Deno.makeTempDirSync({ dir: TMP_ROOT, prefix: "safetensors_" });
  try {
    return fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Asserts that fn throws a TorchError whose message matches every pattern; returns it. */
function assertTorchError(fn: () => unknown, ...patterns: (RegExp | string)[]): TorchError {
  let caught: unknown = null;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== null, "expected a TorchError, but nothing was thrown");
  assert.ok(caught instanceof TorchError, `expected a TorchError, got ${String(caught)}`);
  for (const p of patterns) {
    const ok = typeof p === "string" ? caught.message.includes(p) : p.test(caught.message);
    assert.ok(ok, `message ${JSON.stringify(caught.message)} should match ${String(p)}`);
  }
  return caught;
}

/** The elements of a non-i64 tensor as plain numbers. */
function nums(t: Tensor): number[] {
  return Array.from(t.toArray() as ArrayLike<number>);
}

/** Builds safetensors bytes from a header (object or raw JSON text) and a data section of `dataBytes` bytes. */
function rawFile(header: unknown, dataBytes = 0, { pad = true } = {}): Uint8Array {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const n = pad ? Math.ceil(json.length / 8) * 8 : json.length;
  const out = new Uint8Array(8 + n + dataBytes).fill(0x20, 8, 8 + n);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(json, 8);
  return out;
}

// ------------------------------------------------------------------------------ raw bytes

leakFreeTest("toBytes gives row-major little-endian elements; tensorFromBytes inverts it", () => {
  scope(() => {
    const f = tensor(new Float32Array([1.5, -2, 3.25, 4]), { shape: [2, 2] });
    assert.deepEqual(f.toBytes(), new Uint8Array(new Float32Array([1.5, -2, 3.25, 4]).buffer));
    // A transposed view is copied out in row-major order of its own shape.
    const t = f.transpose(0, 1);
    assert.equal(t.isContiguous(), false);
    assert.deepEqual(t.toBytes(), new Uint8Array(new Float32Array([1.5, 3.25, -2, 4]).buffer));
    // bf16/f16: the 16-bit patterns themselves, not widened.
    const bf = tensor([1, -2.5, 0.1], { dtype: "bf16" });
    assert.deepEqual(Array.from(new Uint16Array(bf.toBytes().buffer)), [0x3f80, 0xc020, 0x3dcd]);
    const h = tensor([1, -2.5, 65504], { dtype: "f16" });
    assert.deepEqual(Array.from(new Uint16Array(h.toBytes().buffer)), [0x3c00, 0xc100, 0x7bff]);
    // Back again, bit-exact, also from a view into a larger buffer at an odd offset.
    const big = new Uint8Array(1 + 6);
    big.set(bf.toBytes(), 1);
    const back = tensorFromBytes(big.subarray(1), [3], "bf16");
    assert.equal(back.dtype, "bf16");
    assert.deepEqual(back.toBytes(), bf.toBytes());
    assert.deepEqual(nums(back), [1, -2.5, 0.10009765625]);
    const i64 = tensorFromBytes(new Uint8Array(new BigInt64Array([2n ** 62n + 1n, -5n]).buffer), [2], "i64");
    assert.deepEqual(Array.from(i64.toArray() as BigInt64Array), [2n ** 62n + 1n, -5n]);
  });
});

leakFreeTest("tensorFromBytes: 0-d and empty tensors, bool bytes normalised to 0/1", () => {
  scope(() => {
    const s = tensorFromBytes(new Uint8Array(new Float64Array([2.5]).buffer), [], "f64");
    assert.deepEqual(s.shape, []);
    assert.equal(s.item(), 2.5);
    const e = tensorFromBytes(new Uint8Array(0), [0, 4], "i32");
    assert.deepEqual(e.shape, [0, 4]);
    assert.equal(e.toBytes().length, 0);
    const b = tensorFromBytes(new Uint8Array([0, 1, 7, 255]), [4], "bool");
    assert.deepEqual(Array.from(b.toBytes()), [0, 1, 1, 1]);
    assert.equal(b.sum().item(), 3);
  });
});

leakFreeTest("tensorFromBytes rejects a byte length that does not match the shape and dtype", () => {
  assertTorchError(
    () => tensorFromBytes(new Uint8Array(20), [2, 3], "f32"),
    "tensorFromBytes:",
    "needs 24 bytes",
    "got 20",
  );
  assertTorchError(() => tensorFromBytes(new Uint8Array(5), [3], "bf16"), "needs 6 bytes");
  assertTorchError(() => tensorFromBytes(new Uint8Array(0), [-1], "u8"), "non-negative integers");
  assertTorchError(() => tensorFromBytes(new Uint8Array(4), [1.5], "u8"), "non-negative integers");
});

// ------------------------------------------------------------------------------ round trips

leakFreeTest("memory round trip of every dtype (n-d, 0-d, empty) is bit-exact", () => {
  scope(() => {
    const src = dtypeSamples(7);
    const bytes = serializeSafetensors(src);
    const { tensors, metadata } = parseSafetensors(bytes);
    assert.deepEqual(metadata, {});
    assertSameTensors(tensors, src);
  });
});

leakFreeTest("file round trip of every dtype with metadata; no temporary file is left behind", () => {
  withTempDir((dir) =>
    scope(() => {
      const src = dtypeSamples(7);
      src["strided"] = torch.arange(12, undefined, 1, { dtype: "i32" }).reshape([3, 4]).transpose(0, 1);
      const meta = { step: "1200", rng: "AAECAw==", "ünïcödé ключ": "värde ✓", empty: "" };
      const path = `${dir}/ckpt.safetensors`;
      saveSafetensors(path, src, meta);
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["ckpt.safetensors"]);
      const before = torch.liveTensors();
      assert.deepEqual(readSafetensorsMetadata(path), meta, "the header alone gives the same metadata");
      assert.equal(torch.liveTensors(), before, "and makes no tensor");
      const { tensors, metadata } = loadSafetensors(path);
      assert.deepEqual(metadata, meta);
      assertSameTensors(tensors, src);
      // a file cut inside its header is refused by both readers, naming the file
      const cut = `${dir}/cut.safetensors`;
      Deno.writeFileSync(cut, Deno.readFileSync(path).subarray(0, 20));
      assert.throws(
        () => readSafetensorsMetadata(cut),
        /readSafetensorsMetadata: .*cut\.safetensors: header length/,
      );
      assert.throws(() => loadSafetensors(cut), /cut\.safetensors: header length/);
      Deno.removeSync(cut);
      assert.deepEqual(nums(tensors["strided"]), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
      // The file and the in-memory form are the same bytes.
      assert.deepEqual(Deno.readFileSync(path), serializeSafetensors(src, meta));
    })
  );
});

leakFreeTest("metadata round trips; a file without metadata loads with {}", () => {
  scope(() => {
    const one = { x: torch.ones([2]) };
    assert.deepEqual(parseSafetensors(serializeSafetensors(one, { a: "1", b: "two" })).metadata, {
      a: "1",
      b: "two",
    });
    assert.deepEqual(parseSafetensors(serializeSafetensors(one, {})).metadata, {});
    assert.deepEqual(parseSafetensors(serializeSafetensors({})).tensors, {});
    // Names that are special to JavaScript objects stay plain tensor names.
    const odd = parseSafetensors(
      serializeSafetensors(
        { ["__proto__"]: torch.ones([1]), constructor: torch.zeros([2]) } as Record<string, Tensor>,
      ),
    );
    assert.deepEqual(Object.keys(odd.tensors).sort(), ["__proto__", "constructor"].sort());
    assert.equal(Object.getPrototypeOf(odd.tensors), Object.prototype);
    assert.deepEqual(odd.tensors["__proto__"].shape, [1]);
    assert.deepEqual(odd.tensors["constructor"].shape, [2]);
  });
});

leakFreeTest("header layout: 8-byte aligned, spaces as padding, offsets covering the data in order", () => {
  scope(() => {
    const bytes = serializeSafetensors({
      b: torch.ones([3], { dtype: "u8" }),
      a: torch.ones([2], { dtype: "f64" }),
      c: torch.ones([1], { dtype: "f16" }),
    }, { k: "v" });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal((8 + n) % 8, 0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    assert.match(text, /^\{.*\} *$/);
    const header = JSON.parse(text);
    assert.deepEqual(header.__metadata__, { k: "v" });
    // Larger elements first, so each tensor is aligned to its element size.
    assert.deepEqual(header.a, { dtype: "F64", shape: [2], data_offsets: [0, 16] });
    assert.deepEqual(header.c, { dtype: "F16", shape: [1], data_offsets: [16, 18] });
    assert.deepEqual(header.b, { dtype: "U8", shape: [3], data_offsets: [18, 21] });
    assert.equal(bytes.length, 8 + n + 21);
  });
});

Deno.test({
  name: "without CUDA, loading onto cuda fails cleanly, leaving no tensors",
  ignore: torch.cuda.isAvailable(),
  fn: () =>
    noLeak(() =>
      scope(() => {
        const bytes = serializeSafetensors({ a: torch.ones([2]), b: torch.zeros([3]) });
        assert.throws(() => parseSafetensors(bytes, { device: "cuda" }), TorchError);
      })
    ),
});

Deno.test({
  name: "cuda: save from and load onto the GPU",
  ignore: !torch.cuda.isAvailable(),
  fn: () =>
    noLeak(() =>
      scope(() => {
        const src = { w: torch.randn([4, 5]).cuda().to({ dtype: "bf16" }), s: torch.ones([]).cuda() };
        const { tensors } = parseSafetensors(serializeSafetensors(src), { device: "cuda" });
        assert.equal(tensors.w.device, "cuda:0");
        assert.deepEqual(tensors.w.toBytes(), src.w.toBytes());
        assert.deepEqual(tensors.s.toBytes(), src.s.toBytes());
      })
    ),
});

// ------------------------------------------------------------------------------ interop with Python

/** The Python with torch that the build used, if it can import safetensors. */
function pythonWithSafetensors(): string | null {
  try {
    const record = JSON.parse(
      Deno.readTextFileSync(new URL("../native/build/current.json", import.meta.url)),
    );
    const py: string | undefined = record?.torch?.python;
    if (!py) return null;
    const ok = new Deno.Command(py, { args: ["-c", "import safetensors"], stdout: "null", stderr: "null" })
      .outputSync().success;
    return ok ? py : null;
  } catch {
    return null;
  }
}
const PYTHON = pythonWithSafetensors();
const INTEROP = decodeURIComponent(new URL("./interop/", import.meta.url).pathname);

function runPython(script: string, path: string): string {
  const r = new Deno.Command(PYTHON!, { args: [`${INTEROP}${script}`, path] }).outputSync();
  const err = new TextDecoder().decode(r.stderr);
  assert.ok(r.success, `${script} failed (exit ${r.code}):\n${err}`);
  return new TextDecoder().decode(r.stdout);
}

function u16(t: Tensor): number[] {
  const b = t.toBytes();
  return Array.from(new Uint16Array(b.buffer, b.byteOffset, b.length / 2));
}

Deno.test({
  name: "interop: a file written by Python's safetensors loads with the same values",
  ignore: PYTHON === null,
  fn: () =>
    noLeak(() =>
      withTempDir((dir) =>
        scope(() => {
          const path = `${dir}/from_python.safetensors`;
          runPython("write_safetensors.py", path);
          const { tensors: t, metadata } = loadSafetensors(path);
          assert.deepEqual(metadata, { step: "42", note: "written by python" });
          const check = (name: string, dtype: DType, shape: number[]) => {
            assert.equal(t[name].dtype, dtype, `${name} dtype`);
            assert.deepEqual(t[name].shape, shape, `${name} shape`);
          };
          check("f32", "f32", [2, 3]);
          assert.deepEqual(nums(t.f32), [-0.5, -0.25, 0, 0.25, 0.5, 0.75]);
          check("f64", "f64", [3]);
          assert.deepEqual(nums(t.f64), [1 / 3, -2, 1e300]);
          check("f16", "f16", [4]);
          assert.deepEqual(u16(t.f16), [0x3c00, 0xc100, 0x2e66, 0x7bff]);
          assert.deepEqual(nums(t.f16), [1, -2.5, 0.0999755859375, 65504]);
          check("bf16", "bf16", [2, 2]);
          assert.deepEqual(u16(t.bf16), [0x3f80, 0xc020, 0x3dcd, 0x7f62]);
          assert.deepEqual(nums(t.bf16).slice(0, 3), [1, -2.5, 0.10009765625]);
          check("i64", "i64", [3]);
          assert.deepEqual(Array.from(t.i64.toArray() as BigInt64Array), [2n ** 62n + 1n, -(2n ** 40n), 0n]);
          check("i32", "i32", [2]);
          assert.deepEqual(nums(t.i32), [-7, 2 ** 31 - 1]);
          check("u8", "u8", [3]);
          assert.deepEqual(nums(t.u8), [0, 1, 255]);
          check("bool", "bool", [3]);
          assert.deepEqual(nums(t.bool), [1, 0, 1]);
          check("scalar", "f32", []);
          assert.equal(t.scalar.item(), 3.5);
          check("empty", "f32", [0, 3]);
          check("transposed", "i32", [3, 2]);
          assert.deepEqual(nums(t.transposed), [0, 3, 1, 4, 2, 5]);
        })
      )
    ),
});

Deno.test({
  name: "interop: a file written here loads in Python's safetensors with the same values and dtypes",
  ignore: PYTHON === null,
  fn: () =>
    noLeak(() =>
      withTempDir((dir) =>
        scope(() => {
          const src = dtypeSamples(7);
          src["special_f32"] = tensor(new Float32Array([NaN, Infinity, -Infinity, -0, 1e-45]));
          src["big_i64"] = tensor(new BigInt64Array([2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n]));
          const path = `${dir}/from_deno.safetensors`;
          saveSafetensors(path, src, { step: "7", who: "deno" });
          const out = JSON.parse(runPython("read_safetensors.py", path));
          assert.deepEqual(out.metadata, { step: "7", who: "deno" });
          const pyName: Record<DType, string> = {
            f32: "float32",
            f64: "float64",
            f16: "float16",
            bf16: "bfloat16",
            i64: "int64",
            i32: "int32",
            u8: "uint8",
            bool: "bool",
          };
          assert.deepEqual(Object.keys(out.tensors).sort(), Object.keys(src).sort());
          for (const [name, t] of Object.entries(src)) {
            const py = out.tensors[name];
            assert.equal(py.dtype, pyName[t.dtype], `${name} dtype`);
            assert.deepEqual(py.shape, t.shape, `${name} shape`);
            const b = t.toBytes();
            const dv = new DataView(b.buffer, b.byteOffset, b.length);
            const n = t.numel;
            const expected: unknown[] = Array.from({ length: n }, (_, i) => {
              switch (t.dtype) {
                case "f16":
                case "bf16":
                  return dv.getUint16(2 * i, true);
                case "f32":
                  return dv.getUint32(4 * i, true);
                case "f64":
                  return dv.getBigUint64(8 * i, true).toString();
                case "i64":
                  return dv.getBigInt64(8 * i, true).toString();
                case "i32":
                  return dv.getInt32(4 * i, true);
                case "bool":
                  return b[i] === 1;
                default:
                  return b[i];
              }
            });
            assert.deepEqual(py.values, expected, `${name} values`);
          }
        })
      )
    ),
});

// ------------------------------------------------------------------------------ validation on load

const F32_3 = { dtype: "F32", shape: [3], data_offsets: [0, 12] };

/** Each malformed input and what its error must say. */
const BAD: [string, () => Uint8Array, (RegExp | string)[]][] = [
  ["an empty file", () => new Uint8Array(0), [/0 bytes is shorter than the 8-byte header length/]],
  ["a file shorter than 8 bytes", () => new Uint8Array([1, 2, 3]), [/3 bytes is shorter than the 8-byte/]],
  ["a header length larger than the file", () => {
    const b = rawFile({ w: F32_3 }, 12);
    new DataView(b.buffer).setBigUint64(0, BigInt(b.length), true);
    return b;
  }, [/header length \d+ runs past the end of the file/]],
  ["a header length over 100 MB", () => {
    const b = rawFile({}, 0);
    new DataView(b.buffer).setBigUint64(0, 200_000_000n, true);
    return b;
  }, [/header length 200000000 exceeds the 100 MB limit/]],
  ["a header length of 2^64-1", () => {
    const b = new Uint8Array(16);
    new DataView(b.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
    return b;
  }, [/header length 18446744073709551615 exceeds the 100 MB limit/]],
  ["a header that is not JSON", () => rawFile("{not json"), [/header is not valid JSON/]],
  ["a header that is not UTF-8", () => rawFile("\u0000").map((v, i) => i === 8 ? 0xff : v), [
    /not valid UTF-8/,
  ]],
  ["a header that is an array", () => rawFile("[1, 2]"), [/header must be a JSON object, got an array/]],
  ["a header that is null", () => rawFile("null"), [/header must be a JSON object, got null/]],
  ["a header that is a number", () => rawFile("42"), [/header must be a JSON object, got number/]],
  ["an entry that is not an object", () => rawFile({ w: 5 }), [/tensor 'w': entry must be an object/]],
  ["an unknown dtype", () => rawFile({ w: { ...F32_3, dtype: "F8_E4M3" } }, 12), [
    /tensor 'w': unknown or unsupported dtype "F8_E4M3"/,
    "F32, F64",
  ]],
  ["a missing dtype", () => rawFile({ w: { shape: [3], data_offsets: [0, 12] } }, 12), [
    /unknown or unsupported dtype undefined/,
  ]],
  ["a shape that is not a list", () => rawFile({ w: { ...F32_3, shape: 3 } }, 12), [
    /tensor 'w': shape must be a list of non-negative integers, got 3/,
  ]],
  ["a negative dimension", () => rawFile({ w: { ...F32_3, shape: [3, -1] } }, 12), [
    /shape must be a list of non-negative integers, got \[3,-1\]/,
  ]],
  ["a fractional dimension", () => rawFile({ w: { ...F32_3, shape: [1.5] } }, 12), [
    /shape must be a list of non-negative integers/,
  ]],
  ["a dimension given as a string", () => rawFile({ w: { ...F32_3, shape: ["3"] } }, 12), [
    /shape must be a list of non-negative integers/,
  ]],
  ["offsets that are not integers", () => rawFile({ w: { ...F32_3, data_offsets: [0, 11.5] } }, 12), [
    /data_offsets must be two non-negative integers/,
  ]],
  ["offsets that are not a pair", () => rawFile({ w: { ...F32_3, data_offsets: [0] } }, 12), [
    /data_offsets must be two non-negative integers \[begin, end\], got \[0\]/,
  ]],
  ["negative offsets", () => rawFile({ w: { ...F32_3, data_offsets: [-4, 8] } }, 12), [
    /data_offsets must be two non-negative integers/,
  ]],
  ["missing offsets", () => rawFile({ w: { dtype: "F32", shape: [3] } }, 12), [/data_offsets must be two/]],
  ["end before begin", () => rawFile({ w: { dtype: "F32", shape: [0], data_offsets: [8, 4] } }, 12), [
    /data_offsets \[8, 4\]: end is before begin/,
  ]],
  ["offsets past the data", () => rawFile({ w: { ...F32_3, data_offsets: [4, 16] } }, 12), [
    /data_offsets \[4, 16\] run past the end of the data section \(12 bytes; is the file truncated\?\)/,
  ]],
  ["a size that does not match the shape", () => rawFile({ w: { ...F32_3, data_offsets: [0, 8] } }, 8), [
    /data_offsets \[0, 8\] span 8 bytes but shape \[3\] of F32 needs 12/,
  ]],
  ["overlapping tensors", () =>
    rawFile({
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
    }, 12), [/tensors 'a' \[0, 8\] and 'b' \[4, 12\] overlap/]],
  ["two tensors on the same bytes", () =>
    rawFile({
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "I32", shape: [2], data_offsets: [0, 8] },
    }, 8), [/overlap/]],
  ["a gap between tensors", () =>
    rawFile({
      a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
      b: { dtype: "F32", shape: [1], data_offsets: [8, 12] },
    }, 12), [/bytes \[4, 8\) of the data section are not covered by any tensor \(a gap\)/]],
  [
    "a gap before the first tensor",
    () => rawFile({ a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, 8),
    [/bytes \[0, 4\)/, "gap"],
  ],
  [
    "trailing bytes no tensor covers",
    () => rawFile({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, 8),
    [/the last 4 bytes of the data section \(from 4\) are not covered/],
  ],
  ["a metadata value that is not a string", () => rawFile({ __metadata__: { step: 1 } }), [
    /metadata 'step' must be a string, got 1/,
  ]],
  ["metadata that is not an object", () => rawFile({ __metadata__: ["a"] }), [
    /'__metadata__' must be an object of strings/,
  ]],
  ["a file truncated inside the data", () => {
    const b = rawFile({ a: { dtype: "F64", shape: [4], data_offsets: [0, 32] } }, 32);
    return b.subarray(0, b.length - 3);
  }, [/run past the end of the data section \(29 bytes; is the file truncated\?\)/]],
  ["a file truncated inside the header", () => rawFile({ a: F32_3 }, 12).subarray(0, 20), [
    /runs past the end of the file \(20 bytes; truncated/,
  ]],
  ["a file truncated inside the length", () => rawFile({ a: F32_3 }, 12).subarray(0, 5), [
    /5 bytes is shorter than the 8-byte header length/,
  ]],
];

for (const [what, make, patterns] of BAD) {
  leakFreeTest(`load rejects ${what}`, () => {
    withTempDir((dir) => {
      const path = `${dir}/bad.safetensors`;
      Deno.writeFileSync(path, make());
      assertTorchError(() => loadSafetensors(path), "loadSafetensors:", path, ...patterns);
    });
    assertTorchError(() => parseSafetensors(make()), "parseSafetensors:", "<memory>", ...patterns);
  });
}

leakFreeTest("Python's own layout (dtype-sorted, zero-size tensor at an occupied offset) is accepted", () => {
  scope(() => {
    // As written by safetensors 0.8: an empty tensor at [16, 16] where the next tensor begins.
    const b = rawFile({
      a: { dtype: "I64", shape: [2], data_offsets: [0, 16] },
      c: { dtype: "F32", shape: [0, 3], data_offsets: [16, 16] },
      s: { dtype: "F32", shape: [], data_offsets: [16, 20] },
    }, 20);
    const { tensors } = parseSafetensors(b);
    assert.deepEqual(tensors.c.shape, [0, 3]);
    assert.deepEqual(tensors.s.shape, []);
  });
});

leakFreeTest("loading a missing file is a TorchError naming it, with Deno's NotFound as its cause", () => {
  withTempDir((dir) => {
    const e = assertTorchError(
      () => loadSafetensors(`${dir}/nope.safetensors`),
      "loadSafetensors:",
      "nope.safetensors",
    );
    assert.ok(e.cause instanceof Deno.errors.NotFound);
  });
});

// ------------------------------------------------------------------------------ atomic writes

/** Writes an original checkpoint, runs fn (expected to fail saving over it), checks the original is intact. */
function assertOriginalSurvives(fn: (path: string) => void): void {
  withTempDir((dir) =>
    scope(() => {
      const path = `${dir}/ckpt.safetensors`;
      const original = { w: torch.arange(10, undefined, 1, { dtype: "f32" }) };
      saveSafetensors(path, original, { step: "1" });
      const before = Deno.readFileSync(path);
      fn(path);
      assert.deepEqual(Deno.readFileSync(path), before, "the original file changed");
      const { tensors, metadata } = loadSafetensors(path);
      assert.deepEqual(metadata, { step: "1" });
      assertSameTensors(tensors, original);
      assert.equal(
        [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".tmp") && e.isFile).length,
        0,
        "a temporary file was left behind",
      );
    })
  );
}

leakFreeTest("save replaces an existing file and leaves no temporary file", () => {
  withTempDir((dir) =>
    scope(() => {
      const path = `${dir}/ckpt.safetensors`;
      saveSafetensors(path, { w: torch.zeros([4]) }, { step: "1" });
      saveSafetensors(path, { w: torch.ones([6]) }, { step: "2" });
      const { tensors, metadata } = loadSafetensors(path);
      assert.deepEqual(metadata, { step: "2" });
      assert.deepEqual(nums(tensors.w), [1, 1, 1, 1, 1, 1]);
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["ckpt.safetensors"]);
    })
  );
});

leakFreeTest("a save that fails validation leaves the original intact", () => {
  assertOriginalSurvives((path) => {
    const gone = torch.ones([3]);
    gone.dispose();
    assertTorchError(
      () => saveSafetensors(path, { w: torch.ones([2]), g: gone }),
      "saveSafetensors:",
      "'g' was disposed",
    );
    assertTorchError(
      () => saveSafetensors(path, { w: "nope" as unknown as Tensor }),
      "saveSafetensors:",
      "'w' is not a Tensor",
    );
    assertTorchError(
      () => saveSafetensors(path, { __metadata__: torch.ones([1]) }),
      "'__metadata__' is reserved",
    );
    assertTorchError(
      () => saveSafetensors(path, { w: torch.ones([2]) }, { step: 3 as unknown as string }),
      "metadata 'step' must be a string",
    );
  });
});

leakFreeTest("a save interrupted while writing data leaves the original intact and removes the .tmp", () => {
  assertOriginalSurvives((path) => {
    const a = torch.ones([100]), b = torch.ones([1000]);
    // Fails after the header and the first tensor have reached the temporary file.
    b.toBytes = () => {
      throw new Error("simulated disk full");
    };
    assertTorchError(
      () => saveSafetensors(path, { a, b }),
      "saveSafetensors:",
      path,
      "write failed (the previous file is intact): simulated disk full",
    );
  });
});

leakFreeTest("a save whose temporary file cannot be created leaves the original intact", () => {
  assertOriginalSurvives((path) => {
    Deno.mkdirSync(`${path}.tmp`); // a directory where the temporary file should go
    const e = assertTorchError(
      () => saveSafetensors(path, { w: torch.ones([5]) }),
      "saveSafetensors:",
      `cannot create the temporary file ${path}.tmp`,
    );
    assert.ok(e.cause instanceof Error);
    assert.ok(Deno.statSync(`${path}.tmp`).isDirectory);
  });
});

leakFreeTest("a save whose rename fails leaves the original intact and removes the .tmp", () => {
  withTempDir((dir) =>
    scope(() => {
      // The target is a non-empty directory: the temporary file is written, but cannot be renamed over it.
      const path = `${dir}/ckpt.safetensors`;
      Deno.mkdirSync(path);
      Deno.writeFileSync(`${path}/keep`, new Uint8Array([1, 2, 3]));
      assertTorchError(
        () => saveSafetensors(path, { w: torch.ones([5]) }),
        "saveSafetensors:",
        "write failed",
      );
      assert.deepEqual(Deno.readFileSync(`${path}/keep`), new Uint8Array([1, 2, 3]));
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["ckpt.safetensors"]);
    })
  );
});
