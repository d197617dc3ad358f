/**
 * torch.save checkpoints (src/torch/pickle.ts, native/pickle.cpp): files written by Python's `torch.save` load with
 * the names and values Python flattened (tests/interop/write_torch_save.py writes each file beside a safetensors
 * file of the tensors it should give, so every value compares bit for bit) — VideoMAE's layout with an
 * optimizer and an argparse.Namespace, prefixed keys, a bare state dict, bf16/f16/f32/i64 bit patterns, views of
 * one storage, and odd values (cycles, numpy scalars, big integers, torch.Size); malformed and unsupported files
 * give one TorchError naming the file (no crash: truncations, random and mutated bytes, a million nested
 * tuples); and files written by saveTorchFile load in Python with `torch.load(..., weights_only=True)`. Every
 * test leaves the live-tensor count where it found it. Temporary files live under runs/tmp.
 * @module
 */
import assert from "node:assert/strict";
import { assertSameTensors, dtypeSamples, noLeak, randomBytes } from "./helpers.ts";
import {
  cuda,
  type DType,
  loadSafetensors,
  loadTorchFile,
  saveTorchFile,
  scope,
  type Tensor,
  tensor,
  tensorFromBytes,
  TorchError,
} from "../mod.ts";
import { pythonWith } from "./python_env.ts";

const env = await pythonWith("safetensors");
const PYTHON = env.python;
const INTEROP = decodeURIComponent(new URL("./interop/", import.meta.url).pathname);
const TMP_ROOT = decodeURIComponent(new URL("../runs/tmp/", import.meta.url).pathname);
const FUZZ_FILES = 1000;

function runPython(args: string[]): string {
  const r = new Deno.Command(PYTHON!, { args }).outputSync();
  const err = new TextDecoder().decode(r.stderr);
  assert.ok(r.success, `${args[0]} failed (exit ${r.code}):\n${err}`);
  return new TextDecoder().decode(r.stdout);
}

let dir: string | null = null;
/** The folder of Python-written fixtures (written once, removed when the test process ends). */
function fixtures(): string {
  if (dir === null) {
    Deno.mkdirSync(TMP_ROOT, { recursive: true });
    dir = Deno.makeTempDirSync({ dir: TMP_ROOT, prefix: "pickle_" });
    const d = dir;
    globalThis.addEventListener("unload", () => Deno.removeSync(d, { recursive: true }));
    runPython([`${INTEROP}write_torch_save.py`, dir, String(FUZZ_FILES)]);
  }
  return dir;
}

/** Asserts that fn throws exactly a TorchError whose message names `path` and matches every pattern. */
function assertTorchError(fn: () => unknown, path: string, ...patterns: (RegExp | string)[]): TorchError {
  let caught: unknown = null;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== null, `expected a TorchError for ${path}, but nothing was thrown`);
  assert.ok(caught instanceof TorchError, `expected a TorchError for ${path}, got ${String(caught)}`);
  assert.ok(caught.message.includes(path), `message ${JSON.stringify(caught.message)} should name ${path}`);
  for (const p of patterns) {
    const ok = typeof p === "string" ? caught.message.includes(p) : p.test(caught.message);
    assert.ok(ok, `message ${JSON.stringify(caught.message)} should match ${String(p)}`);
  }
  return caught;
}

/** Disposes every tensor of a record. */
function disposeAll(ts: Record<string, Tensor>): void {
  for (const t of Object.values(ts)) t.dispose();
}

/** Loads NAME.pth and checks it against NAME.expected.safetensors; returns the loaded tensors' names. */
function checkCase(name: string): string[] {
  return noLeak(() =>
    scope(() => {
      const d = fixtures();
      const got = loadTorchFile(`${d}/${name}.pth`);
      const { tensors: want, metadata } = loadSafetensors(`${d}/${name}.expected.safetensors`);
      assertSameTensors(got, want, JSON.parse(metadata.order));
      return Object.keys(got);
    })
  );
}

const withPython = { ignore: PYTHON === null };

// ------------------------------------------------------------------------------ files written by torch.save

Deno.test({
  name:
    "(a) VideoMAE's layout: model and optimizer tensors by name; epoch, scaler and args (a Namespace) skipped",
  ...withPython,
  fn: () => {
    const names = checkCase("videomae");
    for (
      const n of [
        "model.encoder.blocks.0.attn.qkv.weight",
        "model.encoder.blocks.1.attn.proj.bias",
        "model.encoder.patch_embed.weight",
        "model.encoder.pos_embed",
        "model.head.weight",
        "optimizer.state.0.step",
        "optimizer.state.0.exp_avg",
        "optimizer.state.15.exp_avg_sq",
      ]
    ) assert.ok(names.includes(n), `${n} in ${names.join(", ")}`);
    assert.equal(names.filter((n) => n.startsWith("model.")).length, 17);
    assert.equal(names.filter((n) => n.startsWith("optimizer.")).length, 16 * 3);
    assert.ok(!names.some((n) => /^(args|epoch|scaler)/.test(n)), names.join(", "));
  },
});

Deno.test({
  name: "(b) a state dict under 'module' with encoder./_orig_mod. prefixes keeps its keys as they are",
  ...withPython,
  fn: () => {
    const names = checkCase("module");
    assert.ok(names.includes("module._orig_mod.encoder.encoder.pos_embed"), names.join(", "));
    assert.ok(names.includes("module.encoder.encoder.patch_embed.weight"), names.join(", "));
  },
});

Deno.test({
  name: "(c) a bare state dict gives its own keys",
  ...withPython,
  fn: () => {
    const names = checkCase("bare");
    assert.equal(names[0], "encoder.pos_embed");
    assert.ok(names.includes("encoder.blocks.1.attn.qkv.weight"));
  },
});

Deno.test({
  name: "(d) bf16, f16, f32 and i64 tensors keep every bit (NaN payloads, infinities, -0, extremes)",
  ...withPython,
  fn: () => {
    assert.deepEqual(checkCase("dtypes"), ["bf16", "f16", "f32", "i64", "f32_special", "i64_extremes"]);
    noLeak(() =>
      scope(() => {
        const t = loadTorchFile(`${fixtures()}/dtypes.pth`);
        assert.deepEqual(
          Array.from(t.i64_extremes.toArray() as BigInt64Array),
          [2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n],
        );
        const f = Array.from(t.f32_special.toArray() as Float32Array);
        assert.ok(Number.isNaN(f[0]));
        assert.deepEqual(f.slice(1, 4), [Infinity, -Infinity, -0]);
      })
    );
  },
});

Deno.test({
  name: "(e) views of one storage load with their values and still share the storage",
  ...withPython,
  fn: () => {
    assert.deepEqual(checkCase("views"), ["base", "view", "t", "col", "again"]);
    noLeak(() =>
      scope(() => {
        const t = loadTorchFile(`${fixtures()}/views.pth`, { device: "cpu" });
        t.base.fill_(-1); // every other tensor is a view of it
        for (const name of ["view", "t", "col", "again"]) {
          const v = Array.from(t[name].toArray() as Float32Array);
          assert.ok(v.every((x) => x === -1), `${name}: ${v}`);
        }
      })
    );
  },
});

Deno.test({
  name:
    "odd values: cycles, big integers, bytes, sets, numpy values, torch.Size, dtype, device, int/bool keys",
  ...withPython,
  fn: () => {
    assert.deepEqual(checkCase("odd"), [
      "7",
      "nested.0.w",
      "nested.1.0",
      "cyclic.0",
      "params.0",
      "with_attrs.w",
      "False",
      "scalar",
      "zero_size",
    ]);
  },
});

Deno.test({
  name: "loading onto CUDA gives the same values there, and saving CUDA tensors stores CPU data",
  ignore: PYTHON === null || !cuda.isAvailable(),
  fn: () =>
    noLeak(() =>
      scope(() => {
        const t = loadTorchFile(`${fixtures()}/dtypes.pth`, { device: "cuda" });
        const { tensors: want } = loadSafetensors(`${fixtures()}/dtypes.expected.safetensors`);
        for (const [name, x] of Object.entries(t)) {
          assert.equal(x.device.startsWith("cuda"), true, name);
          assert.deepEqual(x.toBytes(), want[name].toBytes(), name);
        }
        // CUDA tensors are saved as CPU data
        const path = `${fixtures()}/from_cuda.pth`;
        saveTorchFile(path, { model: t });
        const back = loadTorchFile(path);
        for (const [name, x] of Object.entries(back)) {
          assert.equal(x.device, "cpu", name);
          assert.deepEqual(x.toBytes(), want[name.slice("model.".length)].toBytes(), name);
        }
      })
    ),
});

// ------------------------------------------------------------------------------ malformed and unsupported files

Deno.test({
  name: "malformed or unsupported files give one TorchError naming the file and what is wrong",
  ...withPython,
  fn: () =>
    noLeak(() => {
      const d = fixtures();
      const cases: [string, (RegExp | string)[]][] = [
        ["legacy.pth", ["legacy torch.save format", "re-save it with torch >= 1.6"]],
        ["complex.pth", ["tensor 'c'", "unsupported storage", "ComplexFloat"]],
        ["sparse.pth", ["unsupported storage", "_rebuild_sparse_tensor"]],
        ["protocol4.pth", ["pickle protocol 4"]],
        ["no_data_pkl.pth", ["no data.pkl"]],
        ["torchscript.pt", ["TorchScript archive"]],
        ["short_record.pth", [
          "tensor 'encoder.pos_embed'",
          "unsupported storage",
          "needs 256 bytes",
          "holds 252",
        ]],
        ["missing_record.pth", ["data/1"]],
        ["deep.pth", ["nest more than 1000 levels"]],
        ["does_not_exist.pth", ["cannot open"]],
      ];
      for (const [file, patterns] of cases) {
        assertTorchError(() => loadTorchFile(`${d}/${file}`), `${d}/${file}`, ...patterns);
      }
      assertTorchError(() => loadTorchFile(d), d, "not a regular file");
      const write = (name: string, bytes: Uint8Array) => {
        Deno.writeFileSync(`${d}/${name}`, bytes);
        return `${d}/${name}`;
      };
      const text = write(
        "notes.txt",
        new TextEncoder().encode("these are not the weights you are looking for\n"),
      );
      assertTorchError(() => loadTorchFile(text), text, "not a zip archive", "74 68 65 73");
      assertTorchError(() => loadTorchFile(write("empty.pth", new Uint8Array(0))), `${d}/empty.pth`, "empty");
      const random = write("random.pth", randomBytes(4096, 99));
      assertTorchError(() => loadTorchFile(random), random, "not a zip archive");
      const zipHead = randomBytes(4096, 7);
      zipHead.set([0x50, 0x4b, 0x03, 0x04]);
      const fakeZip = write("fake_zip.pth", zipHead);
      assertTorchError(() => loadTorchFile(fakeZip), fakeZip, "truncated or corrupt");
      assertTorchError(() => loadTorchFile(""), "", "non-empty");
    }),
});

Deno.test({
  name: "a checkpoint cut short anywhere, or with bytes overwritten, loads or gives a TorchError naming it",
  ...withPython,
  fn: () =>
    noLeak(() => {
      const d = fixtures();
      const whole = Deno.readFileSync(`${d}/videomae.pth`);
      const path = `${d}/damaged.pth`;
      const noise = randomBytes(400, 5);
      let refused = 0;
      for (let i = 0; i < 100; i++) {
        const cut = i < 60;
        const bytes = cut
          ? whole.slice(0, Math.floor((whole.length * (noise[i] * 256 + noise[i + 1])) / 65536))
          : whole.slice();
        if (!cut) {
          for (let k = 0; k < 8; k++) bytes[(noise[2 * i + k] * 7919 * (k + 1)) % bytes.length] ^= 0xff;
        }
        Deno.writeFileSync(path, bytes);
        try {
          disposeAll(loadTorchFile(path));
        } catch (e) {
          assert.ok(e instanceof TorchError && e.message.includes(path), String(e));
          if (cut) assert.match(e.message, /truncated or corrupt|empty|not a zip/, e.message);
          refused++;
        }
      }
      assert.ok(refused >= 60, `${refused} of 100 damaged files refused`); // every cut one at least
    }),
});

Deno.test({
  name:
    `fuzz: ${FUZZ_FILES} checkpoints with random changes in data.pkl (valid CRCs) load or give a TorchError`,
  ...withPython,
  fn: () =>
    noLeak(() => {
      const d = `${fixtures()}/fuzz`;
      let loaded = 0, refused = 0;
      for (const e of [...Deno.readDirSync(d)].sort((a, b) => a.name.localeCompare(b.name))) {
        const path = `${d}/${e.name}`;
        try {
          disposeAll(loadTorchFile(path));
          loaded++;
        } catch (err) {
          assert.ok(err instanceof TorchError, `${path}: ${String(err)}`);
          assert.ok(err.message.includes(path), err.message);
          refused++;
        }
      }
      assert.equal(loaded + refused, FUZZ_FILES);
      assert.ok(refused > FUZZ_FILES / 2, `${refused} refused, ${loaded} loaded`);
    }),
});

// ------------------------------------------------------------------------------ writing

const PY_DTYPE: Record<DType, string> = {
  f32: "float32",
  f64: "float64",
  f16: "float16",
  bf16: "bfloat16",
  i64: "int64",
  i32: "int32",
  u8: "uint8",
  bool: "bool",
};

/** Tensors of every dtype with arbitrary bit patterns, n-d, 0-d and empty, plus views of one storage. */
function sampleTensors(): Record<string, Tensor> {
  const out = dtypeSamples(11);
  const base = tensorFromBytes(randomBytes(24 * 4, 3), [4, 6], "f32");
  out["views.base"] = base;
  out["views.t"] = base.transpose(0, 1);
  out["views.row"] = base.select(0, 2);
  out["views.narrow"] = base.narrow(1, 1, 3);
  return out;
}

Deno.test({
  name:
    "saveTorchFile writes what torch.load(weights_only=True) reads: dicts of tensors, equal bits, views shared",
  ...withPython,
  fn: () =>
    noLeak(() =>
      scope(() => {
        const d = fixtures();
        const model = sampleTensors();
        const ema = { "head.weight": tensor([[1.5, -2], [0.25, 8]]) };
        const path = `${d}/from_deno.pth`;
        saveTorchFile(path, { model, ema, empty: {} });
        const info = JSON.parse(
          runPython([`${INTEROP}read_torch_save.py`, path, `${d}/from_deno.safetensors`]),
        );
        assert.equal(info.type, "dict");
        assert.deepEqual(info.groups, { model: "dict", ema: "dict", empty: "dict" });
        assert.deepEqual(info.names, { model: Object.keys(model), ema: ["head.weight"], empty: [] });
        assert.deepEqual(info.requires_grad, []);
        assert.deepEqual(info.devices, ["cpu"]);
        const views = ["views.base", "views.t", "views.row", "views.narrow"].map((n) => `model.${n}`);
        assert.deepEqual(
          info.shared,
          views.flatMap((a, i) => views.slice(i + 1).map((b) => [a, b])),
          "the views share one storage",
        );
        const { tensors: back } = loadSafetensors(`${d}/from_deno.safetensors`);
        const expected: Record<string, Tensor> = {};
        for (const [n, t] of Object.entries(model)) expected[`model.${n}`] = t;
        expected["ema.head.weight"] = ema["head.weight"];
        assertSameTensors(back, expected);
        for (const [n, t] of Object.entries(model)) {
          assert.equal(PY_DTYPE[back[`model.${n}`].dtype], PY_DTYPE[t.dtype]);
        }
        // and it loads here too, with the same names, values and sharing
        const mine = loadTorchFile(path);
        assertSameTensors(mine, expected, Object.keys(expected));
        mine["model.views.base"].fill_(0);
        assert.ok((mine["model.views.t"].toArray() as Float32Array).every((x) => x === 0));
      })
    ),
});

Deno.test({
  name:
    "saveTorchFile then loadTorchFile: 5000 tensors (more than the first read's buffers) come back in order",
  fn: () =>
    noLeak(() => {
      const dir = Deno.makeTempDirSync({ dir: (Deno.mkdirSync(TMP_ROOT, { recursive: true }), TMP_ROOT) });
      try {
        scope(() => {
          const many: Record<string, Tensor> = {};
          for (let i = 0; i < 5000; i++) many[`layer${i}.${"w".repeat(300)}`] = tensor([i]);
          saveTorchFile(`${dir}/many.pth`, { model: many });
          const back = loadTorchFile(`${dir}/many.pth`);
          assert.deepEqual(Object.keys(back), Object.keys(many).map((k) => `model.${k}`));
          assert.equal(back[`model.layer4321.${"w".repeat(300)}`].item(), 4321);
        });
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    }),
});

Deno.test("saveTorchFile refuses bad arguments and unwritable paths, naming the file; a failed save keeps the old file", () =>
  noLeak(() => {
    const dir = Deno.makeTempDirSync({ dir: (Deno.mkdirSync(TMP_ROOT, { recursive: true }), TMP_ROOT) });
    try {
      scope(() => {
        const p = `${dir}/x.pth`;
        const t = tensor([1, 2]);
        // deno-lint-ignore no-explicit-any
        const anyArg = (x: unknown) => x as any;
        assertTorchError(() => saveTorchFile(p, anyArg(null)), p, "must be an object");
        assertTorchError(() => saveTorchFile(p, anyArg({ model: [t] })), p, "'model' must be an object");
        assertTorchError(() => saveTorchFile(p, anyArg({ model: { w: 3 } })), p, "'model.w' is not a Tensor");
        const gone = tensor([1]);
        gone.dispose();
        assertTorchError(() => saveTorchFile(p, { model: { w: gone } }), p, "was disposed");
        assertTorchError(() => saveTorchFile(p, { model: { "a\0b": t } }), p, "NUL");
        const missing = `${dir}/no/such/dir/x.pth`;
        assertTorchError(() => saveTorchFile(missing, { model: { w: t } }), missing, "cannot create");
        saveTorchFile(p, { model: { w: t } });
        const before = Deno.readFileSync(p);
        Deno.mkdirSync(`${p}.tmp`); // the temporary file cannot be made
        assertTorchError(() => saveTorchFile(p, { model: { w: tensor([9]) } }), p, "cannot create");
        assert.deepEqual(Deno.readFileSync(p), before);
        assert.deepEqual(Array.from(loadTorchFile(p)["model.w"].toArray() as Float32Array), [1, 2]);
      });
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  }));
