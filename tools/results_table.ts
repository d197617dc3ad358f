/**
 * Prints an experiment's results.json as Markdown: the summary table (mean ± spread over training seeds) and
 * the verdicts on the claims, as the README and docs/results.md show them. Pure: needs no shim.
 *
 *   deno run --allow-read tools/results_table.ts docs/results/results.json
 * @module
 */
import type { ExperimentResults } from "../src/experiment/run.ts";
import { claims, num, pct, summaryRows } from "../src/experiment/verdicts.ts";

const path = Deno.args[0] ?? "runs/experiment/results.json";
const r = JSON.parse(await Deno.readTextFile(path)) as ExperimentResults;
const header = [
  "encoder",
  "seeds",
  "linear · garment",
  "linear · direction",
  "attentive · garment",
  "attentive · direction",
  "mean of the four",
  "effective rank",
  "steps/s",
  "learning?",
];
const lines = [
  `| ${header.join(" | ")} |`,
  `| ${header.map((_, i) => i < 1 ? "---" : "---:").join(" | ")} |`,
];
for (const row of summaryRows(r)) {
  lines.push(
    `| ${
      [
        row.name,
        row.probeMean.n,
        pct(row.probes.linearShape),
        pct(row.probes.linearDirection),
        pct(row.probes.attentiveShape),
        pct(row.probes.attentiveDirection),
        `**${pct(row.probeMean)}**`,
        num(row.effectiveRank, 1),
        row.stepsPerSec ? num(row.stepsPerSec, 2) : "—",
        row.baseline ? "—" : row.learning.map((l) => l === null ? "?" : l ? "yes" : "no").join(", "),
      ].join(" | ")
    } |`,
  );
}
console.log(lines.join("\n"));
console.log(`\n${r.minutes.toFixed(1)} minutes on ${r.device}; complete: ${r.complete}\n`);
for (const c of claims(r)) console.log(`- **${c.claim}** ${c.verdict} (${c.measured})`);
