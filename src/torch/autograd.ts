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
    if (r instanceof Promise) throw new TypeError(`${name}: the callback returned a promise`);
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
    if (r instanceof Promise) throw new TypeError("autocast: the callback returned a promise");
    return r;
  } finally {
    checkStatus(lib.ll_autocast_exit(dt, prev), "autocast");
  }
}

/** Whether autocast is on for a device type. */
export function isAutocastEnabled(device: "cuda" | "cpu" = "cuda"): boolean {
  return checkStatus(lib.ll_autocast_enabled(deviceCodes(device)[0]), "autocast") === 1;
}
