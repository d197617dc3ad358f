/**
 * The labelled videos of a folder probe (`src/eval/probe_run.ts`): the train, val and (optional) test splits,
 * read from annotation lists (`path[,label]` per line, paths relative to the data root) or from class folders
 * (`root/train/<class>/<video>`, …), the class mapping of the training split (checked against the others), and
 * notes on held-out videos that are training videos too. A mistake in the user's data (a bad line, a missing
 * file, an unknown label, a single class) is a ConfigError: a usage error, naming the flag, file or line.
 * @module
 */
import {
  type Annotation,
  annotationsFromFolders,
  checkFilesExist,
  labelMap,
  parseAnnotations,
} from "../data/annotations.ts";
import { VIDEO_EXTENSIONS } from "../data/video_folder.ts";
import { ConfigError, DataError } from "../errors.ts";
import { isDir, isFile, sha256Hex } from "./paths.ts";

/** The splits of a folder probe, in order; test is optional. */
export const PROBE_SPLITS = ["train", "val", "test"] as const;
/** One of the splits. */
export type ProbeSplitName = (typeof PROBE_SPLITS)[number];

/** A split of the user's data: where its videos are and what they are. */
export interface LabelledSplit {
  /** train, val or test. */
  name: ProbeSplitName;
  /** The folder VideoFolder.open scans (the root with a list; the split's subfolder with class folders). */
  dir: string;
  /** The annotation list, or null (class folders). */
  list: string | null;
  /** SHA-256 of the list's text, or null. */
  listHash: string | null;
  /** The split's videos and their labels. */
  entries: Annotation[];
}

/**
 * Where the splits are listed: annotation lists (`lists.train`, `lists.val`, optional `lists.test`; each the path
 * as given, else relative to the root), or class folders (`dirs.<split>`, default the split's name under the
 * root; test is left out when its default folder does not exist).
 */
export type ProbeDataSource =
  | { mode: "lists"; lists: Partial<Record<ProbeSplitName, string>> }
  | { mode: "class-folders"; dirs: Partial<Record<ProbeSplitName, string>> };

/** The splits read, and their classes. */
export interface ProbeData {
  /** The data root, without a trailing slash. */
  root: string;
  /** `lists` or `class-folders`. */
  mode: ProbeDataSource["mode"];
  /** train, val and, when there is one, test. */
  splits: LabelledSplit[];
  /** Label name → class id, from the training split. */
  classes: Record<string, number>;
  /** 1 + the largest class id. */
  numClasses: number;
  /** One line per held-out split that shares videos with the training split (its accuracy is not held-out). */
  overlaps: string[];
}

function fail(where: string, message: string, cause?: unknown): never {
  throw new ConfigError(where, message, cause === undefined ? undefined : { cause });
}

/** A user mistake found by the data modules (a bad list line, a missing file, …) is a usage error. */
function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof DataError) fail(e.where, e.message, e);
    throw e;
  }
}

/** Resolves a list flag: the path as given, or relative to the data root (lists often ship inside it). */
function listPath(flag: string, given: string, root: string): string {
  if (isFile(given)) return given;
  const under = `${root}/${given}`;
  if (!given.startsWith("/") && isFile(under)) return under;
  fail(
    `--${flag}`,
    `--${flag} ${given}: no such file (looked at ${given}${given.startsWith("/") ? "" : ` and ${under}`})`,
  );
}

function readFolderSplit(name: ProbeSplitName, root: string, sub: string | undefined): LabelledSplit | null {
  const rel = sub ?? name;
  const dir = rel.startsWith("/") ? rel : `${root}/${rel}`;
  if (!isDir(dir)) {
    if (name === "test" && sub === undefined) return null;
    fail(dir, `--class-folders: ${dir} is not a folder (the ${name} videos go in ${dir}/<class>/<video>)`);
  }
  const entries = asUsage(() => annotationsFromFolders(dir, VIDEO_EXTENSIONS));
  if (entries.length === 0) {
    fail(dir, `--class-folders: no videos (${VIDEO_EXTENSIONS.join(", ")}) under ${dir}/<class>/`);
  }
  return { name, dir, list: null, listHash: null, entries };
}

async function readListSplit(
  name: ProbeSplitName,
  root: string,
  given: string | undefined,
): Promise<LabelledSplit | null> {
  const flag = `${name}-list`;
  if (given === undefined) {
    if (name === "test") return null;
    fail(`--${flag}`, `pass --${flag} FILE (or --class-folders)`);
  }
  const list = listPath(flag, given, root);
  let text: string;
  try {
    text = await Deno.readTextFile(list);
  } catch (e) {
    fail(list, `cannot read --${flag} ${list}: ${(e as Error).message}`, e);
  }
  const entries = asUsage(() => parseAnnotations(text, { source: list, root }));
  if (entries.length === 0) fail(list, `--${flag} ${list} lists no videos`);
  asUsage(() => checkFilesExist(entries));
  return { name, dir: root, list, listHash: await sha256Hex(text), entries };
}

/** Label name → class id, from the training split; checks the other splits against it. */
function classMapping(splits: LabelledSplit[]): Record<string, number> {
  for (const s of splits) {
    const unlabelled = s.entries.find((e) => e.label === null);
    if (unlabelled) {
      fail(unlabelled.where, `${unlabelled.where}: no label (every ${s.name} video needs one: 'path,label')`);
    }
  }
  const map = asUsage(() => labelMap(splits[0].entries));
  const n = Object.keys(map).length;
  if (n < 2) {
    fail(
      splits[0].list ?? splits[0].dir,
      `the training ${splits[0].list ? "list" : "folder"} has ${n} class${
        n === 1 ? "" : "es"
      }; probing needs 2 or more`,
    );
  }
  for (const s of splits.slice(1)) {
    try {
      labelMap(s.entries, map);
    } catch (e) {
      if (!(e instanceof DataError)) throw e;
      fail(
        e.where,
        s.list ? e.message : e.message.replace(/the training list$/, `the training folder ${splits[0].dir}`),
        e,
      );
    }
  }
  return map;
}

/** One note per held-out split that lists training videos. */
function overlapNotes(splits: LabelledSplit[]): string[] {
  const notes: string[] = [];
  const trainPaths = new Set(splits[0].entries.map((e) => e.path));
  for (const s of splits.slice(1)) {
    const shared = s.entries.filter((e) => trainPaths.has(e.path));
    if (shared.length) {
      notes.push(
        `${shared.length} ${s.name} video(s) are also training videos (e.g. ${shared[0].path}): ` +
          `the ${s.name} accuracy is not held-out`,
      );
    }
  }
  return notes;
}

/**
 * Reads the splits under `dataPath` as `source` says, checks their files and labels, and maps the labels to
 * class ids (the training split's mapping; the other splits may use only its labels). Throws a ConfigError for
 * a missing root, list or folder, a bad line, an unlabelled video, or fewer than 2 classes.
 */
export async function readProbeData(
  dataPath: string | undefined,
  source: ProbeDataSource,
): Promise<ProbeData> {
  if (!dataPath) fail("--data-path", "pass --data-path DIR (the root of the videos)");
  const root = dataPath.replace(/\/+$/, "") || "/";
  if (!isDir(root)) fail("--data-path", `--data-path ${root} is not a folder`);
  const splits: LabelledSplit[] = [];
  for (const name of PROBE_SPLITS) {
    const s = source.mode === "class-folders"
      ? readFolderSplit(name, root, source.dirs[name])
      : await readListSplit(name, root, source.lists[name]);
    if (s) splits.push(s);
  }
  const classes = classMapping(splits);
  return {
    root,
    mode: source.mode,
    splits,
    classes,
    numClasses: Math.max(...Object.values(classes)) + 1,
    overlaps: overlapNotes(splits),
  };
}
