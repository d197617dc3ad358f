/**
 * The export workflow (`./layerlock export --run NAME --format hf|videomae`): a run's newest checkpoint (or a
 * checkpoint file) written for PyTorch code.
 *
 * - `hf`: a Hugging Face folder (`hf.ts`): config.json + model.safetensors that `VideoMAEForPreTraining.
 *   from_pretrained` loads with no missing or unexpected key (with `encoderOnly`, the encoder alone, for
 *   `VideoMAEModel.from_pretrained`; `VideoMAEModel` also loads the full folder, naming the decoder's weights
 *   as unused). Its `last_hidden_state` is our encoder's output tokens, as `./layerlock embed` writes them, and
 *   their mean our pooled features (the folder sets `use_mean_pooling: false`: transformers then keeps the final
 *   norm, as we do).
 * - `videomae`: `{"model": state_dict}` written by torch.save's format in VideoMAE's pretraining layout
 *   (`checkpoint.pth`), which VideoMAE's fine-tuning code reads with `--finetune`.
 *
 * transformers and VideoMAE's code build their own position table, VideoMAE's 1-d sinusoid
 * (`get_sinusoid_encoding_table`); a run trained with another (`model.posEmbed` `sincos`, the default: a
 * factorised 3-d table) would give other features there, and is refused with the option to train with. A
 * learned table goes to the videomae format (as `encoder.pos_embed`, which VideoMAE's learnable-table models
 * hold) but has no place in transformers' VideoMAE.
 * @module
 */
import { isAbsolute, relative, resolve, sep } from "node:path";
import { ConfigError } from "../errors.ts";
import { modelConfig, type TrainConfig } from "../config.ts";
import { scope } from "../torch/scope.ts";
import { loadModelCheckpoint, readCheckpointConfig, verifyCheckpoint } from "../train/checkpoint.ts";
import { RunFolder } from "../train/run_folder.ts";
import { type HfClass, type HfModelSpec, writeHfFolder } from "./hf.ts";
import { writeVideoMAEPth } from "./pth.ts";

/** The formats `export` writes. */
export const EXPORT_FORMATS = ["hf", "videomae"] as const;
/** One of them. */
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** Options of {@link exportRun}. */
export interface ExportOptions {
  /** The run whose newest checkpoint is exported (`<root>/<run>`). */
  run?: string;
  /** A checkpoint file instead. */
  checkpoint?: string;
  /** What to write. */
  format: ExportFormat;
  /** Where (a folder under `root`; default `<run>/export/hf`, `hf-encoder` or `videomae`). */
  out?: string;
  /** `hf`: the encoder alone, for `VideoMAEModel` (default: encoder and decoder, `VideoMAEForPreTraining`). */
  encoderOnly?: boolean;
  /** Where runs live (default `runs`). */
  root?: string;
}

/** What {@link exportRun} wrote. */
export interface ExportResult {
  /** The checkpoint read. */
  checkpoint: string;
  /** The folder written. */
  out: string;
  /** The files written. */
  files: string[];
  /** What was written and how to load it, one line each. */
  lines: string[];
}

function fail(message: string): never {
  throw new ConfigError("export", message);
}

/** A ConfigError unless `out` lies inside `root` (the tasks may write under runs/ only). */
export function checkUnder(out: string, root: string): void {
  const rel = relative(resolve(root), resolve(out));
  if (rel === "" || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    fail(`--out ${out} is not a folder under ${root}/ (the only place the task may write)`);
  }
}

/**
 * The refusal for a position table the format's code does not build, or null. transformers always builds
 * VideoMAE's 1-d sinusoid table; VideoMAE's code builds it too unless its model has a learned one.
 */
export function positionRefusal(cfg: TrainConfig, format: ExportFormat, where: string): string | null {
  const kind = cfg.model.posEmbed;
  if (kind === "videomae") return null;
  if (kind === "learned" && format === "videomae") return null;
  const what = kind === "sincos"
    ? "model.posEmbed=sincos, a factorised 3-d position table"
    : "a learned position table (model.posEmbed=learned)";
  const builder = format === "hf"
    ? "transformers' VideoMAE always builds VideoMAE's 1-d sinusoid table (get_sinusoid_encoding_table) and has no place for another"
    : "VideoMAE's code builds its 1-d sinusoid table (get_sinusoid_encoding_table)";
  return `${where} was trained with ${what}; ${builder}, so its features would differ there. Train with ` +
    "--set model.posEmbed=videomae for a checkpoint that exports";
}

/** transformers' view of a run's model. */
function hfSpec(cfg: TrainConfig): HfModelSpec {
  const m = modelConfig(cfg);
  return {
    encoderDim: m.encoderDim,
    encoderDepth: m.encoderDepth,
    encoderHeads: m.encoderHeads,
    mlpRatio: m.mlpRatio,
    decoderDim: m.decoderDim,
    decoderDepth: m.decoderDepth,
    decoderHeads: m.decoderHeads,
    patch: m.patch,
    tubelet: m.tubelet,
    qkvBias: m.qkvBias,
    gelu: m.gelu === "tanh" ? "tanh" : "exact",
    layerNormEps: cfg.model.layerNormEps,
    frames: cfg.data.frames,
    size: cfg.data.size,
    normalizeTarget: cfg.target.normalize,
  };
}

/**
 * Exports a run's newest checkpoint (or `checkpoint`) in `format`. Usage mistakes and refused position tables
 * are ConfigErrors; a checkpoint that does not read back is an IoError naming it. Leaves no tensor alive.
 */
export function exportRun(o: ExportOptions): ExportResult {
  const root = o.root ?? "runs";
  if (!o.run && !o.checkpoint) fail("pass --run NAME or --checkpoint FILE");
  let path = o.checkpoint ?? null, runDir: string;
  if (o.run) {
    runDir = `${root}/${o.run}`;
    path ??= new RunFolder(runDir).newestCheckpoint();
    if (!path) fail(`${runDir} has no checkpoints`);
  } else {
    const m = path!.match(/^(.*)\/checkpoints\/[^/]+$/);
    runDir = m ? m[1] : `${root}/export-${path!.split("/").pop()!.replace(/\.safetensors$/, "")}`;
  }
  verifyCheckpoint(path!);
  const cfg = readCheckpointConfig(path!);
  const refusal = positionRefusal(cfg, o.format, o.run ? `${root}/${o.run}` : path!);
  if (refusal) fail(refusal);
  if (o.encoderOnly && o.format !== "hf") fail("--encoder-only goes with --format hf");
  const sub = o.format === "hf" ? (o.encoderOnly ? "hf-encoder" : "hf") : "videomae";
  const out = (o.out ?? `${runDir}/export/${sub}`).replace(/\/+$/, "");
  checkUnder(out, root);
  const { model } = loadModelCheckpoint(path!, "cpu", cfg);
  try {
    const lines: string[] = [];
    let files: string[];
    if (o.format === "hf") {
      const cls: HfClass = o.encoderOnly ? "VideoMAEModel" : "VideoMAEForPreTraining";
      files = scope(() => writeHfFolder(out, model.stateDict(), hfSpec(cfg), cls));
      lines.push(
        `${cls}.from_pretrained("${out}") loads it (encoder ${cfg.data.frames} frames of ${cfg.data.size}², ` +
          `last_hidden_state = our tokens, their mean = our pooled features)`,
      );
      if (!o.encoderOnly) {
        lines.push(
          "VideoMAEModel.from_pretrained loads the encoder too, naming the decoder's weights unused; " +
            "--encoder-only writes the encoder alone",
        );
      }
    } else {
      try {
        Deno.mkdirSync(out, { recursive: true });
      } catch (e) {
        fail(`cannot create ${out}: ${(e as Error).message}`);
      }
      const file = `${out}/checkpoint.pth`;
      scope(() => writeVideoMAEPth(file, model.stateDict()));
      files = [file];
      lines.push(
        `{"model": state_dict} in VideoMAE's pretraining layout: torch.load("${file}")["model"], or VideoMAE's ` +
          `fine-tuning code with --finetune ${file}`,
      );
    }
    return { checkpoint: path!, out, files, lines };
  } finally {
    model.dispose();
  }
}
