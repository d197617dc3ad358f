/**
 * `deno task probe [flags]` (`./layerlock probe`): linear and attentive probes of a checkpoint's frozen encoder
 * on the user's labelled videos — the probes of the Fashion-MNIST experiment (`src/eval/probe.ts`), settings
 * chosen on the validation videos, the chosen settings scored once on the test videos — with a report.
 *
 *   --run NAME | --checkpoint FILE      the run's newest checkpoint, or a checkpoint file (config from its metadata)
 *   --untrained | --checkpoint none     probe the randomly initialised encoder of the same configuration instead
 *                                       (without a checkpoint: the config of --run NAME, or --config FILE.json)
 *   --baseline                          probe the untrained encoder too, beside the checkpoint, in one report
 *   --init-seed N                       seed of the untrained encoder (default: the config's seed, i.e. the
 *                                       run's own initialisation)
 *   --data-path DIR                     root of the videos
 *   --train-list F --val-list F [--test-list F]
 *                                       annotation lists (`path[,label]` per line; comma, tab or spaces; paths
 *                                       relative to --data-path); a list path is taken as given, else under DIR
 *   --class-folders [--train-dir D] [--val-dir D] [--test-dir D]
 *                                       instead of lists: DIR/train/<class>/<video>, DIR/val/…, DIR/test/…
 *                                       (defaults train, val, and test when that folder exists)
 *   --clips-per-video N                 evaluation clips per video (default 1; spread over the video, centre crop)
 *   --depth K | --depth-fraction F      encoder blocks to run (default all, with the final norm)
 *   --probes linear,attentive           which probes (default both; linear alone needs no tokens)
 *   --linear-epochs N  --linear-lr A,B,C  --linear-wd A,B     grid of the linear probe (lr × weight decay)
 *   --attentive-epochs N  --attentive-lr A,B,C  --attentive-wd A,B  --attentive-batch N
 *   --seeds 0,1,2                       probe seeds (every grid point is trained once per seed)
 *   --batch-size N                      clips per forward pass when extracting features (default 16)
 *   --refresh                           extract the features again even when they are cached
 *   --out DIR                           default runs/NAME/probe (runs/probe-<file> for a checkpoint file)
 *   --device auto|cpu|cuda              default auto
 *   --threads N                         libtorch's CPU threads (default: libtorch's own choice; 1 helps on a
 *                                       busy machine, where small probes otherwise wait on each other's threads)
 *
 * The clips follow the checkpoint's configuration (data.frames, size, frameStride or fps or segments, mean and
 * std, decoder) with evaluation sampling (`augment: false`: clips spread over each video, centre crop); the
 * files' probe results are kept in the folder's probe index (runs/.video_index/, as `train` does).
 * Features are cached in OUT/cache/ as safetensors, one file per split and encoder, keyed by the checkpoint
 * (path, size, modification time), the list's text, the listed files (size, modification time), the class
 * mapping, the depth and the clip geometry: a second run with the same inputs reads them and decodes nothing.
 * Writes OUT/report.json and OUT/report.md. Usage mistakes are one line on stderr and exit code 2. This file
 * parses the flags and prints; the workflow (encoders, splits, feature cache, extraction, probes, report) is
 * `runFolderProbe` (`src/eval/probe_run.ts`), the protocol itself (choice on val, test once) `src/eval/folder_probe.ts`.
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError } from "../errors.ts";
import { FOLDER_PROBES, type FolderProbeName, pctStats, type ProbeGrid } from "../eval/folder_probe.ts";
import type { FolderProbeReport } from "../eval/probe_report.ts";
import { type FolderProbeRunOptions, runFolderProbe } from "../eval/probe_run.ts";
import { PROBE_SPLITS, type ProbeDataSource } from "../eval/probe_splits.ts";
import { ExperimentConfigSchema } from "../experiment/config.ts";
import { runMain } from "./run.ts";

const USAGE = "usage: deno task probe (--run NAME | --checkpoint FILE|none) [--untrained] [--baseline] " +
  "--data-path DIR (--train-list F --val-list F [--test-list F] | --class-folders) [--clips-per-video N] " +
  "[--depth K | --depth-fraction F] [--probes linear,attentive] [--seeds 0,1,2] [--out DIR] [--device D] " +
  "(all flags: src/cli/probe.ts)";

const STRING_FLAGS = [
  "run",
  "checkpoint",
  "config",
  "init-seed",
  "data-path",
  "train-list",
  "val-list",
  "test-list",
  "train-dir",
  "val-dir",
  "test-dir",
  "clips-per-video",
  "depth",
  "depth-fraction",
  "probes",
  "linear-epochs",
  "linear-lr",
  "linear-wd",
  "attentive-epochs",
  "attentive-lr",
  "attentive-wd",
  "attentive-batch",
  "seeds",
  "batch-size",
  "out",
  "device",
  "threads",
] as const;
const BOOLEAN_FLAGS = ["untrained", "baseline", "class-folders", "refresh", "help"] as const;

type Flags = Record<string, string | boolean | undefined>;

function fail(message: string): never {
  throw new ConfigError("probe", message);
}

function int(flag: string, text: string | undefined, dflt: number, min = 1): number {
  if (text === undefined) return dflt;
  const v = Number(text);
  if (!/^\s*-?\d+\s*$/.test(text) || !Number.isSafeInteger(v) || v < min) {
    fail(`--${flag}: expected an integer >= ${min}, got '${text}'`);
  }
  return v;
}

function numbers(flag: string, text: string | undefined, dflt: number[], min = 0, integer = false): number[] {
  if (text === undefined) return dflt;
  const vs = text.split(",").map((s) => s.trim());
  const out = vs.map((s) => Number(s));
  if (
    vs.length === 0 || vs.some((s) => s === "") ||
    out.some((v) => !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v)))
  ) {
    fail(
      `--${flag}: expected a comma-separated list of ${
        integer ? "integers" : "numbers"
      } >= ${min}, got '${text}'`,
    );
  }
  if (new Set(out).size !== out.length) fail(`--${flag}: values must be distinct, got '${text}'`);
  return out;
}

/** The flags; an unknown flag or a missing value is a usage error. */
function parseFlags(args: string[]): Flags {
  const options: Record<string, { type: "string" | "boolean" }> = {};
  for (const f of STRING_FLAGS) options[f] = { type: "string" };
  for (const f of BOOLEAN_FLAGS) options[f] = { type: "boolean" };
  try {
    return parseArgs({ args, allowPositionals: false, options }).values;
  } catch (e) {
    fail(`${(e as Error).message.split(/\.\s/)[0].replace(/\.$/, "")} (${USAGE})`);
  }
}

/** The probes and their grids (defaults: the experiment's probes, with a small learning-rate grid around them). */
function probeGrids(v: Flags): Partial<Record<FolderProbeName, ProbeGrid>> {
  const s = (flag: string) => v[flag] as string | undefined;
  const ex = ExperimentConfigSchema.shape.probe.parse(undefined);
  const which = (s("probes") ?? "linear,attentive").split(",").map((w) => w.trim());
  for (const w of which) {
    if (!(FOLDER_PROBES as readonly string[]).includes(w)) {
      fail(`--probes: expected linear and/or attentive, got '${w}'`);
    }
  }
  const probes: Partial<Record<FolderProbeName, ProbeGrid>> = {};
  if (which.includes("linear")) {
    probes.linear = {
      epochs: int("linear-epochs", s("linear-epochs"), ex.linearEpochs),
      batchSize: 256,
      lrs: numbers("linear-lr", s("linear-lr"), [0.1, 1, 10].map((m) => m * ex.linearLr)),
      weightDecays: numbers("linear-wd", s("linear-wd"), [1e-4]),
    };
  }
  if (which.includes("attentive")) {
    probes.attentive = {
      epochs: int("attentive-epochs", s("attentive-epochs"), ex.attentiveEpochs),
      batchSize: int("attentive-batch", s("attentive-batch"), ex.attentiveBatch),
      lrs: numbers("attentive-lr", s("attentive-lr"), [0.3, 1, 3].map((m) => m * ex.attentiveLr)),
      weightDecays: numbers("attentive-wd", s("attentive-wd"), [0.05]),
    };
  }
  for (const g of Object.values(probes)) if (g.lrs.some((x) => x <= 0)) fail("learning rates must be > 0");
  return probes;
}

/** Annotation lists or class folders, and the flags of the other mode refused. */
function dataSource(v: Flags): ProbeDataSource {
  const paths = (suffix: string) => {
    const r: Partial<Record<(typeof PROBE_SPLITS)[number], string>> = {};
    for (const s of PROBE_SPLITS) if (v[`${s}-${suffix}`] !== undefined) r[s] = v[`${s}-${suffix}`] as string;
    return r;
  };
  if (v["class-folders"]) {
    for (const s of PROBE_SPLITS) {
      if (v[`${s}-list`] !== undefined) fail(`--${s}-list and --class-folders contradict`);
    }
    return { mode: "class-folders", dirs: paths("dir") };
  }
  for (const s of PROBE_SPLITS) if (v[`${s}-dir`] !== undefined) fail(`--${s}-dir needs --class-folders`);
  return { mode: "lists", lists: paths("list") };
}

/** The flags as the options of `runFolderProbe`. */
function runOptions(v: Flags): FolderProbeRunOptions {
  const s = (flag: string) => v[flag] as string | undefined;
  if (v.device !== undefined && !["auto", "cpu", "cuda"].includes(s("device")!)) {
    fail(`--device: expected auto, cpu or cuda, got '${v.device}'`);
  }
  const fraction = s("depth-fraction");
  if (fraction !== undefined && !(Number(fraction) >= 0 && Number(fraction) <= 1)) {
    fail(`--depth-fraction: expected a number in [0, 1], got '${fraction}'`);
  }
  const checkpoint = s("checkpoint");
  return {
    run: s("run"),
    checkpoint: checkpoint === "none" ? undefined : checkpoint,
    untrained: v.untrained === true || checkpoint === "none",
    baseline: v.baseline === true,
    config: s("config"),
    initSeed: s("init-seed") === undefined ? undefined : int("init-seed", s("init-seed"), 0, 0),
    device: s("device") as FolderProbeRunOptions["device"],
    threads: int("threads", s("threads"), 0, 0),
    dataPath: s("data-path"),
    data: dataSource(v),
    clipsPerVideo: int("clips-per-video", s("clips-per-video"), 1),
    depth: s("depth") === undefined ? undefined : int("depth", s("depth"), 0, 0),
    depthFraction: fraction === undefined ? undefined : Number(fraction),
    probes: probeGrids(v),
    seeds: numbers("seeds", s("seeds"), [0, 1, 2], 0, true),
    batchSize: int("batch-size", s("batch-size"), 16),
    refresh: v.refresh === true,
    out: s("out"),
    progress: {
      step: (l) => console.log(`probe: ${l}`),
      detail: (l) => console.log(`  ${l}`),
      warn: (l) => console.warn(`probe: warning: ${l}`),
    },
  };
}

/** The result lines: each probe's reported accuracy, the chance level, the report files. */
function printSummary(out: string, report: FolderProbeReport): void {
  const rep = report.probeSettings.reported;
  for (const e of report.encoders) {
    for (const name of FOLDER_PROBES) {
      const p = e.probes[name];
      if (!p) continue;
      console.log(
        `probe: ${e.label} ${name}: ${rep} ${
          pctStats(p[rep]!)
        } (lr ${p.chosen.lr}, wd ${p.chosen.weightDecay}, chosen on val)`,
      );
    }
  }
  const ch = report.chance[rep]!;
  console.log(
    `probe: chance (training majority class) ${(100 * ch.majority).toFixed(1)}% on ${rep}` +
      (rep === "test" ? "" : " — no test list: these val numbers are the ones the settings were chosen on"),
  );
  console.log(`probe: wrote ${out}/report.json and ${out}/report.md (${report.seconds.total.toFixed(1)} s)`);
}

async function main(): Promise<number> {
  const v = parseFlags(Deno.args);
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const { out, report } = await runFolderProbe(runOptions(v));
  printSummary(out, report);
  return 0;
}

await runMain("probe", main);
