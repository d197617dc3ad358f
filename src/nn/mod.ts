/**
 * Modules with owned parameters (`Module`, layers, position embeddings) and the Video MAE model: presets, masking, pixel targets.
 * @module
 */
export { type LoadReport, Module, ModuleList } from "./module.ts";
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
} from "./layers.ts";
export { sincos3d } from "./pos_embed.ts";
export { type ModelSize, PRESETS } from "../models/presets.ts";
export {
  pixelTargetDim,
  VideoMAE,
  type VideoMAEConfig,
  VideoMAEDecoder,
  VideoMAEEncoder,
} from "../models/video_mae.ts";
export {
  disposeMask,
  gatherTokens,
  makeMask,
  type Mask,
  type MaskKind,
  randomMask,
  tubeMask,
} from "../models/masking.ts";
export { maskedMse, patchify, pixelTargets } from "../models/targets.ts";
