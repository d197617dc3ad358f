/**
 * `deno task bench:video`: how fast a video folder feeds training, beside Python in the same run.
 *
 * Eight 10 s H.264 files, 456×256 at 30 fps (Kinetics' short side, 1.5 Mbit/s, a keyframe every 2 s), made once
 * with ffmpeg's test sources into runs/bench/videos/. Clips as VideoMAE's Kinetics recipe: 16 frames every 4th,
 * multi-scale crop, flip, 224×224. Timed, in clips per second over the same clips:
 *  - ours, in-process decoder (libav through FFI), through the prefetch loader (batches of 8), 1 and 2 workers;
 *  - ours, the ffmpeg program (the fallback), 1 and 2 workers;
 *  - PyAV in Python (bench/video_ref.py): the same clip plans decoded with PyAV, cropped, resized with torch's
 *    bilinear interpolation and mirrored, in a multiprocessing pool of 1 and 2 workers.
 * Ratio = ours / PyAV (higher is better). Writes runs/bench/video.json.
 * @module
 */
import { pythonWithTorch } from "./common.ts";
import { createLoader } from "../src/data/prefetch.ts";
import { libavLibrary } from "../src/data/libav.ts";
import { VideoFolder } from "../src/data/video_folder.ts";

const DIR = "runs/bench/videos";
const CLIPS = Number(Deno.env.get("LL_BENCH_CLIPS") ?? "96");
const BATCH = 8;
const OPTS = { frames: 16, size: 224, stride: 4, clipsPerVideo: 64, seed: 0 };

async function makeVideos(): Promise<void> {
  await Deno.mkdir(DIR, { recursive: true });
  for (let k = 0; k < 8; k++) {
    const out = `${DIR}/v${k}.mp4`;
    try {
      await Deno.stat(out);
      continue;
    } catch { /* make it */ }
    const r = await new Deno.Command("ffmpeg", {
      args: [
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        `testsrc2=size=456x256:rate=30:duration=10`,
        "-f",
        "lavfi",
        "-i",
        `mandelbrot=size=456x256:rate=30:start_scale=${1 + k}`,
        "-filter_complex",
        "[0][1]blend=all_mode=average",
        "-t",
        "10",
        "-c:v",
        "libx264",
        "-g",
        "60",
        "-b:v",
        "1500k",
        "-pix_fmt",
        "yuv420p",
        `${out}.tmp.mp4`,
      ],
      stderr: "piped",
    }).output();
    if (!r.success) throw new Error(`ffmpeg: ${new TextDecoder().decode(r.stderr)}`);
    await Deno.rename(`${out}.tmp.mp4`, out);
  }
}

/** Clips per second through the prefetch loader (the first batch, which opens the worker, is not timed). */
async function ours(decoder: "libav" | "ffmpeg", workers: number): Promise<number> {
  const vf = await VideoFolder.open(DIR, { ...OPTS, decoder, workers });
  const loader = createLoader(vf, { batchSize: BATCH, seed: 1, prefetch: 4 });
  try {
    await loader.next();
    const t0 = performance.now();
    for (let n = 0; n < CLIPS; n += BATCH) await loader.next();
    return CLIPS / ((performance.now() - t0) / 1000);
  } finally {
    loader.close();
  }
}

async function pyav(plansFile: string, workers: number): Promise<number | string> {
  const r = await new Deno.Command(pythonWithTorch(), {
    args: ["bench/video_ref.py", plansFile, String(workers), String(OPTS.size)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (!r.success) return `PyAV reference failed: ${dec.decode(r.stderr).trim().split("\n").pop()}`;
  const j = JSON.parse(dec.decode(r.stdout));
  return j.clips / j.seconds;
}

async function ensurePyav(): Promise<boolean> {
  const py = pythonWithTorch();
  const has = async () =>
    (await new Deno.Command(py, { args: ["-c", "import av"], stderr: "null" }).output()).success;
  if (await has()) return true;
  console.log(`installing PyAV for the reference: ${py} -m pip install av`);
  await new Deno.Command(py, {
    args: ["-m", "pip", "install", "-q", "av"],
    stdout: "inherit",
    stderr: "inherit",
  })
    .output();
  return await has();
}

if (import.meta.main) {
  await makeVideos();
  const lib = libavLibrary();
  // the clips the loader decodes (seed 1, batches of 8 after the first), for the Python side
  const vf = await VideoFolder.open(DIR, { ...OPTS, decoder: lib.lib ? "libav" : "ffmpeg" });
  const sampler = vf.sampler(BATCH, 1);
  sampler.nextWithEpochs();
  const plans = [];
  while (plans.length < CLIPS) {
    const { indices, epochs } = sampler.nextWithEpochs();
    for (let k = 0; k < indices.length; k++) {
      const p = vf.plan(indices[k], epochs[k]);
      plans.push({ path: p.video.path, frames: p.frames, crop: p.crop });
    }
  }
  const plansFile = "runs/bench/video_plans.json";
  await Deno.writeTextFile(plansFile, JSON.stringify(plans));
  const havePyav = await ensurePyav();
  console.log(
    `video decoding: 16×224² clips (every 4th frame, multi-scale crop, flip) from 456×256 H.264, ${CLIPS} clips, ` +
      `${navigator.hardwareConcurrency} cores`,
  );
  console.log("workers  ours in-process  ours ffmpeg program  PyAV (Python)  ratio in-process/PyAV");
  const rows = [];
  for (const workers of [1, 2]) {
    const inProc = lib.lib ? await ours("libav", workers) : null;
    const program = await ours("ffmpeg", workers);
    const ref = havePyav ? await pyav(plansFile, workers) : "PyAV not installed";
    const ratio = typeof ref === "number" && inProc !== null ? inProc / ref : null;
    rows.push({ workers, inProcess: inProc, ffmpegProgram: program, pyav: ref, ratio });
    const f = (x: number | null | string) => (typeof x === "number" ? x.toFixed(1) : String(x ?? "n/a"));
    console.log(
      `${String(workers).padStart(7)}  ${f(inProc).padStart(15)}  ${f(program).padStart(19)}  ${
        f(ref).padStart(13)
      }  ${ratio === null ? "n/a" : ratio.toFixed(2)}`,
    );
  }
  await Deno.writeTextFile(
    "runs/bench/video.json",
    JSON.stringify(
      { date: new Date().toISOString(), cores: navigator.hardwareConcurrency, clips: CLIPS, rows },
      null,
      2,
    ),
  );
  console.log("wrote runs/bench/video.json");
}
