/**
 * The in-process video decoder: a binding to `libllvideo.so` (native/video/video.cpp, on FFmpeg's libavformat,
 * libavcodec and libswscale), which `deno task build` compiles beside the shim when FFmpeg's headers are
 * present. Its calls are nonblocking FFI calls: each runs on a thread of Deno's pool, so `workers` clips decode
 * at once, in parallel, without a process per clip. The library is opened on first use, never on import, and
 * never loads libtorch, so data workers can use it.
 * @module
 */
import { DataError } from "../errors.ts";
import type { VideoInfo } from "./video_info.ts";

const SYMBOLS = {
  llv_version: { parameters: [], result: "i32" },
  llv_probe: { parameters: ["buffer", "buffer", "buffer", "i32"], result: "i32", nonblocking: true },
  llv_decode: {
    parameters: [
      "buffer", // path
      "buffer", // indices, int64
      "i32", // n
      "i32", // cx
      "i32", // cy
      "i32", // cw
      "i32", // ch
      "i32", // out_w
      "i32", // out_h
      "i32", // flip
      "i32", // threads
      "buffer", // out
      "buffer", // err
      "i32", // errlen
    ],
    result: "i32",
    nonblocking: true,
  },
} as const;

const LLV_VERSION = 1;

let opened: { path: string; lib: Deno.DynamicLibrary<typeof SYMBOLS> } | null = null;

/** The decoder library named in `native/build/current.json`, or null with the reason it is not there. */
export function libavLibrary(): { lib: string } | { lib: null; why: string } {
  let rec: { video?: { lib: string | null; why?: string } };
  try {
    rec = JSON.parse(Deno.readTextFileSync(new URL("../../native/build/current.json", import.meta.url)));
  } catch (e) {
    return { lib: null, why: `no build record (${(e as Error).message}); run \`deno task build\`` };
  }
  const v = rec.video;
  if (!v) return { lib: null, why: "the build predates the video decoder; run `deno task build`" };
  return v.lib ? { lib: v.lib } : { lib: null, why: v.why ?? "not built" };
}

function open(path: string): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] {
  if (opened?.path === path) return opened.lib.symbols;
  let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    lib = Deno.dlopen(path, SYMBOLS);
  } catch (e) {
    throw new DataError("video-decoder", `cannot load the video decoder ${path}: ${(e as Error).message}`);
  }
  if (lib.symbols.llv_version() !== LLV_VERSION) {
    lib.close();
    throw new DataError(
      "video-decoder",
      `${path} is another version of the decoder; run \`deno task build\``,
    );
  }
  opened?.lib.close();
  opened = { path, lib };
  return lib.symbols;
}

const enc = new TextEncoder(), dec = new TextDecoder();
const cstr = (s: string) => enc.encode(`${s}\0`);
const ERRLEN = 1024;
function message(err: Uint8Array): string {
  const end = err.indexOf(0);
  return dec.decode(err.subarray(0, end < 0 ? err.length : end));
}

/** What one clip's decode asks for: source frame indices, the crop of the source, the output size, mirroring. */
export interface FrameRequest {
  /** Source frame indices, non-decreasing (repeats allowed). */
  index: readonly number[];
  /** The source rectangle: left, top, width, height in pixels. */
  crop: { x: number; y: number; w: number; h: number };
  /** Output width in pixels. */
  width: number;
  /** Output height in pixels. */
  height: number;
  /** Mirror left-right. */
  flip: boolean;
}

/** Decodes with the library at `path` (see `libavLibrary`). */
export class LibavDecoder {
  readonly name = "libav";
  readonly #sym: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

  /** Opens the library (once per thread). */
  constructor(readonly path: string, readonly threads = 1) {
    this.#sym = open(path);
  }

  /** The file's size, frame rate, frame count, duration and start time; a DataError naming it when unreadable. */
  async probe(file: string): Promise<VideoInfo> {
    const info = new Float64Array(8), err = new Uint8Array(ERRLEN);
    const rc = await this.#sym.llv_probe(cstr(file), info, err, ERRLEN);
    if (rc < 0) throw new DataError("video-folder", `${file}: ${message(err)}`);
    return {
      path: file,
      width: info[0],
      height: info[1],
      fps: info[2],
      frameCount: info[3],
      duration: info[4],
      start: info[5],
    };
  }

  /**
   * The frames of `req`, [T, H, W, 3] uint8 RGB; a DataError naming the file when it cannot be decoded. (`_fps`
   * is for the ffmpeg decoder's signature: frame indices are mapped to times from the file itself.)
   */
  async decode(file: string, req: FrameRequest, _fps?: number): Promise<Uint8Array> {
    const n = req.index.length;
    const out = new Uint8Array(n * req.height * req.width * 3), err = new Uint8Array(ERRLEN);
    const idx = BigInt64Array.from(req.index, (i) => BigInt(i));
    const { x, y, w, h } = req.crop;
    const rc = await this.#sym.llv_decode(
      cstr(file),
      idx,
      n,
      x,
      y,
      w,
      h,
      req.width,
      req.height,
      req.flip ? 1 : 0,
      this.threads,
      out,
      err,
      ERRLEN,
    );
    if (rc < 0) throw new DataError("video-folder", `cannot decode ${file}: ${message(err)}`);
    return out;
  }
}
