/**
 * The report's charts: `lineChart` and `barChart` render self-contained inline SVG (no scripts or fonts), with
 * linear or log axes, a legend, error bars and dashed series. Pure TypeScript.
 * @module
 */
import { escapeHtml, formatNumber } from "./html.ts";

/** Ten distinct colours (Tableau 10); series beyond ten reuse them with a dash pattern. */
export const PALETTE: readonly string[] = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
];
const DASHES = ["", "6 3", "2 3", "8 3 2 3"];

const FONT = `font-family="system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"`;
const f1 = (v: number) => String(Math.round(v * 10) / 10);

/** A "nice" step (1, 2 or 5 × 10^k) giving about `target` intervals over `range`. */
function niceStep(range: number, target: number): number {
  const raw = range / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}

interface Axis {
  lo: number;
  hi: number;
  ticks: { v: number; label: string }[];
}

/** A linear axis covering [lo, hi], widened to whole steps, with labelled ticks. */
function linearAxis(lo: number, hi: number, target = 5): Axis {
  if (hi === lo) {
    const d = Math.abs(lo) * 0.1 || 1;
    lo -= d;
    hi += d;
  }
  const step = niceStep(hi - lo, target);
  const a = Math.floor(lo / step + 1e-9) * step, b = Math.ceil(hi / step - 1e-9) * step;
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const ticks = [];
  for (let i = 0, n = Math.round((b - a) / step); i <= n; i++) {
    const v = a + i * step;
    const av = Math.abs(v);
    const label = av !== 0 && (av >= 1e6 || av < 1e-3) ? formatNumber(v, 3) : (Math.abs(v) < step / 2 ? 0 : v)
      .toFixed(decimals);
    ticks.push({ v, label });
  }
  return { lo: a, hi: b, ticks };
}

/** A log10 axis: whole decades around [lo, hi] (both > 0), with 2× and 5× ticks when it spans few decades. */
function logAxis(lo: number, hi: number): Axis {
  const a = Math.floor(Math.log10(lo) + 1e-9);
  let b = Math.ceil(Math.log10(hi) - 1e-9);
  if (b <= a) b = a + 1;
  const every = Math.max(1, Math.ceil((b - a) / 8));
  b = a + Math.ceil((b - a) / every) * every;
  const ticks = [];
  for (let k = a; k <= b; k += every) {
    ticks.push({ v: 10 ** k, label: formatNumber(Number((10 ** k).toPrecision(1)), 1) });
    if (b - a <= 2 && k < b) {
      for (const m of [2, 5]) {
        ticks.push({ v: m * 10 ** k, label: formatNumber(Number((m * 10 ** k).toPrecision(1)), 1) });
      }
    }
  }
  return { lo: 10 ** a, hi: 10 ** b, ticks };
}

/** Rough width in pixels of `text` at a 12 px sans-serif font. */
const textWidth = (text: string, px = 12) => text.length * px * 0.58;

/** One data series of a line chart: a name for the legend and [x, y] points; a null or non-finite y is a gap. */
export interface LineSeries {
  /** Legend name. */
  name: string;
  /** Points in drawing order; `y` null, NaN or ±∞ (or ≤ 0 on a log axis) breaks the line. */
  points: [number, number | null][];
  /** Index into `PALETTE` (default: the series' own index), e.g. to draw a reference line in its series' colour. */
  color?: number;
  /** Dashed line (default: solid for the first palette's worth of series, then dashed). */
  dashed?: boolean;
}

/** Options of `lineChart`. */
export interface LineChartOptions {
  /** Title drawn above the plot. */
  title: string;
  /** x-axis label. */
  xLabel: string;
  /** y-axis label. */
  yLabel: string;
  /** The series, one line each, coloured in order from `PALETTE`. */
  series: LineSeries[];
  /** Logarithmic y axis (values ≤ 0 become gaps). */
  logY?: boolean;
  /** Width of the SVG in pixels (default 640; it scales down to fit the page). */
  width?: number;
  /** Height of the SVG in pixels (default 360). */
  height?: number;
}

function svgOpen(w: number, h: number, title: string, kind: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" class="chart ${kind}" viewBox="0 0 ${w} ${h}" width="${w}" ` +
    `height="${h}" role="img" aria-label="${escapeHtml(title)}" ${FONT} font-size="12">` +
    `<title>${escapeHtml(title)}</title><rect width="${w}" height="${h}" fill="#fff"/>` +
    `<text x="${w / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600" fill="#222">` +
    `${escapeHtml(title)}</text>`;
}

/** The y axis, its grid lines, tick labels and rotated label, for a plot area [x0, x1] × [y0 (top), y1]. */
function yAxisSvg(axis: Axis, toY: (v: number) => number, x0: number, x1: number, label: string, h: number) {
  let s = "";
  for (const t of axis.ticks) {
    const y = f1(toY(t.v));
    s += `<line x1="${x0}" x2="${x1}" y1="${y}" y2="${y}" stroke="#e4e4e4"/>` +
      `<line x1="${x0 - 5}" x2="${x0}" y1="${y}" y2="${y}" stroke="#555"/>` +
      `<text x="${x0 - 8}" y="${y}" dy="0.32em" text-anchor="end" fill="#444">${escapeHtml(t.label)}</text>`;
  }
  const ym = f1((36 + h - 44) / 2);
  s += `<text transform="translate(16 ${ym}) rotate(-90)" text-anchor="middle" fill="#222">${
    escapeHtml(label)
  }</text>`;
  return s;
}

/**
 * A line chart as an inline SVG string: axes with "nice" ticks and grid lines, axis labels, one `<path>` per
 * series (attribute `data-series` holds its name; each valid point is one M/L command, a gap starts a new M),
 * circle markers on isolated points and on series of up to 24 points, and a legend on the right. Every text
 * is escaped. A chart with no valid point says "no data".
 */
export function lineChart(opts: LineChartOptions): string {
  const { title, xLabel, yLabel, series, logY = false } = opts;
  const W = opts.width ?? 640, H = opts.height ?? 360;
  const valid = (x: number, y: number | null): y is number =>
    Number.isFinite(x) && y !== null && Number.isFinite(y) && (!logY || y > 0);
  let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
  for (const s of series) {
    for (const [x, y] of s.points) {
      if (!valid(x, y)) continue;
      xmin = Math.min(xmin, x);
      xmax = Math.max(xmax, x);
      ymin = Math.min(ymin, y);
      ymax = Math.max(ymax, y);
    }
  }
  const legendW = series.length === 0
    ? 0
    : Math.min(240, 34 + Math.max(...series.map((s) => textWidth(s.name))));
  const x0 = 68, x1 = W - 16 - legendW, y0 = 36, y1 = H - 44;
  let svg = svgOpen(W, H, title, "line-chart");
  const hasData = xmin <= xmax;
  const xa = hasData ? linearAxis(xmin, xmax, Math.max(2, Math.round((x1 - x0) / 90))) : linearAxis(0, 1);
  const ya = hasData ? (logY ? logAxis(ymin, ymax) : linearAxis(ymin, ymax)) : linearAxis(0, 1);
  const toX = (v: number) => x0 + (v - xa.lo) / (xa.hi - xa.lo) * (x1 - x0);
  const toY = logY
    ? (v: number) =>
      y1 - (Math.log10(v) - Math.log10(ya.lo)) / (Math.log10(ya.hi) - Math.log10(ya.lo)) * (y1 - y0)
    : (v: number) => y1 - (v - ya.lo) / (ya.hi - ya.lo) * (y1 - y0);
  svg += yAxisSvg(ya, toY, x0, x1, yLabel, H);
  for (const t of xa.ticks) {
    const x = f1(toX(t.v));
    svg += `<line x1="${x}" x2="${x}" y1="${y0}" y2="${y1}" stroke="#f0f0f0"/>` +
      `<line x1="${x}" x2="${x}" y1="${y1}" y2="${y1 + 5}" stroke="#555"/>` +
      `<text x="${x}" y="${y1 + 18}" text-anchor="middle" fill="#444">${escapeHtml(t.label)}</text>`;
  }
  svg += `<line x1="${x0}" x2="${x1}" y1="${y1}" y2="${y1}" stroke="#555"/>` +
    `<line x1="${x0}" x2="${x0}" y1="${y0}" y2="${y1}" stroke="#555"/>` +
    `<text x="${f1((x0 + x1) / 2)}" y="${H - 8}" text-anchor="middle" fill="#222">${
      escapeHtml(xLabel)
    }</text>`;
  if (!hasData) {
    svg += `<text x="${f1((x0 + x1) / 2)}" y="${
      f1((y0 + y1) / 2)
    }" text-anchor="middle" fill="#888">no data</text>`;
  }
  const style = (s: LineSeries, i: number) => ({
    color: PALETTE[(s.color ?? i) % PALETTE.length],
    dash: s.dashed === undefined
      ? DASHES[Math.floor(i / PALETTE.length) % DASHES.length]
      : s.dashed
      ? DASHES.find((d) => d) ?? "6 4"
      : "",
  });
  series.forEach((s, i) => {
    const { color, dash } = style(s, i);
    let d = "", prev = false, n = 0;
    const pts: [number, number, boolean][] = []; // x, y, isolated
    s.points.forEach(([x, y], j) => {
      if (!valid(x, y)) {
        prev = false;
        return;
      }
      const px = toX(x), py = toY(y);
      d += `${d ? " " : ""}${prev ? "L" : "M"}${f1(px)} ${f1(py)}`;
      const next = s.points[j + 1];
      pts.push([px, py, !prev && !(next && valid(next[0], next[1]))]);
      prev = true;
      n++;
    });
    svg +=
      `<path data-series="${escapeHtml(s.name)}" data-points="${n}" d="${d}" fill="none" stroke="${color}" ` +
      `stroke-width="2" stroke-linejoin="round" stroke-linecap="round"${
        dash ? ` stroke-dasharray="${dash}"` : ""
      }/>`;
    for (const [px, py, iso] of pts) {
      if (iso || n <= 24) {
        svg += `<circle cx="${f1(px)}" cy="${f1(py)}" r="${iso ? 3.5 : 2.5}" fill="${color}"/>`;
      }
    }
  });
  if (series.length > 0) {
    svg += `<g class="legend">`;
    series.forEach((s, i) => {
      const { color, dash } = style(s, i);
      const lx = x1 + 14, ly = y0 + 8 + i * 18;
      const maxChars = Math.floor((240 - 34) / (12 * 0.58)); // names are cut only at the legend's cap
      const shown = s.name.length > maxChars ? s.name.slice(0, Math.max(1, maxChars - 1)) + "…" : s.name;
      svg += `<line x1="${lx}" x2="${lx + 20}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2.5"` +
        `${dash ? ` stroke-dasharray="${dash}"` : ""}/><text x="${
          lx + 26
        }" y="${ly}" dy="0.32em" fill="#222">` +
        `${shown !== s.name ? `<title>${escapeHtml(s.name)}</title>` : ""}${escapeHtml(shown)}</text>`;
    });
    svg += `</g>`;
  }
  return svg + `</svg>`;
}

/** One bar of a bar chart: its label, value and an optional spread drawn as an error bar (value ± err). */
export interface Bar {
  /** Label under the bar. */
  label: string;
  /** Height of the bar; null or non-finite draws "n/a". */
  value: number | null;
  /** Half-length of the error bar (e.g. a standard deviation over seeds); omitted or 0 draws none. */
  err?: number;
}

/** Options of `barChart`. */
export interface BarChartOptions {
  /** Title drawn above the plot. */
  title: string;
  /** y-axis label. */
  yLabel: string;
  /** The bars, left to right, coloured in order from `PALETTE`. */
  bars: Bar[];
  /** Width of the SVG in pixels (default 640). */
  width?: number;
  /** Height of the SVG in pixels (default 360, more when labels are rotated). */
  height?: number;
}

/**
 * A bar chart as an inline SVG string: one `<rect>` per finite bar (attribute `data-label`), from zero (so
 * negative values hang below the axis), an error bar with caps for each `err` > 0 (`<g class="err">`), the value
 * above each bar, labels below (rotated when they do not fit), y axis with ticks and grid. Every text is escaped.
 */
export function barChart(opts: BarChartOptions): string {
  const { title, yLabel, bars } = opts;
  const W = opts.width ?? 640;
  const x0 = 68, x1 = W - 16, y0 = 36;
  const slot = (x1 - x0) / Math.max(1, bars.length);
  const longest = Math.max(0, ...bars.map((b) => textWidth(b.label)));
  const rotate = longest > slot - 6;
  const extra = rotate ? Math.min(140, Math.ceil(longest * 0.64)) : 0;
  const H = (opts.height ?? 360) + extra;
  const y1 = H - 44 - extra;
  const ok = (b: Bar): b is Bar & { value: number } => b.value !== null && Number.isFinite(b.value);
  const errOf = (b: Bar) => (b.err !== undefined && Number.isFinite(b.err) && b.err > 0 ? b.err : 0);
  let lo = 0, hi = 0;
  for (const b of bars) {
    if (!ok(b)) continue;
    lo = Math.min(lo, b.value - errOf(b));
    hi = Math.max(hi, b.value + errOf(b));
  }
  if (lo === hi) hi = 1;
  const ya = linearAxis(lo, hi);
  const toY = (v: number) => y1 - (v - ya.lo) / (ya.hi - ya.lo) * (y1 - y0);
  let svg = svgOpen(W, H, title, "bar-chart") + yAxisSvg(ya, toY, x0, x1, yLabel, H - extra);
  const zero = toY(0), bw = Math.min(80, slot * 0.62);
  bars.forEach((b, i) => {
    const cx = x0 + slot * (i + 0.5);
    const label = escapeHtml(b.label);
    svg += rotate
      ? `<text transform="translate(${f1(cx)} ${
        y1 + 12
      }) rotate(-35)" text-anchor="end" fill="#333">${label}</text>`
      : `<text x="${f1(cx)}" y="${y1 + 18}" text-anchor="middle" fill="#333">${label}</text>`;
    if (!ok(b)) {
      svg += `<text x="${f1(cx)}" y="${f1(zero - 6)}" text-anchor="middle" fill="#888">n/a</text>`;
      return;
    }
    const top = toY(Math.max(0, b.value)), bottom = toY(Math.min(0, b.value));
    svg += `<rect data-label="${label}" x="${f1(cx - bw / 2)}" y="${f1(top)}" width="${f1(bw)}" ` +
      `height="${f1(Math.max(0.5, bottom - top))}" fill="${PALETTE[i % PALETTE.length]}"><title>${label}: ` +
      `${escapeHtml(formatNumber(b.value))}${
        errOf(b) ? ` ± ${escapeHtml(formatNumber(errOf(b)))}` : ""
      }</title></rect>`;
    const e = errOf(b);
    if (e) {
      const ea = f1(toY(b.value + e)), eb = f1(toY(b.value - e)), c = Math.min(8, bw / 4);
      svg +=
        `<g class="err" stroke="#222" stroke-width="1.5"><line x1="${f1(cx)}" x2="${f1(cx)}" y1="${ea}" ` +
        `y2="${eb}"/><line x1="${f1(cx - c)}" x2="${f1(cx + c)}" y1="${ea}" y2="${ea}"/>` +
        `<line x1="${f1(cx - c)}" x2="${f1(cx + c)}" y1="${eb}" y2="${eb}"/></g>`;
    }
    const vy = b.value >= 0 ? toY(b.value + e) - 6 : toY(b.value - e) + 14;
    svg += `<text x="${f1(cx)}" y="${f1(vy)}" text-anchor="middle" fill="#222" font-size="11">` +
      `${escapeHtml(formatNumber(b.value, 3))}</text>`;
  });
  svg += `<line x1="${x0}" x2="${x1}" y1="${f1(zero)}" y2="${f1(zero)}" stroke="#555"/>` +
    `<line x1="${x0}" x2="${x0}" y1="${y0}" y2="${y1}" stroke="#555"/>`;
  if (bars.length === 0) {
    svg += `<text x="${f1((x0 + x1) / 2)}" y="${
      f1((y0 + y1) / 2)
    }" text-anchor="middle" fill="#888">no data</text>`;
  }
  return svg + `</svg>`;
}
