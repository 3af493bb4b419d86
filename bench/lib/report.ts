/**
 * What every benchmark reports: a table printed for a person, and bench/results/<name>.json with
 * the figures, the machine they were measured on and the commit. Ratios belong in the figures,
 * measured in the same run as their baseline.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

export const BENCH_ROOT = fileURLToPath(new URL("..", import.meta.url));

export interface BenchArgs {
  /** Smoke mode: a few seconds, same code paths (run by npm test). */
  quick: boolean;
  /** Where the JSON goes (default bench/results). */
  outDir: string;
}

export function benchArgs(argv = process.argv.slice(2)): BenchArgs {
  const { values } = parseArgs({ args: argv, options: { quick: { type: "boolean", default: false }, out: { type: "string" } }, allowPositionals: false });
  return { quick: values.quick ?? false, outDir: values.out ?? join(BENCH_ROOT, "results") };
}

export function machineFacts(): Record<string, unknown> {
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model ?? "unknown",
    cores: cpu.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kamailio: tryRun("kamailio", ["-v"])?.split("\n")[0] ?? null,
    rtpengine: tryRun("rtpengine", ["--version"], true)?.trim() ?? null,
  };
}

/** A command's output (with stderr: rtpengine prints its version there), or null. */
function tryRun(cmd: string, args: string[], withStderr = false): string | null {
  const run = spawnSync(cmd, args, { encoding: "utf8" });
  return run.status === 0 ? run.stdout + (withStderr ? run.stderr : "") : null;
}

function commit(): string | null {
  const head = tryRun("git", ["-C", BENCH_ROOT, "rev-parse", "HEAD"])?.trim() ?? null;
  // The results a run writes are not a change to what was measured.
  const dirty = tryRun("git", ["-C", BENCH_ROOT, "status", "--porcelain", "--", ":(top)", ":(top,exclude)bench/results"])?.trim();
  return head && dirty ? `${head}+changes` : head;
}

/** A table: header row, then rows; numbers are printed as given (format them first). */
export function printTable(title: string, header: string[], rows: Array<Array<string | number>>): void {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  console.log(`\n${title}\n${line(header)}\n|${widths.map((w) => "-".repeat(w + 2)).join("|")}|\n${cells.slice(1).map(line).join("\n")}`);
}

/** Writes bench/results/<name>.json (or under --out) and says where. */
export function writeResult(args: BenchArgs, name: string, figures: unknown): string {
  mkdirSync(args.outDir, { recursive: true });
  const file = join(args.outDir, `${name}${args.quick ? ".quick" : ""}.json`);
  writeFileSync(file, `${JSON.stringify({ name, quick: args.quick, at: new Date().toISOString(), commit: commit(), machine: machineFacts(), figures }, null, 2)}\n`);
  console.log(`\n${name}: figures in ${file}`);
  return file;
}

/** Percentile of a sample (nearest rank); NaN for an empty one. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/**
 * Where the median of what was sampled lies, with at least `confidence` (distribution-free: how
 * many of n values fall below the true median is Binomial(n, ½), so the k-th smallest and k-th
 * largest values bound it with 1 − 2·P(X < k)). Why: a benchmark's p50 over 30 turns moves by
 * tens of ms from run to run with what each run drew, and a goal read off one run needs that
 * spread beside it. null below 6 values, where no such interval reaches 95 %.
 */
export function medianInterval(values: number[], confidence = 0.95): [number, number] | null {
  const n = values.length;
  const tail = (1 - confidence) / 2;
  let below = 0; // P(X ≤ j) so far
  let pj = Math.pow(0.5, n); // P(X = j), from j = 0
  let k = 0;
  for (let j = 0; j < n && below + pj <= tail; j++) {
    below += pj;
    k = j + 1;
    pj = (pj * (n - j)) / (j + 1);
  }
  if (k === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return [sorted[k - 1], sorted[n - k]];
}

/** CPU seconds (user + system) of a process and its threads, from /proc (Linux). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / 100;
}
