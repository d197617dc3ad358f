/**
 * Data-parallel training over a c10d process group: every rank holds the whole model, parameters start as rank
 * 0's copy, and after each backward the gradients of the parameters that train *now* are averaged in buckets
 * (`GradReducer`), each all-reduced while backward still runs. When LayerLock freezes a block its parameters
 * stop training, so the buckets are rebuilt without them: a frozen block is never communicated again and the
 * bytes per step fall with the frozen depth.
 * @module
 */
import {
  type Backend,
  GradReducer,
  type GradReducerOptions,
  ProcessGroup,
  type ReduceStats,
  Store,
} from "../torch/dist.ts";
import { noGrad } from "../torch/autograd.ts";
import { tensor } from "../torch/creation.ts";
import type { Device } from "../torch/dtype.ts";
import type { Tensor } from "../torch/tensor.ts";
import type { LaunchEnv } from "./launch.ts";
import type { TrainConfig } from "../config.ts";

/** The data-parallel options of a training configuration (`dist.*`). */
export function distOptions(cfg: TrainConfig): DataParallelOptions {
  const d = cfg.dist;
  return {
    backend: d.backend === "auto" ? undefined : d.backend,
    bucketBytes: d.bucketMb * 2 ** 20,
    overlap: d.overlap,
    timeoutMs: d.timeoutS * 1000,
  };
}

/** Options of `DataParallel.init`. */
export interface DataParallelOptions extends GradReducerOptions {
  /** Backend (default: nccl on CUDA where built, else gloo). */
  backend?: Backend;
  /** Timeout of the rendezvous and of every collective, in ms (default 5 minutes). */
  timeoutMs?: number;
}

/** The data-parallel side of a training run: the group, and the reducer of the trainable parameters. */
export class DataParallel {
  readonly #store: Store;
  readonly #group: ProcessGroup;
  readonly #opts: GradReducerOptions;
  #reducer: GradReducer | null = null;
  #trainable: readonly Tensor[] = [];
  /** Times the buckets were (re)built: once at the start and once per change of the trainable set. */
  rebuilds = 0;

  /** This process's rank on its host (its GPU). */
  readonly localRank: number;
  /** Where the small tensors of `sum` live (NCCL reduces CUDA tensors only). */
  readonly #device: Device;

  private constructor(
    store: Store,
    group: ProcessGroup,
    opts: GradReducerOptions,
    localRank: number,
    device: Device,
  ) {
    this.localRank = localRank;
    this.#device = device;
    this.#store = store;
    this.#group = group;
    this.#opts = opts;
  }

  /**
   * Joins the job `env` describes: connects to its TCP store (as a client of torchrun's agent store, or served
   * by rank 0), in a key space of the launcher's attempt, and makes the process group.
   */
  static init(env: LaunchEnv, device: Device, opts: DataParallelOptions = {}): DataParallel {
    const timeoutMs = opts.timeoutMs ?? 300_000;
    const backend = opts.backend ?? (device.startsWith("cuda") ? "nccl" : "gloo");
    const tcp = Store.tcp(env.masterAddr, env.masterPort, {
      isServer: !env.agentStore && env.rank === 0,
      worldSize: env.worldSize,
      timeoutMs,
    });
    let store: Store;
    try {
      store = tcp.prefixed(`/worker/attempt_${env.restartCount}`);
    } finally {
      tcp.dispose(); // the prefixed view keeps the connection alive
    }
    try {
      const group = new ProcessGroup(store, { rank: env.rank, size: env.worldSize, backend, timeoutMs });
      return new DataParallel(
        store,
        group,
        { bucketBytes: opts.bucketBytes, overlap: opts.overlap },
        env.localRank,
        device === "cuda" ? `cuda:${env.localRank}` : device,
      );
    } catch (e) {
      store.dispose();
      throw e;
    }
  }

  /** Wraps an existing group (tests). */
  static ofGroup(store: Store, group: ProcessGroup, opts: GradReducerOptions = {}): DataParallel {
    return new DataParallel(store, group, opts, group.rank, "cpu");
  }

  /** This process's rank. */
  get rank(): number {
    return this.#group.rank;
  }
  /** The number of processes. */
  get size(): number {
    return this.#group.size;
  }
  /** The process group. */
  get group(): ProcessGroup {
    return this.#group;
  }
  /** The job's store (for small metadata shared between ranks). */
  get store(): Store {
    return this.#store;
  }
  /** Overwrites every parameter with rank 0's copy (at the start: all ranks then begin identical). */
  broadcastParameters(params: readonly Tensor[]): void {
    noGrad(() => this.#group.broadcast(params, 0));
  }

  /**
   * Makes sure the reducer covers exactly `trainable` (the parameters that require grad now): rebuilt when the
   * set changed, e.g. after a freeze. Call before backward.
   */
  prepare(trainable: readonly Tensor[]): void {
    const same = trainable.length === this.#trainable.length &&
      trainable.every((t, i) => t === this.#trainable[i]);
    if (same && this.#reducer) return;
    this.#reducer?.dispose();
    this.#reducer = null;
    this.#trainable = [...trainable];
    if (trainable.length > 0) this.#reducer = new GradReducer(this.#group, trainable, this.#opts);
    this.rebuilds++;
  }

  /** Averages the gradients of the step over the ranks (after backward, before clipping and the optimiser). */
  finish(): ReduceStats {
    if (!this.#reducer) return { buckets: 0, bytes: 0, waitMs: 0 };
    return this.#reducer.finish();
  }

  /** Sums small host numbers over the ranks (one all-reduce of a f64 vector). */
  sum(values: readonly number[]): number[] {
    const t = tensor(values as number[], { dtype: "f64", device: this.#device });
    try {
      this.#group.allReduce([t], "sum");
      return Array.from(t.toArray() as Float64Array);
    } finally {
      t.dispose();
    }
  }

  /** Whether any rank says yes (e.g. "stop now": every rank then stops at the same step). */
  any(flag: boolean): boolean {
    return this.sum([flag ? 1 : 0])[0] > 0;
  }

  /**
   * At a logging boundary: records this rank's progress in the store (what a failure report names) and returns
   * whether any rank was asked to stop, so that every rank stops — and enters the logging and saving collectives —
   * at the same step (one tiny collective per window, not per step).
   */
  agreeToStop(step: number, requested: boolean): boolean {
    this.heartbeat(step);
    return this.any(requested);
  }

  /** Records in the store that this rank has reached `step` (read by `whoStopped` when a collective fails). */
  heartbeat(step: number): void {
    this.#store.add(`step/${this.rank}`, step - this.#reported);
    this.#reported = step;
  }
  #reported = 0;

  /**
   * After a failed collective, names the ranks that are gone: every rank still alive says so in the store and
   * waits `graceMs` for the others; those that never answer are dead or hung ("rank 1 did not answer (dead or
   * hung; it last reached step 8)"). Empty when everyone answered or the store cannot tell (it may have died
   * with rank 0).
   */
  whoStopped(graceMs = 3000): string {
    try {
      this.#store.add(`alive/${this.rank}`, 1);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, graceMs);
      const silent = Array.from({ length: this.size }, (_, r) => r).filter((r) =>
        this.#store.add(`alive/${r}`, 0) === 0
      );
      return silent.map((r) => {
        const step = this.#store.add(`step/${r}`, 0);
        return `rank ${r} did not answer (dead or hung; it last reached step ${step})`;
      }).join("; ");
    } catch {
      return "";
    }
  }

  /** Waits for every rank. */
  barrier(): void {
    this.#group.barrier();
  }

  /** Frees the reducer, the group and the store. */
  dispose(): void {
    this.#reducer?.dispose();
    this.#reducer = null;
    this.#group.dispose();
    this.#store.dispose();
  }
}
