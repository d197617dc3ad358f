/**
 * PyTorch's distributed layer (c10d) from Deno: key-value stores (`TcpStore`, `FileStore`, prefixed views), process
 * groups (`ProcessGroup`: Gloo, and NCCL in CUDA builds) with the collectives a data-parallel trainer needs, and
 * `GradReducer`, which averages the gradients of a list of parameters over the group in buckets, each
 * all-reduced as soon as backward has produced it.
 *
 * Ownership: each object owns one native id and frees it in `dispose()` (idempotent; also `using`); `distLive()`
 * counts the live ones, for leak checks. Collectives block, bounded by the group's timeout: a dead or hung peer is
 * a TorchError naming the collective, this rank and the backend.
 * @module
 */
import { lib } from "../../ffi/lib.ts";
import { DIST_BACKEND, DIST_OP } from "../../ffi/symbols.ts";
import { checkStatus } from "../../ffi/check.ts";
import { TorchError } from "../errors.ts";
import { handlesArg, type Tensor } from "./tensor.ts";

/** A process-group backend: `gloo` (CPU, and CUDA tensors through host copies) or `nccl` (CUDA). */
export type Backend = keyof typeof DIST_BACKEND;
/** A reduction of a collective; `avg` is the sum divided by the world size. */
export type ReduceOp = keyof typeof DIST_OP;

const ID = new Int32Array(1);
const NUM = new Float64Array(3);
const enc = new TextEncoder();

/** A NUL-terminated copy of a string, for the shim. */
function cstr(s: string, op: string, what: string): Uint8Array {
  if (s.includes("\0")) throw new TorchError(op, `${what} must not contain NUL characters`);
  return enc.encode(s + "\0");
}

/** The backends compiled into the shim. */
export function distBackends(): Record<Backend, boolean> {
  const out = new Int32Array(2);
  checkStatus(lib.ll_dist_backends(out), "distBackends");
  return { gloo: out[0] === 1, nccl: out[1] === 1 };
}

/** The number of live stores, process groups and reducers (for leak checks). */
export function distLive(): number {
  checkStatus(lib.ll_dist_live(NUM), "distLive");
  return NUM[0];
}

/** An owned native distributed object. */
abstract class DistObject {
  #id: number;
  protected constructor(id: number) {
    this.#id = id;
  }
  /** The native id (throws once disposed). */
  get id(): number {
    if (this.#id === 0) throw new TorchError(this.constructor.name, "used after dispose()");
    return this.#id;
  }
  /** Whether dispose() has run. */
  get disposed(): boolean {
    return this.#id === 0;
  }
  /** Frees the native object (idempotent). */
  dispose(): void {
    if (this.#id === 0) return;
    const id = this.#id;
    this.#id = 0;
    checkStatus(lib.ll_dist_free(id), `${this.constructor.name}.dispose`);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** A c10d key-value store, shared by the processes of a job for rendezvous. */
export class Store extends DistObject {
  /** Wraps a native store id (owned). */
  constructor(id: number) {
    super(id);
  }
  /**
   * A TCP store at host:port: the server (`isServer`, usually rank 0 or torchrun's agent) or a client of it.
   * Operations wait at most `timeoutMs` (connecting, and `get` of a key not yet set).
   */
  static tcp(
    host: string,
    port: number,
    opts: { isServer: boolean; worldSize?: number; timeoutMs?: number },
  ): Store {
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new TorchError("Store.tcp", `port must be an integer in 0..65535, got ${port}`);
    }
    checkStatus(
      lib.ll_store_tcp(
        cstr(host, "Store.tcp", "host"),
        port,
        opts.isServer ? 1 : 0,
        opts.worldSize ?? 0,
        opts.timeoutMs ?? 300_000,
        ID,
      ),
      "Store.tcp",
    );
    return new Store(ID[0]);
  }
  /** A store in a file every process can reach (tests, shared file systems). */
  static file(path: string, worldSize: number): Store {
    checkStatus(lib.ll_store_file(cstr(path, "Store.file", "path"), worldSize, ID), "Store.file");
    return new Store(ID[0]);
  }
  /** A view of this store whose keys are prefixed with `prefix/` (owned separately; keeps this one alive). */
  prefixed(prefix: string): Store {
    checkStatus(lib.ll_store_prefix(this.id, cstr(prefix, "Store.prefixed", "prefix"), ID), "Store.prefixed");
    return new Store(ID[0]);
  }
  /** Sets a key to a string value. */
  set(key: string, value: string): void {
    const v = enc.encode(value);
    checkStatus(lib.ll_store_set(this.id, cstr(key, "Store.set", "key"), v, v.length), "Store.set");
  }
  /** The value of a key, waiting for it to be set (within the store's timeout). */
  get(key: string): string {
    const k = cstr(key, "Store.get", "key");
    let buf = new Uint8Array(256);
    let n = checkStatus(lib.ll_store_get(this.id, k, buf, buf.length), "Store.get");
    if (n > buf.length) {
      buf = new Uint8Array(n);
      n = checkStatus(lib.ll_store_get(this.id, k, buf, buf.length), "Store.get");
    }
    return new TextDecoder().decode(buf.subarray(0, n));
  }
  /** Adds `delta` to an integer key (created at 0) and returns the new value. */
  add(key: string, delta: number): number {
    checkStatus(lib.ll_store_add(this.id, cstr(key, "Store.add", "key"), delta, NUM), "Store.add");
    return NUM[0];
  }
}

/** What a step's gradient reduction did. */
export interface ReduceStats {
  /** Buckets all-reduced. */
  buckets: number;
  /** Bytes of gradient this rank put into the all-reduces. */
  bytes: number;
  /** Milliseconds spent waiting for communication after backward (what overlap did not hide). */
  waitMs: number;
}

/** A process group: `size` processes, this one `rank`, talking through a backend. */
export class ProcessGroup extends DistObject {
  /** This process's rank. */
  readonly rank: number;
  /** The number of processes. */
  readonly size: number;
  /** The backend. */
  readonly backend: Backend;
  /** The timeout of every collective, in ms. */
  readonly timeoutMs: number;

  /**
   * Joins a group through `store` (every rank passes the same store contents, its own rank and the same size).
   * Collectives fail after `timeoutMs` (default 5 minutes) when a peer does not take part.
   */
  constructor(
    store: Store,
    opts: { rank: number; size: number; backend?: Backend; timeoutMs?: number },
  ) {
    const backend = opts.backend ?? "gloo";
    if (!(backend in DIST_BACKEND)) throw new TorchError("ProcessGroup", `unknown backend ${backend}`);
    const timeoutMs = opts.timeoutMs ?? 300_000;
    checkStatus(
      lib.ll_pg_new(DIST_BACKEND[backend], store.id, opts.rank, opts.size, timeoutMs, ID),
      "ProcessGroup",
    );
    super(ID[0]);
    this.rank = opts.rank;
    this.size = opts.size;
    this.backend = backend;
    this.timeoutMs = timeoutMs;
  }
  /** Bytes this rank has put into collectives since the group was made (the payload, not wire traffic). */
  get bytes(): number {
    checkStatus(lib.ll_pg_info(this.id, NUM), "ProcessGroup.bytes");
    return NUM[2];
  }
  /** Reduces each tensor in place over the group (the list is communicated as one flat buffer). */
  allReduce(tensors: readonly Tensor[], op: ReduceOp = "sum"): void {
    checkStatus(
      lib.ll_pg_allreduce(this.id, handlesArg(tensors, "allReduce"), tensors.length, DIST_OP[op]),
      "allReduce",
    );
  }
  /** Overwrites each tensor with rank `root`'s copy. */
  broadcast(tensors: readonly Tensor[], root = 0): void {
    checkStatus(
      lib.ll_pg_broadcast(this.id, handlesArg(tensors, "broadcast"), tensors.length, root),
      "broadcast",
    );
  }
  /** Fills `out` (size × `input`'s elements) with every rank's `input`, in rank order. */
  allGather(out: Tensor, input: Tensor): void {
    checkStatus(lib.ll_pg_all_gather(this.id, out.handle, input.handle), "allGather");
  }
  /** Reduces `input` (size × `out`'s elements) over the group and leaves this rank's share in `out`. */
  reduceScatter(out: Tensor, input: Tensor, op: ReduceOp = "sum"): void {
    checkStatus(lib.ll_pg_reduce_scatter(this.id, out.handle, input.handle, DIST_OP[op]), "reduceScatter");
  }
  /** Waits until every rank has reached it. */
  barrier(): void {
    checkStatus(lib.ll_pg_barrier(this.id), "barrier");
  }
}

/** Options of a `GradReducer`. */
export interface GradReducerOptions {
  /** Bucket capacity in bytes (default 25 MiB, as PyTorch's DDP). */
  bucketBytes?: number;
  /** Start each bucket's all-reduce during backward, as soon as its gradients are ready (default true). */
  overlap?: boolean;
}

/**
 * Averages the gradients of a fixed list of parameters over a group. Made for the parameters that train now and
 * made again when that set changes (LayerLock's freezes): a frozen parameter is in no bucket and never
 * communicated. Call `finish()` after each backward, before the optimiser step.
 */
export class GradReducer extends DistObject {
  /** The parameters, in the order given. */
  readonly params: readonly Tensor[];

  constructor(group: ProcessGroup, params: readonly Tensor[], opts: GradReducerOptions = {}) {
    const bucketBytes = opts.bucketBytes ?? 25 * 2 ** 20;
    checkStatus(
      lib.ll_reducer_new(
        group.id,
        handlesArg(params, "GradReducer"),
        params.length,
        bucketBytes,
        opts.overlap === false ? 0 : 1,
        ID,
      ),
      "GradReducer",
    );
    super(ID[0]);
    this.params = [...params];
  }
  /** Completes the step's reduction: every gradient now holds the mean over the ranks. */
  finish(): ReduceStats {
    checkStatus(lib.ll_reducer_finish(this.id, NUM), "GradReducer.finish");
    return { buckets: NUM[0], bytes: NUM[1], waitMs: NUM[2] };
  }
}
