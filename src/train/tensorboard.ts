/**
 * TensorBoard event files without TensorFlow (`log.tensorboard`): a run's numbers as scalars in
 * `runs/<name>/tb/events.out.tfevents.<unix seconds>.<hostname>`, which `tensorboard --logdir runs` reads.
 *
 * An events file is a sequence of TFRecords, each `uint64 length` (little-endian), the masked CRC-32C of those 8
 * bytes, the data, and the masked CRC-32C of the data (mask: the CRC rotated right by 15 bits, plus 0xa282ead8,
 * modulo 2^32). Each record's data is a `tensorflow.Event` protobuf, encoded here by hand: `wall_time` (double,
 * field 1), `step` (int64, field 2), and either `file_version` (string, field 3: `brain.Event:2`, the first record
 * of every file) or `summary` (field 5: `Summary { repeated Value value = 1 }`, each `Value { string tag = 1;
 * float simple_value = 2 }`). The values are stored as float32, as TensorBoard stores every scalar.
 *
 * One event per `scalars` call holds every number of the record, flattened to tags with `/` (`eval/effectiveRank`);
 * a top-level `step` is the event's step, and strings, booleans, arrays, null and numbers that are not finite (or
 * overflow float32) are left out. Each call is written to the file at once, so a killed run loses nothing logged,
 * and a file cut mid-record is still read up to the cut.
 *
 * Every invocation of a run (a resume, a rollback) starts a new events file, which TensorBoard merges with the
 * others of the folder: steps past the resumed checkpoint's step that were logged before a kill are trained and
 * logged again, and then appear twice in TensorBoard (metrics.jsonl, which is cut back, holds them once).
 *
 * Pure TypeScript: imports only the error family and the checksums.
 * @module
 */
import { ConfigError, IoError } from "../errors.ts";
import { crc32c } from "../checksum.ts";

// ------------------------------------------------------------------------------ CRC-32C and TFRecord framing

/** A CRC as TFRecord stores it: rotated right by 15 bits, plus 0xa282ead8, modulo 2^32. */
export function maskCrc(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord holding `data`: length (uint64 LE), its masked CRC-32C, the data, the data's masked CRC-32C. */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskCrc(crc32c(out.subarray(0, 8))), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskCrc(crc32c(data)), true);
  return out;
}

// ------------------------------------------------------------------------------ protobuf, by hand

const WIRE = { varint: 0, fixed64: 1, bytes: 2, fixed32: 5 } as const;

/** The few protobuf encodings an Event needs, appended to a growing byte list. */
class Proto {
  readonly #b: number[] = [];

  #varint(v: bigint): void {
    v = BigInt.asUintN(64, v); // a negative int64 is its two's complement, ten bytes long
    while (v >= 0x80n) {
      this.#b.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.#b.push(Number(v));
  }
  #tag(field: number, wire: number): void {
    this.#varint(BigInt((field << 3) | wire));
  }
  #raw(bytes: Uint8Array): void {
    for (const x of bytes) this.#b.push(x);
  }
  int64(field: number, v: number): this {
    this.#tag(field, WIRE.varint);
    this.#varint(BigInt(v));
    return this;
  }
  double(field: number, v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.#tag(field, WIRE.fixed64);
    this.#raw(b);
    return this;
  }
  float(field: number, v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.#tag(field, WIRE.fixed32);
    this.#raw(b);
    return this;
  }
  bytes(field: number, v: Uint8Array): this {
    this.#tag(field, WIRE.bytes);
    this.#varint(BigInt(v.length));
    this.#raw(v);
    return this;
  }
  string(field: number, v: string): this {
    return this.bytes(field, new TextEncoder().encode(v));
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.#b);
  }
}

/** What one Event holds: a file version (the first record of a file) or scalars, at a step and a wall time. */
export interface EventFields {
  /** Seconds since the Unix epoch. */
  wallTime: number;
  /** The step (an integer; 0 for the file-version record). */
  step?: number;
  /** `brain.Event:2` in a file's first record. */
  fileVersion?: string;
  /** The scalars' tags and values (written as float32). */
  scalars?: readonly (readonly [string, number])[];
}

/** The `tensorflow.Event` protobuf of `e` (proto3: a zero step is left out, as TensorFlow's writers leave it). */
export function encodeEvent(e: EventFields): Uint8Array {
  const step = e.step ?? 0;
  if (!Number.isSafeInteger(step)) {
    throw new ConfigError("tensorboard", `a step must be an integer, got ${step}`);
  }
  const p = new Proto().double(1, e.wallTime);
  if (step !== 0) p.int64(2, step);
  if (e.fileVersion !== undefined) p.string(3, e.fileVersion);
  if (e.scalars) {
    const summary = new Proto();
    // simple_value is in a oneof: written even when 0, so that readers see it set
    for (const [tag, v] of e.scalars) summary.bytes(1, new Proto().string(1, tag).float(2, v).finish());
    p.bytes(5, summary.finish());
  }
  return p.finish();
}

/**
 * The numbers of `record` as `[tag, value]` pairs, nested objects' tags joined with `/`; a top-level `step`, and
 * values that are not numbers or not finite as float32, are left out.
 */
export function flattenScalars(record: object): [string, number][] {
  const out: [string, number][] = [];
  const walk = (o: object, prefix: string) => {
    for (const [k, v] of Object.entries(o)) {
      if (!prefix && k === "step") continue;
      if (typeof v === "number") {
        if (Number.isFinite(Math.fround(v))) out.push([prefix + k, v]);
      } else if (typeof v === "object" && v !== null && !Array.isArray(v)) {
        walk(v, `${prefix}${k}/`);
      }
    }
  };
  walk(record, "");
  return out;
}

// ------------------------------------------------------------------------------ the events file

/** The file version TensorBoard expects in the first record of an events file. */
export const FILE_VERSION = "brain.Event:2";

/** This machine's name, for the events file's name (`localhost` when it cannot be read). */
function hostname(): string {
  for (const f of ["/proc/sys/kernel/hostname", "/etc/hostname"]) {
    try {
      const h = Deno.readTextFileSync(f).trim().replace(/[^A-Za-z0-9._-]/g, "_");
      if (h) return h;
    } catch { /* not there, or not readable */ }
  }
  return "localhost";
}

/** An events file, open for appending one Event per call (each written to the file at once). */
export class TensorBoardWriter {
  readonly #file: Deno.FsFile;
  #closed = false;

  /** Creates the events file `path` (which must not exist) and writes its file-version record. */
  constructor(readonly path: string, wallTime = Date.now() / 1000) {
    try {
      this.#file = Deno.openSync(path, { write: true, createNew: true });
    } catch (e) {
      throw new IoError(path, `cannot create the TensorBoard events file ${path}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    try {
      this.#write(encodeEvent({ wallTime, fileVersion: FILE_VERSION }));
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /**
   * A new events file in `dir` (created if needed), named `events.out.tfevents.<unix seconds>.<hostname>`, with
   * `.1`, `.2`, ... added when a file of that name exists already (two files in the same second).
   */
  static open(dir: string): TensorBoardWriter {
    try {
      Deno.mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new IoError(dir, `cannot create the TensorBoard folder ${dir}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const now = Date.now() / 1000;
    const base = `${dir}/events.out.tfevents.${String(Math.floor(now)).padStart(10, "0")}.${hostname()}`;
    for (let n = 0;; n++) {
      try {
        return new TensorBoardWriter(n === 0 ? base : `${base}.${n}`, now);
      } catch (e) {
        if (!(e instanceof IoError && e.cause instanceof Deno.errors.AlreadyExists)) throw e;
      }
    }
  }

  /**
   * Writes one Event at `step` holding every number of `record` (see `flattenScalars`), at `wallTime` (seconds
   * since the epoch; now by default). A record with no numbers writes nothing.
   */
  scalars(step: number, record: object, wallTime = Date.now() / 1000): void {
    const scalars = flattenScalars(record);
    if (scalars.length) this.#write(encodeEvent({ wallTime, step, scalars }));
  }

  #write(event: Uint8Array): void {
    if (this.#closed) throw new ConfigError("tensorboard", `${this.path} is closed`);
    const bytes = tfRecord(event);
    try {
      for (let i = 0; i < bytes.length;) i += this.#file.writeSync(bytes.subarray(i));
    } catch (e) {
      throw new IoError(this.path, `cannot write ${this.path}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Closes the file (again: nothing). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }
}

/**
 * Adds scalars to the TensorBoard folder `dir` (a run's `tb/`) after its run: one Event at `step` in a new events
 * file, which TensorBoard merges with the run's (e.g. the experiment's probe accuracies at the final step).
 * Returns the file's path.
 */
export function writeScalars(
  dir: string,
  step: number,
  record: object,
  wallTime?: number,
): string {
  const w = TensorBoardWriter.open(dir);
  try {
    w.scalars(step, record, wallTime);
  } finally {
    w.close();
  }
  return w.path;
}
