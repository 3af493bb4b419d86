/**
 * The agent's helper threads yield the core to its event loop (helper-threads.ts): every thread
 * of the process but the main one ends up below normal priority, the main one stays as it was.
 */
import t from "tap";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { constants } from "node:os";

const BELOW_NORMAL = constants.priority.PRIORITY_BELOW_NORMAL;
import { lowerHelperThreads } from "../../media-agent/src/helper-threads.js";

/** A thread's nice value, field 19 of its stat (after the parenthesised name). */
function niceOf(tid: number): number {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
}

t.test("every thread but the event loop's runs below normal priority", { skip: !existsSync("/proc/self/task") && "threads are listed in /proc only on Linux" }, async (t) => {
  const before = new Map(readdirSync("/proc/self/task").map((tid) => [Number(tid), niceOf(Number(tid))]));
  const lowered = await lowerHelperThreads();
  const helpers = readdirSync("/proc/self/task").map(Number).filter((tid) => tid !== process.pid);
  t.ok(helpers.length >= 4, `V8's and libuv's threads are there (${helpers.length})`);
  const expected = (tid: number) => Math.max(before.get(tid) ?? 0, BELOW_NORMAL);
  t.same(helpers.map(niceOf), helpers.map(expected), "each helper is below normal priority (one already lower stays so)");
  t.equal(lowered, helpers.filter((tid) => (before.get(tid) ?? 0) < BELOW_NORMAL).length, "the count says how many were lowered");
  t.equal(niceOf(process.pid), before.get(process.pid), "the event loop's thread keeps its priority");
});
