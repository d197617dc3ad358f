/**
 * The IDX format of (Fashion-)MNIST: a magic number (0x00, 0x00, element type, dimension count), big-endian
 * dimensions, then the elements; and gunzip with the built-in DecompressionStream. Pure TypeScript.
 * @module
 */
import { DataError } from "../errors.ts";

/** IDX magic number of a file of unsigned-byte images (3 dimensions). */
export const IDX_IMAGES_MAGIC = 0x00000803;
/** IDX magic number of a file of unsigned-byte labels (1 dimension). */
export const IDX_LABELS_MAGIC = 0x00000801;

/** Decompresses gzip data (bytes or a byte stream) with the built-in `DecompressionStream`. */
export async function gunzip(input: Uint8Array | ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const source = input instanceof Uint8Array ? new Blob([input as Uint8Array<ArrayBuffer>]).stream() : input;
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (
    const c of (source as ReadableStream<BufferSource>).pipeThrough(new DecompressionStream("gzip"))
  ) {
    chunks.push(c);
    n += c.length;
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(n);
  for (let i = 0, o = 0; i < chunks.length; o += chunks[i].length, i++) out.set(chunks[i], o);
  return out;
}

/** A decoded IDX file of unsigned bytes. */
export interface IdxArray {
  /** The magic number (0x00000803 for images, 0x00000801 for labels). */
  magic: number;
  /** The dimensions, from the big-endian header. */
  dims: number[];
  /** The values, row-major (a view into the decoded file). */
  data: Uint8Array;
}

const hex8 = (v: number) => `0x${v.toString(16).padStart(8, "0")}`;

/**
 * Parses an IDX file of unsigned bytes (magic 0x0000 08 nd, then nd big-endian u32 dimensions, then the
 * values). Throws a DataError that starts with `name` when the magic number is not `expectMagic` (when given) or
 * not that of unsigned bytes, or when the file is shorter or longer than its header says.
 */
export function parseIdx(bytes: Uint8Array, name = "IDX data", expectMagic?: number): IdxArray {
  if (bytes.length < 4) {
    throw new DataError(
      "fashion-mnist",
      `${name}: truncated IDX file: ${bytes.length} bytes, less than the 4-byte magic number`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false), nd = bytes[3];
  if (expectMagic !== undefined && magic !== expectMagic) {
    throw new DataError(
      "fashion-mnist",
      `${name}: IDX magic number ${hex8(magic)}, expected ${hex8(expectMagic)} (unsigned bytes, ` +
        `${expectMagic & 0xff} dimension${(expectMagic & 0xff) === 1 ? "" : "s"}): not the file it should be`,
    );
  }
  if (bytes[0] !== 0 || bytes[1] !== 0 || bytes[2] !== 0x08 || nd === 0) {
    throw new DataError(
      "fashion-mnist",
      `${name}: not an IDX file of unsigned bytes (magic number ${hex8(magic)})`,
    );
  }
  const header = 4 + 4 * nd;
  if (bytes.length < header) {
    throw new DataError(
      "fashion-mnist",
      `${name}: truncated IDX header: ${bytes.length} bytes, the header of ${nd} dims needs ${header}`,
    );
  }
  const dims = Array.from({ length: nd }, (_, i) => view.getUint32(4 + 4 * i, false));
  const size = dims.reduce((a, b) => a * b, 1), have = bytes.length - header;
  if (have < size) {
    throw new DataError(
      "fashion-mnist",
      `${name}: truncated IDX file: the header promises ${dims.join("×")} = ${size} bytes of data, ` +
        `the file holds ${have}`,
    );
  }
  if (have > size) {
    throw new DataError(
      "fashion-mnist",
      `${name}: ${have - size} unexpected bytes after the ${dims.join("×")} values of the IDX file`,
    );
  }
  return { magic, dims, data: bytes.subarray(header) };
}
