/**
 * One error convention (src/errors.ts): every error the library throws on purpose is a LayerlockError
 * (TorchError, ConfigError, DataError, IoError or a subclass), built as `new X(where, message, options?)`. This
 * test scans every .ts file under src/ and fails naming file:line for each bare `throw new Error(`,
 * `throw new RangeError(`, `throw new TypeError(` or `throw Error(` (no file is exempt), and for a ConfigError
 * still built the old way round, with its message first.
 * @module
 */
import assert from "node:assert/strict";
import { ConfigError, DataError, IoError, LayerlockError, TorchError } from "../../src/errors.ts";

/** The .ts files under `dir`, sorted. */
function tsFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of Deno.readDirSync(d)) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory) walk(p);
      else if (e.isFile && p.endsWith(".ts")) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

/** `file:line: text` of each line of the files under `dir` that `re` matches. */
function scan(dir: string, re: RegExp): string[] {
  const hits: string[] = [];
  for (const file of tsFiles(dir)) {
    Deno.readTextFileSync(file).split("\n").forEach((line, i) => {
      if (re.test(line)) hits.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  return hits;
}

/** A bare throw of a built-in error class (with or without `new`, spaces allowed before the parenthesis). */
const BARE_THROW = /\bthrow\s+(?:new\s+)?(?:Error|RangeError|TypeError)\s*\(/;

Deno.test("errors scan: the pattern finds every spelling of a bare throw, and not the family's", () => {
  for (
    const bad of [
      'throw new Error("x");',
      "  if (a) throw new RangeError(`x ${a}`);",
      "throw new TypeError(",
      'throw Error("x")',
      "throw  new  Error (m)",
    ]
  ) {
    assert.ok(BARE_THROW.test(bad), bad);
  }
  for (
    const good of [
      'throw new TorchError("matmul", "x");',
      'throw new ConfigError("config", "x");',
      'throw new DataError("d", "x");',
      'throw new IoError("p", "x");',
      'throw new ExperimentConfigError("--set", "x");',
      "throw new GraphCaptureError(step, e);",
      "throw e;",
      "throw err;",
    ]
  ) {
    assert.ok(!BARE_THROW.test(good), good);
  }
});

Deno.test("errors scan: src/ throws no bare Error, RangeError or TypeError", () => {
  const files = tsFiles("src");
  assert.ok(files.length > 50, `the scan reads src/ (found ${files.length} files)`);
  const hits = scan("src", BARE_THROW);
  assert.deepEqual(
    hits,
    [],
    `${hits.length} bare throw(s) in src/; throw a LayerlockError subclass instead (src/errors.ts: TorchError ` +
      `for a tensor operation, ConfigError for options or usage, DataError for data, IoError for the file ` +
      `system), as new X(where, message):\n${hits.join("\n")}`,
  );
});

/**
 * A ConfigError built the old way round, `(message, where)`, on one line: a first argument that is a message (a
 * string or template literal with a space in it), or a variable followed by a one-word place
 * (`new ConfigError(message, "probe")`).
 */
const MESSAGE_FIRST = new RegExp(
  String.raw`new\s+(?:Experiment)?ConfigError\(\s*(?:` +
    String.raw`"[^"]* [^"]*"\s*[,)]|'[^']* [^']*'\s*[,)]|` + "`[^`]* [^`]*`" + String.raw`\s*[,)]|` +
    String.raw`[\w.]+,\s*(?:"[^" ]*"|'[^' ]*')\s*\))`,
);

Deno.test("errors scan: the message-first pattern finds the old ConfigError order only", () => {
  for (
    const bad of [
      'throw new ConfigError("invalid config", "config");',
      "throw new ConfigError(`'${path}' is not a configuration key`, path);",
      'throw new ConfigError(message, "probe");',
      "throw new ExperimentConfigError(`--${flag}: '${v}' is not a number`);",
    ]
  ) {
    assert.ok(MESSAGE_FIRST.test(bad), bad);
  }
  for (
    const good of [
      'throw new ConfigError("config", `invalid ${source}`);',
      "throw new ConfigError(path, `'${path}' is not a configuration key`);",
      'throw new ConfigError("probe", message);',
      "throw new ExperimentConfigError(`--${flag}`, `--${flag}: '${v}' is not a number`);",
      "throw new ConfigError(",
      'throw new ConfigError(name, "x must be set", { cause });',
    ]
  ) {
    assert.ok(!MESSAGE_FIRST.test(good), good);
  }
});

Deno.test("errors scan: no ConfigError in src/ is built with its message first", () => {
  const hits = scan("src", MESSAGE_FIRST);
  assert.deepEqual(hits, [], `ConfigError is (where, message, options?):\n${hits.join("\n")}`);
});

Deno.test("errors scan: every class is (where, message, options?) with a code", () => {
  const cause = new Error("underneath");
  const cases: [LayerlockError, string, string][] = [
    [new TorchError("matmul", "shapes", { cause }), "native", "matmul: shapes"],
    [new ConfigError("optim.lr", "optim.lr: must be > 0", { cause }), "config", "optim.lr: must be > 0"],
    [
      new DataError("clips.csv", "clips.csv: line 3: no label", { cause }),
      "data",
      "clips.csv: line 3: no label",
    ],
    [new IoError("runs/x", "cannot write runs/x", { cause }), "io", "cannot write runs/x"],
  ];
  for (const [e, code, message] of cases) {
    assert.ok(e instanceof LayerlockError && e instanceof Error);
    assert.equal(e.code, code);
    assert.equal(e.message, message);
    assert.equal(e.cause, cause);
  }
  assert.deepEqual(cases.map(([e]) => e.where), ["matmul", "optim.lr", "clips.csv", "runs/x"]);
});
