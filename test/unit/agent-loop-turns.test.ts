/**
 * Work after a call's end runs in later event-loop turns, about a millisecond of it per turn
 * (loop-turns.ts), so that many calls ending at once do not hold up the frame clocks of the
 * calls still up, and the work keeps up with calls ending on a busy loop; engine requests,
 * answers to INVITEs and trace writes that many calls start together are spread over loop
 * turns; the trace observer writes a closed call's last records that way, and says when they
 * are written. Its file writes are done by libuv's threads, so a disk that is slow to answer
 * never holds the event loop.
 */
import t from "tap";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inLaterLoopTurn, ownLoopTurn } from "../../media-agent/src/loop-turns.js";
import { TraceObserver } from "../../media-agent/src/pipeline/trace-observer.js";
import { readTrace, traceFileOf } from "../../media-agent/src/pipeline/turn-trace.js";

function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

t.test("jobs queued together run in turns of their own, in order: timers and other work run between them", async (t) => {
  const order: string[] = [];
  setTimeout(() => order.push("timer"), 1);
  const jobs = [1, 2, 3].map((i) =>
    inLaterLoopTurn(() => {
      order.push(`job ${i}`);
      if (i === 1) setImmediate(() => order.push("other work"));
      busyFor(2);
    }),
  );
  await Promise.all(jobs);
  t.same(order.filter((e) => e.startsWith("job")), ["job 1", "job 2", "job 3"]);
  t.ok(order.indexOf("other work") < order.indexOf("job 2"), `work queued by job 1 runs before job 2: ${order.join(", ")}`);
  t.ok(order.indexOf("timer") < order.indexOf("job 2"), `the timer due during job 1 runs before job 2: ${order.join(", ")}`);
});

t.test("short jobs share turns: on a loop whose every turn is busy, 100 of them do not wait for 100 turns", async (t) => {
  // Other work holding each turn for 2 ms, as 100 echo calls' packets and ticks do.
  let turns = 0;
  let busy = true;
  const otherWork = () => {
    turns++;
    busyFor(2);
    if (busy) setImmediate(otherWork);
  };
  t.teardown(() => void (busy = false));
  setImmediate(otherWork);
  const started = turns;
  await Promise.all(Array.from({ length: 100 }, () => inLaterLoopTurn(() => busyFor(0.005))));
  const waited = turns - started;
  busy = false;
  t.ok(waited < 10, `100 teardown-sized jobs done within ${waited} turns`);
});

t.test("engine requests started in the same tick: four go on at once, the rest a few per later loop turn; each one's continuations finish, and the timers run, between the turns", async (t) => {
  // As 50 calls' turns ending in the same frame each start an STT request: the request's work
  // goes on in promise continuations (undici's fetch), here a busy continuation per request.
  const order: string[] = [];
  let callerTick = true;
  setTimeout(() => order.push("timer"), 1);
  const requests = Array.from({ length: 10 }, (_, n) =>
    ownLoopTurn()
      .then(() => {
        order.push(`request ${n + 1}${callerTick ? " (at once)" : ""}`);
        busyFor(2);
      })
      .then(() => order.push(`request ${n + 1} sent`)),
  );
  setImmediate(() => (callerTick = false));
  await Promise.all(requests);
  const started = order.filter((e) => /^request \d+( \(at once\))?$/.test(e));
  t.same(started.slice(0, 4), ["request 1 (at once)", "request 2 (at once)", "request 3 (at once)", "request 4 (at once)"], "four go on in the turn they are asked in");
  t.notOk(started.slice(4).some((e) => e.endsWith("(at once)")), "the rest wait for later turns");
  const turnOf = (first: number, last: number) => [...Array.from({ length: last - first + 1 }, (_, n) => `request ${first + n}`), ...Array.from({ length: last - first + 1 }, (_, n) => `request ${first + n} sent`)];
  t.same(order.filter((e) => e.startsWith("request")).map((e) => e.replace(" (at once)", "")), [...turnOf(1, 4), ...turnOf(5, 8), ...turnOf(9, 10)], "in the order asked, four per turn, each turn's finished before the next turn's start");
  t.ok(order.indexOf("timer") < order.indexOf("request 5"), `the timer due during the first four runs before the fifth: ${order.join(", ")}`);
  // Alone, with none waiting: at once, not a turn later (on a loaded loop a turn takes 5–20 ms).
  let turnPassed = false;
  setImmediate(() => (turnPassed = true));
  await ownLoopTurn();
  t.notOk(turnPassed, "a request that comes alone waits for no turn");
});

t.test("a long queue of them is not four per turn: each turn releases a sixteenth of it, so 300 INVITEs on a busy loop are answered within about 60 turns", async (t) => {
  await new Promise((done) => setImmediate(done)); // the last test's turn has ended
  let turn = 0;
  let counting = true;
  const countTurns = () => {
    turn++;
    if (counting) setImmediate(countTurns);
  };
  setImmediate(countTurns);
  const releasedIn: number[] = [];
  await Promise.all(Array.from({ length: 300 }, () => ownLoopTurn().then(() => releasedIn.push(turn))));
  counting = false;
  const perTurn = new Map<number, number>();
  for (const at of releasedIn) perTurn.set(at, (perTurn.get(at) ?? 0) + 1);
  const counts = [...perTurn.values()];
  t.same(counts.slice(0, 3), [4, 15, 18], "four at once; the first turn's end a sixteenth of the 296 waiting (rounded up) less those four; then a sixteenth of the 281 left");
  const rest = counts.slice(2);
  t.ok(rest.every((n, i) => i === 0 || n <= rest[i - 1]), `then fewer each turn: ${counts.join(", ")}`);
  t.ok(perTurn.size <= 70, `all 300 within ${perTurn.size} turns`);
});

t.test("a job that throws rejects its own promise only; the queue goes on", async (t) => {
  const failed = inLaterLoopTurn(() => {
    throw new Error("disk full");
  });
  const next = inLaterLoopTurn(() => undefined);
  await t.rejects(failed, /disk full/);
  await t.resolves(next);
});

function observer(dir: string, callId: string): TraceObserver {
  // The speaker is still busy: the finished turn waits for the call's end to be written.
  const o = new TraceObserver(dir, callId, () => true);
  o.handle({ type: "turn", turn: 0, at: 0, date: new Date("2026-12-03T10:00:00Z") });
  o.handle({ type: "turn-end", turn: 0, spoken: `Hello from ${callId}.` });
  return o;
}

t.test("calls that end together: each call's last records are written after its end, and written() says when", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "wa-trace-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const calls = Array.from({ length: 20 }, (_, i) => `call-${i}`);
  const observers = calls.map((callId) => observer(dir, callId));
  for (const o of observers) o.handle({ type: "closed", at: 1000 });
  t.notOk(calls.some((callId) => existsSync(traceFileOf(dir, callId))), "nothing is written in the hang-ups' own callbacks");
  await Promise.all(observers.map((o) => o.written()));
  for (const callId of calls) {
    t.match(readTrace(dir, callId), [{ turn: 0, spoken: `Hello from ${callId}.` }], `${callId}: its record`);
  }
});

t.test("the trace directory is made once for all calls; removed while the agent runs, the next call makes it again", async (t) => {
  const parent = mkdtempSync(join(tmpdir(), "wa-trace-"));
  t.teardown(() => rmSync(parent, { recursive: true, force: true }));
  const dir = join(parent, "traces");
  const first = observer(dir, "call-a");
  first.handle({ type: "closed", at: 1000 });
  await first.written();
  t.match(readTrace(dir, "call-a"), [{ turn: 0 }], "made for the first call");
  rmSync(dir, { recursive: true });
  const unlucky = observer(dir, "call-b");
  unlucky.handle({ type: "closed", at: 1000 });
  await t.rejects(unlucky.written(), { code: "ENOENT" }, "a call whose directory was removed under it: its write fails with the cause");
  const next = observer(dir, "call-c");
  next.handle({ type: "closed", at: 1000 });
  await next.written();
  t.match(readTrace(dir, "call-c"), [{ turn: 0 }], "the next call makes the directory again");
});

t.test("a record that cannot be written: written() rejects with the cause (nothing unhandled)", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "wa-trace-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(traceFileOf(dir, "call-gone")); // where its file should go
  const o = observer(dir, "call-gone");
  o.handle({ type: "closed", at: 1000 });
  await t.rejects(o.written(), { code: "EISDIR" });
});

t.test("a trace file that cannot be opened for a while holds nothing up: timers run on, and the record is written once it can be", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "wa-trace-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // A FIFO's open for writing waits until a reader opens it: a file system that is slow to open
  // the file, as ext4 was (220-250 ms) while 50 calls' WAVs were being written.
  const file = traceFileOf(dir, "call-slow");
  execFileSync("mkfifo", [file]);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  t.teardown(() => clearInterval(timer));
  // The speaker is idle: the turn's record is written as soon as the turn is over, during the call.
  const o = new TraceObserver(dir, "call-slow", () => false);
  o.handle({ type: "turn", turn: 0, at: 0, date: new Date("2026-12-04T10:00:00Z") });
  o.handle({ type: "turn-end", turn: 0, spoken: "Hello." });
  await new Promise((done) => setTimeout(done, 100));
  t.ok(ticks >= 10, `a 5 ms timer ran ${ticks} times in 100 ms while the record waited for its file`);
  o.handle({ type: "closed", at: 1000 });
  const read = readFile(file, "utf8"); // opens the FIFO: the write goes ahead
  await o.written();
  t.match(JSON.parse((await read).trim()), { turn: 0, spoken: "Hello." }, "the record, once the file opened");
});
