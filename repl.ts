// Loaded by `deno task repl`: the library as `torch`, for research scripting from Deno's REPL.
import * as torch from "./mod.ts";
Object.assign(globalThis, { torch });
console.log(
  `layerlock REPL: torch ${torch.torchVersion()} (CUDA ${
    torch.cuda.isAvailable() ? "available" : "not available"
  }). ` +
    "The library is `torch`; try: const x = torch.randn([2, 3]); x.toList(); x.dispose()",
);
