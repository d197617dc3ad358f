/**
 * The experiment report: a self-contained `report.html` that opens from disk in a browser with no server and no
 * network (inline CSS, inline SVG charts from charts.ts, fragments from html.ts; PNG images referenced by
 * relative path beside the HTML). `renderReport` assembles the page, `writeReport` writes it with its PNGs, and
 * `checkReport` re-reads a written report and lists the images it references and whether each exists. Pure.
 * @module
 */
import { dirname, isAbsolute, join, relative } from "node:path";
import { escapeHtml, unescapeHtml } from "./html.ts";
import { ConfigError } from "../errors.ts";

/** One section of the report: a heading (escaped) and HTML built with the helpers of this module. */
export interface ReportSection {
  /** Section heading (plain text). */
  heading: string;
  /** Section body, HTML (charts, tables, figures, paragraphs with escaped text). */
  html: string;
}

/** Content of `renderReport`. */
export interface ReportContent {
  /** Page title and top heading (plain text). */
  title: string;
  /** A line under the title (plain text), e.g. what was run and when. */
  subtitle?: string;
  /** The sections, in order; with three or more a table of contents links them. */
  sections: ReportSection[];
}

const CSS = `
:root{color-scheme:light}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#222;background:#fafafa;
margin:0;line-height:1.5}
main{max-width:980px;margin:0 auto;padding:24px 20px 64px;background:#fff;min-height:100vh;box-sizing:border-box}
h1{font-size:1.7em;margin:.2em 0}
.subtitle{color:#555;margin-top:0}
h2{font-size:1.3em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
nav ol{padding-left:1.4em;margin:.4em 0}
svg.chart{max-width:100%;height:auto;display:block;margin:12px 0}
table{border-collapse:collapse;margin:12px 0;font-size:.92em}
caption{text-align:left;color:#555;padding-bottom:4px}
th,td{border:1px solid #ddd;padding:4px 10px;text-align:left;vertical-align:top}
thead th{background:#f3f3f3}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.empty{color:#999;text-align:center}
figure{margin:12px 0;display:inline-block;vertical-align:top;margin-right:16px}
figure img{max-width:100%;display:block;border:1px solid #ddd}
figcaption{color:#555;font-size:.9em;margin-top:4px}
code{background:#f3f3f3;padding:0 3px;border-radius:3px}
`.trim();

function slug(text: string, used: Set<string>): string {
  const base = text.toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") ||
    "section";
  let id = base;
  for (let k = 2; used.has(id); k++) id = `${base}-${k}`;
  used.add(id);
  return id;
}

/**
 * The whole page: doctype, UTF-8, inline CSS (no external resources), title and subtitle, a table of contents
 * for three or more sections, and each section as `<section id=…><h2>…</h2>…</section>`. Texts are escaped;
 * section bodies are inserted as they are.
 */
export function renderReport(content: ReportContent): string {
  const used = new Set<string>();
  const ids = content.sections.map((s) => slug(s.heading, used));
  const toc = content.sections.length >= 3
    ? `<nav><ol>${
      content.sections.map((s, i) => `<li><a href="#${ids[i]}">${escapeHtml(s.heading)}</a></li>`).join("")
    }</ol></nav>`
    : "";
  const sections = content.sections.map((s, i) =>
    `<section id="${ids[i]}">\n<h2>${escapeHtml(s.heading)}</h2>\n${s.html}\n</section>`
  ).join("\n");
  return `<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">\n` +
    `<title>${escapeHtml(content.title)}</title>\n<style>\n${CSS}\n</style>\n</head>\n<body>\n<main>\n` +
    `<h1>${escapeHtml(content.title)}</h1>\n` +
    (content.subtitle ? `<p class="subtitle">${escapeHtml(content.subtitle)}</p>\n` : "") +
    `${toc}\n${sections}\n</main>\n</body>\n</html>\n`;
}

/** An image file to write beside the report: a relative path such as `frames/clip0.png`, and its bytes. */
export interface ReportImage {
  /** Relative path inside the report directory: letters, digits, `._-` and `/`; no `..` segments. */
  name: string;
  /** The file's bytes (from `encodePng`). */
  png: Uint8Array;
}

/**
 * Writes the images (creating subdirectories) and then `report.html` into `dir` (created if needed); returns
 * the report's path. Throws a ConfigError for an image name that is absolute, has `..` or odd characters.
 */
export async function writeReport(dir: string, html: string, images: ReportImage[] = []): Promise<string> {
  for (const { name } of images) {
    if (
      !/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(name) ||
      name.split("/").some((p) => p === ".." || p === ".")
    ) {
      throw new ConfigError(
        "writeReport",
        `writeReport: image name must be a plain relative path, got ${JSON.stringify(name)}`,
      );
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  for (const { name, png } of images) {
    const path = join(dir, name);
    await Deno.mkdir(dirname(path), { recursive: true });
    await Deno.writeFile(path, png);
  }
  const path = join(dir, "report.html");
  await Deno.writeTextFile(path, html);
  return path;
}

/** One image reference found in a report. */
export interface ReportImageRef {
  /** The `src` attribute as written (entities decoded). */
  src: string;
  /** The file it resolves to (null for inline `data:` URIs). */
  path: string | null;
  /** Whether that file exists (true for `data:` URIs). */
  exists: boolean;
}

/** What `checkReport` found. */
export interface ReportCheck {
  /** Every distinct `src=` reference, in order of first appearance. */
  images: ReportImageRef[];
  /** The `src` of each reference whose file does not exist. */
  missing: string[];
  /** Other reasons the report is not self-contained or well formed (external URLs, stylesheets, no <html>). */
  problems: string[];
  /** No missing image and no problem. */
  ok: boolean;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Reads `dir/report.html`, finds every `src=` attribute of its tags and checks that each relative reference
 * exists as a file under `dir`. Also reports, as `problems`, what would stop the page working from disk
 * offline: a missing report.html, no `<html>`/`<body>`, absolute or network references (`http:`, `//`, `/…`),
 * `<link>` stylesheets/fonts, `@import` or `url(http…)` in CSS, and references that leave `dir`.
 */
export async function checkReport(dir: string): Promise<ReportCheck> {
  const problems: string[] = [];
  let html: string;
  try {
    html = await Deno.readTextFile(join(dir, "report.html"));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    return { images: [], missing: [], problems: [`${join(dir, "report.html")} does not exist`], ok: false };
  }
  const body = html.replace(/<!--[\s\S]*?-->/g, "");
  if (!/<html[\s>]/i.test(body) || !/<\/html>/i.test(body)) problems.push("no <html> element");
  if (!/<body[\s>]/i.test(body)) problems.push("no <body> element");
  if (/@import\b/i.test(body)) problems.push("CSS @import");
  if (/url\(\s*['"]?(https?:)?\/\//i.test(body)) problems.push("CSS url() to the network");
  const srcs: string[] = [];
  for (const tag of body.matchAll(/<([a-zA-Z][\w:-]*)((?:\s[^<>]*)?)>/g)) {
    const name = tag[1].toLowerCase();
    for (const a of tag[2].matchAll(/([^\s"'=<>\/]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))/g)) {
      const attr = a[1].toLowerCase(), value = unescapeHtml(a[2] ?? a[3] ?? a[4] ?? "");
      if (attr === "src" && !srcs.includes(value)) srcs.push(value);
      if (attr === "href" && name === "link") problems.push(`<link href="${value}">`);
    }
  }
  const images: ReportImageRef[] = [];
  for (const src of srcs) {
    if (/^data:/i.test(src)) {
      images.push({ src, path: null, exists: true });
      continue;
    }
    if (/^[a-z][a-z0-9+.-]*:/i.test(src) || src.startsWith("//") || src.startsWith("/")) {
      problems.push(`not a relative reference: ${src}`);
      images.push({ src, path: null, exists: false });
      continue;
    }
    let file: string;
    try {
      file = decodeURI(src.replace(/[?#].*$/, ""));
    } catch {
      file = src;
    }
    const path = join(dir, file);
    const rel = relative(dir, path);
    if (rel.startsWith("..") || isAbsolute(rel)) {
      problems.push(`reference outside the report directory: ${src}`);
    }
    images.push({ src, path, exists: await isFile(path) });
  }
  const missing = images.filter((i) => !i.exists).map((i) => i.src);
  return { images, missing, problems, ok: missing.length === 0 && problems.length === 0 };
}
