/**
 * The safetensors format (https://github.com/huggingface/safetensors), for checkpoints and feature files:
 * an 8-byte little-endian header length N, an N-byte JSON header (padded with spaces to 8-byte alignment)
 * mapping each tensor name to `{dtype, shape, data_offsets: [begin, end]}` plus an optional
 * `"__metadata__"` map of strings, then the data section holding every tensor's raw little-endian elements.
 *
 * Files are written atomically (to `path.tmp`, then renamed over `path`), so an interrupted save never
 * destroys an existing checkpoint. Files are read one tensor at a time after the whole header has been
 * validated: every malformed or truncated file gives a TorchError naming the file and what is wrong.
 *
 * ```ts
 * import { loadSafetensors, ones, saveSafetensors, scope } from "../io/mod.ts";
 * scope(() => saveSafetensors("runs/w.safetensors", { w: ones([2, 3]) }, { step: "10" }));
 * const { tensors, metadata } = loadSafetensors("runs/w.safetensors");
 * ```
 * @module
 */
import { TorchError } from "../errors.ts";
import { type Device, type DType, ELEMENT_SIZE } from "./dtype.ts";
import { Tensor } from "./tensor.ts";
import { tensorFromBytes } from "./creation.ts";

/** The contents of a safetensors file: tensors by name, and the `__metadata__` strings. */
export interface SafetensorsContents {
  /** The tensors by name, in header order; each is owned by the caller (or by the current scope). */
  tensors: Record<string, Tensor>;
  /** The header's `__metadata__` map (empty when the file has none). */
  metadata: Record<string, string>;
}

/** Options of `loadSafetensors` and `parseSafetensors`. */
export interface LoadSafetensorsOptions {
  /** The device to put the tensors on (default cpu). */
  device?: Device;
}

/** The largest header accepted (as the reference implementation: 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = "__metadata__";

/** The most dimensions a tensor may have: the binding passes shapes through a 64-entry buffer (`dimsArg`). */
const MAX_DIMS = 64;

/**
 * Why libtorch cannot make a tensor of this shape, or null. c10 checks, also for empty tensors, that the
 * running product of the sizes fits 64 unsigned bits and that the contiguous strides (the product of the sizes
 * after the first, a zero counted as one) fit int64: `[2^53-1, 0, 2^53-1]` is made, `[0, 2^31, 2^31, 2^31]` and
 * `[2^26, 2^26, 2^26, 0]` are refused. (Without a zero-size dimension the byte range bounds the sizes.)
 */
function unmakeable(dims: readonly number[]): string | null {
  let product = 1n;
  for (const d of dims) {
    product *= BigInt(d);
    if (product > 0xffff_ffff_ffff_ffffn) return "the product of its sizes overflows 64 bits";
  }
  let stride = 1n;
  for (const d of dims.slice(1)) stride *= BigInt(Math.max(d, 1));
  return stride > 0x7fff_ffff_ffff_ffffn ? "its strides overflow 64 bits" : null;
}

/** The safetensors dtype names of the dtypes the binding supports. */
const TO_ST: Record<DType, string> = {
  f32: "F32",
  f64: "F64",
  f16: "F16",
  bf16: "BF16",
  i64: "I64",
  i32: "I32",
  u8: "U8",
  bool: "BOOL",
};
const FROM_ST = new Map<string, DType>(Object.entries(TO_ST).map(([k, v]) => [v, k as DType]));

/** One tensor's header entry, validated. */
interface Entry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

/** Defines an own enumerable property (safe for any name, `__proto__` included). */
function put<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/**
 * A header value for an error message: its JSON, cut after 100 characters. Built without JSON.stringify of the
 * whole value (found by tools/fuzz_safetensors.ts: its time grows with the square of the nesting depth, 24 s for
 * a 16 MB header of nested arrays and objects, and 5000 levels of `{"0":` overflow its stack, a RangeError),
 * and without recursing past 16 levels.
 */
function preview(value: unknown): string {
  const limit = 100;
  let out = "";
  const walk = (v: unknown, depth: number): void => {
    if (Array.isArray(v)) {
      if (depth >= 16) return void (out += "[…]");
      out += "[";
      for (let i = 0; i < v.length && out.length <= limit; i++) {
        if (i > 0) out += ",";
        walk(v[i], depth + 1);
      }
      out += "]";
    } else if (isPlainObject(v)) {
      if (depth >= 16) return void (out += "{…}");
      out += "{";
      let first = true;
      for (const k in v) {
        if (out.length > limit) break;
        if (!Object.hasOwn(v, k)) continue;
        out += `${first ? "" : ","}${JSON.stringify(k.slice(0, limit + 1))}:`;
        first = false;
        walk(v[k], depth + 1);
      }
      out += "}";
    } else if (typeof v === "string") out += JSON.stringify(v.slice(0, limit + 1));
    else out += v === undefined ? "undefined" : JSON.stringify(v);
  };
  walk(value, 0);
  return out.length > limit ? `${out.slice(0, limit)}…` : out;
}

function shapeText(shape: readonly unknown[]): string {
  return `[${shape.join(", ")}]`;
}

// ------------------------------------------------------------------------------------------- writing

/** A validated layout ready to write: the header bytes (length prefix included) and each tensor's place. */
interface Layout {
  prefix: Uint8Array;
  parts: { tensor: Tensor; begin: number; nbytes: number }[];
  dataBytes: number;
}

function layout(
  op: string,
  where: string,
  tensors: Record<string, Tensor>,
  metadata: Record<string, string> | undefined,
): Layout {
  const fail = (what: string): never => {
    throw new TorchError(op, `${where}: ${what}`);
  };
  if (!isPlainObject(tensors)) fail("tensors must be an object mapping names to Tensors");
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) fail("metadata must be an object mapping names to strings");
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") fail(`metadata '${k}' must be a string, got ${typeof v}`);
    }
  }
  const items: { name: string; tensor: Tensor; dtype: DType; shape: number[]; nbytes: number }[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    if (name === METADATA_KEY) fail(`'${METADATA_KEY}' is reserved and cannot name a tensor`);
    if (!(t instanceof Tensor)) fail(`'${name}' is not a Tensor`);
    if (t.disposed) fail(`tensor '${name}' was disposed`);
    const dtype = t.dtype, shape = t.shape;
    items.push({ name, tensor: t, dtype, shape, nbytes: t.numel * ELEMENT_SIZE[dtype] });
  }
  // As the Python library: larger elements first (so every tensor is aligned to its element size), then by
  // name; the data section is covered without gaps.
  items.sort((a, b) =>
    ELEMENT_SIZE[b.dtype] - ELEMENT_SIZE[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) put(header, METADATA_KEY, { ...metadata });
  const parts: Layout["parts"] = [];
  let offset = 0;
  for (const it of items) {
    put(header, it.name, {
      dtype: TO_ST[it.dtype],
      shape: it.shape,
      data_offsets: [offset, offset + it.nbytes],
    });
    parts.push({ tensor: it.tensor, begin: offset, nbytes: it.nbytes });
    offset += it.nbytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const n = Math.ceil(json.length / 8) * 8;
  const prefix = new Uint8Array(8 + n).fill(0x20); // pad with spaces
  new DataView(prefix.buffer).setBigUint64(0, BigInt(n), true);
  prefix.set(json, 8);
  return { prefix, parts, dataBytes: offset };
}

/**
 * Serializes tensors (and optional string metadata) to safetensors bytes in memory. Tensors of any dtype,
 * device and layout are written as contiguous little-endian elements; f16/bf16 bit patterns are kept exactly.
 */
export function serializeSafetensors(
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const { prefix, parts, dataBytes } = layout("serializeSafetensors", "<memory>", tensors, metadata);
  const out = new Uint8Array(prefix.length + dataBytes);
  out.set(prefix, 0);
  for (const p of parts) out.set(p.tensor.toBytes(), prefix.length + p.begin);
  return out;
}

function writeAll(file: Deno.FsFile, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) off += file.writeSync(buf.subarray(off));
}

/**
 * Writes tensors (and optional string metadata) to a safetensors file, atomically: the data goes to
 * `path.tmp`, is flushed to disk, and is then renamed over `path`, so a failed or interrupted save leaves any
 * existing file at `path` intact. Throws a TorchError naming the file (I/O errors are kept as its `cause`).
 */
export function saveSafetensors(
  path: string,
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
): void {
  const op = "saveSafetensors";
  const { prefix, parts } = layout(op, path, tensors, metadata);
  const tmp = `${path}.tmp`;
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(tmp, { write: true, create: true, truncate: true });
  } catch (e) {
    throw withCause(new TorchError(op, `${path}: cannot create the temporary file ${tmp}: ${message(e)}`), e);
  }
  let open = true;
  try {
    writeAll(file, prefix);
    for (const p of parts) writeAll(file, p.tensor.toBytes());
    file.syncSync();
    file.close();
    open = false;
    Deno.renameSync(tmp, path);
  } catch (e) {
    if (open) file.close();
    try {
      Deno.removeSync(tmp);
    } catch {
      // Already gone, or not removable: the original file is untouched either way.
    }
    if (e instanceof TorchError) throw e;
    throw withCause(
      new TorchError(op, `${path}: write failed (the previous file is intact): ${message(e)}`),
      e,
    );
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function withCause(err: TorchError, cause: unknown): TorchError {
  (err as Error).cause = cause;
  return err;
}

// ------------------------------------------------------------------------------------------- reading

/** Validates the length prefix against the input size; returns the header length N. */
function headerLength(op: string, where: string, first8: Uint8Array, size: number): number {
  if (size < 8) {
    throw new TorchError(
      op,
      `${where}: ${size} bytes is shorter than the 8-byte header length (truncated, or not a safetensors file)`,
    );
  }
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new TorchError(
      op,
      `${where}: header length ${n} exceeds the 100 MB limit (${MAX_HEADER_BYTES} bytes; not a safetensors file?)`,
    );
  }
  if (n + 8n > BigInt(size)) {
    throw new TorchError(
      op,
      `${where}: header length ${n} runs past the end of the file (${size} bytes; truncated, or not a ` +
        "safetensors file)",
    );
  }
  return Number(n);
}

/** Parses and validates the JSON header against a data section of `dataLength` bytes. */
function parseHeader(
  op: string,
  where: string,
  headerBytes: Uint8Array,
  dataLength: number,
): { entries: Entry[]; metadata: Record<string, string> } {
  const fail = (what: string): never => {
    throw new TorchError(op, `${where}: ${what}`);
  };
  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    fail("header is not valid UTF-8");
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid JSON (${message(e)})`);
  }
  if (!isPlainObject(header)) {
    fail(
      `header must be a JSON object, got ${
        header === null ? "null" : Array.isArray(header) ? "an array" : typeof header
      }`,
    );
  }
  const h = header as Record<string, unknown>;
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(h)) {
    if (name === METADATA_KEY) {
      if (info === null) continue;
      if (!isPlainObject(info)) fail(`'${METADATA_KEY}' must be an object of strings`);
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`metadata '${k}' must be a string, got ${preview(v)}`);
        put(metadata, k, v as string);
      }
      continue;
    }
    const bad = (what: string): never => fail(`tensor '${name}': ${what}`);
    if (!isPlainObject(info)) bad("entry must be an object with dtype, shape and data_offsets");
    const { dtype: st, shape, data_offsets: offs } = info as Record<string, unknown>;
    const dtype = typeof st === "string" ? FROM_ST.get(st) : undefined;
    if (dtype === undefined) {
      bad(
        `unknown or unsupported dtype ${preview(st)} (supported: ${[...FROM_ST.keys()].join(", ")})`,
      );
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      bad(`shape must be a list of non-negative integers, got ${preview(shape)}`);
    }
    if (
      !Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)
    ) {
      bad(`data_offsets must be two non-negative integers [begin, end], got ${preview(offs)}`);
    }
    const dims = shape as number[];
    const [begin, end] = offs as number[];
    if (end < begin) bad(`data_offsets [${begin}, ${end}]: end is before begin`);
    if (end > dataLength) {
      bad(
        `data_offsets [${begin}, ${end}] run past the end of the data section (${dataLength} bytes; ` +
          "is the file truncated?)",
      );
    }
    const need = dims.reduce((a, b) => a * b, 1) * ELEMENT_SIZE[dtype!];
    if (end - begin !== need) {
      bad(
        `data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape ${
          shapeText(dims)
        } of ${st} needs ${need}`,
      );
    }
    // Shapes that match their byte range but that libtorch would refuse in tensorFromBytes, after the header
    // was accepted (found by tools/fuzz_safetensors.ts): more than 64 dimensions (of size 1, or beside a zero),
    // or, beside a zero-size dimension, sizes that overflow c10's size or stride arithmetic.
    if (dims.length > MAX_DIMS) bad(`shape has ${dims.length} dimensions; at most ${MAX_DIMS} are supported`);
    const why = unmakeable(dims);
    if (why !== null) bad(`shape ${shapeText(dims)} cannot be made by libtorch: ${why}`);
    entries.push({ name, dtype: dtype!, shape: dims, begin, end });
  }
  // The data section must be covered exactly: no overlaps, no gaps, nothing left over.
  const sorted = entries.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev: Entry | null = null;
  for (const e of sorted) {
    if (e.begin < pos) {
      fail(
        `tensors '${prev!.name}' [${prev!.begin}, ${
          prev!.end
        }] and '${e.name}' [${e.begin}, ${e.end}] overlap ` +
          "in the data section",
      );
    }
    if (e.begin > pos) {
      fail(`bytes [${pos}, ${e.begin}) of the data section are not covered by any tensor (a gap)`);
    }
    pos = e.end;
    prev = e;
  }
  if (pos !== dataLength) {
    fail(
      `the last ${dataLength - pos} bytes of the data section (from ${pos}) are not covered by any tensor`,
    );
  }
  return { entries, metadata };
}

/**
 * Builds the tensors of validated entries, reading each one's bytes; disposes them all if one fails. A
 * failure that does not name the file yet (libtorch's, e.g. an unavailable device) is rethrown naming it and
 * the tensor.
 */
function build(
  op: string,
  where: string,
  entries: Entry[],
  read: (e: Entry) => Uint8Array,
  device: Device | undefined,
): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  const made: Tensor[] = [];
  let current = "";
  try {
    for (const e of entries) {
      current = e.name;
      const t = tensorFromBytes(read(e), e.shape, e.dtype, { device });
      made.push(t);
      put(out, e.name, t);
    }
  } catch (err) {
    for (const t of made) t.dispose();
    if (err instanceof TorchError && err.message.includes(where)) throw err;
    throw withCause(new TorchError(op, `${where}: tensor '${current}': ${message(err)}`), err);
  }
  return out;
}

/** Parses safetensors bytes held in memory, validating them as `loadSafetensors` does. */
export function parseSafetensors(bytes: Uint8Array, opts: LoadSafetensorsOptions = {}): SafetensorsContents {
  const op = "parseSafetensors", where = "<memory>";
  if (!(bytes instanceof Uint8Array)) throw new TorchError(op, `${where}: expected a Uint8Array`);
  const n = headerLength(op, where, bytes, bytes.length);
  const dataStart = 8 + n;
  const { entries, metadata } = parseHeader(
    op,
    where,
    bytes.subarray(8, dataStart),
    bytes.length - dataStart,
  );
  const tensors = build(
    op,
    where,
    entries,
    (e) => bytes.subarray(dataStart + e.begin, dataStart + e.end),
    opts.device,
  );
  return { tensors, metadata };
}

/**
 * Opens `path`, hands `fn` its size and a reader of `len` bytes at `pos` (a short file or a failed read is a
 * TorchError naming the file and the op), and closes it.
 */
function withFile<T>(
  op: string,
  path: string,
  fn: (size: number, readAt: (pos: number, len: number) => Uint8Array) => T,
): T {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch (e) {
    throw withCause(new TorchError(op, `${path}: cannot open: ${message(e)}`), e);
  }
  try {
    const readAt = (pos: number, len: number): Uint8Array => {
      const buf = new Uint8Array(len);
      try {
        file.seekSync(pos, Deno.SeekMode.Start);
        let off = 0;
        while (off < len) {
          const got = file.readSync(buf.subarray(off));
          if (got === null) {
            throw new TorchError(
              op,
              `${path}: the file ended at byte ${pos + off} while reading ${len} bytes at ${pos} (was it ` +
                "truncated while being read?)",
            );
          }
          off += got;
        }
      } catch (e) {
        if (e instanceof TorchError) throw e;
        throw withCause(new TorchError(op, `${path}: read failed: ${message(e)}`), e);
      }
      return buf;
    };
    return fn(file.statSync().size, readAt);
  } finally {
    file.close();
  }
}

/**
 * Reads a safetensors file. The header is validated in full before any tensor is made (each problem, such as
 * a truncated file, bad JSON, an unknown dtype or offsets that overlap or leave gaps, is a TorchError naming
 * the file); then the tensors are read one at a time. I/O errors (e.g. a missing file) are TorchErrors whose
 * `cause` is Deno's error.
 */
export function loadSafetensors(path: string, opts: LoadSafetensorsOptions = {}): SafetensorsContents {
  const op = "loadSafetensors";
  return withFile(op, path, (size, readAt) => {
    const n = headerLength(op, path, size >= 8 ? readAt(0, 8) : new Uint8Array(8), size);
    const dataStart = 8 + n;
    const { entries, metadata } = parseHeader(op, path, readAt(8, n), size - dataStart);
    const tensors = build(
      op,
      path,
      entries,
      (e) => readAt(dataStart + e.begin, e.end - e.begin),
      opts.device,
    );
    return { tensors, metadata };
  });
}

/**
 * Reads only the header of a safetensors file and returns its metadata (`__metadata__`), validating the header
 * as `loadSafetensors` does; no tensor is read or made.
 */
export function readSafetensorsMetadata(path: string): Record<string, string> {
  const op = "readSafetensorsMetadata";
  return withFile(op, path, (size, readAt) => {
    const n = headerLength(op, path, size >= 8 ? readAt(0, 8) : new Uint8Array(8), size);
    return parseHeader(op, path, readAt(8, n), size - 8 - n).metadata;
  });
}
