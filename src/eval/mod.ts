/**
 * Evaluation: frozen-feature extraction, linear and attentive probes (also on the user's labelled videos:
 * `runFolderProbe`), a checkpoint's features of a dataset (`embedClips`), collapse metrics, PNG images and the
 * HTML report.
 * @module
 */
export { encodePng, imageGrid, type RgbImage, upscale } from "./png.ts";
export {
  type Bar,
  barChart,
  type BarChartOptions,
  lineChart,
  type LineChartOptions,
  type LineSeries,
  PALETTE,
} from "./charts.ts";
export { type Cell, image, table } from "./html.ts";
export {
  checkReport,
  renderReport,
  type ReportCheck,
  type ReportContent,
  type ReportImage,
  type ReportImageRef,
  type ReportSection,
  writeReport,
} from "./report.ts";
export {
  type CollapseMetrics,
  collapseMetrics,
  effectiveRank,
  featureStd,
  meanPairwiseCosine,
} from "./collapse.ts";
export { depthFromFraction, extractFeatures, type ExtractOptions, type Features } from "./features.ts";
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
} from "./probe.ts";
export {
  type ChanceLevel,
  chanceLevel,
  type ClipFeatures,
  type EncoderOutcome,
  extractClipFeatures,
  type ExtractClipOptions,
  FOLDER_PROBES,
  type FolderProbeName,
  type FolderProbeOptions,
  type LabelledClipSource,
  type ProbeGrid,
  type ProbeOutcome,
  probeReportMarkdown,
  probeSplits,
  type SplitFeatures,
} from "./folder_probe.ts";
export {
  type FolderProbeRun,
  type FolderProbeRunOptions,
  type ProbeProgress,
  runFolderProbe,
} from "./probe_run.ts";
export { type FolderProbeReport, type ProbeReportEncoder, type ProbeReportSplit } from "./probe_report.ts";
export {
  type LabelledSplit,
  type ProbeDataSource,
  type ProbeSplitName,
  readProbeData,
} from "./probe_splits.ts";
export {
  type ClipEmbedding,
  disposeEmbedding,
  embedClips,
  embeddingDataset,
  type EmbedOptions,
  saveEmbedding,
} from "./embed.ts";
