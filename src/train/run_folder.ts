/**
 * A run's folder, `runs/<name>/`: `config.json`, `metrics.jsonl` and `checkpoints/`. What a run leaves on disk
 * and how a run finds its way back to it: the newest checkpoint that reads back whole, the metrics cut back to
 * its step, the temporaries of an interrupted save removed, and which configuration keys a resumed run may
 * change (the same policy for `train()`, the command line and every other caller).
 * @module
 */
import { ConfigError, IoError, LayerlockError } from "../errors.ts";
import { setPath, type TrainConfig } from "../config.ts";
import type { Module } from "../nn/module.ts";
import type { ParamOptimizer } from "../optim/adamw.ts";
import {
  type CheckpointMeta,
  checkpointStep,
  listCheckpoints,
  saveCheckpoint,
  verifyCheckpoint,
} from "./checkpoint.ts";

/** Keys a resumed run may change: logging, the total length, how data is read, speed settings, testing aids. */
export const RESUME_CHANGEABLE = [
  "log.*",
  "optim.steps",
  "threads",
  "device",
  "data.path",
  "data.workers",
  "data.prefetch",
  "data.decoder",
  "data.index",
  "dist.timeoutS",
  "dist.bucketMb",
  "dist.overlap",
  "graphs.*",
  "layerlock.targetStream",
  "nonFinite.*",
  "debug.*",
] as const;

/** Whether a resumed run may change `key` (a dotted path). */
export function resumeMayChange(key: string): boolean {
  return RESUME_CHANGEABLE.some((k) => k.endsWith(".*") ? key.startsWith(k.slice(0, -1)) : key === k);
}

/** One configuration key that differs between a run and the run it resumes. */
export interface ConfigDiff {
  key: string;
  saved: unknown;
  given: unknown;
}

/** The leaves of `given` that differ from `saved` (the run's name aside): those a resume may change, and the rest. */
export function compareToSaved(
  given: unknown,
  saved: unknown,
): { changed: ConfigDiff[]; refused: ConfigDiff[] } {
  const changed: ConfigDiff[] = [], refused: ConfigDiff[] = [];
  const walk = (g: unknown, s: unknown, key: string) => {
    if (typeof g === "object" && g !== null && !Array.isArray(g)) {
      for (const [k, v] of Object.entries(g)) {
        const sv = typeof s === "object" && s !== null ? (s as Record<string, unknown>)[k] : undefined;
        walk(v, sv, key ? `${key}.${k}` : k);
      }
      return;
    }
    if (key === "name" || JSON.stringify(g) === JSON.stringify(s)) return;
    (resumeMayChange(key) ? changed : refused).push({ key, saved: s, given: g });
  };
  walk(given, saved, "");
  return { changed, refused };
}

/**
 * Throws a ConfigError naming every key of `given` that `saved` (the configuration `runDir`'s run was trained
 * with) holds otherwise and a resumed run may not change.
 */
export function checkResumable(runDir: string, given: unknown, saved: unknown): ConfigDiff[] {
  const { changed, refused } = compareToSaved(given, saved);
  if (refused.length) {
    const keys = refused.map((d) =>
      `${d.key} (saved ${JSON.stringify(d.saved)}, given ${JSON.stringify(d.given)})`
    );
    throw new ConfigError(
      "resume",
      `${runDir} was trained with another configuration, which a resumed run keeps: ${keys.join("; ")}. ` +
        "Drop these flags to continue it, or pass another --name to start a new run " +
        `(safe to change on resume: ${RESUME_CHANGEABLE.join(", ")})`,
    );
  }
  return changed;
}

/** Cuts the records of steps after `step` from a metrics.jsonl file (atomically; an absent file stays absent). */
export function cutMetrics(path: string, step: number): void {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw new IoError(path, `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  const kept = text.split("\n").filter((line) => {
    if (!line.trim()) return false;
    try {
      const s = JSON.parse(line).step;
      return typeof s !== "number" || s <= step;
    } catch {
      return false; // a line cut by the kill
    }
  });
  const out = kept.length ? kept.join("\n") + "\n" : "";
  if (out === text) return;
  Deno.writeTextFileSync(`${path}.tmp`, out);
  Deno.renameSync(`${path}.tmp`, path);
}

/**
 * The newest of `checkpoints` (oldest first) that reads back as written (`verifyCheckpoint`: its checksums, or
 * for older files its structure), passing over newer ones that do not (cut, corrupt), each named through
 * `warn`. An IoError naming every file when none does.
 */
export function newestIntact(checkpoints: readonly string[], warn: (message: string) => void): string {
  const why: string[] = [];
  for (let i = checkpoints.length - 1; i >= 0; i--) {
    const path = checkpoints[i];
    try {
      verifyCheckpoint(path); // checksums (or, for older files, structure), and no tensor made
      if (why.length) warn(`resuming from ${path}: the newer ${why.join("; ")}`);
      return path;
    } catch (e) {
      if (!(e instanceof LayerlockError)) throw e;
      why.push(`${path} is unreadable (${e.message.split("\n")[0]})`);
    }
  }
  throw new IoError(checkpoints[0] ?? "checkpoints", `no checkpoint can be read: ${why.join("; ")}`);
}

/** metrics.jsonl, open for appending one JSON record per line. */
export interface MetricsLog {
  /** Appends one record. */
  write(record: unknown): void;
  /** Closes the file. */
  close(): void;
}

/** A run folder: where its files are, and the operations on them. */
export class RunFolder {
  /** runs/<name>. */
  readonly dir: string;
  /** runs/<name>/checkpoints. */
  readonly checkpointDir: string;

  constructor(dir: string) {
    this.dir = dir;
    this.checkpointDir = `${dir}/checkpoints`;
  }

  /** The checkpoint files, oldest first. */
  checkpoints(): string[] {
    return listCheckpoints(this.checkpointDir);
  }

  /** The newest checkpoint file, or null when there is none. */
  newestCheckpoint(): string | null {
    return this.checkpoints().at(-1) ?? null;
  }

  /** The step of the newest checkpoint (0 when there is none). */
  completedSteps(): number {
    const newest = this.newestCheckpoint();
    return newest ? checkpointStep(newest) : 0;
  }

  /** Removes the temporary files of checkpoint writes a kill interrupted (`*.safetensors.tmp`). */
  removeStaleTemporaries(): void {
    try {
      for (const e of Deno.readDirSync(this.checkpointDir)) {
        if (e.isFile && e.name.endsWith(".safetensors.tmp")) {
          Deno.removeSync(`${this.checkpointDir}/${e.name}`);
        }
      }
    } catch { /* no folder yet, or not ours to clean: the checkpoints themselves are checked on resume */ }
  }

  /**
   * The checkpoint a run continues from: none for a fresh start, else the newest intact one (newer unreadable
   * ones are named through `warn`). A ConfigError when a fresh start finds checkpoints or a resume finds none.
   */
  resumePoint(resume: boolean, warn: (message: string) => void): string | null {
    const existing = this.checkpoints();
    if (!resume && existing.length > 0) {
      throw new ConfigError(
        "train",
        `${this.dir} already holds checkpoints; pass --resume to continue it, or choose another --name`,
      );
    }
    if (resume && existing.length === 0) {
      throw new ConfigError("train", `nothing to resume in ${this.checkpointDir}`);
    }
    return resume ? newestIntact(existing, warn) : null;
  }

  /**
   * Opens metrics.jsonl for a run that starts at checkpoint `from` (records past its step, logged before a kill
   * and trained again now, are cut), or from scratch (`from` null: the file is emptied, unless `keepEvents`, after
   * a rollback to the start, keeps its records of step 0); then writes `pending` records.
   */
  openMetrics(from: string | null, keepEvents: boolean, pending: readonly unknown[]): MetricsLog {
    const path = `${this.dir}/metrics.jsonl`;
    try {
      Deno.mkdirSync(this.dir, { recursive: true });
      if (from) cutMetrics(path, checkpointStep(from));
      else if (keepEvents) cutMetrics(path, 0);
      else Deno.writeTextFileSync(path, "");
      const file = Deno.openSync(path, { append: true, create: true });
      const enc = new TextEncoder();
      const log: MetricsLog = {
        write: (r) => file.writeSync(enc.encode(JSON.stringify(r) + "\n")),
        close: () => file.close(),
      };
      for (const r of pending) log.write(r);
      return log;
    } catch (e) {
      throw new IoError(this.dir, `cannot write the run folder ${this.dir}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  /**
   * Writes config.json, the configuration a resumed run reads back; a hold (`debug.holdAt`) is for the invocation
   * that asks for it and is left out.
   */
  writeConfig(cfg: TrainConfig): void {
    const { holdAt: _h, holdRank: _r, ...debug } = cfg.debug;
    this.#write("config.json", { ...cfg, debug });
  }

  /** Writes labels.json, a labelled folder's class ids (reused for its validation and test lists). */
  writeLabels(classes: Record<string, number>): void {
    this.#write("labels.json", classes);
  }

  #write(file: string, value: unknown): void {
    try {
      Deno.mkdirSync(this.dir, { recursive: true });
      Deno.writeTextFileSync(`${this.dir}/${file}`, JSON.stringify(value, null, 2) + "\n");
    } catch (e) {
      throw new IoError(this.dir, `cannot write the run folder ${this.dir}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  /** Saves a checkpoint (see `saveCheckpoint`), keeping the newest `keep`; returns its path. */
  saveCheckpoint(
    modules: Record<string, Module>,
    opt: ParamOptimizer,
    meta: CheckpointMeta,
    keep: number,
  ): string {
    return saveCheckpoint(this.checkpointDir, modules, opt, meta, keep);
  }
}

/** What `resolveRun` decided: the raw configuration to train, where it came from, and whether it resumes. */
export interface RunChoice {
  /** The configuration (the saved one, with the changes a resume may make, when it resumes). */
  raw: Record<string, unknown>;
  /** Where it was read from, for error messages. */
  source: string;
  /** Whether the run continues the one in its folder. */
  resume: boolean;
  /** What the choice did, one line each (`resuming with optim.steps = 44 (was 40)`). */
  notes: string[];
}

/**
 * Which run a command's configuration `raw` trains (under `root`, default `runs`): a run folder that holds
 * checkpoints continues when it is named again (with `resume`, or by re-running the same command: what a
 * requeued cluster job does), keeping its saved configuration but for the keys a resume may change (others are
 * a ConfigError naming each); an unnamed run never lands on an earlier one (`default`, `default-2`, …).
 */
export function resolveRun(raw: Record<string, unknown>, resume: boolean, root = "runs"): RunChoice {
  const named = typeof raw.name === "string";
  let name = named ? raw.name as string : "default";
  const folder = (n: string) => new RunFolder(`${root}/${n}`);
  const notes: string[] = [];
  if (!resume && named && folder(name).checkpoints().length > 0) {
    resume = true;
    notes.push(`${root}/${name} holds a run; continuing it (another --name starts a new one)`);
  }
  if (!resume) {
    if (!named) { for (let i = 2; folder(name).checkpoints().length > 0; i++) name = `default-${i}`; }
    return { raw: { ...raw, name }, source: "configuration", resume: false, notes };
  }
  const path = `${root}/${name}/config.json`;
  let saved: Record<string, unknown>;
  try {
    saved = JSON.parse(Deno.readTextFileSync(path));
  } catch {
    throw new ConfigError("resume", `cannot resume: ${path} is missing or unreadable`);
  }
  for (const d of checkResumable(`${root}/${name}`, raw, saved)) {
    setPath(saved, d.key, d.given);
    notes.push(`resuming with ${d.key} = ${JSON.stringify(d.given)} (was ${JSON.stringify(d.saved)})`);
  }
  saved.name = name; // the folder named, whatever name a copied config.json holds
  return { raw: saved, source: path, resume: true, notes };
}
