/**
 * Annotation lists of labelled videos, as video datasets ship them: one clip per line, `path[<sep>label]`, the
 * separator a comma (CSV, with `"quoted, fields"`), a tab, or spaces (VideoMAE's Kinetics/SSv2 lists, UCF101's
 * `trainlist01.txt`); `#` starts a comment line. Paths are relative to a root folder unless absolute. Or no list
 * at all: one subfolder per class (`root/<class>/<video>`). Labels become class ids: integer labels are kept
 * as they are (the lists VideoMAE reads already hold ids), names are numbered in sorted order, and a given
 * mapping (the training list's, saved beside the run) is reused for validation and test lists, where an
 * unknown label is an error. Pure: no tensors.
 * @module
 */
import { DataError } from "../errors.ts";

/** One line of a list: a video and its label (null when the list has none). */
export interface Annotation {
  /** The video's path (joined with the root when relative). */
  path: string;
  /** The label as written, or null. */
  label: string | null;
  /** Where it came from (`file:line`), for error messages. */
  where: string;
}

/** Splits one CSV line into fields (RFC 4180 quoting: `"a, b"`, `""` for a quote). */
function csvFields(line: string, where: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let f = "";
      i++;
      for (;;) {
        if (i >= line.length) throw new DataError(where, `${where}: unterminated quoted field`);
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            f += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        f += line[i++];
      }
      out.push(f);
      if (i < line.length && line[i] !== ",") {
        throw new DataError(where, `${where}: text after a closing quote`);
      }
      i++;
    } else {
      const j = line.indexOf(",", i);
      const end = j < 0 ? line.length : j;
      out.push(line.slice(i, end).trim());
      i = end + 1;
    }
  }
  return out;
}

function join(root: string, path: string): string {
  return path.startsWith("/") ? path : `${root.replace(/\/+$/, "")}/${path}`;
}

/**
 * Parses a list's text. Each line is `path`, or `path` and a label separated by a comma, a tab or spaces
 * (with spaces, the label is the last word, so quote paths that contain spaces: `"my clip.mp4" 3`). A line with
 * more than two fields is an error naming `source:line`.
 */
export function parseAnnotations(text: string, opts: { source: string; root: string }): Annotation[] {
  const out: Annotation[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim(), where = `${opts.source}:${i + 1}`;
    if (line === "" || line.startsWith("#")) return;
    let fields: string[];
    if (line.includes("\t")) fields = line.split("\t").map((f) => f.trim());
    else if (line.includes(",") || line.startsWith('"')) {
      fields = line.startsWith('"') && !line.includes(",")
        ? spaceFields(line, where)
        : csvFields(line, where);
    } else fields = spaceFields(line, where);
    fields = fields.filter((f, k) => k === 0 || f !== "");
    if (fields.length > 2) {
      throw new DataError(where, `${where}: expected 'path' or 'path,label', got ${fields.length} fields`);
    }
    if (fields[0] === "") throw new DataError(where, `${where}: empty path`);
    out.push({ path: join(opts.root, fields[0]), label: fields[1] ?? null, where });
  });
  return out;
}

/** Space-separated: a path (quoted when it contains spaces) and an optional label (the last word). */
function spaceFields(line: string, where: string): string[] {
  if (line.startsWith('"')) {
    const close = line.indexOf('"', 1);
    if (close < 0) throw new DataError(where, `${where}: unterminated quoted path`);
    const rest = line.slice(close + 1).trim();
    return rest === "" ? [line.slice(1, close)] : [line.slice(1, close), ...rest.split(/\s+/)];
  }
  return line.split(/\s+/);
}

/**
 * Class-per-subfolder: every file with one of `extensions` under `root/<class>/` (recursively), labelled with
 * its class folder's name, sorted by path.
 */
export function annotationsFromFolders(root: string, extensions: readonly string[]): Annotation[] {
  const out: Annotation[] = [];
  const walk = (dir: string, label: string) => {
    for (const e of Deno.readDirSync(dir)) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) walk(p, label);
      else if (extensions.some((x) => e.name.toLowerCase().endsWith(x))) {
        out.push({ path: p, label, where: p });
      }
    }
  };
  let classes: string[];
  try {
    classes = [...Deno.readDirSync(root)].filter((e) => e.isDirectory).map((e) => e.name).sort();
  } catch (e) {
    throw new DataError(root, `cannot read the video folder ${root}: ${(e as Error).message}`);
  }
  for (const c of classes) walk(`${root.replace(/\/+$/, "")}/${c}`, c);
  return out.sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
}

/**
 * The class ids of a list's labels. With `given` (e.g. the training list's mapping), every label must be in it
 * (an unknown one is an error naming its line). Otherwise: integer labels map to themselves; names to their
 * index in sorted order. Unlabelled entries are an error when any entry has a label.
 */
export function labelMap(
  entries: readonly Annotation[],
  given?: Record<string, number>,
): Record<string, number> {
  const unlabelled = entries.find((e) => e.label === null);
  if (unlabelled && entries.some((e) => e.label !== null)) {
    throw new DataError(unlabelled.where, `${unlabelled.where}: no label, while other lines have one`);
  }
  const labels = [...new Set(entries.map((e) => e.label).filter((l): l is string => l !== null))];
  if (given) {
    const unknown = entries.find((e) => e.label !== null && !(e.label in given));
    if (unknown) {
      throw new DataError(
        unknown.where,
        `${unknown.where}: label '${unknown.label}' is not one of the ${
          Object.keys(given).length
        } classes of ` +
          "the training list",
      );
    }
    return { ...given };
  }
  if (labels.every((l) => /^\d+$/.test(l))) return Object.fromEntries(labels.map((l) => [l, Number(l)]));
  return Object.fromEntries(labels.sort().map((l, i) => [l, i]));
}

/** Throws a DataError listing (the first few of) the entries whose file does not exist. */
export function checkFilesExist(entries: readonly Annotation[]): void {
  const missing = entries.filter((e) => {
    try {
      return !Deno.statSync(e.path).isFile;
    } catch {
      return true;
    }
  });
  if (missing.length) {
    const shown = missing.slice(0, 5).map((e) => `${e.path} (${e.where})`).join(", ");
    throw new DataError(
      missing[0].where,
      `${missing.length} listed file(s) do not exist: ${shown}${missing.length > 5 ? ", …" : ""}`,
    );
  }
}
