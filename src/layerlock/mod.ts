/**
 * LayerLock: the freezing schedule and its convergence trigger, the freezer, the latent heads, the objective and
 * the step that owns them, the trivial loss floors, the training configuration, the trainer with its events and
 * checkpoints, and data-parallel training (`DataParallel`, `launchEnv`).
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
export { LayerLockStep, type StepStart } from "./step.ts";
export { ConvergenceTrigger, linearCka } from "./trigger.ts";
export { meanTarget, TargetFloor } from "./floor.ts";
export { parseConfig, type TrainConfig, TrainConfigSchema } from "../config.ts";
export { train, type TrainOptions, type TrainResult } from "../train/trainer.ts";
export { modelConfig } from "../config.ts";
export { loadCheckpoint, saveCheckpoint } from "../train/checkpoint.ts";
export { formatEvent, printEvent, type StepRecord, type TrainEvent } from "../train/events.ts";
export { DataParallel, type DataParallelOptions, distOptions } from "../train/data_parallel.ts";
export { type LaunchEnv, launchEnv } from "../train/launch.ts";
