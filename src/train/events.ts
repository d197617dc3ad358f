/**
 * What the trainer reports, as structured records: one per logging step (the same object that is written to
 * `metrics.jsonl`), one per stage change, per checkpoint, on resume and at the end. Consumers (the CLI's
 * progress line, the experiment) read fields, never printed text; `formatEvent` is the one rendering.
 * @module
 */
import { formatStage, type StageVerdict } from "../layerlock/learning.ts";

/** The record of a logging step: the means over the steps since the previous one (a line of metrics.jsonl). */
export interface StepRecord {
  /** Steps completed. */
  step: number;
  /** The backpropagated loss. */
  loss: number;
  /** The pixel and latent loss terms (null when not computed). */
  pixelLoss: number | null;
  latentLoss: number | null;
  /** Their trivial floors on the same tokens (null when not measured). */
  pixelFloor: number | null;
  latentFloor: number | null;
  /** The learning rate of the last step. */
  lr: number;
  /** Seconds since this invocation started. */
  time: number;
  /** Training steps per second over the window (measurements excluded). */
  stepsPerSec: number;
  /** Encoder blocks frozen. */
  frozenDepth: number;
  /** What the last step predicted (`pixels`, `h3`, ...). */
  target: string;
  /** The convergence trigger's last CKA (only with that trigger). */
  convergenceCka?: number | null;
  /** Live native tensors (a leak shows as growth). */
  liveTensors: number;
  /** Milliseconds per step spent waiting for the next batch (data loading not hidden by read-ahead). */
  dataWaitMs?: number;
  /** Files found unreadable so far in this invocation (their clips replaced by others); absent while none. */
  skippedFiles?: number;
  /** Data parallel only: the number of processes (each trains `optim.batchSize` clips per step). */
  worldSize?: number;
  /** Data parallel only: clips per step over all processes. */
  globalBatch?: number;
  /** Data parallel only: gradient bytes each rank all-reduced per step (falls as blocks freeze). */
  commBytes?: number;
  /** Data parallel only: ms per step spent waiting for the all-reduce after backward (what overlap left). */
  commWaitMs?: number;
  /** CUDA graphs on (`graphs`): steps of the window run from a captured graph (the others ran eagerly). */
  graphSteps?: number;
  /** CUDA graphs on: graphs captured so far in this invocation (one per schedule stage). */
  graphCaptures?: number;
  /** Measurements of `TrainOptions.evaluate`, when due. */
  eval?: Record<string, number>;
}

/** One thing the trainer reports. */
export type TrainEvent =
  | { kind: "resume"; step: number; checkpoint: string }
  | { kind: "init"; source: string; lines: string[] }
  | { kind: "stage"; step: number; stage: number; frozenDepth: number; target: string }
  | { kind: "stageEnd"; verdict: StageVerdict }
  | { kind: "log"; record: StepRecord; totalSteps: number; eta: number }
  | { kind: "checkpoint"; step: number; path: string }
  | { kind: "slowData"; step: number; share: number; waitMs: number }
  | { kind: "warning"; message: string }
  | { kind: "end"; step: number; interrupted: boolean; checkpoint: string | null };

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60), r = Math.round(s % 60);
  return m > 0 ? `${m}m${String(r).padStart(2, "0")}s` : `${r}s`;
}

/** The progress line of a logging step. */
export function formatRecord(r: StepRecord, totalSteps: number, eta: number): string {
  const term = (name: string, v: number | null, floor: number | null) =>
    v === null
      ? ""
      : `${name} ${v.toFixed(4)}${
        floor !== null ? ` floor ${floor.toFixed(4)} = ${(v / floor).toFixed(2)}×` : ""
      }`;
  const terms = [term("pix", r.pixelLoss, r.pixelFloor), term("lat", r.latentLoss, r.latentFloor)]
    .filter(Boolean).join(" ");
  return `step ${r.step}/${totalSteps}  loss ${r.loss.toFixed(4)} (${terms})  frozen ${r.frozenDepth}  ` +
    `target ${r.target}  lr ${r.lr.toExponential(2)}  ${r.stepsPerSec.toFixed(2)} steps/s` +
    (r.dataWaitMs !== undefined ? `  data ${r.dataWaitMs.toFixed(1)} ms/step` : "") + `  ETA ${fmtTime(eta)}`;
}

/**
 * The text of an event, and whether it ends a line (a logging step's line is rewritten in place on a terminal);
 * null for events that print nothing (stage changes and checkpoints show in the next progress line).
 */
export function formatEvent(e: TrainEvent): { text: string; final: boolean } | null {
  switch (e.kind) {
    case "resume":
      return { text: `resumed from ${e.checkpoint} at step ${e.step}`, final: true };
    case "init":
      return { text: [`started from ${e.source}`, ...e.lines.map((l) => `  ${l}`)].join("\n"), final: true };
    case "log":
      return { text: formatRecord(e.record, e.totalSteps, e.eta), final: false };
    case "slowData":
      return {
        text:
          `\nwarning: at step ${e.step} training waited on data for ${
            (e.share * 100).toFixed(0)
          }% of the time ` +
          `(${
            e.waitMs.toFixed(1)
          } ms per step): the data is the bottleneck (more read-ahead, data.prefetch, or ` +
          "smaller or pre-decoded clips may help)",
        final: true,
      };
    case "warning":
      return { text: `warning: ${e.message}`, final: true };
    case "stageEnd":
      return { text: `\nlatent stage ${formatStage(e.verdict)}`, final: true };
    case "end":
      return {
        text: e.interrupted
          ? `\ninterrupted at step ${e.step}; checkpoint saved to ${e.checkpoint} (run the same command again, ` +
            "or add --resume, to continue)"
          : `\ndone: ${e.step} steps; checkpoint ${e.checkpoint}`,
        final: true,
      };
    default:
      return null;
  }
}

/** Writes events to stderr: progress lines rewritten in place on a terminal, one per line otherwise. */
export function printEvent(e: TrainEvent): void {
  const f = formatEvent(e);
  if (!f) return;
  const enc = new TextEncoder();
  if (Deno.stderr.isTerminal()) Deno.stderr.writeSync(enc.encode(`\r\x1b[K${f.text}${f.final ? "\n" : ""}`));
  else Deno.stderr.writeSync(enc.encode(f.text + "\n"));
}
