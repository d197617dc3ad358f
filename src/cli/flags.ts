/**
 * The command-line side of the configuration: which flag sets which key, and how a flag's text becomes a value.
 * @module
 */
import { ConfigError } from "../errors.ts";

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
};

/** Sets `value` at a dotted path of a plain object, creating objects on the way. */
export function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split(".");
  // own properties only: `__proto__` (or `constructor.prototype`) must name a key, never reach a prototype
  if (keys.some((k) => k === "__proto__" || k === "prototype" || k === "constructor")) {
    throw new ConfigError(path, `'${path}' is not a configuration key`);
  }
  let o = obj;
  for (const k of keys.slice(0, -1)) {
    if (typeof o[k] !== "object" || o[k] === null) o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[keys[keys.length - 1]] = value;
}

/** Parses a flag's text value: JSON when it parses (numbers, booleans, arrays), else the string itself. */
export function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
