/**
 * Clip datasets (moving shapes, Moving Fashion-MNIST, folders of videos), samplers and the prefetching loader.
 * @module
 */
export {
  type BatchLabels,
  checkBatch,
  type ClipBatch,
  IMAGENET_MEAN,
  IMAGENET_STD,
  type Normalization,
} from "./clip.ts";
export { batchToTensor } from "./clip_tensor.ts";
export { Rng } from "./rng.ts";
export { BatchSampler } from "./sampler.ts";
export { bounce, directionOf, heading } from "./motion.ts";
export {
  BACKGROUND_NAMES,
  DIRECTION_NAMES,
  MovingShapes,
  type MovingShapesOptions,
  SHAPE_NAMES,
  SHAPES_TASKS,
  type ShapesClip,
  type ShapeTrack,
} from "./moving_shapes.ts";
export {
  type ClipPlan,
  type DecoderChoice,
  defaultWorkers,
  FOLDER_TASK,
  VIDEO_EXTENSIONS,
  VideoFolder,
  type VideoFolderOptions,
  type VideoFolderSpec,
} from "./video_folder.ts";
export {
  ensureFfmpeg,
  type EnsureFfmpegOptions,
  ffmpegAvailable,
  FfmpegDecoder,
  probeVideo,
} from "./ffmpeg.ts";
export { type FrameRequest, LibavDecoder, libavLibrary } from "./libav.ts";
export type { VideoInfo } from "./video_info.ts";
export {
  clipRng,
  type CropBox,
  cropBox,
  type CropOptions,
  fixedOffsets,
  frameIndices,
  type TemporalOptions,
  VIDEOMAE_SCALES,
} from "./clip_sampling.ts";
export type { ClipDataset, DatasetSpec, LabelTasks } from "./dataset.ts";
export { datasetFromSpec, makeDataset, SOURCES } from "./registry.ts";
export {
  type ClipLoader,
  createLoader,
  DirectLoader,
  type LoaderOptions,
  PrefetchLoader,
} from "./prefetch.ts";
export {
  ensureFashionMnist,
  type EnsureFashionMnistOptions,
  FASHION_CLASSES,
  FASHION_IMAGE_SIZE,
  FASHION_MNIST_DIR,
  FASHION_MNIST_FILES,
  FASHION_MNIST_PACKAGE,
  type FashionMnistData,
  loadFashionMnist,
} from "./fashion_mnist.ts";
export {
  FASHION_TASKS,
  type FashionClip,
  type FashionSplit,
  type GarmentTrack,
  MovingFashionMnist,
  type MovingFashionMnistOptions,
} from "./moving_fashion_mnist.ts";
export { type IdxArray } from "./idx.ts";
export {
  type Annotation,
  annotationsFromFolders,
  checkFilesExist,
  labelMap,
  parseAnnotations,
} from "./annotations.ts";
