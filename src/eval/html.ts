/**
 * HTML fragments for the report: escaping, number formatting, tables and images. Pure TypeScript.
 * @module
 */

/** Escapes text for HTML (and SVG) text content and quoted attribute values: & < > " '. */
export function escapeHtml(text: string): string {
  return String(text).replace(
    /[&<>"']/g,
    (c) => c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === '"' ? "&quot;" : "&#39;",
  );
}

/** Reverses `escapeHtml` and the common numeric entities, for attribute values read back from HTML. */
export function unescapeHtml(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos);/gi, (_, e: string) => {
    const l = e.toLowerCase();
    if (l === "amp") return "&";
    if (l === "lt") return "<";
    if (l === "gt") return ">";
    if (l === "quot") return '"';
    if (l === "apos") return "'";
    return String.fromCodePoint(l[1] === "x" ? parseInt(l.slice(2), 16) : parseInt(l.slice(1), 10));
  });
}

/**
 * Formats a number for tables and labels: integers as they are, others to `digits` significant digits without
 * trailing zeros, exponent notation below 1e-3 or from 1e6 in magnitude; "—" for null/undefined, "NaN"/"∞".
 */
export function formatNumber(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined) return "—";
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "−∞";
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) {
    const [m, e] = v.toExponential(Math.max(0, digits - 1)).split("e");
    return `${String(parseFloat(m))}e${e.replace("+", "")}`;
  }
  return String(parseFloat(v.toPrecision(digits)));
}

/** A table cell: text (escaped), a number (formatted with `formatNumber`, right-aligned), empty, or raw HTML. */
export type Cell = string | number | null | undefined | { html: string };

/**
 * An HTML table. Headers and text cells are escaped; numbers are formatted to `digits` significant digits
 * (default 4) and right-aligned; null/undefined shows "—"; `{ html }` is inserted as it is.
 */
export function table(
  headers: string[],
  rows: Cell[][],
  opts: { caption?: string; digits?: number } = {},
): string {
  const cell = (c: Cell, tag: "td" | "th") => {
    if (typeof c === "number") {
      return `<${tag} class="num">${escapeHtml(formatNumber(c, opts.digits))}</${tag}>`;
    }
    if (c === null || c === undefined) return `<${tag} class="empty">—</${tag}>`;
    if (typeof c === "object") return `<${tag}>${c.html}</${tag}>`;
    return `<${tag}>${escapeHtml(c)}</${tag}>`;
  };
  return `<table>${opts.caption ? `<caption>${escapeHtml(opts.caption)}</caption>` : ""}` +
    `<thead><tr>${headers.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr></thead>` +
    `<tbody>${rows.map((r) => `<tr>${r.map((c) => cell(c, "td")).join("")}</tr>`).join("")}</tbody></table>`;
}

/**
 * A figure showing an image beside the report by relative path (`src` is URI-encoded and escaped), with
 * optional caption and display width in CSS pixels; `pixelated` (default true) keeps enlarged frames sharp.
 */
export function image(
  src: string,
  opts: { alt?: string; caption?: string; width?: number; pixelated?: boolean } = {},
): string {
  const style = [
    opts.width ? `width:${opts.width}px` : "",
    opts.pixelated !== false ? "image-rendering:pixelated" : "",
  ].filter(Boolean).join(";");
  return `<figure><img src="${escapeHtml(encodeURI(src))}" alt="${
    escapeHtml(opts.alt ?? opts.caption ?? src)
  }"` +
    `${style ? ` style="${style}"` : ""}>${
      opts.caption ? `<figcaption>${escapeHtml(opts.caption)}</figcaption>` : ""
    }</figure>`;
}
