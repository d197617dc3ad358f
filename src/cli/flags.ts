/**
 * The command-line side of the configuration: which flag sets which key, and how a flag's text becomes a value.
 * @module
 */
export { setPath } from "../config.ts";

/** The flags of `train` (and, but for name and seed, of `experiment`) and the configuration keys they set. */
export const TRAIN_FLAG_PATHS: Readonly<Record<string, string>> = {
  name: "name",
  device: "device",
  preset: "model.preset",
  seed: "seed",
  steps: "optim.steps",
  "batch-size": "optim.batchSize",
  lr: "optim.lr",
  warmup: "optim.warmupSteps",
  mask: "mask.kind",
  "mask-ratio": "mask.ratio",
  data: "data.source",
  "data-path": "data.path",
  frames: "data.frames",
  size: "data.size",
  patch: "model.patch",
  init: "init",
};

/** Parses a flag's text value: JSON when it parses (numbers, booleans, arrays), else the string itself. */
export function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
