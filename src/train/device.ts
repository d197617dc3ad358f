/**
 * The device a training configuration runs on.
 * @module
 */
import { ConfigError } from "../errors.ts";
import type { Device } from "../torch/dtype.ts";
import { cuda } from "../torch/runtime.ts";
import type { TrainConfig } from "../config.ts";

/**
 * The device a configuration asks for ("auto": cuda when available); with `localRank` (data parallel), that
 * rank's GPU.
 */
export function resolveDevice(cfg: TrainConfig, localRank?: number): Device {
  if (cfg.device === "cuda" && !cuda.isAvailable()) {
    throw new ConfigError(
      "device",
      'device: "cuda" was requested but CUDA is not available (is torch a CUDA build?)',
    );
  }
  const d = cfg.device === "auto" ? (cuda.isAvailable() ? "cuda" : "cpu") : cfg.device;
  return d === "cuda" && localRank !== undefined ? `cuda:${localRank}` : d;
}
