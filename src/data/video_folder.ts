/**
 * A dataset over the user's own videos: every `.mp4`, `.webm`, `.avi` and `.mkv` file under a folder
 * (recursively), cut into random clips of `frames` frames, taken every `stride`-th frame of the video's own
 * rate (or at a fixed `fps`), resized to cover `height`×`width` and centre-cropped. Decoding is done by Debian's
 * `ffmpeg`, one process per clip (up to `concurrency` at once); durations and frame rates come from `ffprobe`,
 * once per file when the folder is opened. Labels are null.
 *
 * Clip `index` is video `index mod videos.length`, starting at a time drawn from `hash32(seed, index)`, so
 * the dataset has `videos.length × clipsPerVideo` distinct clips, each a pure function of its index. Files are
 * sampled uniformly, whatever their length. A clip that runs past the end of its video is padded by repeating
 * its last decoded frame. Pure TypeScript plus subprocesses: no tensors, usable in workers.
 * @module
 */
import { aptInstall, permissionError } from "./apt.ts";
import {
  type Annotation,
  annotationsFromFolders,
  checkFilesExist,
  labelMap,
  parseAnnotations,
} from "./annotations.ts";
import type { ClipBatch } from "./clip.ts";
import type { ClipDataset, DatasetSpec } from "./dataset.ts";
import { hash32 } from "./rng.ts";
import { BatchSampler, type Shard } from "./sampler.ts";
import { DataError } from "../errors.ts";

/** File extensions the folder dataset picks up (lower case, compared case-insensitively). */
export const VIDEO_EXTENSIONS: readonly string[] = [".mp4", ".webm", ".avi", ".mkv"];

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
 * throws an Error that says how to install it.
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

/** What ffprobe says about a video file. */
export interface VideoInfo {
  /** The file's path. */
  path: string;
  /** Duration in seconds. */
  duration: number;
  /** Frame rate of the first video stream (frames per second). */
  fps: number;
  /** Frame width in pixels. */
  width: number;
  /** Frame height in pixels. */
  height: number;
  /** Class id, for a labelled folder. */
  label?: number;
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
      "stream=width,height,avg_frame_rate,r_frame_rate,duration:format=duration",
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
  return { path, duration, fps, width: Number(s.width), height: Number(s.height) };
}

/** Options of `decodeClip`. */
export interface DecodeOptions {
  /** Start time in seconds. */
  start: number;
  /** Frames to return. */
  frames: number;
  /** Output width in pixels. */
  width: number;
  /** Output height in pixels. */
  height: number;
  /** Output frame rate (frames are resampled to it). */
  fps: number;
  /** The ffmpeg executable (default "ffmpeg"). */
  ffmpeg?: string;
}

/**
 * Decodes `frames` RGB frames of a video from `start`, at `fps`, scaled to cover width×height and centre-cropped:
 * returns [T, H, W, 3] uint8. Frames past the end repeat the last decoded one; a start past the end falls back to
 * the beginning.
 */
export async function decodeClip(path: string, o: DecodeOptions): Promise<Uint8Array> {
  const { frames: T, width: W, height: H } = o;
  const ffmpeg = o.ffmpeg ?? "ffmpeg";
  const frameBytes = W * H * 3;
  const run = async (start: number) => {
    const args = [
      "-nostdin",
      "-v",
      "error",
      "-ss",
      start.toFixed(3),
      "-i",
      path,
      "-an",
      "-sn",
      "-vf",
      `fps=${o.fps},scale=${W}:${H}:force_original_aspect_ratio=increase,crop=${W}:${H}`,
      "-frames:v",
      String(T),
      "-f",
      "rawvideo",
      "-pix_fmt",
      "rgb24",
      "-",
    ];
    let r;
    try {
      r = await spawn(ffmpeg, args);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new DataError("video-folder", `'${ffmpeg}' was not found; ${INSTALL_HINT}`);
      }
      throw e;
    }
    if (!r.success) {
      throw new DataError(
        "video-folder",
        `ffmpeg failed to decode ${path} at ${start.toFixed(3)} s: ${
          new TextDecoder().decode(r.stderr).trim()
        }`,
      );
    }
    return r.stdout;
  };
  let raw = await run(o.start);
  if (raw.length < frameBytes && o.start > 0) raw = await run(0);
  const got = Math.min(T, Math.floor(raw.length / frameBytes));
  if (got === 0) throw new DataError("video-folder", `ffmpeg decoded no frames from ${path}`);
  if (got === T && raw.length === T * frameBytes) return raw;
  const out = new Uint8Array(T * frameBytes);
  out.set(raw.subarray(0, got * frameBytes));
  const last = raw.subarray((got - 1) * frameBytes, got * frameBytes);
  for (let f = got; f < T; f++) out.set(last, f * frameBytes);
  return out;
}

/** Options of `VideoFolder.open`; all optional. */
export interface VideoFolderOptions {
  /** Frames per clip (default 16). */
  frames?: number;
  /** Height and width in pixels when `height`/`width` are not given (default 32). */
  size?: number;
  /** Frame height in pixels (default `size`). */
  height?: number;
  /** Frame width in pixels (default `size`). */
  width?: number;
  /** Take every stride-th frame of the video's own rate (default 2). Ignored when `fps` is set. */
  stride?: number;
  /** A fixed output frame rate for every video, instead of `stride`. */
  fps?: number;
  /** Seed of the clip start times (default 0). */
  seed?: number;
  /** Distinct clips per video (default 64): the dataset's length is videos × clipsPerVideo. */
  clipsPerVideo?: number;
  /** Most ffmpeg processes at once while decoding a batch (default 4). */
  concurrency?: number;
  /** Install ffmpeg with apt-get if it is missing and we are root (default true; see `ensureFfmpeg`). */
  install?: boolean;
  /** The ffmpeg executable (default "ffmpeg"). */
  ffmpeg?: string;
  /** The ffprobe executable (default "ffprobe"). */
  ffprobe?: string;
  /**
   * An annotation list (`path[,label]` per line; src/data/annotations.ts), paths relative to the folder: only
   * the listed videos are used, with their labels.
   */
  list?: string;
  /** Labels from class subfolders (`dir/<class>/<video>`) instead of a list. */
  classFolders?: boolean;
  /** The class ids to use (e.g. the training list's), instead of numbering this list's labels. */
  labelMap?: Record<string, number>;
}

/** Everything a `VideoFolder` needs, probed once: structured-clone safe, so a worker can rebuild it. */
export interface VideoFolderSpec {
  /** The folder that was scanned. */
  root: string;
  /** The usable videos, sorted by path. */
  videos: VideoInfo[];
  /** Label name → class id, for a labelled folder; null otherwise. */
  classes: Record<string, number> | null;
  /** Resolved options. */
  options: {
    frames: number;
    height: number;
    width: number;
    stride: number;
    fps: number | null;
    seed: number;
    clipsPerVideo: number;
    concurrency: number;
    ffmpeg: string;
  };
}

async function listVideos(dir: string, out: string[]): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    let isDir = e.isDirectory, isFile = e.isFile;
    if (e.isSymlink) {
      try {
        const s = await Deno.stat(p);
        isDir = s.isDirectory;
        isFile = s.isFile;
      } catch { /* dangling link */ }
    }
    if (isDir) await listVideos(p, out);
    else if (isFile && VIDEO_EXTENSIONS.some((x) => e.name.toLowerCase().endsWith(x))) out.push(p);
  }
}

async function pool<T>(n: number, limit: number, f: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(n);
  let next = 0;
  const work = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await f(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, work));
  return out;
}

/** Random clips of the videos in a folder; see the module documentation. */
export class VideoFolder implements ClipDataset {
  readonly #spec: VideoFolderSpec;
  /** Videos that failed to decode in this process: their clips are replaced by others. */
  readonly #bad = new Set<string>();

  /**
   * Scans `dir` recursively for videos, makes sure ffmpeg is available (see `ensureFfmpeg`), and probes each
   * file. Files ffprobe cannot read are skipped with a warning; no usable file at all is an error.
   */
  static async open(dir: string, opts: VideoFolderOptions = {}): Promise<VideoFolder> {
    const ffmpeg = opts.ffmpeg ?? "ffmpeg", ffprobe = opts.ffprobe ?? "ffprobe";
    await ensureFfmpeg({ ffmpeg, install: opts.install });
    const root = dir.replace(/\/+$/, "") || "/";
    let paths: string[] = [],
      labels: (number | undefined)[] = [],
      classes: Record<string, number> | null = null;
    if (opts.list !== undefined || opts.classFolders) {
      let entries: Annotation[];
      if (opts.list !== undefined) {
        let text: string;
        try {
          text = await Deno.readTextFile(opts.list);
        } catch (e) {
          throw new DataError(
            opts.list,
            `cannot read the annotation list ${opts.list}: ${(e as Error).message}`,
          );
        }
        entries = parseAnnotations(text, { source: opts.list, root });
        checkFilesExist(entries);
      } else {
        entries = annotationsFromFolders(root, VIDEO_EXTENSIONS);
      }
      const map = labelMap(entries, opts.labelMap);
      classes = Object.keys(map).length ? map : null;
      paths = entries.map((e) => e.path);
      labels = entries.map((e) => e.label === null ? undefined : map[e.label]);
    } else {
      try {
        await listVideos(root, paths);
      } catch (e) {
        throw new DataError("video-folder", `cannot read the video folder ${dir}: ${(e as Error).message}`);
      }
      paths.sort();
    }
    const concurrency = opts.concurrency ?? 4;
    const probed = await pool(paths.length, concurrency, async (i) => {
      try {
        const v = await probeVideo(paths[i], ffprobe);
        return labels[i] === undefined ? v : { ...v, label: labels[i] };
      } catch (e) {
        console.warn(`layerlock: skipping ${paths[i]}: ${(e as Error).message}`);
        return null;
      }
    });
    const videos = probed.filter((v): v is VideoInfo => v !== null);
    if (videos.length === 0) {
      throw new DataError(
        "video-folder",
        `no usable videos under ${dir} (looked for ${
          VIDEO_EXTENSIONS.join(", ")
        }, found ${paths.length} files)`,
      );
    }
    const size = opts.size ?? 32;
    return new VideoFolder({
      root,
      videos,
      classes,
      options: {
        frames: opts.frames ?? 16,
        height: opts.height ?? size,
        width: opts.width ?? size,
        stride: opts.stride ?? 2,
        fps: opts.fps ?? null,
        seed: opts.seed ?? 0,
        clipsPerVideo: opts.clipsPerVideo ?? 64,
        concurrency,
        ffmpeg,
      },
    });
  }

  /** Rebuilds a dataset from `spec()` without probing again (used by the prefetch worker). */
  static fromSpec(spec: VideoFolderSpec): VideoFolder {
    return new VideoFolder(spec);
  }

  private constructor(spec: VideoFolderSpec) {
    const o = spec.options;
    for (const k of ["frames", "height", "width", "stride", "clipsPerVideo", "concurrency"] as const) {
      if (!Number.isInteger(o[k]) || o[k] < 1) {
        throw new RangeError(`VideoFolder: ${k} must be an integer ≥ 1`);
      }
    }
    if (o.fps !== null && !(o.fps > 0)) throw new RangeError("VideoFolder: fps must be > 0");
    if (spec.videos.length === 0) throw new RangeError("VideoFolder: no videos");
    this.#spec = structuredClone(spec);
  }

  /** The usable videos, sorted by path. */
  get videos(): readonly VideoInfo[] {
    return this.#spec.videos;
  }
  /** Label name → class id of a labelled folder, or null. */
  get classes(): Readonly<Record<string, number>> | null {
    return this.#spec.classes ?? null;
  }
  /** Frames per clip. */
  get frames(): number {
    return this.#spec.options.frames;
  }
  /** Frame height in pixels. */
  get height(): number {
    return this.#spec.options.height;
  }
  /** Frame width in pixels. */
  get width(): number {
    return this.#spec.options.width;
  }
  /** Number of distinct clips: videos × clipsPerVideo. */
  get length(): number {
    return this.#spec.videos.length * this.#spec.options.clipsPerVideo;
  }

  /** A serialisable description from which `datasetFromSpec` rebuilds this dataset. */
  spec(): DatasetSpec {
    return { kind: "video_folder", spec: structuredClone(this.#spec) };
  }

  /** Which video clip `index` comes from, its start time (s) and output frame rate. */
  clipInfo(index: number): { video: VideoInfo; start: number; fps: number } {
    if (!Number.isInteger(index) || index < 0) throw new RangeError(`VideoFolder: bad clip index ${index}`);
    const { videos, options: o } = this.#spec;
    const video = videos[index % videos.length];
    const fps = o.fps ?? video.fps / o.stride;
    const span = o.frames / fps;
    const latest = Math.max(0, video.duration - span);
    const start = Math.floor(hash32(o.seed, index) / 4294967296 * latest * 1000) / 1000;
    return { video, start, fps };
  }

  /** Decodes clip `index`: [T, H, W, 3] uint8 RGB. */
  clip(index: number): Promise<Uint8Array> {
    const { video, start, fps } = this.clipInfo(index);
    const o = this.#spec.options;
    return decodeClip(video.path, {
      start,
      fps,
      frames: o.frames,
      width: o.width,
      height: o.height,
      ffmpeg: o.ffmpeg,
    });
  }

  /**
   * Decodes the clips at `indices` into one batch (labels null), up to `concurrency` processes at once. A video
   * that fails to decode (truncated, corrupt) is skipped with a warning naming it, listed in the batch's
   * `skipped`, and its clip replaced by the same clip index of the next readable video (deterministic: a resumed
   * run makes the same replacement).
   */
  async batch(indices: readonly number[]): Promise<ClipBatch> {
    const o = this.#spec.options;
    const n = o.frames * o.height * o.width * 3;
    const data = new Uint8Array(indices.length * n);
    const skipped: string[] = [];
    const classes = this.#spec.classes ? new Int32Array(indices.length) : null;
    await pool(indices.length, o.concurrency, async (i) => {
      const { clip, video } = await this.#readable(indices[i], skipped);
      data.set(clip, i * n);
      if (classes) classes[i] = video.label ?? -1;
    });
    return {
      data,
      batch: indices.length,
      frames: o.frames,
      height: o.height,
      width: o.width,
      labels: null,
      ...(skipped.length ? { skipped } : {}),
      ...(classes ? { classes } : {}),
    };
  }

  /** Clip `index`, or, if its video cannot be decoded, the clip of the next readable video (index + 1, ...). */
  async #readable(index: number, skipped: string[]): Promise<{ clip: Uint8Array; video: VideoInfo }> {
    const videos = this.#spec.videos;
    let last = "";
    for (let j = 0; j < videos.length; j++) {
      const video = videos[(index + j) % videos.length], path = video.path;
      if (this.#bad.has(path)) continue;
      try {
        return { clip: await this.clip(index + j), video };
      } catch (e) {
        if (
          !(e instanceof DataError) || /^(running '.*' is not permitted|'.*' was not found)/.test(e.message)
        ) {
          throw e; // a missing or forbidden ffmpeg is not a bad file
        }
        last = e.message;
        if (!this.#bad.has(path)) {
          this.#bad.add(path);
          skipped.push(path);
          const why = e.message.replace(/\s+/g, " ");
          console.warn(
            `layerlock: skipping ${path} (its clips are replaced by others): ${why.slice(0, 240)}${
              why.length > 240 ? "…" : ""
            }`,
          );
        }
      }
    }
    throw new DataError(
      "video-folder",
      `no video under ${this.#spec.root} can be decoded any more (all ${videos.length} failed${
        last ? `; the last: ${last}` : ""
      })`,
    );
  }

  /** An infinite deterministic sequence of batches of clip indices (see `BatchSampler`), optionally resumed. */
  sampler(batchSize: number, seed = 0, state?: readonly number[], shard?: Shard): BatchSampler {
    return new BatchSampler(this.length, batchSize, seed, state, shard);
  }
}
