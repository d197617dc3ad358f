/**
 * Deterministic memory management in the manner of TorchSharp's DisposeScope and TensorFlow.js's `tidy`:
 * every tensor created inside `scope(fn)` is freed when `fn` returns or throws, except the tensors it returns
 * (which move to the enclosing scope, if any) and those passed to `keep` (which become the caller's to free).
 * Scopes are synchronous: an async callback is refused, since a scope must not span an `await`.
 * @module
 */

import { TorchError } from "../errors.ts";

/** Anything a scope can own: tensors. */
export interface ScopeOwned {
  /** The scope that owns this object, or null. */
  _owner: Scope | null;
  /** Frees the object; idempotent. */
  dispose(): void;
}

/** A scope: the objects created while it was current. */
export class Scope {
  /** Objects registered while this scope was current (some may since have moved or been freed). */
  readonly items: ScopeOwned[] = [];
  /** Creates a scope whose parent is the scope current at creation time. */
  constructor(readonly parent: Scope | null) {}
}

let current: Scope | null = null;

/** Registers a newly created object with the current scope (called by the Tensor constructor). */
export function track(o: ScopeOwned): void {
  const s = current;
  if (s !== null) {
    o._owner = s;
    s.items.push(o);
  }
}

/** The scope that is current, or null outside any scope. */
export function currentScope(): Scope | null {
  return current;
}

function isThenable(v: unknown): boolean {
  return v !== null && (typeof v === "object" || typeof v === "function") &&
    typeof (v as { then?: unknown }).then === "function";
}

/** Throws if `fn` is an async function (used by scope, noGrad, enableGrad, autocast). */
export function refuseAsync(name: string, fn: (...a: never[]) => unknown): void {
  if (fn.constructor?.name === "AsyncFunction") {
    throw new TorchError(
      name,
      `${name}: async callbacks are refused; the state it sets must not span an await`,
    );
  }
}

// Moves what `from` owns among the returned values to `into`; objects owned elsewhere are left alone.
function adopt(value: unknown, from: Scope, into: Scope | null, seen: Set<unknown>): void {
  if (value === null || typeof value !== "object" || seen.has(value)) return;
  seen.add(value);
  const o = value as Partial<ScopeOwned>;
  if ("_owner" in o && typeof o.dispose === "function") {
    const owned = o as ScopeOwned;
    if (owned._owner === from) {
      owned._owner = into;
      if (into !== null) into.items.push(owned);
    }
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) adopt(v, from, into, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype || value instanceof Map) {
    for (const v of value instanceof Map ? value.values() : Object.values(value)) adopt(v, from, into, seen);
  }
}

/**
 * Runs `fn` in a new scope. Tensors it creates are freed on exit unless returned (directly, or inside arrays,
 * plain objects or Maps) or kept with `keep`. Returned tensors belong to the enclosing scope, or to the caller
 * outside any scope.
 */
export function scope<T>(fn: () => T): T {
  refuseAsync("scope", fn);
  const s = new Scope(current);
  current = s;
  let result: T;
  try {
    result = fn();
    if (isThenable(result)) {
      throw new TorchError("scope", "scope: the callback returned a promise; scopes are synchronous");
    }
    adopt(result, s, s.parent, new Set());
  } finally {
    current = s.parent;
    for (const o of s.items) {
      if (o._owner === s) o.dispose();
    }
    s.items.length = 0;
  }
  return result;
}

/** Removes objects from scope ownership: they live until disposed explicitly (or by their module). */
export function keep<T extends ScopeOwned | ScopeOwned[]>(x: T): T {
  if (Array.isArray(x)) { for (const o of x) o._owner = null; }
  else x._owner = null;
  return x;
}
