/**
 * A dataset over the user's own videos: every `.mp4`, `.webm`, `.avi` and `.mkv` file under a folder
 * (recursively), or the videos of an annotation list / class subfolders with their labels, cut into clips the way
 * VideoMAE cuts them (clip_sampling.ts): `frames` frames every `stride` source frames (or one per segment, or at
 * a fixed `fps`), a multi-scale crop at a fixed-grid position and a random flip for training, a short-side
 * resize and centre crop for evaluation.
 *
 * Clip `index` is clip ⌊index / videos⌋ of video `index mod videos`, so the dataset has `videos × clipsPerVideo`
 * clips and files are sampled uniformly whatever their length. Training clips are drawn from
 * `clipRng(seed, index, epoch)`: each epoch sees a new offset, crop and flip of every clip, and a clip is a pure
 * function of (seed, index, epoch) — a resumed run decodes exactly the clips it would have. Evaluation clips
 * (`augment: false`) are fixed: the `clipsPerVideo` views of a video are spread evenly over it.
 *
 * Decoding: the in-process decoder (libav.ts, built with the shim when FFmpeg's headers are present) or the
 * ffmpeg program (ffmpeg.ts), either way seeking to the clip's first frame, converting only the frames it needs
 * and cropping and scaling in FFmpeg's code. Up to `workers` clips decode at once (across the batches a loader
 * reads ahead), one thread or process each. A file's facts (size, rate, frame count) are probed once and kept in
 * an index file (`index`), keyed by path, size and modification time, so a large folder is probed only once.
 * Pure TypeScript plus FFI/subprocesses for decoding: no tensors, usable in workers.
 * @module
 */
import {
  type Annotation,
  annotationsFromFolders,
  checkFilesExist,
  labelMap,
  parseAnnotations,
} from "./annotations.ts";
import type { ClipBatch, Normalization } from "./clip.ts";
import { clipRng, type CropBox, cropBox, frameIndices, VIDEOMAE_SCALES } from "./clip_sampling.ts";
import type { ClipDataset, DatasetSpec, LabelTasks } from "./dataset.ts";
import { ensureFfmpeg, FfmpegDecoder } from "./ffmpeg.ts";
import { type FrameRequest, LibavDecoder, libavLibrary } from "./libav.ts";
import { BatchSampler, type Shard } from "./sampler.ts";
import type { VideoInfo } from "./video_info.ts";
import { ConfigError, DataError } from "../errors.ts";

/** File extensions the folder dataset picks up (lower case, compared case-insensitively). */
export const VIDEO_EXTENSIONS: readonly string[] = [".mp4", ".webm", ".avi", ".mkv"];

/** The one task a labelled video folder's batches carry: `labels.class`, the class id of each clip. */
export const FOLDER_TASK = "class";

/** Which decoder to use: the in-process one where built ("auto"), or insist on one. */
export type DecoderChoice = "auto" | "libav" | "ffmpeg";

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
  /** Take every stride-th source frame (default 2). Ignored when `fps` is set or `segments` is on. */
  stride?: number;
  /** A fixed output frame rate for every video, instead of `stride` (videos of any rate give equal spans). */
  fps?: number;
  /** One frame from each of `frames` equal segments of the video (TSN; VideoMAE's SSv2 recipe), not a dense clip. */
  segments?: boolean;
  /**
   * Training sampling and augmentation (default true): random temporal offset, multi-scale crop, flip. False:
   * evaluation sampling — clips spread evenly over each video, short-side resize and centre crop, no flip.
   */
  augment?: boolean;
  /** Crop sides as fractions of the short side, for training (default VideoMAE's [1, 0.875, 0.75, 0.66]). */
  scales?: readonly number[];
  /** Mirror training clips with probability ½ (default true; off for direction-sensitive labels). */
  flip?: boolean;
  /** Per-channel normalisation its batches ask for (default: ImageNet's mean and std, as VideoMAE). */
  norm?: Normalization;
  /** Seed of the clips' sampling (default 0). */
  seed?: number;
  /** Clips per video: the dataset's length is videos × clipsPerVideo (default 64; evaluation views when not augmenting). */
  clipsPerVideo?: number;
  /** Clips decoded at once (default: the number of cores). */
  workers?: number;
  /** The decoder (default "auto": in-process where built, else the ffmpeg program). */
  decoder?: DecoderChoice;
  /** The probe index file to read and update (default none: every file is probed). */
  index?: string;
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
  /** The usable videos, sorted by path (or in list order). */
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
    segments: boolean;
    augment: boolean;
    scales: number[];
    flip: boolean;
    norm: Normalization | null;
    seed: number;
    clipsPerVideo: number;
    workers: number;
    /** The decoder and, for the in-process one, its library. */
    decoder: { kind: "libav"; lib: string } | { kind: "ffmpeg"; ffmpeg: string };
  };
}

/** Where a clip comes from: its video, source frame indices and crop. */
export interface ClipPlan {
  /** The video. */
  video: VideoInfo;
  /** Source frame indices, non-decreasing. */
  frames: number[];
  /** Source rectangle and mirroring. */
  crop: CropBox;
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

/** A counting semaphore: at most `n` holders at once, served in arrival order. */
class Semaphore {
  #free: number;
  readonly #queue: (() => void)[] = [];
  constructor(n: number) {
    this.#free = n;
  }
  async run<T>(f: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((r) => this.#queue.push(r));
    try {
      return await f();
    } finally {
      const next = this.#queue.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

/** One file's entry in the probe index: the facts, or why it could not be read, for a given size and mtime. */
interface IndexEntry {
  size: number;
  mtime: number;
  info?: Omit<VideoInfo, "path" | "label">;
  error?: string;
}
const INDEX_VERSION = 1;

async function readIndex(path: string): Promise<Record<string, IndexEntry>> {
  try {
    const j = JSON.parse(await Deno.readTextFile(path));
    return j?.version === INDEX_VERSION && typeof j.files === "object" ? j.files : {};
  } catch {
    return {}; // absent or unreadable: probe again
  }
}

async function writeIndex(path: string, files: Record<string, IndexEntry>): Promise<void> {
  try {
    const dir = path.replace(/\/[^/]*$/, "");
    if (dir && dir !== path) await Deno.mkdir(dir, { recursive: true });
    const tmp = `${path}.${Deno.pid}.tmp`;
    await Deno.writeTextFile(tmp, JSON.stringify({ version: INDEX_VERSION, files }));
    await Deno.rename(tmp, path);
  } catch (e) {
    console.warn(`layerlock: could not write the video index ${path} (${(e as Error).message}); going on`);
  }
}

function resolveDecoder(
  choice: DecoderChoice,
  ffmpeg: string,
): VideoFolderSpec["options"]["decoder"] {
  if (choice === "ffmpeg") return { kind: "ffmpeg", ffmpeg };
  const found = libavLibrary();
  if (found.lib !== null) return { kind: "libav", lib: found.lib };
  if (choice === "libav") {
    throw new DataError("video-folder", `the in-process video decoder is not available: ${found.why}`);
  }
  console.warn(
    `layerlock: decoding with the ffmpeg program (slower): the in-process decoder is not built (${found.why})`,
  );
  return { kind: "ffmpeg", ffmpeg };
}

/** Clips of the videos in a folder; see the module documentation. */
export class VideoFolder implements ClipDataset {
  readonly #spec: VideoFolderSpec;
  readonly #slots: Semaphore;
  #decoder: LibavDecoder | FfmpegDecoder | null = null;
  /** Videos that failed to decode in this process: their clips are replaced by others. */
  readonly #bad = new Set<string>();

  /**
   * Scans `dir` recursively for videos (or reads the list), makes sure a decoder is available, and probes each
   * file (through the index when given). Files that cannot be probed are skipped with a warning; no usable file
   * at all is an error.
   */
  static async open(dir: string, opts: VideoFolderOptions = {}): Promise<VideoFolder> {
    const ffmpeg = opts.ffmpeg ?? "ffmpeg", ffprobe = opts.ffprobe ?? "ffprobe";
    const decoder = resolveDecoder(opts.decoder ?? "auto", ffmpeg);
    if (decoder.kind === "ffmpeg") await ensureFfmpeg({ ffmpeg, install: opts.install });
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
    const workers = opts.workers ?? defaultWorkers();
    const prober = decoder.kind === "libav"
      ? new LibavDecoder(decoder.lib)
      : new FfmpegDecoder(ffmpeg, ffprobe);
    const index = opts.index ? await readIndex(opts.index) : {};
    let changed = false;
    const probed = await pool(paths.length, workers, async (i) => {
      const path = paths[i];
      let entry: IndexEntry | undefined;
      try {
        const st = await Deno.stat(path);
        const key = { size: st.size, mtime: st.mtime?.getTime() ?? 0 };
        entry = index[path];
        if (!entry || entry.size !== key.size || entry.mtime !== key.mtime) {
          try {
            const { path: _p, ...info } = await prober.probe(path);
            entry = { ...key, info };
          } catch (e) {
            entry = { ...key, error: (e as Error).message };
          }
          index[path] = entry;
          changed = true;
        }
      } catch (e) {
        entry = { size: 0, mtime: 0, error: (e as Error).message };
      }
      if (!entry.info) {
        console.warn(`layerlock: skipping ${path}: ${entry.error}`);
        return null;
      }
      const v: VideoInfo = { path, ...entry.info };
      return labels[i] === undefined ? v : { ...v, label: labels[i] };
    });
    if (opts.index && changed) await writeIndex(opts.index, index);
    const videos = probed.filter((v): v is VideoInfo => v !== null);
    if (videos.length === 0) {
      throw new DataError(
        "video-folder",
        `no usable videos under ${dir} (looked for ${
          VIDEO_EXTENSIONS.join(", ")
        }, found ${paths.length} files${paths.length ? ", none readable" : ""})`,
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
        segments: opts.segments ?? false,
        augment: opts.augment ?? true,
        scales: [...(opts.scales ?? VIDEOMAE_SCALES)],
        flip: opts.flip ?? true,
        norm: opts.norm ?? null,
        seed: opts.seed ?? 0,
        clipsPerVideo: opts.clipsPerVideo ?? 64,
        workers,
        decoder,
      },
    });
  }

  /** Rebuilds a dataset from `spec()` without probing again (used by the prefetch worker). */
  static fromSpec(spec: VideoFolderSpec): VideoFolder {
    return new VideoFolder(spec);
  }

  private constructor(spec: VideoFolderSpec) {
    const o = spec.options;
    for (const k of ["frames", "height", "width", "stride", "clipsPerVideo", "workers"] as const) {
      if (!Number.isInteger(o[k]) || o[k] < 1) {
        throw new ConfigError("VideoFolder", `VideoFolder: ${k} must be an integer ≥ 1, got ${o[k]}`);
      }
    }
    if (o.fps !== null && !(o.fps > 0)) throw new ConfigError("VideoFolder", "VideoFolder: fps must be > 0");
    if (o.scales.length === 0 || o.scales.some((s) => !(s > 0 && s <= 1))) {
      throw new ConfigError(
        "VideoFolder",
        `VideoFolder: scales must be in (0, 1], got [${o.scales.join(", ")}]`,
      );
    }
    if (spec.videos.length === 0) throw new DataError("VideoFolder", "VideoFolder: no videos");
    this.#spec = structuredClone(spec);
    this.#slots = new Semaphore(o.workers);
  }

  /** The usable videos. */
  get videos(): readonly VideoInfo[] {
    return this.#spec.videos;
  }
  /** Label name → class id of a labelled folder, or null. */
  get classes(): Readonly<Record<string, number>> | null {
    return this.#spec.classes ?? null;
  }
  /** A labelled folder's one task, `class` (`FOLDER_TASK`), with its class names by id; unlabelled: {}. */
  get labelTasks(): LabelTasks {
    const map = this.#spec.classes;
    if (!map) return {};
    const names = new Array<string>(Math.max(-1, ...Object.values(map)) + 1).fill("");
    for (const [name, id] of Object.entries(map)) names[id] = name;
    return { [FOLDER_TASK]: names };
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
  /** Number of clips: videos × clipsPerVideo. */
  get length(): number {
    return this.#spec.videos.length * this.#spec.options.clipsPerVideo;
  }
  /** The decoder in use: "libav" (in process) or "ffmpeg" (the program). */
  get decoderKind(): "libav" | "ffmpeg" {
    return this.#spec.options.decoder.kind;
  }

  /** A serialisable description from which `datasetFromSpec` rebuilds this dataset. */
  spec(): DatasetSpec {
    return { kind: "video_folder", spec: structuredClone(this.#spec) };
  }

  /** Where clip `index` of epoch `epoch` comes from (a pure function of seed, index and epoch). */
  plan(index: number, epoch = 0): ClipPlan {
    if (!Number.isInteger(index) || index < 0) {
      throw new DataError("VideoFolder", `VideoFolder: bad clip index ${index}`);
    }
    const { videos, options: o } = this.#spec;
    const video = videos[index % videos.length];
    const rng = o.augment ? clipRng(o.seed, index, epoch) : null;
    const view = Math.floor(index / videos.length) % o.clipsPerVideo;
    const frames = frameIndices(
      Math.max(1, Math.floor(video.frameCount)),
      video.fps,
      { frames: o.frames, stride: o.stride, segments: o.segments, fps: o.fps },
      rng,
      rng ? 0 : view,
      rng ? 1 : o.clipsPerVideo,
    );
    const crop = cropBox(
      video.width,
      video.height,
      { width: o.width, height: o.height, scales: o.scales, flip: o.flip },
      rng,
    );
    return { video, frames, crop };
  }

  #dec(): LibavDecoder | FfmpegDecoder {
    const d = this.#spec.options.decoder;
    this.#decoder ??= d.kind === "libav" ? new LibavDecoder(d.lib) : new FfmpegDecoder(d.ffmpeg);
    return this.#decoder;
  }

  /** Decodes clip `index` of epoch `epoch`: [T, H, W, 3] uint8 RGB. */
  clip(index: number, epoch = 0): Promise<Uint8Array> {
    const { video, frames, crop } = this.plan(index, epoch);
    const o = this.#spec.options;
    const req: FrameRequest = { index: frames, crop, width: o.width, height: o.height, flip: crop.flip };
    return this.#slots.run(() => this.#dec().decode(video.path, req, video.fps));
  }

  /**
   * Decodes the clips at `indices` (of the epochs `epochs`, default 0) into one batch, with up to `workers`
   * clips decoding at once across every batch in flight. A video that fails to decode (truncated, corrupt) is
   * skipped with a warning naming it, listed in the batch's `skipped`, and its clip replaced by the same clip
   * index of the next readable video (deterministic: a resumed run makes the same replacement). A labelled
   * folder's batch carries the class id of each clip as `labels.class` (−1 for an unlabelled video).
   */
  async batch(indices: readonly number[], epochs?: readonly number[]): Promise<ClipBatch> {
    const o = this.#spec.options;
    const n = o.frames * o.height * o.width * 3;
    const data = new Uint8Array(indices.length * n);
    const skipped: string[] = [];
    const classes = this.#spec.classes ? new Int32Array(indices.length) : null;
    await Promise.all(indices.map(async (index, i) => {
      const { clip, video } = await this.#readable(index, epochs?.[i] ?? 0, skipped);
      data.set(clip, i * n);
      if (classes) classes[i] = video.label ?? -1;
    }));
    return {
      data,
      batch: indices.length,
      frames: o.frames,
      height: o.height,
      width: o.width,
      labels: classes ? { [FOLDER_TASK]: classes } : null,
      ...(skipped.length ? { skipped } : {}),
      ...(o.norm ? { norm: o.norm } : {}),
    };
  }

  /** Clip `index`, or, if its video cannot be decoded, the clip of the next readable video (index + 1, ...). */
  async #readable(
    index: number,
    epoch: number,
    skipped: string[],
  ): Promise<{ clip: Uint8Array; video: VideoInfo }> {
    const videos = this.#spec.videos;
    let last = "";
    for (let j = 0; j < videos.length; j++) {
      const video = videos[(index + j) % videos.length], path = video.path;
      if (this.#bad.has(path)) continue;
      try {
        return { clip: await this.clip(index + j, epoch), video };
      } catch (e) {
        if (
          !(e instanceof DataError) ||
          /^(running '.*' is not permitted|'.*' was not found|cannot load the video decoder)/.test(e.message)
        ) {
          throw e; // a missing or forbidden decoder is not a bad file
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

/** The default number of decoding workers: the machine's cores. */
export function defaultWorkers(): number {
  return Math.max(1, navigator.hardwareConcurrency ?? 2);
}
