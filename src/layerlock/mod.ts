/**
 * LayerLock: the freezing schedule and its convergence trigger, the freezer, the latent heads and objective, the training configuration, the trainer and its checkpoints.
 * @module
 */
export {
  type LayerLockConfig,
  LayerLockConfigSchema,
  type Mode,
  MODES,
  type ResolvedSchedule,
  resolveSchedule,
  scheduleAt,
  type ScheduleState,
} from "./schedule.ts";
export { Freezer } from "./freeze.ts";
export { LatentHeads } from "./heads.ts";
export { computeLosses, encodeVisible, latentTargets, type Losses } from "./objective.ts";
export { parseConfig, type TrainConfig, TrainConfigSchema } from "../config.ts";
export { modelConfig, train, type TrainOptions, type TrainResult } from "../train/trainer.ts";
export { loadCheckpoint, saveCheckpoint } from "../train/checkpoint.ts";
