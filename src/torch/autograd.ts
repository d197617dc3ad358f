/**
 * Grad mode and autocast regions. Each restores the previous state when its callback returns or throws, and
 * refuses async callbacks (the state is per thread and must not span an await).
 * @module
 */
import { lib } from "../../ffi/lib.ts";
import { checkStatus } from "../../ffi/check.ts";
import { TorchError } from "../errors.ts";
import { deviceCodes, type DType, dtypeCode } from "./dtype.ts";
import { refuseAsync } from "./scope.ts";

/** Whether autograd records operations on this thread. */
export function isGradEnabled(): boolean {
  return lib.ll_grad_enabled() === 1;
}

/** Turns autograd recording on or off for this thread. */
export function setGradEnabled(enabled: boolean): void {
  lib.ll_set_grad_enabled(enabled ? 1 : 0);
}

function withGrad<T>(name: string, enabled: boolean, fn: () => T): T {
  refuseAsync(name, fn);
  const prev = isGradEnabled();
  setGradEnabled(enabled);
  try {
    const r = fn();
    if (r instanceof Promise) throw new TorchError(name, `${name}: the callback returned a promise`);
    return r;
  } finally {
    setGradEnabled(prev);
  }
}

/** Runs fn with autograd recording off (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  return withGrad("noGrad", false, fn);
}

/** Runs fn with autograd recording on (torch.enable_grad). */
export function enableGrad<T>(fn: () => T): T {
  return withGrad("enableGrad", true, fn);
}

/**
 * Runs fn with automatic mixed precision on `device` (default cuda): matmuls, convolutions and attention run
 * in `dtype` (bf16 or f16), precision-sensitive ops in f32 (torch.autocast).
 */
export function autocast<T>(dtype: DType, fn: () => T, device: "cuda" | "cpu" = "cuda"): T {
  refuseAsync("autocast", fn);
  if (dtype !== "bf16" && dtype !== "f16") {
    throw new TorchError("autocast", `dtype must be bf16 or f16, got ${dtype}`);
  }
  const [dt] = deviceCodes(device);
  const prev = checkStatus(lib.ll_autocast_enter(dt, dtypeCode(dtype)), "autocast");
  try {
    const r = fn();
    if (r instanceof Promise) throw new TorchError("autocast", "autocast: the callback returned a promise");
    return r;
  } finally {
    checkStatus(lib.ll_autocast_exit(dt, prev), "autocast");
  }
}

/** Whether autocast is on for a device type. */
export function isAutocastEnabled(device: "cuda" | "cpu" = "cuda"): boolean {
  return checkStatus(lib.ll_autocast_enabled(deviceCodes(device)[0]), "autocast") === 1;
}

/**
 * Runs fn in inference mode (torch.inference_mode): no autograd recording and no version counters, a little
 * cheaper than `noGrad`. Tensors made inside are inference tensors: they can be read by ops outside (whose
 * results are normal tensors) but never saved for backward nor changed in place outside — derive what autograd
 * needs from them first (e.g. a gather or a layer norm outside the region).
 */
export function inferenceMode<T>(fn: () => T): T {
  refuseAsync("inferenceMode", fn);
  checkStatus(lib.ll_inference_mode_enter(), "inferenceMode");
  try {
    const r = fn();
    if (r instanceof Promise) {
      throw new TorchError("inferenceMode", "inferenceMode: the callback returned a promise");
    }
    return r;
  } finally {
    checkStatus(lib.ll_inference_mode_exit(), "inferenceMode");
  }
}

/** Whether `t` was made in inference mode. */
export function isInferenceTensor(t: { handle: number }): boolean {
  return checkStatus(lib.ll_is_inference(t.handle), "isInferenceTensor") === 1;
}
