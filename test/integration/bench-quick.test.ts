/**
 * `npm run bench -- --quick`: every benchmark's smoke mode runs on its real code paths, prints its
 * table and writes its JSON with the machine facts and the commit. The figures themselves are
 * not asserted (performance is measured by `npm run bench`, never by timed assertions).
 */
import t from "tap";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../../build/bundle.js";
import { BENCHMARKS } from "../../bench/run.js";
import { tempDir } from "../support/temp-dir.js";

t.setTimeout(240_000);

t.test("each benchmark's --quick run writes its figures", async (t) => {
  const out = tempDir(t, "wa-bench-");
  const run = spawnSync(process.execPath, ["--import", "tsx", join(REPO_ROOT, "bench/run.ts"), "--quick", `--out=${out}`], { cwd: REPO_ROOT, encoding: "utf8" });
  t.equal(run.status, 0, `npm run bench -- --quick: ${run.stdout.slice(-3000)}${run.stderr.slice(-3000)}`);
  for (const name of BENCHMARKS) {
    const result = JSON.parse(readFileSync(join(out, `${name}.quick.json`), "utf8"));
    t.equal(result.name, name);
    t.ok(result.figures && Object.keys(result.figures).length > 0, `${name}: figures written`);
    t.ok(result.machine?.cores > 0 && result.commit, `${name}: machine facts and commit recorded`);
  }
});
