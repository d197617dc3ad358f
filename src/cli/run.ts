/**
 * The one exit wrapper of the command-line tools: runs a tool's `main`, exits with its status, and prints any
 * error of the library's family as one line (`train: optim.lr: ...`) instead of a stack trace.
 * @module
 */
import { LayerlockError } from "../errors.ts";

/**
 * Runs `main` and exits with the status it returns; with `doc` (the tool's module URL), `--help` or `-h` prints
 * the documentation comment at the top of that module (its usage, every flag) and exits 0. A
 * {@link LayerlockError} is printed as `name: message` and exits with 2 when it is a configuration error (a usage
 * mistake) and 1 otherwise; anything else is a bug and is rethrown with its stack.
 */
export async function runMain(name: string, main: () => Promise<number>, doc?: URL): Promise<never> {
  if (doc && (Deno.args.includes("--help") || Deno.args.includes("-h"))) {
    // the tool's own usage: the documentation comment at the top of its module, which lists every flag
    const text = Deno.readTextFileSync(doc);
    const m = text.match(/^\/\*\*\n([\s\S]*?)\n \*\//);
    console.log(
      m
        ? m[1].split("\n").map((l) => l.replace(/^ \* ?/, "")).filter((l) => l !== "@module").join("\n")
          .trim()
        : name,
    );
    Deno.exit(0);
  }
  try {
    Deno.exit(await main());
  } catch (err) {
    if (err instanceof LayerlockError) {
      // one prefix: messages of errors raised by the tool's own operation already start with it
      console.error(err.message.startsWith(`${name}: `) ? err.message : `${name}: ${err.message}`);
      Deno.exit(err.code === "config" ? 2 : 1);
    }
    throw err;
  }
}
