/**
 * PyTorch checkpoints: files written by `torch.save` (the zip format of torch >= 1.6: `data.pkl` and a
 * `data/<key>` record per storage), read and written through the shim with libtorch's own archive reader and
 * writer, unpickler and pickler; no Python at run time.
 *
 * `loadTorchFile` flattens what the file holds to named tensors: dicts (OrderedDicts too) and lists or tuples are
 * walked, their keys and indices joined with `.`, tensors kept, and everything else skipped: numbers, strings,
 * None, and objects of Python classes libtorch does not know, such as the `argparse.Namespace` that VideoMAE's
 * checkpoints keep under `args` (they load as empty placeholders and are dropped). So
 * `{"model": OrderedDict(...), "optimizer": {...}, "epoch": 7, "args": Namespace(...)}` gives
 * `model.encoder.blocks.0.attn.qkv.weight`, ..., `optimizer.state.0.exp_avg`, .... Tensors that share a storage in
 * the file (views) share it after loading, as with `torch.load`.
 *
 * `saveTorchFile` writes `{key: {name: tensor}}` (e.g. `{ model: stateDict }`) so that
 * `torch.load(path, weights_only=True)` gives a dict of dicts of tensors with the same values, dtypes and shapes.
 * It writes to `path.tmp` and renames it over `path`, so an interrupted save leaves an existing file intact.
 *
 * Every failure is a TorchError naming the file and what is wrong with it: not a zip archive (the legacy
 * pre-1.6 format is named, with how to re-save it), truncated or corrupt, no `data.pkl`, a tensor whose storage
 * is not supported (a dtype outside u8, i32, i64, f16, f32, f64, bool, bf16; a sparse or quantized tensor).
 *
 * ```ts
 * import { loadTorchFile, saveTorchFile, scope } from "../../mod.ts";
 * scope(() => {
 *   const w = loadTorchFile("videomae_pretrain_base.pth"); // { "model.encoder.patch_embed.proj.weight": Tensor, ... }
 *   saveTorchFile("runs/export.pth", { model: w });
 * });
 * ```
 * @module
 */
import { lib } from "../../ffi/lib.ts";
import { checkStatus, fail } from "../../ffi/check.ts";
import { TorchError } from "../errors.ts";
import { type Device, deviceCodes } from "./dtype.ts";
import { Tensor } from "./tensor.ts";

/** Options of `loadTorchFile`. */
export interface LoadTorchFileOptions {
  /** The device to put the tensors on (default cpu). */
  device?: Device;
}

const enc = new TextEncoder();
const NEED = new Float64Array(2); // ll_torch_load's [count, name bytes]

/** A NUL-terminated copy of a path, for the shim. */
function pathArg(op: string, path: unknown): Uint8Array {
  if (typeof path !== "string" || path === "") throw new TorchError(op, "path must be a non-empty string");
  if (path.includes("\0")) throw new TorchError(op, `${path}: the path must not contain NUL characters`);
  return enc.encode(path + "\0");
}

/** Defines an own enumerable property (safe for any name, `__proto__` included). */
function put<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x) && !(x instanceof Tensor);
}

/**
 * Reads a `torch.save` checkpoint and returns its tensors by flattened name (see the module documentation), in
 * the file's order. Each tensor is new and owned by the caller (or by the current scope). Throws a TorchError
 * naming the file when it cannot be read.
 */
export function loadTorchFile(path: string, opts: LoadTorchFileOptions = {}): Record<string, Tensor> {
  const op = "loadTorchFile";
  const p = pathArg(op, path);
  const [devType, devIndex] = deviceCodes(opts.device ?? "cpu");
  // Room for a VideoMAE checkpoint with its optimizer state; a larger one is read again with the sizes it needs.
  let maxOut = 4096, namesCap = 1 << 20;
  for (let attempt = 0;; attempt++) {
    const out = new Int32Array(maxOut);
    const names = new Uint8Array(namesCap);
    const n = lib.ll_torch_load(p, devType, devIndex, out, maxOut, names, namesCap, NEED);
    if (n < 0) fail(op);
    if (NEED[0] > maxOut || NEED[1] > namesCap) {
      if (attempt > 0) throw new TorchError(op, `${path}: the file changed while it was being read`);
      maxOut = NEED[0];
      namesCap = NEED[1];
      continue;
    }
    const result: Record<string, Tensor> = {};
    const dec = new TextDecoder();
    let at = 0;
    for (let i = 0; i < n; i++) {
      const end = names.indexOf(0, at);
      put(result, dec.decode(names.subarray(at, end)), new Tensor(out[i]));
      at = end + 1;
    }
    return result;
  }
}

/**
 * Writes tensors as a `torch.save` checkpoint of plain dicts, `{key: {name: tensor}}` in the given order (e.g.
 * `{ model: stateDict }`), that `torch.load(path, weights_only=True)` reads. Tensors are stored detached, as CPU
 * data; views of one tensor share one storage in the file. The file is written to `path.tmp` and renamed over
 * `path`. Throws a TorchError naming the file.
 */
export function saveTorchFile(path: string, tensorsByKey: Record<string, Record<string, Tensor>>): void {
  const op = "saveTorchFile";
  const p = pathArg(op, path);
  const bad = (what: string): never => {
    throw new TorchError(op, `${path}: ${what}`);
  };
  if (!isPlainObject(tensorsByKey)) {
    bad("tensorsByKey must be an object mapping keys to {name: Tensor} objects");
  }
  const keys: string[] = [], names: string[] = [], handles: number[] = [];
  const counts: number[] = [];
  for (const [key, group] of Object.entries(tensorsByKey)) {
    if (key.includes("\0")) bad(`the key '${key}' contains a NUL character`);
    if (!isPlainObject(group)) bad(`'${key}' must be an object mapping names to Tensors`);
    keys.push(key);
    counts.push(Object.keys(group).length);
    for (const [name, t] of Object.entries(group)) {
      if (name.includes("\0")) bad(`the name '${key}.${name}' contains a NUL character`);
      if (!(t instanceof Tensor)) bad(`'${key}.${name}' is not a Tensor`);
      if (t.disposed) bad(`tensor '${key}.${name}' was disposed`);
      names.push(name);
      handles.push(t.handle);
    }
  }
  const strings = (xs: string[]) => enc.encode(xs.map((x) => x + "\0").join(""));
  const keyBytes = strings(keys), nameBytes = strings(names);
  checkStatus(
    lib.ll_torch_save(
      p,
      keyBytes,
      keyBytes.length,
      new Float64Array(counts),
      keys.length,
      nameBytes,
      nameBytes.length,
      new Int32Array(handles),
      handles.length,
    ),
    op,
  );
}
