/**
 * `npm run bench -- routing [--quick]`: what the routing costs Kamailio per request.
 *
 * Three paths, each for three variants of the same Kamailio (same kamailio.cfg parameters,
 * listeners, modules, 2 workers, rtpengine; bench/native/stand.ts):
 *   - OPTIONS on the internal UDP listener from an allowed internal source;
 *   - a Meta INVITE decision: a call over TLS from 127.0.0.2 (in WA_META_PREFIXES) through
 *     rtpengine to a UAS in the agent's place, then ACK and BYE (one call = 3 requests);
 *   - a business-initiated INVITE from the internal side through the callback rules (a
 *     permission on record) to a TLS UAS in Meta's edge's place (wa.meta.vc certificate), then
 *     ACK and BYE;
 * and the variants: (a) the project's bundle, (b) the app_jsdt floor (bench/floor/main.ts: the
 * least JavaScript that carries the path), (c) the native twin (bench/native/kamailio-twin.cfg).
 *
 * Per path and variant: Kamailio's CPU (utime+stime of its whole process group, from /proc)
 * per 10k completed requests or calls at a fixed rate, taken in rounds that alternate between
 * the three Kamailios (all running side by side) so that other load falls on each alike, the p99 answer time at that rate (final answer to
 * OPTIONS, 200 OK to the INVITE), and the highest rate of a short ramp with no failure (a
 * failure: no answer within the timeout, or another status than expected). Ratios to the floor
 * and to native are from the same run. The load generator is this Node process, on the same
 * machine: only Kamailio's processes are counted.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchArgs, percentile, printTable, writeResult } from "./lib/report.js";
import {
  BUSINESS, groupCpuSeconds, hdr, hdrs, META_IP, metaSdp, agentSdp, newId, permittedUser, request, startStand, tlsClient, txKey, udpClient,
  VARIANTS, type Msg, type SipClient, type Stand, type Variant,
} from "./native/stand.js";

const args = benchArgs();
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

type PathName = "options" | "meta-invite" | "business-invite";
const PATHS: PathName[] = ["options", "meta-invite", "business-invite"];

interface PathPlan {
  /** Requests (OPTIONS) or calls for the CPU figure, and their rate per second. */
  count: number;
  rate: number;
  /**
   * Rates of the ramp, each held for rampSeconds. Steps up to the CPU figure's own rate are
   * skipped when that had no failure: it has just held longer than a step would.
   */
  ramp: number[];
  rampSeconds: number;
}

const PLANS: Record<PathName, PathPlan> = args.quick
  ? {
      options: { count: 600, rate: 2000, ramp: [2000], rampSeconds: 0.5 },
      "meta-invite": { count: 60, rate: 100, ramp: [100], rampSeconds: 0.5 },
      "business-invite": { count: 60, rate: 50, ramp: [50], rampSeconds: 0.5 },
    }
  : {
      options: { count: 10000, rate: 2000, ramp: [2000, 4000, 6000, 8000, 10000, 12000], rampSeconds: 1 },
      "meta-invite": { count: 1600, rate: 200, ramp: [200, 300, 400, 600, 800, 1000], rampSeconds: 1 },
      "business-invite": { count: 500, rate: 100, ramp: [100, 200, 400, 600, 800], rampSeconds: 1 },
    };
/**
 * Users with a permission on record; business calls take a free one each (one call per user).
 * Enough that the ramp's highest rates find a free one (a call holds its user ~1 s); the table's
 * size does not change a call's cost (each change writes the pair's own row).
 */
const PERMITTED_USERS = 512;
const TIMEOUT_MS = 3000;

interface LoadResult {
  sent: number;
  ok: number;
  failed: number;
  /** ms from the request (INVITE) to its final answer (200). */
  answerMs: number[];
  statuses: Record<string, number>;
  /** Kamailio CPU seconds during the run (whole process group). */
  cpu: number;
  seconds: number;
}

/** One unit of work: resolves with its answer time, or rejects with why it failed. */
type Job = (client: SipClient, i: number) => Promise<number>;

/** Matches answers to requests by Call-ID and CSeq method. */
class Waiters {
  private map = new Map<string, (m: Msg) => void>();
  constructor(client: SipClient) {
    client.onMessage = (m) => {
      if (m.status < 200) return;
      const k = txKey(m);
      const w = this.map.get(k);
      if (w) {
        this.map.delete(k);
        w(m);
      }
    };
  }
  wait(callId: string, method: string): Promise<Msg> {
    return new Promise((done, fail) => {
      const k = `${callId} ${method}`;
      const timer = setTimeout(() => {
        this.map.delete(k);
        fail(new Error("timeout"));
      }, TIMEOUT_MS);
      this.map.set(k, (m) => {
        clearTimeout(timer);
        done(m);
      });
    });
  }
}

const via = (c: SipClient) => `SIP/2.0/${c.transport} ${c.local.host}:${c.local.port};branch=z9hG4bK-${newId()};rport`;

function optionsJob(waiters: Waiters): Job {
  return async (c) => {
    const callId = `opt-${newId()}`;
    const started = performance.now();
    const answer = waiters.wait(callId, "OPTIONS");
    c.send(request("OPTIONS", "sip:sip.example.com", [
      ["Via", via(c)], ["Max-Forwards", "70"], ["From", `<sip:probe@${c.local.host}>;tag=${newId()}`], ["To", "<sip:sip.example.com>"],
      ["Call-ID", callId], ["CSeq", "1 OPTIONS"], ["User-Agent", "bench"],
    ]));
    const m = await answer;
    if (m.status !== 200) throw new Error(String(m.status));
    return performance.now() - started;
  };
}

/** INVITE → 200 → ACK → BYE → 200 along the recorded route; the answer time is the INVITE's. */
async function call(c: SipClient, waiters: Waiters, invite: { uri: string; from: string; to: string; extra: Array<[string, string]>; sdp: string }): Promise<number> {
  const callId = `${c.transport === "TLS" ? "outgoing:wacid." : "bench-"}${newId()}`;
  const started = performance.now();
  const answered = waiters.wait(callId, "INVITE");
  c.send(request("INVITE", invite.uri, [
    ["Via", via(c)], ["Max-Forwards", "70"], ["From", invite.from], ["To", invite.to], ["Call-ID", callId], ["CSeq", "1 INVITE"],
    ["Contact", `<sip:caller@${c.local.host}:${c.local.port}${c.transport === "TLS" ? ";transport=tls" : ""}>`],
    ...invite.extra, ["Content-Type", "application/sdp"],
  ], invite.sdp));
  const ok = await answered;
  if (ok.status !== 200) throw new Error(String(ok.status));
  const ms = performance.now() - started;
  const routes = hdrs(ok, "record-route").flatMap((v) => v.split(/,(?=\s*<)/)).map((s) => s.trim()).reverse();
  const target = /<([^>]+)>/.exec(hdr(ok, "contact"))?.[1] ?? invite.uri;
  const inDialog = (method: string, cseq: number) =>
    request(method, target, [
      ["Via", via(c)], ["Max-Forwards", "70"], ...(routes.length ? [["Route", routes.join(", ")] as [string, string]] : []),
      ["From", invite.from], ["To", hdr(ok, "to")], ["Call-ID", callId], ["CSeq", `${cseq} ${method}`],
    ]);
  c.send(inDialog("ACK", 1));
  const bye = waiters.wait(callId, "BYE");
  c.send(inDialog("BYE", 2));
  const byeAnswer = await bye;
  if (byeAnswer.status !== 200) throw new Error(`BYE ${byeAnswer.status}`);
  return ms;
}

function metaInviteJob(waiters: Waiters, stand: Stand): Job {
  return (c, i) =>
    call(c, waiters, {
      uri: `sip:${BUSINESS}@${stand.tls.host}:${stand.tls.port};transport=tls`,
      from: `"user" <sip:+1555${String(3000000 + (i % 1000000))}@wa.meta.vc>;tag=${newId()}`,
      to: `<sip:${BUSINESS}@sip.example.com>`,
      extra: [["X-FB-External-Domain", "wa.meta.vc"], ["X-WA-Meta-Wacid", newId()]],
      sdp: metaSdp(META_IP, 42000),
    });
}

function businessInviteJob(waiters: Waiters, stand: Stand): Job {
  const free: number[] = [];
  for (let u = 0; u < PERMITTED_USERS; u++) free.push(u);
  return async (c) => {
    const u = free.shift();
    if (u === undefined) throw new Error("no free permitted user (too many calls at once)");
    try {
      return await call(c, waiters, {
        uri: `sip:${permittedUser(u)}@${stand.internal.host}:${stand.internal.port}`,
        from: `<sip:${BUSINESS}@127.0.0.1>;tag=${newId()}`,
        to: `<sip:${permittedUser(u)}@127.0.0.1>`,
        extra: [],
        sdp: agentSdp("127.0.0.1", 43000),
      });
    } finally {
      // The dialog's end frees the pair in the callback state a moment after the BYE's 200.
      setTimeout(() => free.push(u), 20);
    }
  };
}

/** Runs `count` jobs at `rate` per second (open loop, batches every 5 ms) and measures Kamailio's CPU. */
async function load(stand: Stand, client: SipClient, job: Job, count: number, rate: number): Promise<LoadResult> {
  const res: LoadResult = { sent: 0, ok: 0, failed: 0, answerMs: [], statuses: {}, cpu: 0, seconds: 0 };
  const pending: Promise<void>[] = [];
  const cpu0 = groupCpuSeconds(stand.kamailio.pid);
  const t0 = performance.now();
  while (res.sent < count) {
    const due = Math.min(count, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
    while (res.sent < due) {
      const i = res.sent++;
      pending.push(
        job(client, i).then(
          (ms) => {
            res.ok++;
            res.answerMs.push(ms);
          },
          (e: Error) => {
            res.failed++;
            res.statuses[e.message] = (res.statuses[e.message] ?? 0) + 1;
          },
        ),
      );
    }
    await sleep(5);
  }
  await Promise.all(pending);
  res.seconds = (performance.now() - t0) / 1000;
  res.cpu = groupCpuSeconds(stand.kamailio.pid) - cpu0;
  return res;
}

interface PathFigures {
  count: number;
  rate: number;
  failed: number;
  failures: Record<string, number>;
  cpuSeconds: number;
  cpuPer10k: number;
  p50Ms: number;
  p99Ms: number;
  maxRateNoFailure: number | null;
  rampStoppedAt: number | null;
}

interface PathRun {
  client: SipClient;
  job: Job;
}

async function preparePath(stand: Stand, path: PathName): Promise<PathRun> {
  const client = path === "meta-invite" ? await tlsClient(META_IP, stand.tls) : await udpClient("127.0.0.1", stand.internal);
  const waiters = new Waiters(client);
  const job = path === "options" ? optionsJob(waiters) : path === "meta-invite" ? metaInviteJob(waiters, stand) : businessInviteJob(waiters, stand);
  await load(stand, client, job, Math.min(20, PLANS[path].count), 50); // warm-up: every worker has loaded the bundle and its settings
  return { client, job };
}

/**
 * One path for every variant. The CPU figure is taken in rounds that alternate between the
 * variants (bundle, floor, native, bundle, …), so load from elsewhere on the machine falls on all
 * of them alike; then each variant's ramp.
 */
async function measurePath(stands: Partial<Record<Variant, Stand>>, path: PathName): Promise<Partial<Record<Variant, PathFigures>>> {
  const plan = PLANS[path];
  const variants = VARIANTS.filter((v) => stands[v]);
  const runs: Partial<Record<Variant, PathRun>> = {};
  const acc: Partial<Record<Variant, LoadResult>> = {};
  try {
    for (const v of variants) {
      runs[v] = await preparePath(stands[v]!, path);
      acc[v] = { sent: 0, ok: 0, failed: 0, answerMs: [], statuses: {}, cpu: 0, seconds: 0 };
    }
    const rounds = args.quick ? 1 : 5;
    for (let round = 0; round < rounds; round++) {
      for (const v of variants) {
        const r = await load(stands[v]!, runs[v]!.client, runs[v]!.job, Math.round(plan.count / rounds), plan.rate);
        const a = acc[v]!;
        a.sent += r.sent;
        a.ok += r.ok;
        a.failed += r.failed;
        a.cpu += r.cpu;
        a.seconds += r.seconds;
        a.answerMs.push(...r.answerMs);
        for (const [k, n] of Object.entries(r.statuses)) a.statuses[k] = (a.statuses[k] ?? 0) + n;
        await sleep(200);
      }
    }
    const out: Partial<Record<Variant, PathFigures>> = {};
    for (const v of variants) {
      const proven = acc[v]!.failed === 0 ? plan.rate : null;
      let maxRate = proven;
      let stoppedAt: number | null = null;
      for (const rate of plan.ramp.filter((r) => proven === null || r > proven)) {
        await sleep(300);
        const step = await load(stands[v]!, runs[v]!.client, runs[v]!.job, Math.round(rate * plan.rampSeconds), rate);
        if (step.failed > 0) {
          stoppedAt = rate;
          break;
        }
        maxRate = rate;
      }
      const r = acc[v]!;
      out[v] = {
        count: r.sent, rate: plan.rate, failed: r.failed, failures: r.statuses,
        // Per completed request or call: work that failed half-way is in the CPU, not in the count.
        cpuSeconds: round(r.cpu, 3), cpuPer10k: round((r.cpu / Math.max(1, r.ok)) * 10000, 3),
        p50Ms: round(percentile(r.answerMs, 50), 2), p99Ms: round(percentile(r.answerMs, 99), 2),
        maxRateNoFailure: maxRate, rampStoppedAt: stoppedAt,
      };
      process.stderr.write(`routing: ${v} ${path}: ${JSON.stringify(out[v])}\n`);
    }
    return out;
  } finally {
    for (const v of variants) runs[v]?.client.close();
  }
}

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;

async function main(): Promise<void> {
  const started = Date.now();
  const teardowns: Array<() => unknown> = [];
  const t = { teardown: (fn: () => unknown) => void teardowns.unshift(fn) };
  const results: Record<Variant, Record<PathName, PathFigures>> = {} as never;
  const root = mkdtempSync(join(tmpdir(), "bench-routing-"));
  try {
    // ROUTING_BENCH_VARIANTS=bundle,floor: a subset while working on one (the table needs all three).
    // ROUTING_BENCH_PATHS=options: a subset of paths, likewise; ROUTING_BENCH_BUNDLE_ENTRY: another
    // routing entry as "bundle" (e.g. an older tree, for before/after).
    const only = process.env.ROUTING_BENCH_VARIANTS?.split(",");
    const stands: Partial<Record<Variant, Stand>> = {};
    for (const variant of VARIANTS.filter((v) => !only || only.includes(v))) {
      stands[variant] = await startStand(t, variant, join(root, variant), { permittedUsers: PERMITTED_USERS });
      results[variant] = {} as Record<PathName, PathFigures>;
    }
    for (const path of PATHS.filter((p) => !process.env.ROUTING_BENCH_PATHS || process.env.ROUTING_BENCH_PATHS.split(",").includes(p))) {
      const figures = await measurePath(stands, path);
      for (const [v, f] of Object.entries(figures)) results[v as Variant][path] = f;
    }
  } finally {
    for (const fn of teardowns.splice(0)) await fn();
    rmSync(root, { recursive: true, force: true });
  }
  const rows: Array<Array<string | number>> = [];
  const figures: Record<string, unknown> = { unit: "CPU-s per 10k requests (OPTIONS) or calls (INVITE+ACK+BYE)", paths: {} };
  const ran = VARIANTS.filter((v) => results[v]);
  for (const path of PATHS.filter((p) => results[ran[0]][p])) {
    const floor = results.floor?.[path]?.cpuPer10k ?? 0;
    const native = results.native?.[path]?.cpuPer10k ?? 0;
    const perPath: Record<string, unknown> = {};
    // ROUTING_BENCH_VARIANTS=bundle,floor: a subset while working on one (the table needs all three).
    const only = process.env.ROUTING_BENCH_VARIANTS?.split(",");
    for (const variant of VARIANTS.filter((v) => !only || only.includes(v))) {
      const f = results[variant][path];
      // Below a few clock ticks (10 ms) of CPU a ratio means nothing (--quick): null.
      const vsFloor = floor > 0 ? round(f.cpuPer10k / floor, 2) : null;
      const vsNative = native > 0 ? round(f.cpuPer10k / native, 2) : null;
      perPath[variant] = { ...f, vsFloor, vsNative };
      rows.push([path, variant, f.cpuPer10k.toFixed(3), vsFloor === null ? "n/a" : vsFloor.toFixed(2), vsNative === null ? "n/a" : vsNative.toFixed(2),
        f.maxRateNoFailure === null ? `< ${PLANS[path].ramp[0]}` : `${f.maxRateNoFailure}${f.rampStoppedAt === null ? "+" : ""}`,
        f.p99Ms.toFixed(2), f.failed]);
    }
    (figures.paths as Record<string, unknown>)[path] = perPath;
  }
  figures.plans = PLANS;
  figures.seconds = Math.round((Date.now() - started) / 1000);
  printTable(
    `Routing: Kamailio CPU per 10k requests (OPTIONS) or calls (INVITE+ACK+BYE), 2 workers, loopback${args.quick ? " (--quick: smoke figures)" : ""}`,
    ["path", "variant", "CPU-s/10k", "× floor", "× native", "max rate/s, 0 failures", "p99 ms", "failed"],
    rows,
  );
  writeResult(args, "routing", figures);
  // The floor and the twin never fail at the measured rates: if they do, the stand is broken.
  // The bundle failing is a finding (printed), not a broken benchmark.
  const failedIn = (vs: Variant[]) => vs.filter((v) => PATHS.some((p) => (results[v]?.[p]?.failed ?? 0) > 0));
  if (failedIn(["bundle"]).length) console.error("routing: WARNING: the bundle failed requests at the measured rate (see 'failed')");
  if (failedIn(["floor", "native"]).length) {
    console.error(`routing: ${failedIn(["floor", "native"]).join(", ")} failed requests: the stand is broken`);
    process.exitCode = 1;
  }
}

await main();
