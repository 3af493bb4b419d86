/**
 * The agent benchmark's heap-profile knob (AGENT_BENCH_HEAP_PROF): the preload, in a process of
 * its own, profiles between two SIGUSR2s and the summary names the function whose objects lived
 * on; short-lived garbage made in the same window does not lead it.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { topAllocationSites } from "../../bench/lib/heap-profile.js";

const PRELOAD = join(import.meta.dirname, "../../bench/lib/heap-profile-preload.ts");

// The profiled process: a second's worth of objects kept (and dropped half-way, so a
// mark-compact collects them) and of garbage dropped at once, between the two signals.
const PROGRAM = `
let kept = [];
function keepForLong(n) { for (let i = 0; i < n; i++) kept.push({ a: i, b: [i, i + 1, i + 2] }); }
function dropAtOnce(n) { let x; for (let i = 0; i < n; i++) x = { a: i, b: [i] }; return x; }
process.stdout.write("ready\\n");
process.once("SIGUSR2", () => {
  for (let r = 0; r < 20; r++) { keepForLong(20000); dropAtOnce(20000); if (r === 10) { kept = []; gc(); } }
  process.stdout.write("done\\n");
});
setTimeout(() => {}, 10000);
`;

t.test("the heap profile of a window names what lived until a mark-compact", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "wa-heapprof-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const child = spawn(process.execPath, ["--expose-gc", "--import", "tsx", "--import", PRELOAD, "-e", PROGRAM], { env: { ...process.env, AGENT_HEAP_PROF_DIR: dir }, stdio: ["ignore", "pipe", "inherit"] });
  t.teardown(() => void child.kill("SIGKILL"));
  const said = (word: string) => new Promise<void>((done) => child.stdout!.on("data", (c: Buffer) => c.toString().includes(word) && done()));
  await said("ready");
  child.kill("SIGUSR2"); // the preload starts sampling, the program starts allocating
  await said("done");
  child.kill("SIGUSR2"); // … and the profile is written
  const file = join(dir, `agent-${child.pid}.heapprofile`);
  for (let waited = 0; !existsSync(file) && waited < 5000; waited += 50) await new Promise((r) => setTimeout(r, 50));
  t.ok(existsSync(file), "written under the agent's pid");
  const { totalMb, sites } = topAllocationSites(file, 3);
  t.ok(totalMb > 1, `${totalMb} MB sampled`);
  t.match(sites[0].site, /keepForLong/, `the top site is the long-lived allocation: ${JSON.stringify(sites)}`);
  // Both allocate the same objects; the garbage still in the young generation when the
  // window closes is sampled too (it is not collected yet), the rest of it is not.
  const share = (fn: string) => sites.filter((s) => s.site.includes(fn)).reduce((n, s) => n + s.sharePct, 0);
  t.ok(share("keepForLong") > 3 * share("dropAtOnce"), `the young garbage counts far less: ${share("keepForLong")} % against ${share("dropAtOnce")} %`);
});
