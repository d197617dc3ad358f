/**
 * The libtorch binding: tensors and their scopes, creation, functional ops, autograd switches, the runtime (threads, RNG, CUDA), safetensors, torch.save checkpoints, the error family, the AdamW optimiser with its schedule, and c10d (stores, process groups, the gradient reducer).
 * @module
 */
export { ConfigError, DataError, type ErrorCode, IoError, LayerlockError, TorchError } from "../errors.ts";
export { type Device, type DType, type HostArray, isFloating } from "./dtype.ts";
export { Tensor, type ToOptions } from "./tensor.ts";
export { currentScope, keep, scope } from "./scope.ts";
export {
  arange,
  empty,
  eye,
  type FactoryOptions,
  full,
  type NestedArray,
  ones,
  onesLike,
  rand,
  randint,
  randn,
  randperm,
  tensor,
  tensorFromBytes,
  zeros,
  zerosLike,
} from "./creation.ts";
export {
  bmm,
  cat,
  conv3d,
  type Conv3dOptions,
  crossEntropy,
  type CrossEntropyOptions,
  dropout,
  layerNorm,
  linear,
  logSoftmax,
  matmul,
  mseLoss,
  type Reduction,
  scaledDotProductAttention,
  SDPA_BACKENDS,
  sdpaBackend,
  type SdpaOptions,
  softmax,
  stack,
  where,
} from "./functional.ts";
export {
  autocast,
  enableGrad,
  inferenceMode,
  isAutocastEnabled,
  isGradEnabled,
  isInferenceTensor,
  noGrad,
  setGradEnabled,
} from "./autograd.ts";
export { CudaGraph, liveGraphs } from "./cuda_graph.ts";
export { CudaStream } from "./cuda_stream.ts";
export {
  cuda,
  type CudaMemoryStats,
  getNumThreads,
  getRngState,
  hostReads,
  hostWrites,
  liveTensors,
  manualSeed,
  setNumThreads,
  setRngState,
  torchVersion,
} from "./runtime.ts";
export {
  loadSafetensors,
  type LoadSafetensorsOptions,
  parseSafetensors,
  readSafetensorsMetadata,
  type SafetensorsContents,
  saveSafetensors,
  serializeSafetensors,
} from "./safetensors.ts";
export { loadTorchFile, type LoadTorchFileOptions, saveTorchFile } from "./pickle.ts";
export { type AdamWHyper, adamwStep, type AdamWTensors, clipGradNorm } from "../optim/kernels.ts";
export { AdamW, type AdamWOptions, defaultNoDecay, type NamedParam } from "../optim/adamw.ts";
export { scaledLr, warmupCosine, type WarmupCosineOptions } from "../optim/schedule.ts";
export { svdvals } from "./functional.ts";
export {
  type Backend,
  distBackends,
  distLive,
  GradReducer,
  type GradReducerOptions,
  ProcessGroup,
  type ReduceOp,
  type ReduceStats,
  Store,
} from "./dist.ts";
