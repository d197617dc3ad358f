/**
 * layerlock: LayerLock self-supervised video training on libtorch, from Deno.
 *
 * ```ts
 * import * as torch from "./mod.ts";
 * const y = torch.scope(() => torch.randn([2, 3]).matmul(torch.ones([3, 4])));
 * console.log(y.shape, torch.liveTensors());
 * y.dispose();
 * ```
 * @module
 */
export { TorchError } from "./ffi/errors.ts";
export { type Device, type DType, type HostArray, isFloating } from "./src/dtype.ts";
export { Tensor, type ToOptions } from "./src/tensor.ts";
export { currentScope, keep, scope } from "./src/scope.ts";
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
} from "./src/creation.ts";
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
  type SdpaOptions,
  softmax,
  stack,
  where,
} from "./src/functional.ts";
export {
  autocast,
  enableGrad,
  isAutocastEnabled,
  isGradEnabled,
  noGrad,
  setGradEnabled,
} from "./src/autograd.ts";
export {
  cuda,
  type CudaMemoryStats,
  getNumThreads,
  getRngState,
  liveTensors,
  manualSeed,
  setNumThreads,
  setRngState,
  torchVersion,
} from "./src/runtime.ts";
export {
  loadSafetensors,
  type LoadSafetensorsOptions,
  parseSafetensors,
  readSafetensorsMetadata,
  type SafetensorsContents,
  saveSafetensors,
  serializeSafetensors,
} from "./src/io/safetensors.ts";
export { type AdamWHyper, adamwStep, type AdamWTensors, clipGradNorm } from "./src/optim/kernels.ts";
export { AdamW, type AdamWOptions, defaultNoDecay, type NamedParam } from "./src/optim/adamw.ts";
export { scaledLr, warmupCosine, type WarmupCosineOptions } from "./src/optim/schedule.ts";
export { batchToTensor, checkBatch, type ClipBatch, IMAGENET_MEAN, IMAGENET_STD } from "./src/data/clip.ts";
export { hash32, Rng } from "./src/data/rng.ts";
export { BatchSampler, MAX_SAMPLER_LENGTH, permuteIndex } from "./src/data/sampler.ts";
export {
  BACKGROUND_NAMES,
  DIRECTION_NAMES,
  directionOf,
  MovingShapes,
  type MovingShapesOptions,
  SHAPE_NAMES,
  type ShapesClip,
  type ShapeTrack,
} from "./src/data/moving_shapes.ts";
export {
  decodeClip,
  type DecodeOptions,
  ensureFfmpeg,
  type EnsureFfmpegOptions,
  ffmpegAvailable,
  probeVideo,
  VIDEO_EXTENSIONS,
  VideoFolder,
  type VideoFolderOptions,
  type VideoFolderSpec,
  type VideoInfo,
} from "./src/data/video_folder.ts";
export { type ClipDataset, datasetFromSpec, type DatasetSpec } from "./src/data/dataset.ts";
export {
  type ClipLoader,
  createLoader,
  DirectLoader,
  type LoaderOptions,
  PrefetchLoader,
} from "./src/data/prefetch.ts";
export { type LoadReport, Module, ModuleList } from "./src/nn/module.ts";
export {
  Attention,
  Block,
  Dropout,
  type InitOptions,
  LayerNorm,
  Linear,
  Mlp,
  PatchConv3d,
  PatchEmbed3d,
} from "./src/nn/layers.ts";
export { sincos3d } from "./src/nn/pos_embed.ts";
export {
  type ModelSize,
  pixelTargetDim,
  PRESETS,
  VideoMAE,
  type VideoMAEConfig,
  VideoMAEDecoder,
  VideoMAEEncoder,
} from "./src/models/video_mae.ts";
export {
  disposeMask,
  gatherTokens,
  makeMask,
  type Mask,
  type MaskKind,
  randomMask,
  tubeMask,
} from "./src/models/masking.ts";
export { maskedMse, patchify, pixelTargets } from "./src/models/targets.ts";
export {
  type LayerLockConfig,
  LayerLockConfigSchema,
  type Mode,
  MODES,
  type ResolvedSchedule,
  resolveSchedule,
  scheduleAt,
  type ScheduleState,
} from "./src/layerlock/schedule.ts";
export { Freezer } from "./src/layerlock/freeze.ts";
export { LatentHeads } from "./src/layerlock/heads.ts";
export { computeLosses, encodeVisible, latentTargets, type Losses } from "./src/layerlock/objective.ts";
export { parseConfig, type TrainConfig, TrainConfigSchema } from "./src/cli/config.ts";
export { modelConfig, train, type TrainOptions, type TrainResult } from "./src/train/trainer.ts";
export { loadCheckpoint, saveCheckpoint } from "./src/train/checkpoint.ts";
export {
  ensureFashionMnist,
  type EnsureFashionMnistOptions,
  FASHION_CLASSES,
  FASHION_IMAGE_SIZE,
  FASHION_MNIST_DIR,
  FASHION_MNIST_FILES,
  FASHION_MNIST_PACKAGE,
  type FashionClip,
  type FashionMnistData,
  fashionMnistDir,
  type FashionSplit,
  type GarmentTrack,
  gunzip,
  IDX_IMAGES_MAGIC,
  IDX_LABELS_MAGIC,
  type IdxArray,
  loadFashionMnist,
  MovingFashionMnist,
  type MovingFashionMnistOptions,
  parseIdx,
} from "./src/data/moving_fashion_mnist.ts";
export { crc32, encodePng, imageGrid, PNG_SIGNATURE, type RgbImage, upscale } from "./src/eval/png.ts";
export {
  type Bar,
  barChart,
  type BarChartOptions,
  type Cell,
  checkReport,
  escapeHtml,
  formatNumber,
  image,
  lineChart,
  type LineChartOptions,
  type LineSeries,
  PALETTE,
  renderReport,
  type ReportCheck,
  type ReportContent,
  type ReportImage,
  type ReportImageRef,
  type ReportSection,
  table,
  writeReport,
} from "./src/eval/report.ts";
export { svdvals } from "./src/functional.ts";
export {
  type CollapseMetrics,
  collapseMetrics,
  effectiveRank,
  entropyRank,
  featureStd,
  meanPairwiseCosine,
} from "./src/eval/collapse.ts";
export {
  depthFromFraction,
  extractFeatures,
  type ExtractOptions,
  type Features,
} from "./src/eval/features.ts";
export {
  AttentiveProbe,
  type AttentiveProbeOptions,
  LinearProbe,
  type ProbeOptions,
  type ProbeResult,
  probeWithSeeds,
  type SeedStats,
  trainAttentiveProbe,
  trainLinearProbe,
} from "./src/eval/probe.ts";
