/**
 * The project's error family, in a module with no imports, so that the pure modules (the configuration, the
 * LayerLock schedule, the data generators) can throw and catch them without loading the native shim.
 *
 * Every error the library throws on purpose is a {@link LayerlockError} (never a bare `Error`, `RangeError` or
 * `TypeError`: tests/errors_scan_test.ts fails on one) with a `code` that says what kind of thing went wrong and
 * a `where` that names the operation, key or file. Every class is built the same way, `new X(where, message,
 * options?)`:
 *
 * | class         | code       | where                                | thrown for                            |
 * | ------------- | ---------- | ------------------------------------ | ------------------------------------- |
 * | `TorchError`  | `"native"` | the tensor operation (`matmul`, …)   | libtorch's errors, bad tensor args    |
 * | `ConfigError` | `"config"` | the configuration, flag or function  | a bad configuration or option, misuse |
 * | `DataError`   | `"data"`   | the dataset, file or function        | a missing, malformed or empty dataset |
 * | `IoError`     | `"io"`     | the file or folder written or read   | a file-system failure                 |
 *
 * ```ts
 * try { train(cfg); } catch (e) { if (e instanceof LayerlockError && e.code === "config") usage(e); else throw e; }
 * ```
 * @module
 */

/** What kind of thing failed: a bad configuration, bad data, libtorch or the binding, or the file system. */
export type ErrorCode = "config" | "data" | "native" | "io";

/** The base of every error the library throws on purpose. */
export class LayerlockError extends Error {
  /** What kind of thing failed. */
  readonly code: ErrorCode;
  /** The operation, configuration key or file it failed at. */
  readonly where: string;
  /** Builds an error of kind `code` at `where`; `message` is used as it is. */
  constructor(code: ErrorCode, where: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "LayerlockError";
    this.code = code;
    this.where = where;
  }
}

/** An error from libtorch or from the binding, naming the operation that failed (`matmul: ...`). */
export class TorchError extends LayerlockError {
  /** Builds an error for `op`; the message is prefixed with `op: ` unless it already is. */
  constructor(op: string, message: string, options?: ErrorOptions) {
    super("native", op, message.startsWith(`${op}:`) ? message : `${op}: ${message}`, options);
    this.name = "TorchError";
  }
  /** The operation that failed, e.g. `matmul` (the same as `where`). */
  get op(): string {
    return this.where;
  }
}

/** An invalid configuration, flag or option, or a usage mistake; the message names each offending key. */
export class ConfigError extends LayerlockError {
  /** Builds the error; `where` names the configuration, flag, option or function (`config`, `--steps`, …). */
  constructor(where: string, message: string, options?: ErrorOptions) {
    super("config", where, message, options);
    this.name = "ConfigError";
  }
}

/** Data that cannot be used: a missing or malformed dataset file, a video that does not decode, a bad clip. */
export class DataError extends LayerlockError {
  /** Builds the error; `where` names the dataset or file. */
  constructor(where: string, message: string, options?: ErrorOptions) {
    super("data", where, message, options);
    this.name = "DataError";
  }
}

/** A file-system failure: a file that cannot be written, read or found. */
export class IoError extends LayerlockError {
  /** Builds the error; `where` names the path. */
  constructor(where: string, message: string, options?: ErrorOptions) {
    super("io", where, message, options);
    this.name = "IoError";
  }
}
