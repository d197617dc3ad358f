/**
 * Evaluation: frozen-feature extraction, linear and attentive probes, collapse metrics, PNG images and the HTML report.
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
