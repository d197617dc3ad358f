/**
 * The runtime: versions, live-tensor count, seeding, CPU threads, and CUDA queries (availability, devices,
 * synchronisation, caching-allocator statistics).
 * @module
 */
import { lib, readString } from "../../ffi/lib.ts";
import { checkStatus } from "../../ffi/check.ts";
import { TorchError } from "../errors.ts";
import { Tensor } from "./tensor.ts";
import { type Device, deviceCodes } from "./dtype.ts";

/** The libtorch version the shim was built against. */
export function torchVersion(): string {
  return readString(lib.ll_torch_version);
}

const LIVE = new Float64Array(1); // ll_live_tensors' out-parameter

/** The number of live native tensor handles (for leak checks: compare before and after). */
export function liveTensors(): number {
  checkStatus(lib.ll_live_tensors(LIVE), "liveTensors");
  return LIVE[0];
}

const READS = new Float64Array(1); // ll_host_reads' out-parameter

/**
 * Device-to-host reads so far (`item()`, `toArray()`, `toBytes()` and the like; on CUDA each synchronises the
 * device): compare before and after a piece of code to check that it never waits on the device.
 */
export function hostReads(): number {
  checkStatus(lib.ll_host_reads(READS), "hostReads");
  return READS[0];
}

/**
 * Host-to-device uploads so far: tensors made from host memory (`tensor(...)`, an upload on any device), and CPU
 * tensors moved to another device. A step meant for a CUDA-graph capture makes none (a capture refuses pageable
 * copies); compare before and after, as with `hostReads`.
 */
export function hostWrites(): number {
  checkStatus(lib.ll_host_writes(READS), "hostWrites");
  return READS[0];
}

/** Seeds the CPU and every CUDA generator (torch.manual_seed). */
export function manualSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0) {
    throw new TorchError("manualSeed", `seed must be a non-negative integer, got ${seed}`);
  }
  checkStatus(lib.ll_manual_seed(seed), "manualSeed");
}

/** A copy of a device's default generator state (a u8 tensor owned by the caller), for exact resumption. */
export function getRngState(device: Device = "cpu"): Tensor {
  const [t, i] = deviceCodes(device);
  checkStatus(lib.ll_get_rng_state(t, i, RNG_OUT), "getRngState");
  return new Tensor(RNG_OUT[0]);
}

/** Restores a device's default generator from `getRngState`'s tensor. */
export function setRngState(state: Tensor, device: Device = "cpu"): void {
  const [t, i] = deviceCodes(device);
  checkStatus(lib.ll_set_rng_state(t, i, state.handle), "setRngState");
}

const RNG_OUT = new Int32Array(1);

/** The number of threads libtorch uses for CPU ops. */
export function getNumThreads(): number {
  return lib.ll_get_num_threads();
}

/** Sets the number of threads libtorch uses for CPU ops. */
export function setNumThreads(n: number): void {
  checkStatus(lib.ll_set_num_threads(n), "setNumThreads");
}

/** CUDA caching-allocator statistics of one device, in bytes. */
export interface CudaMemoryStats {
  /** Bytes held by live tensors now. */
  allocated: number;
  /** The most bytes held by live tensors since the last reset. */
  peakAllocated: number;
  /** Bytes reserved from the driver by the caching allocator now. */
  reserved: number;
  /** The most bytes reserved since the last reset. */
  peakReserved: number;
}

const STATS = new Float64Array(4);

/** CUDA queries (the type of `cuda`). */
export interface CudaApi {
  /** Whether a CUDA device can be used. */
  isAvailable(): boolean;
  /** The number of CUDA devices. */
  deviceCount(): number;
  /** Waits for all queued work on a device (default: the current one). */
  synchronize(device?: number): void;
  /** Caching-allocator statistics, or null when the shim was built without CUDA. */
  memoryStats(device?: number): CudaMemoryStats | null;
  /** Resets the peak statistics of a device. */
  resetPeakMemoryStats(device?: number): void;
  /** Returns cached, unused blocks to the driver. */
  emptyCache(): void;
}

/** CUDA queries. */
export const cuda: CudaApi = {
  /** Whether a CUDA device can be used. */
  isAvailable(): boolean {
    return checkStatus(lib.ll_cuda_is_available(), "cuda.isAvailable") === 1;
  },
  /** The number of CUDA devices. */
  deviceCount(): number {
    return checkStatus(lib.ll_cuda_device_count(), "cuda.deviceCount");
  },
  /** Waits for all queued work on a device (default: the current one). */
  synchronize(device = -1): void {
    checkStatus(lib.ll_cuda_synchronize(device), "cuda.synchronize");
  },
  /** Caching-allocator statistics, or null when the shim was built without CUDA. */
  memoryStats(device = 0): CudaMemoryStats | null {
    const ok = checkStatus(lib.ll_cuda_memory_stats(device, STATS), "cuda.memoryStats");
    if (ok === 0) return null;
    return { allocated: STATS[0], peakAllocated: STATS[1], reserved: STATS[2], peakReserved: STATS[3] };
  },
  /** Resets the peak statistics of a device. */
  resetPeakMemoryStats(device = 0): void {
    checkStatus(lib.ll_cuda_reset_peak(device), "cuda.resetPeakMemoryStats");
  },
  /** Returns cached, unused blocks to the driver. */
  emptyCache(): void {
    checkStatus(lib.ll_cuda_empty_cache(), "cuda.emptyCache");
  },
};
