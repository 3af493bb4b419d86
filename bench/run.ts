/**
 * `npm run bench [-- --quick] [-- name …]`: runs every benchmark in bench/ (or the ones named),
 * one after the other in their own processes, each printing its table and writing
 * bench/results/<name>.json. --quick is the smoke mode npm test runs.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BENCH_ROOT } from "./lib/report.js";

/** In the order they run; each is bench/<name>.ts. */
export const BENCHMARKS = ["vad", "agent", "routing", "rtpengine", "soak", "latency"];

/** Runs the chosen benchmarks; the exit code says whether all of them finished. */
function main(argv: string[]): number {
  const names = argv.filter((a) => !a.startsWith("--"));
  const flags = argv.filter((a) => a.startsWith("--"));
  const failed: string[] = [];
  for (const name of names.length ? names : BENCHMARKS) {
    const file = join(BENCH_ROOT, `${name}.ts`);
    if (!BENCHMARKS.includes(name) || !existsSync(file)) {
      console.error(`bench: no benchmark '${name}' (have: ${BENCHMARKS.join(", ")})`);
      return 2;
    }
    const started = Date.now();
    const run = spawnSync(process.execPath, ["--import", "tsx", file, ...flags], { stdio: "inherit" });
    console.log(`bench: ${name} ${run.status === 0 ? "done" : `FAILED (${run.status ?? run.signal})`} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    if (run.status !== 0) failed.push(name);
  }
  return failed.length ? 1 : 0;
}

// Run only as the entry point (the smoke test imports BENCHMARKS).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exit(main(process.argv.slice(2)));
