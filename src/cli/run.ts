/**
 * The one exit wrapper of the command-line tools: runs a tool's `main`, exits with its status, and prints any
 * error of the library's family as one line (`train: optim.lr: ...`) instead of a stack trace.
 * @module
 */
import { LayerlockError } from "../errors.ts";

/**
 * Runs `main` and exits with the status it returns. A {@link LayerlockError} is printed as `name: message` and
 * exits with 2 when it is a configuration error (a usage mistake) and 1 otherwise; anything else is a bug and
 * is rethrown with its stack.
 */
export async function runMain(name: string, main: () => Promise<number>): Promise<never> {
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
