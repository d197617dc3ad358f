/**
 * Video through the ffmpeg programs: making sure they are installed (`ensureFfmpeg`), probing a file with
 * ffprobe (`probeVideo`), and `FfmpegDecoder`, which decodes the frames a clip needs with one ffmpeg process
 * per clip — seeking to the first, keeping only the frames asked for (`select`), cropping, scaling and mirroring
 * inside ffmpeg. The fallback where the in-process decoder (libav.ts) was not built, and its reference in tests.
 * Pure TypeScript plus subprocesses: no tensors, usable in workers.
 * @module
 */
import { aptInstall, permissionError } from "./apt.ts";
import type { FrameRequest } from "./libav.ts";
import type { VideoInfo } from "./video_info.ts";
import { DataError } from "../errors.ts";

const INSTALL_HINT = "install it with `apt-get install ffmpeg` (as root; `sudo apt-get install ffmpeg` " +
  "otherwise) on Debian/Ubuntu, or your system's package manager elsewhere";

/** Options of `ensureFfmpeg`. */
export interface EnsureFfmpegOptions {
  /** Install ffmpeg with apt-get when it is missing and we are root (default true). */
  install?: boolean;
  /** The ffmpeg executable (default "ffmpeg", looked up on PATH). */
  ffmpeg?: string;
  /** Where progress lines go (default console.log). */
  log?: (line: string) => void;
}

async function runQuiet(
  cmd: string,
  args: string[],
): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  const r = await spawn(cmd, args);
  const dec = new TextDecoder();
  return { ok: r.success, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

/**
 * Runs an ffmpeg tool; a permission refusal becomes a DataError that says which paths the tasks allow (Deno
 * resolves `--allow-run` at start-up, so the tasks name the absolute paths apt installs to: a binary installed
 * during the run is covered).
 */
async function spawn(cmd: string, args: string[]): Promise<Deno.CommandOutput> {
  try {
    return await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    if (permissionError(e)) {
      throw new DataError(
        "video-folder",
        `running '${cmd}' is not permitted: the tasks allow ffmpeg and ffprobe in /usr/bin and /usr/local/bin; ` +
          `install them there, or run deno with --allow-run=<their paths> yourself (${(e as Error).message})`,
        { cause: e },
      );
    }
    throw e;
  }
}

/** Whether `ffmpeg` (or the given executable) runs; false if it is not found. */
export async function ffmpegAvailable(ffmpeg = "ffmpeg"): Promise<boolean> {
  try {
    return (await runQuiet(ffmpeg, ["-version"])).ok;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Makes sure ffmpeg is available. When it is not found and `install` is on: as root on a system with apt-get,
 * runs `apt-get install -y ffmpeg` (and `apt-get update` first if that fails), printing what it does; otherwise
 * throws a DataError that says how to install it.
 */
export async function ensureFfmpeg(opts: EnsureFfmpegOptions = {}): Promise<void> {
  const ffmpeg = opts.ffmpeg ?? "ffmpeg", log = opts.log ?? ((l: string) => console.log(l));
  if (await ffmpegAvailable(ffmpeg)) return;
  const missing = `ffmpeg is needed to decode videos but '${ffmpeg}' was not found`;
  if (opts.install === false || ffmpeg !== "ffmpeg") {
    throw new DataError("video-folder", `${missing}; ${INSTALL_HINT}`);
  }
  log("layerlock: ffmpeg not found");
  await aptInstall("ffmpeg", { why: missing, hint: INSTALL_HINT, log });
  if (!(await ffmpegAvailable(ffmpeg))) {
    throw new DataError("video-folder", `${missing} even after installing it; ${INSTALL_HINT}`);
  }
}

function rate(s: unknown): number {
  if (typeof s !== "string") return NaN;
  const [n, d] = s.split("/").map(Number);
  return d === undefined ? n : d > 0 ? n / d : NaN;
}

/** Probes a video file's duration, frame rate and size with ffprobe. */
export async function probeVideo(path: string, ffprobe = "ffprobe"): Promise<VideoInfo> {
  let r;
  try {
    r = await runQuiet(ffprobe, [
      "-v",
      "error",
      "-select_streams",
      "v:0",
      "-show_entries",
      "stream=width,height,avg_frame_rate,r_frame_rate,duration,nb_frames,start_time:format=duration",
      "-of",
      "json",
      path,
    ]);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new DataError("video-folder", `'${ffprobe}' was not found; ${INSTALL_HINT}`);
    }
    throw e;
  }
  if (!r.ok) throw new DataError("video-folder", `ffprobe failed on ${path}: ${r.stderr.trim()}`);
  const j = JSON.parse(r.stdout) as { streams?: Record<string, unknown>[]; format?: Record<string, unknown> };
  const s = j.streams?.[0];
  if (s === undefined) throw new DataError("video-folder", `${path} has no video stream`);
  let fps = rate(s.avg_frame_rate);
  if (!(fps > 0)) fps = rate(s.r_frame_rate);
  let duration = Number(s.duration);
  if (!(duration > 0)) duration = Number(j.format?.duration);
  if (!(fps > 0) || !(duration > 0)) {
    throw new DataError("video-folder", `${path}: ffprobe reports no usable frame rate or duration`);
  }
  const counted = Number(s.nb_frames);
  const frameCount = counted > 0 ? counted : Math.round(duration * fps);
  const start = Number(s.start_time) || 0;
  return { path, duration, fps, width: Number(s.width), height: Number(s.height), frameCount, start };
}

/**
 * Decodes clips with the ffmpeg program, one process per clip, frame-exactly: input seeking to the first frame
 * asked for, `select` of the frames asked for, then crop, bilinear scale and mirror in ffmpeg.
 */
export class FfmpegDecoder {
  readonly name = "ffmpeg";

  /** A decoder running `ffmpeg` (and `ffprobe` to probe). */
  constructor(readonly ffmpeg = "ffmpeg", readonly ffprobe = "ffprobe") {}

  /** What ffprobe says about `file`. */
  probe(file: string): Promise<VideoInfo> {
    return probeVideo(file, this.ffprobe);
  }

  /** The frames of `req` from `file` at `fps`, [T, H, W, 3] uint8 RGB (frames past the end repeat the last). */
  async decode(file: string, req: FrameRequest, fps: number): Promise<Uint8Array> {
    const { width: W, height: H } = req, frameBytes = W * H * 3;
    const unique = [...new Set(req.index)];
    const first = unique[0];
    // Frame numbers restart at the first frame kept by the seek, which lands exactly on `first`.
    const select = unique.map((i) => `eq(n,${i - first})`).join("+");
    const { x, y, w, h } = req.crop;
    const vf = `select='${select}',crop=${w}:${h}:${x}:${y}:exact=1,scale=${W}:${H}:flags=bilinear` +
      (req.flip ? ",hflip" : "");
    const args = [
      "-nostdin",
      "-v",
      "error",
      "-threads",
      "1",
      ...(first > 0 ? ["-ss", ((first - 0.5) / fps).toFixed(6)] : []),
      "-i",
      file,
      "-an",
      "-sn",
      "-vf",
      vf,
      "-vsync",
      "0",
      "-frames:v",
      String(unique.length),
      "-f",
      "rawvideo",
      "-pix_fmt",
      "rgb24",
      "-",
    ];
    let r;
    try {
      r = await spawn(this.ffmpeg, args);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new DataError("video-folder", `'${this.ffmpeg}' was not found; ${INSTALL_HINT}`);
      }
      throw e;
    }
    if (!r.success) {
      throw new DataError(
        "video-folder",
        `cannot decode ${file}: ffmpeg failed: ${new TextDecoder().decode(r.stderr).trim()}`,
      );
    }
    const got = Math.min(unique.length, Math.floor(r.stdout.length / frameBytes));
    if (got === 0) throw new DataError("video-folder", `cannot decode ${file}: ffmpeg decoded no frames`);
    const out = new Uint8Array(req.index.length * frameBytes);
    for (let k = 0; k < req.index.length; k++) {
      const u = Math.min(got - 1, unique.indexOf(req.index[k]));
      out.set(r.stdout.subarray(u * frameBytes, (u + 1) * frameBytes), k * frameBytes);
    }
    return out;
  }
}
