/**
 * A mutation fuzzer for the safetensors reader (`parseSafetensors`, `loadSafetensors`,
 * `readSafetensorsMetadata`).
 *
 * Seed inputs are valid files written with the project's `saveSafetensors` (every dtype; n-d, 0-d and empty
 * tensors; metadata; odd names; a file with no tensors) plus the golden `tests/golden/video_mae.safetensors`
 * written by Python's `safetensors`. Each case picks a seed by its own generator (derived from the run's seed
 * and the case index, so any case replays alone) and applies one to three mutations: the u64 header length
 * (0, huge, off by ±1..8, past the end), the header JSON (truncation, byte flips, non-UTF-8, wrong types for
 * dtype/shape/data_offsets, negative/huge/float/overlapping/reversed/out-of-range offsets, shapes whose product
 * overflows or disagrees with the byte range, unknown dtypes, duplicate keys, `__metadata__` of a wrong type,
 * deep nesting, a top level that is not an object), the body (truncation, extension) and byte flips anywhere;
 * some mutations keep the file valid (reordered entries, renamed tensors, reinterpreted dtypes, swapped
 * offsets, new data) so that the success path is fuzzed too.
 *
 * `fuzzOne(bytes, path)` runs all three readers on the case and classifies it:
 *
 * | outcome    | meaning                                                                                  | a failure |
 * | ---------- | ---------------------------------------------------------------------------------------- | --------- |
 * | `ok`       | read; every tensor has the header's dtype, shape and bytes (then disposed)               | no        |
 * | `typed`    | refused with a `TorchError` naming the file (`<memory>` for `parseSafetensors`)          | no        |
 * | `unnamed`  | a project error (`LayerlockError`) that is not a `TorchError` or does not name the file  | yes       |
 * | `untyped`  | anything else thrown (a `RangeError`, a `TypeError`, a non-Error)                        | yes       |
 * | `mismatch` | the readers disagree, or a read file's tensors differ from its header and bytes          | yes       |
 * | `leak`     | live tensors not back to their count before the case                                     | yes       |
 * | `crash`    | the process died during the case (detected by the parent; the case is saved)             | yes       |
 * | `hang`     | the case ran past the per-case limit (the parent kills the child; the case is saved)     | yes       |
 *
 * The reader's contract (src/torch/safetensors.ts) is a `TorchError` naming the file for every malformed input,
 * so `IoError`/`DataError` count as `unnamed` here.
 *
 * ```sh
 * deno task fuzz --cases 100000 --seed 1          # children of --batch cases; exit 1 on a failure, 2 when cut short
 * deno task fuzz --cases 1000 --in-process        # no crash/hang detection, no child processes
 * deno task fuzz --seed 1 --replay 4242           # one case: its mutations and outcome; its bytes are saved
 * ```
 * Failing cases are written to `runs/fuzz/seed<S>_case<I>.safetensors`.
 * @module
 */
import { parseArgs } from "node:util";
import {
  type DType,
  LayerlockError,
  liveTensors,
  loadSafetensors,
  parseSafetensors,
  readSafetensorsMetadata,
  type SafetensorsContents,
  saveSafetensors,
  scope,
  type Tensor,
  tensorFromBytes,
  TorchError,
} from "../mod.ts";
import { Rng as Mulberry32 } from "../src/data/rng.ts";

// ------------------------------------------------------------------------------------------- randomness

/** A generator of uniform numbers in [0, 1). */
export type Rng = () => number;

/** Uniform numbers from the library's seeded generator (mulberry32, src/data/rng.ts) seeded with `seed`. */
export function makeRng(seed: number): Rng {
  const rng = new Mulberry32(seed);
  return () => rng.float();
}

/** The generator of case `index` of a run seeded `seed` (independent of every other case). */
export function caseRng(seed: number, index: number): Rng {
  let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index >>> 0, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return makeRng(h);
}

/** An integer in [lo, hi]. */
function int(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[Math.floor(rng() * xs.length)];
}

function chance(rng: Rng, p: number): boolean {
  return rng() < p;
}

// ------------------------------------------------------------------------------------------- file structure

const ENC = new TextEncoder();
const DEC = new TextDecoder("utf-8"); // lenient: U+FFFD for bad bytes (mutation only; the reader is strict)

/** The element sizes of the safetensors dtypes the reader supports. */
const ST_SIZE: Record<string, number> = { F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, U8: 1, BOOL: 1 };
const ST_DTYPES = Object.keys(ST_SIZE);
const ST_TO_DTYPE: Record<string, DType> = {
  F64: "f64",
  I64: "i64",
  F32: "f32",
  I32: "i32",
  F16: "f16",
  BF16: "bf16",
  U8: "u8",
  BOOL: "bool",
};

/** A file cut into its parts; `headerLength` is the u64 prefix as read, which may not fit the file. */
interface Split {
  headerLength: bigint;
  /** The header bytes: the declared length when it fits the file, else everything after the prefix. */
  header: Uint8Array;
  body: Uint8Array;
}

function split(bytes: Uint8Array): Split {
  if (bytes.length < 8) return { headerLength: 0n, header: new Uint8Array(0), body: new Uint8Array(0) };
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  const fits = n <= BigInt(bytes.length - 8);
  const end = fits ? 8 + Number(n) : bytes.length;
  return { headerLength: n, header: bytes.subarray(8, end), body: bytes.subarray(end) };
}

function u64(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, n), true);
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Builds a file: the length prefix (the header's own length unless `length` is given), header, body. */
function assemble(header: Uint8Array, body: Uint8Array, length?: bigint): Uint8Array {
  return concat(u64(length ?? BigInt(header.length)), header, body);
}

/** Pads a header with spaces to 8-byte alignment (as writers do), or not: the reader accepts both. */
function maybePad(rng: Rng, header: Uint8Array): Uint8Array {
  if (chance(rng, 0.3)) return header;
  const n = Math.ceil(header.length / 8) * 8;
  if (n === header.length) return header;
  const out = new Uint8Array(n).fill(0x20);
  out.set(header);
  return out;
}

/**
 * A header as an ordered list of key/value pairs (so that duplicate keys can be written); a value is a JSON
 * value, or raw JSON text (`Raw`) for what JSON.stringify cannot make (deep nesting, `-0`, `1e400`).
 */
type Pair = [string, unknown];

/** Raw JSON text, written as it is. */
class Raw {
  constructor(readonly text: string) {}
}

function toJson(v: unknown): string {
  if (v instanceof Raw) return v.text;
  if (Array.isArray(v)) return `[${v.map(toJson).join(",")}]`;
  if (typeof v === "object" && v !== null) {
    return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}:${toJson(x)}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

function pairsText(pairs: Pair[]): string {
  return `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`).join(",")}}`;
}

/** The header's pairs, or null when it is not a JSON object. */
function headerPairs(header: Uint8Array): Pair[] | null {
  try {
    const h = JSON.parse(DEC.decode(header));
    if (typeof h !== "object" || h === null || Array.isArray(h)) return null;
    return Object.entries(h);
  } catch {
    return null;
  }
}

interface EntryInfo {
  dtype: unknown;
  shape: unknown;
  data_offsets: unknown;
  [k: string]: unknown;
}

const isEntry = (p: Pair): boolean =>
  p[0] !== "__metadata__" && typeof p[1] === "object" && p[1] !== null && !Array.isArray(p[1]);

// ------------------------------------------------------------------------------------------- interesting values

const U64_MAX = (1n << 64n) - 1n;

/** Deeply nested JSON text: arrays, objects (named or index-like keys) or a mix, `depth` levels. */
function deep(rng: Rng, depth: number): Raw {
  const kind = int(rng, 0, 3);
  if (kind === 0) return new Raw("[".repeat(depth) + "1" + "]".repeat(depth));
  if (kind === 1) return new Raw('{"a":'.repeat(depth) + "1" + "}".repeat(depth));
  // index-like keys ("0") take another, recursive path in V8's JSON.stringify
  if (kind === 2) return new Raw('{"0":'.repeat(depth) + "1" + "}".repeat(depth));
  return new Raw('[{"a":'.repeat(depth) + "[]" + "}]".repeat(depth));
}

function deepDepth(rng: Rng): number {
  // 10^6 levels make a 6 MB header (seconds per case): rarely
  return chance(rng, 0.02) ? 1_000_000 : pick(rng, [2, 64, 1000, 10_000, 100_000]);
}

/** Values of the wrong JSON type for any field. */
function wrongType(rng: Rng): unknown {
  return pick(rng, [
    () => null,
    () => true,
    () => 0,
    () => -1,
    () => 3.5,
    () => "",
    () => "F32",
    () => "[1, 2]",
    () => [],
    () => {},
    () => ({ "0": 1, "1": 2 }),
    () => [[1], [2]],
    () => ["1", "2"],
    () => [null, null],
    () => new Raw("1e400"),
    () => new Raw("-0"),
    () => new Raw("-1e-400"),
    () => deep(rng, deepDepth(rng)),
    () => "x".repeat(int(rng, 1, 5000)),
  ])();
}

/** Integers and near-integers at the edges of what the reader must handle. */
function edgeNumber(rng: Rng): unknown {
  return pick(rng, [
    () => 0,
    () => 1,
    () => -1,
    () => -int(rng, 1, 1 << 20),
    () => 2 ** 31 - 1,
    () => 2 ** 31,
    () => 2 ** 32,
    () => 2 ** 53 - 1,
    () => 2 ** 53,
    () => 2 ** 53 + 2,
    () => 2 ** 63,
    () => 2 ** 64,
    () => new Raw("18446744073709551615"),
    () => new Raw("18446744073709551616"),
    () => new Raw("9223372036854775807"),
    () => new Raw("-9223372036854775808"),
    () => 1e300,
    () => new Raw("1e400"),
    () => new Raw("-0"),
    () => new Raw("0.0"),
    () => new Raw("1.0"),
    () => new Raw("4e0"),
    () => 0.5,
    () => 1.5,
    () => -0.5,
    () => Number.MIN_VALUE,
    () => int(rng, 0, 64),
    () => int(rng, 0, 1 << 16),
  ])();
}

const UNKNOWN_DTYPES = [
  "F8_E4M3",
  "F8_E5M2",
  "I8",
  "I16",
  "U16",
  "U32",
  "U64",
  "C64",
  "F4",
  "f32",
  "float32",
  "F32 ",
  " F32",
  "F32\u0000",
  "",
  "BOOL\n",
  "bf16",
  "F\u0033\u0032\u0301",
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
];

// ------------------------------------------------------------------------------------------- mutators

/** One mutation: a pure function of the input bytes and a generator. */
export interface Mutator {
  name: string;
  apply(bytes: Uint8Array, rng: Rng): Uint8Array;
}

/** Rewrites the u64 header length: 0, huge, off by ±1..8, past the end, the whole file, random. */
function mutateLength(bytes: Uint8Array, rng: Rng): Uint8Array {
  const s = split(bytes);
  const n = s.headerLength;
  const size = BigInt(bytes.length);
  const v = pick(rng, [
    () => 0n,
    () => 1n,
    () => U64_MAX,
    () => 1n << 63n,
    () => (1n << 63n) - 1n,
    () => 1n << 32n,
    () => 100_000_000n,
    () => 100_000_001n,
    () => n + BigInt(int(rng, 1, 8)),
    () => n - BigInt(int(rng, 1, 8)),
    () => size - 8n,
    () => size - 7n,
    () => size + BigInt(int(rng, 0, 4096)),
    () => BigInt(int(rng, 0, 0xffffffff)),
    () => n ^ (1n << BigInt(int(rng, 0, 63))),
  ])();
  const out = bytes.length >= 8 ? bytes.slice() : concat(bytes, new Uint8Array(8 - bytes.length));
  out.set(u64(v), 0);
  return out;
}

/** Cuts the file anywhere: inside the prefix, the header or the body. */
function truncate(bytes: Uint8Array, rng: Rng): Uint8Array {
  const s = split(bytes);
  const headerEnd = 8 + s.header.length;
  const at = pick(rng, [
    () => int(rng, 0, 8),
    () => int(rng, 8, headerEnd),
    () => int(rng, headerEnd, bytes.length),
    () => Math.max(0, bytes.length - int(rng, 1, 8)),
    () => headerEnd,
  ])();
  return bytes.slice(0, Math.min(at, bytes.length));
}

/** Appends bytes after the data section (zeros, spaces, random, a copy of the file). */
function extend(bytes: Uint8Array, rng: Rng): Uint8Array {
  const n = pick(rng, [1, 2, 3, 4, 7, 8, int(rng, 1, 64), int(rng, 1, 4096)]);
  const kind = int(rng, 0, 3);
  const tail = kind === 3 ? bytes.slice(0, n) : new Uint8Array(n);
  if (kind === 1) tail.fill(0x20);
  if (kind === 2) { for (let i = 0; i < n; i++) tail[i] = int(rng, 0, 255); }
  return concat(bytes, tail);
}

const INTERESTING_BYTES = [
  0x00,
  0x20,
  0x22,
  0x2c,
  0x2d,
  0x2e,
  0x30,
  0x31,
  0x39,
  0x3a,
  0x5b,
  0x5c,
  0x5d,
  0x65,
  0x7b,
  0x7d,
  0x7f,
  0x80,
  0xc0,
  0xed,
  0xef,
  0xff,
];

/**
 * Flips or replaces 1..16 bytes in [lo, hi); `ascii` keeps replacements printable ASCII (so that a flipped
 * header is still UTF-8 and reaches the JSON parser and the validation behind it).
 */
function flipIn(bytes: Uint8Array, rng: Rng, lo: number, hi: number, ascii = false): Uint8Array {
  const out = bytes.slice();
  if (hi <= lo) return out;
  const k = pick(rng, [1, 1, 2, 3, 4, 8, 16]);
  for (let i = 0; i < k; i++) {
    const at = int(rng, lo, hi - 1);
    const kind = int(rng, 0, 2);
    out[at] = ascii
      ? (kind === 0
        ? int(rng, 0x20, 0x7e)
        : pick(rng, INTERESTING_BYTES.filter((b) => b >= 0x20 && b < 0x7f)))
      : kind === 0
      ? out[at] ^ (1 << int(rng, 0, 7))
      : kind === 1
      ? int(rng, 0, 255)
      : pick(rng, INTERESTING_BYTES);
  }
  return out;
}

/** Byte flips anywhere in the file. */
function flipAnywhere(bytes: Uint8Array, rng: Rng): Uint8Array {
  return flipIn(bytes, rng, 0, bytes.length);
}

/** Byte flips inside the header JSON (the length is kept). */
function flipHeader(bytes: Uint8Array, rng: Rng): Uint8Array {
  const s = split(bytes);
  return flipIn(bytes, rng, 8, 8 + s.header.length, chance(rng, 0.75));
}

/** Byte flips in the data section only: the file stays valid (bool bytes other than 0/1 included). */
function flipData(bytes: Uint8Array, rng: Rng): Uint8Array {
  const s = split(bytes);
  return flipIn(bytes, rng, 8 + s.header.length, bytes.length);
}

/** Truncates the header JSON text, keeping the file's body; the length follows the new header, or not. */
function truncateJson(bytes: Uint8Array, rng: Rng): Uint8Array {
  const s = split(bytes);
  const cut = s.header.subarray(0, int(rng, 0, Math.max(0, s.header.length - 1)));
  return assemble(cut, s.body, chance(rng, 0.8) ? undefined : s.headerLength);
}

/** Inserts bytes that are not UTF-8 (or a BOM, or NUL) into the header; the length follows. */
function nonUtf8(bytes: Uint8Array, rng: Rng): Uint8Array {
  const s = split(bytes);
  const bad = pick(rng, [
    [0x80],
    [0xff],
    [0xfe, 0xff],
    [0xc0, 0x80], // overlong NUL
    [0xc3], // truncated sequence
    [0xed, 0xa0, 0x80], // a lone surrogate
    [0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
    [0xef, 0xbb, 0xbf], // a BOM
    [0x00],
    [0xe2, 0x82],
  ]);
  // Inside a string (after a quote) or anywhere.
  let at = int(rng, 0, s.header.length);
  if (chance(rng, 0.5)) {
    const q = s.header.indexOf(0x22, int(rng, 0, Math.max(0, s.header.length - 1)));
    if (q >= 0) at = q + 1;
  }
  if (chance(rng, 0.2)) at = 0;
  const h = concat(s.header.subarray(0, at), new Uint8Array(bad), s.header.subarray(at));
  return assemble(h, s.body);
}

/** Replaces the whole header with something that is not a JSON object, or with odd but valid JSON. */
function replaceHeader(bytes: Uint8Array, rng: Rng): Uint8Array {
  const s = split(bytes);
  const text = pick(rng, [
    () => "",
    () => " ",
    () => "null",
    () => "[]",
    () => "1",
    () => '"x"',
    () => "true",
    () => "{}",
    () => "{",
    () => "}",
    () => "{}}",
    () => "{} {}",
    () => "{,}",
    () => '{"a":}',
    () => '{"__metadata__":{}}',
    () => '{"__metadata__":null}',
    () => '{"__proto__":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}',
    () => '{"constructor":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}',
    () => DEC.decode(s.header) + DEC.decode(s.header),
    () => " \t\r\n" + DEC.decode(s.header) + "\n\t ",
    () => DEC.decode(s.header) + "\u0000",
    () => "\uFEFF" + DEC.decode(s.header),
    () => toJson(deep(rng, deepDepth(rng))),
  ])();
  return assemble(maybePad(rng, ENC.encode(text)), s.body);
}

/** Applies `edit` to the header's pairs and rewrites the file; falls back to header byte flips. */
function structured(
  bytes: Uint8Array,
  rng: Rng,
  edit: (pairs: Pair[], body: Uint8Array) => Uint8Array | void,
) {
  const s = split(bytes);
  const pairs = headerPairs(s.header);
  if (pairs === null) return flipHeader(bytes, rng);
  const body = edit(pairs, s.body) ?? s.body;
  let text: string;
  try {
    text = pairsText(pairs);
  } catch {
    return flipHeader(bytes, rng); // a header nested too deeply to write back (from an earlier mutation)
  }
  return assemble(maybePad(rng, ENC.encode(text)), body);
}

function entryIndices(pairs: Pair[]): number[] {
  return pairs.flatMap((p, i) => (isEntry(p) ? [i] : []));
}

/** A tensor entry's dtype: unknown names, wrong types, another supported dtype, missing. */
function mutateDtype(bytes: Uint8Array, rng: Rng): Uint8Array {
  return structured(bytes, rng, (pairs) => {
    const idx = entryIndices(pairs);
    if (idx.length === 0) {
      pairs.push(["t", { dtype: pick(rng, UNKNOWN_DTYPES), shape: [], data_offsets: [0, 0] }]);
      return;
    }
    const i = pick(rng, idx);
    const e = { ...(pairs[i][1] as EntryInfo) };
    const kind = int(rng, 0, 3);
    if (kind === 0) e.dtype = pick(rng, UNKNOWN_DTYPES);
    else if (kind === 1) e.dtype = wrongType(rng);
    else if (kind === 2) e.dtype = pick(rng, ST_DTYPES);
    else delete e.dtype;
    pairs[i][1] = e;
  });
}

/** A tensor entry's shape: wrong types, negative/float dims, products that overflow or disagree, huge ranks. */
function mutateShape(bytes: Uint8Array, rng: Rng): Uint8Array {
  return structured(bytes, rng, (pairs) => {
    const idx = entryIndices(pairs);
    if (idx.length === 0) return;
    const i = pick(rng, idx);
    const e = { ...(pairs[i][1] as EntryInfo) };
    const shape = Array.isArray(e.shape) ? (e.shape as unknown[]).slice() : [];
    const numel = shape.reduce((a: number, b) => a * (typeof b === "number" ? b : 1), 1);
    const kind = int(rng, 0, 9);
    if (kind === 0) e.shape = wrongType(rng);
    else if (kind === 1) {
      if (shape.length > 0) shape[int(rng, 0, shape.length - 1)] = edgeNumber(rng);
      e.shape = shape;
    } else if (kind === 2) e.shape = [...shape, pick(rng, [0, 1, 2, -1, 2 ** 53 - 1])];
    else if (kind === 3) e.shape = shape.slice(0, -1);
    else if (kind === 4) {
      // products past 2^53 and 2^64, alone and multiplied by zero
      e.shape = pick(rng, [
        [2 ** 32, 2 ** 32],
        [2 ** 53 - 1, 2 ** 53 - 1],
        [0, 2 ** 53 - 1],
        [2 ** 53 - 1, 0, 2 ** 53 - 1],
        [0, 2 ** 31, 2 ** 31, 2 ** 31],
        [2 ** 26, 2 ** 26, 2 ** 26, 0],
        [3, 2 ** 52],
        [2 ** 62],
        [numel, 2 ** 53 - 1, 0],
      ]);
    } else if (kind === 5) {
      // a huge rank of ones: the element count (and byte range) is unchanged
      const rank = pick(rng, [25, 63, 64, 65, 100, 1000, 100_000]);
      e.shape = [...Array(rank - 1).fill(1), numel];
    } else if (kind === 6) e.shape = shape.map(() => edgeNumber(rng));
    else if (kind === 7) {
      // an equivalent shape (same element count): the file stays valid
      e.shape = shape.length >= 2
        ? [
          ...shape.slice(0, -2),
          numel / Math.max(1, shape.slice(0, -2).reduce((a: number, b) => a * (b as number), 1)),
        ]
        : [numel];
    } else if (kind === 8) e.shape = [...shape, 1, 1];
    else delete e.shape;
    pairs[i][1] = e;
  });
}

/** A tensor entry's data_offsets: wrong types and lengths, negative/huge/float, reversed, out of range. */
function mutateOffsets(bytes: Uint8Array, rng: Rng): Uint8Array {
  return structured(bytes, rng, (pairs, body) => {
    const idx = entryIndices(pairs);
    if (idx.length === 0) return;
    const i = pick(rng, idx);
    const e = { ...(pairs[i][1] as EntryInfo) };
    const offs = Array.isArray(e.data_offsets) ? (e.data_offsets as unknown[]).slice() : [0, 0];
    const [b, en] = offs as number[];
    const kind = int(rng, 0, 10);
    if (kind === 0) e.data_offsets = wrongType(rng);
    else if (kind === 1) e.data_offsets = [b];
    else if (kind === 2) e.data_offsets = [b, en, en];
    else if (kind === 3) e.data_offsets = [en, b];
    else if (kind === 4) offs[int(rng, 0, 1)] = edgeNumber(rng);
    else if (kind === 5) e.data_offsets = [b + body.length, en + body.length];
    else if (kind === 6) e.data_offsets = [b, body.length + int(rng, 1, 16)];
    else if (kind === 7) {
      const d = int(rng, -8, 8);
      e.data_offsets = [b + d, en + d];
    } else if (kind === 8) {
      const d = int(rng, -8, 8);
      e.data_offsets = chance(rng, 0.5) ? [b + d, en] : [b, en + d];
    } else if (kind === 9) e.data_offsets = [edgeNumber(rng), edgeNumber(rng)];
    else e.data_offsets = [new Raw(`${b}.0`), new Raw(`${en}e0`)];
    if (kind === 4) e.data_offsets = offs;
    pairs[i][1] = e;
  });
}

/** Two entries at once: overlapping or swapped byte ranges, the same range, a gap between them. */
function mutateTwoEntries(bytes: Uint8Array, rng: Rng): Uint8Array {
  return structured(bytes, rng, (pairs) => {
    const idx = entryIndices(pairs);
    if (idx.length < 2) return;
    const i = pick(rng, idx), j = pick(rng, idx.filter((k) => k !== i));
    const a = { ...(pairs[i][1] as EntryInfo) }, b = { ...(pairs[j][1] as EntryInfo) };
    const kind = int(rng, 0, 3);
    if (kind === 0) [a.data_offsets, b.data_offsets] = [b.data_offsets, a.data_offsets]; // swap ranges
    else if (kind === 1) b.data_offsets = a.data_offsets; // the same range
    else if (kind === 2) [a.dtype, a.shape, b.dtype, b.shape] = [b.dtype, b.shape, a.dtype, a.shape];
    else {
      // b starts inside a
      const offsets = (e: EntryInfo) => (Array.isArray(e.data_offsets) ? e.data_offsets as number[] : [0, 0]);
      const [ab, ae] = offsets(a);
      const [bb, be] = offsets(b);
      const d = int(rng, 1, 8);
      b.data_offsets = [Math.min(bb, ae) - d, Math.max(be, ab) - d];
    }
    pairs[i][1] = a;
    pairs[j][1] = b;
  });
}

/** Header keys: duplicates, renames (`__proto__`, empty, unicode, `__metadata__`), removals, reordering. */
function mutateKeys(bytes: Uint8Array, rng: Rng): Uint8Array {
  return structured(bytes, rng, (pairs) => {
    if (pairs.length === 0) {
      pairs.push(["", { dtype: "U8", shape: [0], data_offsets: [0, 0] }]);
      return;
    }
    const i = int(rng, 0, pairs.length - 1);
    const kind = int(rng, 0, 5);
    if (kind === 0) {
      pairs.splice(int(rng, 0, pairs.length), 0, [pairs[i][0], pairs[int(rng, 0, pairs.length - 1)][1]]);
    } else if (kind === 1) pairs.splice(int(rng, 0, pairs.length), 0, [...pairs[i]] as Pair); // exact duplicate
    else if (kind === 2) {
      pairs[i] = [
        pick(rng, ["__proto__", "", "__metadata__", "constructor", "ключ ✓", "a\u0000b", "x".repeat(1000)]),
        pairs[i][1],
      ];
    } else if (kind === 3) pairs.splice(i, 1);
    else if (kind === 4) {
      // reorder: valid
      for (let k = pairs.length - 1; k > 0; k--) {
        const j = int(rng, 0, k);
        [pairs[k], pairs[j]] = [pairs[j], pairs[k]];
      }
    } else {
      // a new empty tensor (no bytes, so no gap): valid, or a shape whose strides overflow 64 bits, or a rank
      // past the binding's 64 dimensions
      const shape = pick(rng, [
        () => [0, int(rng, 0, 3)],
        () => [0, 2 ** 31, 2 ** 31, 2 ** 31],
        () => [2 ** 26, 2 ** 26, 2 ** 26, 0],
        () => [0, 2 ** 53 - 1, 2 ** 53 - 1],
        () => [2 ** 53 - 1, 2 ** 53 - 1, 0],
        () => [2 ** 60, 0, 16],
        () => [...Array(pick(rng, [63, 64, 65, 1000]) - 1).fill(1), 0],
        () => Array(pick(rng, [64, 65])).fill(0),
      ])();
      pairs.push([`empty${int(rng, 0, 9)}`, { dtype: pick(rng, ST_DTYPES), shape, data_offsets: [0, 0] }]);
    }
  });
}

/** `__metadata__` of the wrong type, with non-string values, deep, huge, or valid new strings. */
function mutateMetadata(bytes: Uint8Array, rng: Rng): Uint8Array {
  return structured(bytes, rng, (pairs) => {
    const value = pick(rng, [
      () => wrongType(rng),
      () => ({ step: 10 }),
      () => ({ a: "x", b: null }),
      () => ({ a: ["x"] }),
      () => ({ a: { b: "c" } }),
      () => ({ a: deep(rng, deepDepth(rng)) }),
      () => ({ ["__proto__"]: "x", constructor: "y", "": "" }),
      () => ({ big: "m".repeat(int(rng, 1, 100_000)) }),
      () => ({ "ключ ✓": "värde", "a\u0000b": "\u0000" }),
      () => null,
    ])();
    const i = pairs.findIndex(([k]) => k === "__metadata__");
    if (i >= 0 && chance(rng, 0.8)) pairs[i] = ["__metadata__", value];
    else pairs.splice(int(rng, 0, pairs.length), 0, ["__metadata__", value]);
  });
}

/** Reinterprets a tensor with a dtype of the same element size, or its bytes as u8: the file stays valid. */
function reinterpret(bytes: Uint8Array, rng: Rng): Uint8Array {
  return structured(bytes, rng, (pairs) => {
    const idx = entryIndices(pairs);
    if (idx.length === 0) return;
    const i = pick(rng, idx);
    const e = { ...(pairs[i][1] as EntryInfo) };
    const size = ST_SIZE[e.dtype as string];
    if (size === undefined || !Array.isArray(e.data_offsets)) return;
    if (chance(rng, 0.5)) {
      const [b, en] = e.data_offsets as number[];
      e.dtype = "U8";
      e.shape = [en - b];
    } else {
      e.dtype = pick(rng, ST_DTYPES.filter((d) => ST_SIZE[d] === size));
    }
    pairs[i][1] = e;
  });
}

/** Whitespace, NULs or garbage around the header JSON; the length follows. */
function headerPadding(bytes: Uint8Array, rng: Rng): Uint8Array {
  const s = split(bytes);
  const text = DEC.decode(s.header).trimEnd();
  const pad = pick(rng, [" ", "\t", "\n", "\r\n", "\u0000", "\u00a0", "x", "}", ",", "  \u0000  "]).repeat(
    int(rng, 1, 9),
  );
  const h = chance(rng, 0.5) ? text + pad : pad + text;
  return assemble(ENC.encode(h), s.body);
}

/** Many entries at once (empty tensors, valid), sometimes with a bad one last: a large but flat header. */
function manyEntries(bytes: Uint8Array, rng: Rng): Uint8Array {
  return structured(bytes, rng, (pairs) => {
    const r = rng();
    const n = r < 0.03 ? 100_000 : r < 0.13 ? 10_000 : pick(rng, [100, 1000]);
    for (let i = 0; i < n; i++) pairs.push([`m${i}`, { dtype: "U8", shape: [0], data_offsets: [0, 0] }]);
    // 10^5 tensors take seconds to make and dispose: that many only with a bad entry, refused after validation
    if (n > 10_000 || chance(rng, 0.3)) {
      pairs.push([`m${n}`, { dtype: "U8", shape: [1], data_offsets: [0, 0] }]);
    }
  });
}

/** Copies a slice of the file over another place in it. */
function selfSplice(bytes: Uint8Array, rng: Rng): Uint8Array {
  const out = bytes.slice();
  if (bytes.length < 2) return out;
  const len = int(rng, 1, Math.min(64, bytes.length - 1));
  const from = int(rng, 0, bytes.length - len), to = int(rng, 0, bytes.length - len);
  out.set(bytes.slice(from, from + len), to);
  return out;
}

/** The mutation family, with weights. */
export const MUTATORS: readonly (Mutator & { weight: number })[] = [
  { name: "length", apply: mutateLength, weight: 8 },
  { name: "truncate", apply: truncate, weight: 6 },
  { name: "extend", apply: extend, weight: 4 },
  { name: "flipAnywhere", apply: flipAnywhere, weight: 6 },
  { name: "flipHeader", apply: flipHeader, weight: 8 },
  { name: "flipData", apply: flipData, weight: 4 },
  { name: "truncateJson", apply: truncateJson, weight: 4 },
  { name: "nonUtf8", apply: nonUtf8, weight: 4 },
  { name: "replaceHeader", apply: replaceHeader, weight: 4 },
  { name: "dtype", apply: mutateDtype, weight: 8 },
  { name: "shape", apply: mutateShape, weight: 10 },
  { name: "offsets", apply: mutateOffsets, weight: 10 },
  { name: "twoEntries", apply: mutateTwoEntries, weight: 6 },
  { name: "keys", apply: mutateKeys, weight: 6 },
  { name: "metadata", apply: mutateMetadata, weight: 6 },
  { name: "reinterpret", apply: reinterpret, weight: 4 },
  { name: "headerPadding", apply: headerPadding, weight: 3 },
  { name: "selfSplice", apply: selfSplice, weight: 3 },
  { name: "manyEntries", apply: manyEntries, weight: 1 },
];
const TOTAL_WEIGHT = MUTATORS.reduce((a, m) => a + m.weight, 0);

function pickMutator(rng: Rng): Mutator {
  let r = rng() * TOTAL_WEIGHT;
  for (const m of MUTATORS) {
    r -= m.weight;
    if (r < 0) return m;
  }
  return MUTATORS[MUTATORS.length - 1];
}

/**
 * Applies one to three mutations (mostly one); returns the bytes and the mutations' names. A mutator that
 * throws (a bug of the fuzzer, not of the reader) is named with a `!` and replaced by byte flips, so that it
 * is never taken for a crash of the reader.
 */
export function mutate(bytes: Uint8Array, rng: Rng): { bytes: Uint8Array; mutations: string[] } {
  const k = pick(rng, [1, 1, 1, 1, 2, 2, 3]);
  const mutations: string[] = [];
  let b = bytes;
  for (let i = 0; i < k; i++) {
    const m = pickMutator(rng);
    try {
      b = m.apply(b, rng);
      mutations.push(m.name);
    } catch {
      b = flipAnywhere(b, rng);
      mutations.push(`${m.name}!`);
    }
  }
  return { bytes: b, mutations };
}

// ------------------------------------------------------------------------------------------- seed inputs

/** A seed input: a valid safetensors file. */
export interface SeedFile {
  name: string;
  bytes: Uint8Array;
}

const ALL_DTYPES: DType[] = ["f32", "f64", "f16", "bf16", "i64", "i32", "u8", "bool"];
const ROOT = new URL("../", import.meta.url);
const GOLDEN = new URL("tests/golden/video_mae.safetensors", ROOT);

/** Deterministic bytes for a tensor (bool: 0/1 only, as the reader normalises them). */
function seedTensor(shape: number[], dtype: DType, seed: number): Tensor {
  const rng = makeRng(seed);
  const size = { f32: 4, f64: 8, f16: 2, bf16: 2, i64: 8, i32: 4, u8: 1, bool: 1 }[dtype];
  const n = shape.reduce((a, b) => a * b, 1) * size;
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = dtype === "bool" ? int(rng, 0, 1) : int(rng, 0, 255);
  return tensorFromBytes(bytes, shape, dtype);
}

/**
 * The seed inputs, written with `saveSafetensors` into `dir` and read back, plus the golden file (when
 * present). Deterministic: the same bytes in every process.
 */
export function buildSeeds(dir: string): SeedFile[] {
  const sets: [string, () => Record<string, Tensor>, Record<string, string> | undefined][] = [
    ["all_dtypes", () => {
      const out: Record<string, Tensor> = {};
      let s = 1;
      for (const dt of ALL_DTYPES) {
        out[`${dt}.nd`] = seedTensor([2, 3], dt, s++);
        out[`${dt}.scalar`] = seedTensor([], dt, s++);
        out[`${dt}.empty`] = seedTensor([0, 3], dt, s++);
      }
      return out;
    }, { step: "10", "ünïcödé": "värde ✓", empty: "" }],
    ["one_f32", () => ({ w: seedTensor([4], "f32", 11) }), undefined],
    ["mixed", () => ({
      a: seedTensor([3, 1, 2], "bf16", 12),
      b: seedTensor([5], "i64", 13),
      c: seedTensor([7], "bool", 14),
      d: seedTensor([], "u8", 15),
      e: seedTensor([2, 2], "f16", 16),
    }), { format: "pt" }],
    ["names", () => ({
      ["__proto__"]: seedTensor([2], "i32", 17), // computed: an own key, not the prototype
      "": seedTensor([1], "f64", 18),
      "a.b.c": seedTensor([1, 1, 1], "u8", 19),
      "ユニコード ✓": seedTensor([3], "f16", 20),
      'with "quote" \\ and \n': seedTensor([0], "f32", 21),
    }), undefined],
    ["no_tensors_meta", () => ({}), { only: "metadata" }],
    ["no_tensors", () => ({}), undefined],
    ["larger", () => ({ x: seedTensor([16, 16], "f32", 22), y: seedTensor([8, 4, 2], "bf16", 23) }), {
      k: "v",
    }],
  ];
  const seeds: SeedFile[] = [];
  Deno.mkdirSync(dir, { recursive: true });
  for (const [name, make, meta] of sets) {
    const path = `${dir}/seed_${name}.safetensors`;
    scope(() => saveSafetensors(path, make(), meta));
    seeds.push({ name, bytes: Deno.readFileSync(path) });
    Deno.removeSync(path);
  }
  try {
    seeds.push({ name: "golden_video_mae", bytes: Deno.readFileSync(GOLDEN) });
  } catch {
    // not present: the project's own seeds only
  }
  return seeds;
}

/** The bytes and mutations of case `index` of the run seeded `seed`. */
export function makeCase(
  seeds: readonly SeedFile[],
  seed: number,
  index: number,
): { bytes: Uint8Array; seedName: string; mutations: string[] } {
  const rng = caseRng(seed, index);
  // The golden file (~270 KB, ~100 tensors) is slower to read: 1 case in 20.
  const golden = seeds.findIndex((s) => s.name.startsWith("golden"));
  const own = seeds.filter((_, i) => i !== golden);
  const s = golden >= 0 && chance(rng, 0.05) ? seeds[golden] : pick(rng, own);
  const { bytes, mutations } = mutate(s.bytes, rng);
  return { bytes, seedName: s.name, mutations };
}

// ------------------------------------------------------------------------------------------- one case

/** The outcome kinds; every kind but `ok` and `typed` is a failure. */
export const OUTCOMES = ["ok", "typed", "unnamed", "untyped", "mismatch", "leak", "crash", "hang"] as const;
/** One outcome kind. */
export type Outcome = typeof OUTCOMES[number];

/** Whether an outcome is a failure of the reader. */
export const isFailure = (o: Outcome): boolean => o !== "ok" && o !== "typed";

/** The classified result of one case. */
export interface CaseResult {
  outcome: Outcome;
  /** What went wrong (failures), or the reader's error message (typed). */
  detail: string;
}

type Attempt<T> = { ok: true; value: T } | { ok: false; error: unknown };

function attempt<T>(fn: () => T): Attempt<T> {
  try {
    return { ok: true, value: fn() };
  } catch (error) {
    return { ok: false, error };
  }
}

function describe(e: unknown): string {
  if (e instanceof Error) return `${e.constructor.name}: ${e.message.slice(0, 500)}`;
  return `non-Error thrown: ${String(e).slice(0, 200)}`;
}

/** Classifies a thrown value: a TorchError naming `where` is typed; other project errors unnamed; else untyped. */
function classifyError(e: unknown, where: string): CaseResult {
  if (e instanceof TorchError && e.message.includes(where)) return { outcome: "typed", detail: e.message };
  if (e instanceof LayerlockError) {
    return { outcome: "unnamed", detail: `${describe(e)} (should name ${where})` };
  }
  return { outcome: "untyped", detail: describe(e) };
}

/** The reader's message without its op and file prefix, to compare the readers' refusals. */
function reason(e: unknown, op: string, where: string): string {
  const m = e instanceof Error ? e.message : String(e);
  const p = `${op}: ${where}: `;
  return m.startsWith(p) ? m.slice(p.length) : m;
}

/** The bytes a tensor read from `data` should hold (bool bytes are normalised to 0/1 by the reader). */
function expectedBytes(data: Uint8Array, dtype: string): Uint8Array {
  return dtype === "BOOL" ? data.map((v) => (v ? 1 : 0)) : data;
}

/** Checks a successful read against the file itself: names, dtypes, shapes, bytes, metadata. */
function checkContents(
  bytes: Uint8Array,
  tensors: Record<string, Tensor>,
  metadata: Record<string, string>,
): string | null {
  const s = split(bytes);
  const header = JSON.parse(new TextDecoder().decode(s.header)) as Record<string, EntryInfo>;
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  const got = Object.keys(tensors);
  if (JSON.stringify(got) !== JSON.stringify(names)) {
    return `tensor names ${JSON.stringify(got).slice(0, 200)} differ from the header's ${
      JSON.stringify(names).slice(0, 200)
    }`;
  }
  for (const name of names) {
    const e = header[name], t = tensors[name];
    if (t.dtype !== ST_TO_DTYPE[e.dtype as string]) return `'${name}': dtype ${t.dtype}, header ${e.dtype}`;
    if (JSON.stringify(t.shape) !== JSON.stringify(e.shape)) {
      return `'${name}': shape ${JSON.stringify(t.shape)}, header ${JSON.stringify(e.shape)}`;
    }
    const [b, en] = e.data_offsets as number[];
    const want = expectedBytes(s.body.subarray(b, en), e.dtype as string);
    const have = t.toBytes();
    if (have.length !== want.length || have.some((v, i) => v !== want[i])) {
      return `'${name}': bytes differ from the file`;
    }
  }
  const meta = header["__metadata__"] ?? {};
  if (JSON.stringify(metadata) !== JSON.stringify(meta)) return "metadata differs from the header's";
  return null;
}

function disposeAll(r: Attempt<{ tensors: Record<string, Tensor> }>): void {
  if (r.ok) { for (const t of Object.values(r.value.tensors)) t.dispose(); }
}

/**
 * Runs the readers on one input — `parseSafetensors(bytes)`, then `readSafetensorsMetadata` and
 * `loadSafetensors` on the bytes written to `path` — and classifies the outcome (the worst of the three).
 * Tensors read are checked against the file and disposed; live tensors must be back where they were.
 */
export function fuzzOne(bytes: Uint8Array, path: string): CaseResult {
  const before = liveTensors();
  const parsed = attempt(() => parseSafetensors(bytes));
  Deno.writeFileSync(path, bytes);
  const meta = attempt(() => readSafetensorsMetadata(path));
  const loaded = attempt(() => loadSafetensors(path));
  let result: CaseResult;
  try {
    result = judge(bytes, path, parsed, meta, loaded);
  } catch (e) {
    // checkContents itself failing (e.g. toBytes of a tensor the reader made) is the reader's failure too
    result = { outcome: "untyped", detail: `while checking a read file: ${describe(e)}` };
  }
  disposeAll(parsed);
  disposeAll(loaded);
  const after = liveTensors();
  if (after !== before && !isFailure(result.outcome)) {
    result = { outcome: "leak", detail: `live tensors ${after} after, ${before} before` };
  }
  return result;
}

function judge(
  bytes: Uint8Array,
  path: string,
  parsed: Attempt<SafetensorsContents>,
  meta: Attempt<Record<string, string>>,
  loaded: Attempt<SafetensorsContents>,
): CaseResult {
  for (const [r, where] of [[parsed, "<memory>"], [meta, path], [loaded, path]] as const) {
    if (!r.ok) {
      const c = classifyError(r.error, where);
      if (c.outcome !== "typed") return c;
    }
  }
  if (!parsed.ok && !loaded.ok) {
    const a = reason(parsed.error, "parseSafetensors", "<memory>");
    const b = reason(loaded.error, "loadSafetensors", path);
    if (a !== b) return { outcome: "mismatch", detail: `different refusals: '${a}' vs '${b}'` };
    // The header is validated in full first, so a valid header (metadata read) leaves nothing to refuse.
    if (meta.ok) return { outcome: "mismatch", detail: `metadata read but the file refused: ${b}` };
    return { outcome: "typed", detail: b };
  }
  if (!parsed.ok || !loaded.ok) {
    const e = parsed.ok ? (loaded as { error: unknown }).error : (parsed as { error: unknown }).error;
    return {
      outcome: "mismatch",
      detail: `parseSafetensors ${parsed.ok ? "read it" : "refused it"}, loadSafetensors ${
        loaded.ok ? "read it" : "refused it"
      }: ${describe(e)}`,
    };
  }
  if (!meta.ok) return { outcome: "mismatch", detail: `read, but metadata refused: ${describe(meta.error)}` };
  const bad = checkContents(bytes, parsed.value.tensors, parsed.value.metadata) ??
    checkContents(bytes, loaded.value.tensors, loaded.value.metadata);
  if (bad !== null) return { outcome: "mismatch", detail: bad };
  if (JSON.stringify(meta.value) !== JSON.stringify(loaded.value.metadata)) {
    return { outcome: "mismatch", detail: "readSafetensorsMetadata differs from loadSafetensors" };
  }
  return { outcome: "ok", detail: "" };
}

// ------------------------------------------------------------------------------------------- runs

/** A failing case of a run. */
export interface Failure {
  index: number;
  outcome: Outcome;
  detail: string;
  seedName: string;
  mutations: string[];
}

/** Counts per outcome, failures, and the slowest case. */
export interface RunSummary {
  cases: number;
  counts: Record<Outcome, number>;
  failures: Failure[];
  slowestMs: number;
  slowestIndex: number;
}

function emptyCounts(): Record<Outcome, number> {
  return Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
}

/**
 * Runs cases [from, from + count) of the run seeded `seed` in this process (no crash or hang detection);
 * `onCase` is told of each finished case.
 */
export function runInProcess(
  seeds: readonly SeedFile[],
  seed: number,
  from: number,
  count: number,
  dir: string,
  onCase?: (index: number, r: CaseResult, failure: Failure | null) => void,
): RunSummary {
  const path = `${dir}/case.safetensors`;
  const summary: RunSummary = {
    cases: 0,
    counts: emptyCounts(),
    failures: [],
    slowestMs: 0,
    slowestIndex: -1,
  };
  for (let i = from; i < from + count; i++) {
    const c = makeCase(seeds, seed, i);
    const t0 = performance.now();
    const r = fuzzOne(c.bytes, path);
    const ms = performance.now() - t0;
    if (ms > summary.slowestMs) [summary.slowestMs, summary.slowestIndex] = [ms, i];
    summary.cases++;
    summary.counts[r.outcome]++;
    const failure = isFailure(r.outcome)
      ? { index: i, outcome: r.outcome, detail: r.detail, seedName: c.seedName, mutations: c.mutations }
      : null;
    if (failure) summary.failures.push(failure);
    onCase?.(i, r, failure);
  }
  return summary;
}

const RUNS_DIR = new URL("runs/", ROOT).pathname;

function saveCase(seeds: readonly SeedFile[], seed: number, index: number): string {
  const dir = `${RUNS_DIR}fuzz`;
  Deno.mkdirSync(dir, { recursive: true });
  const path = `${dir}/seed${seed}_case${index}.safetensors`;
  Deno.writeFileSync(path, makeCase(seeds, seed, index).bytes);
  return path;
}

const OUT = new TextEncoder();
function emit(line: string): void {
  const b = OUT.encode(line + "\n");
  let o = 0;
  while (o < b.length) o += Deno.stdout.writeSync(b.subarray(o));
}

/** Child mode: runs a batch, printing `READY`, then `<index> <outcome>` after each case (and `F <json>` first for a failure). */
function child(seed: number, from: number, count: number, dir: string): void {
  const seeds = buildSeeds(dir);
  emit("READY");
  runInProcess(seeds, seed, from, count, dir, (i, r, failure) => {
    if (failure) emit(`F ${JSON.stringify(failure)}`);
    emit(`${i} ${r.outcome}`);
  });
  emit("DONE");
}

/** Reads lines from a stream, with a timeout per line: null at the end, "TIMEOUT" when none came in time. */
class LineReader {
  #reader: ReadableStreamDefaultReader<string>;
  #buf = "";
  #lines: string[] = [];
  #done = false;
  #pending: Promise<ReadableStreamReadResult<string>> | null = null;
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }
  async next(timeoutMs: number): Promise<string | null | "TIMEOUT"> {
    while (this.#lines.length === 0) {
      if (this.#done) {
        if (this.#buf) {
          const l = this.#buf;
          this.#buf = "";
          return l;
        }
        return null;
      }
      this.#pending ??= this.#reader.read();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"TIMEOUT">((res) => timer = setTimeout(() => res("TIMEOUT"), timeoutMs));
      const r = await Promise.race([this.#pending, timeout]);
      clearTimeout(timer);
      if (r === "TIMEOUT") return "TIMEOUT";
      this.#pending = null;
      if (r.done) this.#done = true;
      else {
        this.#buf += r.value;
        const parts = this.#buf.split("\n");
        this.#buf = parts.pop()!;
        this.#lines.push(...parts);
      }
    }
    return this.#lines.shift()!;
  }
  cancel(): void {
    this.#reader.cancel().catch(() => {});
  }
}

async function collect(stream: ReadableStream<Uint8Array>, keep = 4000): Promise<string> {
  let s = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) s = (s + chunk).slice(-keep);
  return s;
}

/**
 * Runs cases [0, cases) in child processes of `batch` cases each. A child that dies mid-case is a crash at that
 * case, one that prints nothing for `caseTimeoutMs` a hang (it is killed); the run goes on from the next case.
 */
export async function runWithChildren(opts: {
  seed: number;
  cases: number;
  batch: number;
  caseTimeoutMs: number;
  timeLimitS: number;
  seeds: readonly SeedFile[];
  log: (s: string) => void;
}): Promise<RunSummary & { stopped: string | null }> {
  const root = new URL(".", ROOT).pathname.replace(/\/$/, "");
  const script = new URL(import.meta.url).pathname;
  const summary = {
    cases: 0,
    counts: emptyCounts(),
    failures: [] as Failure[],
    slowestMs: 0,
    slowestIndex: -1,
  };
  const t0 = performance.now();
  let next = 0;
  let lastReport = t0;
  let stopped: string | null = null;
  while (next < opts.cases) {
    if ((performance.now() - t0) / 1000 > opts.timeLimitS) {
      stopped = `stopped at the time limit (${opts.timeLimitS} s)`;
      break;
    }
    const count = Math.min(opts.batch, opts.cases - next);
    const dir = Deno.makeTempDirSync({ dir: `${RUNS_DIR}tmp`, prefix: "fuzz_child_" });
    const cmd = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        `--allow-ffi=${root}/native/build`,
        "--allow-read",
        "--allow-env",
        `--allow-write=${root}/runs`,
        script,
        "--child",
        `--seed=${opts.seed}`,
        `--from=${next}`,
        `--count=${count}`,
        `--dir=${dir}`,
      ],
      cwd: root,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    });
    const proc = cmd.spawn();
    const stderr = collect(proc.stderr);
    const lines = new LineReader(proc.stdout);
    let current = next; // the case running now (the next one not reported)
    let ready = false, done = false, hung = false;
    let caseStart = performance.now();
    for (;;) {
      const line = await lines.next(ready ? opts.caseTimeoutMs : Math.max(opts.caseTimeoutMs, 120_000));
      if (line === null) break;
      if (line === "TIMEOUT") {
        hung = true;
        try {
          proc.kill("SIGKILL");
        } catch {
          // already gone
        }
        lines.cancel();
        break;
      }
      if (line === "READY") {
        ready = true;
        caseStart = performance.now();
      } else if (line === "DONE") done = true;
      else if (line.startsWith("F ")) summary.failures.push(JSON.parse(line.slice(2)) as Failure);
      else {
        const [i, outcome] = line.split(" ");
        const ms = performance.now() - caseStart;
        caseStart = performance.now();
        if (ms > summary.slowestMs) [summary.slowestMs, summary.slowestIndex] = [ms, Number(i)];
        summary.counts[outcome as Outcome]++;
        summary.cases++;
        current = Number(i) + 1;
      }
    }
    const status = await proc.status;
    const err = await stderr;
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // left for inspection
    }
    if (!done || !status.success) {
      if (!ready) {
        // Not a finding: the environment (e.g. a shim being rebuilt). Report what ran and stop.
        stopped = `a child failed to start (code ${status.code}, signal ${status.signal}):\n${
          err.slice(-1500)
        }`;
        break;
      }
      const outcome: Outcome = hung ? "hang" : "crash";
      const c = makeCase(opts.seeds, opts.seed, current);
      const f: Failure = {
        index: current,
        outcome,
        detail: hung
          ? `no result within ${opts.caseTimeoutMs} ms`
          : `child exited with code ${status.code}${
            status.signal ? `, signal ${status.signal}` : ""
          }; stderr: ${err.slice(-1500)}`,
        seedName: c.seedName,
        mutations: c.mutations,
      };
      summary.failures.push(f);
      summary.counts[outcome]++;
      summary.cases++;
      opts.log(`case ${current}: ${outcome} (${f.detail.split("\n")[0]})`);
      next = current + 1;
    } else {
      next += count;
    }
    if (performance.now() - lastReport > 30_000) {
      lastReport = performance.now();
      const s = (performance.now() - t0) / 1000;
      opts.log(`${summary.cases} cases in ${s.toFixed(0)} s (${(summary.cases / s).toFixed(0)}/s)`);
    }
  }
  return { ...summary, stopped };
}

// ------------------------------------------------------------------------------------------- command line

function printSummary(s: RunSummary, seconds: number, seeds: readonly SeedFile[], seed: number): void {
  console.log(
    `safetensors fuzz: ${s.cases} cases, seed ${seed}, ${seconds.toFixed(1)} s (${
      (s.cases / seconds).toFixed(0)
    } cases/s); slowest case ${s.slowestIndex} at ${s.slowestMs.toFixed(1)} ms`,
  );
  console.log(`  seeds: ${seeds.map((x) => `${x.name} (${x.bytes.length} B)`).join(", ")}`);
  for (const o of OUTCOMES) console.log(`  ${o.padEnd(8)} ${String(s.counts[o]).padStart(8)}`);
  const shown = s.failures.slice(0, 20);
  for (const f of shown) {
    const path = saveCase(seeds, seed, f.index);
    console.log(
      `  FAIL case ${f.index} ${f.outcome} [${f.seedName}: ${f.mutations.join(", ")}] ${
        f.detail.slice(0, 400)
      }\n` +
        `       saved ${path}; replay: deno task fuzz --seed ${seed} --replay ${f.index}`,
    );
  }
  if (s.failures.length > shown.length) {
    console.log(`  ... and ${s.failures.length - shown.length} more failures`);
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      cases: { type: "string", default: "100000" },
      seed: { type: "string", default: "1" },
      batch: { type: "string", default: "5000" },
      "case-timeout-ms": { type: "string", default: "10000" },
      "time-limit-s": { type: "string", default: "Infinity" },
      "in-process": { type: "boolean", default: false },
      replay: { type: "string" },
      child: { type: "boolean", default: false },
      from: { type: "string" },
      count: { type: "string" },
      dir: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(
      "deno task fuzz [--cases N] [--seed S] [--batch B] [--case-timeout-ms T] [--time-limit-s L] " +
        "[--in-process] [--replay I]",
    );
    return 0;
  }
  const seed = Number(values.seed);
  if (values.child) {
    child(seed, Number(values.from), Number(values.count), values.dir!);
    return 0;
  }
  Deno.mkdirSync(`${RUNS_DIR}tmp`, { recursive: true });
  const dir = Deno.makeTempDirSync({ dir: `${RUNS_DIR}tmp`, prefix: "fuzz_" });
  try {
    const seeds = buildSeeds(dir);
    if (values.replay !== undefined) {
      const i = Number(values.replay);
      const c = makeCase(seeds, seed, i);
      const path = saveCase(seeds, seed, i);
      console.log(
        `case ${i} of seed ${seed}: ${c.seedName} + ${c.mutations.join(", ")}; ${c.bytes.length} bytes`,
      );
      console.log(`saved ${path}`);
      const r = fuzzOne(c.bytes, `${dir}/case.safetensors`);
      console.log(`${r.outcome}: ${r.detail}`);
      return isFailure(r.outcome) ? 1 : 0;
    }
    const cases = Number(values.cases);
    const t0 = performance.now();
    const summary = values["in-process"] ? runInProcess(seeds, seed, 0, cases, dir) : await runWithChildren({
      seed,
      cases,
      batch: Number(values.batch),
      caseTimeoutMs: Number(values["case-timeout-ms"]),
      timeLimitS: Number(values["time-limit-s"]),
      seeds,
      log: (s) => console.error(s),
    });
    const seconds = (performance.now() - t0) / 1000;
    printSummary(summary, seconds, seeds, seed);
    const stopped: string | null = "stopped" in summary ? summary.stopped as string | null : null;
    if (stopped !== null) console.log(`  ${stopped}; ${summary.cases} of ${cases} cases run`);
    if (summary.failures.length > 0) return 1;
    return stopped !== null && !stopped.startsWith("stopped at the time limit") ? 2 : 0;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

if (import.meta.main) Deno.exit(await main());
