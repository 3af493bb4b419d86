/**
 * Scale-out on one machine, all real daemons on loopback: two Kamailio nodes running the real
 * bundle with the callback state in one Redis, two media agents (their own processes) behind each
 * node's dispatcher, each node with an rtpengine set (its own and a shared one), and the Meta-edge
 * peer spreading the WhatsApp users' calls over both nodes, as DNS SRV does for Meta.
 */
import t from "tap";
import { join } from "node:path";
import { freePort, freePortRange } from "../../build/ports.js";
import { startRedis } from "../../build/redis.js";
import { startRtpengine } from "../../build/rtpengine.js";
import { sleep } from "../../build/kamailio.js";
import { killGroup } from "../../build/process-group.js";
import { mediaAgentDaemon } from "../../stack/daemons.js";
import type { DaemonHandle } from "../../stack/supervisor.js";
import { runSipp, startSipp } from "../support/sipp.js";
import { answerCall, businessCallRacing, businessCallRefused, businessCallsUser, META_CALL_ID, userCallEndedByBusiness, userCallsBusiness } from "../support/wa-scenarios.js";
import { BUSINESS, startInterconnect, WA_USER } from "../support/wa-interconnect.js";
import type { RoutingUnderTest } from "../support/routing-under-test.js";
import { tempDir } from "../support/temp-dir.js";

const PAIR = `wa:cb:{${BUSINESS}|${WA_USER}}`;

t.test("two nodes, two agents, rtpengine sets, one Redis", async (t) => {
  const dir = tempDir(t, "wa-scale-");
  const redis = await startRedis({ dir: join(dir, "redis"), port: await freePort() });
  t.teardown(() => redis.stop());
  const sharedPorts = await freePortRange(100);
  const sharedRtp = await startRtpengine({
    runDir: join(dir, "rtpengine-shared"),
    interfaces: ["127.0.0.1"],
    ng: { host: "127.0.0.1", port: await freePort() },
    portMin: sharedPorts.min,
    portMax: sharedPorts.max,
  });
  t.teardown(() => sharedRtp.stop());
  const agentSip = [await freePort(), await freePort()];
  const w = await startInterconnect(t, {
    secondNode: true,
    rtpPool: [sharedRtp],
    env: {
      WA_STATE_REDIS_URL: redis.url,
      WA_AGENT_URI: agentSip.map((p) => `sip:127.0.0.1:${p}`).join(", "),
      WA_CALLBACK_DAILY_LIMIT: "2",
      WA_AGENT_PROBE_INTERVAL: "1",
    },
  });
  const nodes = [w.us, w.us2!];

  // The agents: agent i places its own calls through node i and serves both nodes.
  const agents: DaemonHandle[] = [];
  const agentApis: Array<{ host: string; port: number }> = [];
  for (let i = 0; i < 2; i++) {
    const rtp = await freePortRange(40);
    const api = { host: "127.0.0.1", port: await freePort() };
    const other = nodes[1 - i].internal;
    const agent = await mediaAgentDaemon({
      name: `agent-${i + 1}`,
      logFile: join(dir, `agent-${i + 1}.log`),
      api,
      env: {
        AGENT_SIP: `127.0.0.1:${agentSip[i]}`,
        AGENT_KAMAILIO: `${nodes[i].internal.host}:${nodes[i].internal.port}`,
        AGENT_KAMAILIO_PEERS: `${other.host}:${other.port}`,
        AGENT_RTP_PORTS: `${rtp.min}-${rtp.max}`,
        AGENT_API: `${api.host}:${api.port}`,
        AGENT_PROFILES: "sales=echo,support=echo",
        AGENT_DEFAULT_PROFILE: "sales",
        AGENT_RECORD_DIR: join(dir, `recordings-${i + 1}`),
        AGENT_LOG_LEVEL: "info",
      },
    }).start();
    agents.push(agent);
    agentApis.push(api);
    t.teardown(() => agent.stop());
  }
  const agentCalls = async (i: number) =>
    ((await (await fetch(`http://${agentApis[i].host}:${agentApis[i].port}/calls`)).json()) as { calls: Array<{ callId: string; status: string }> }).calls;
  const answeredBy = async (i: number) => (await agentCalls(i)).length;
  // dispatcher probes every second: both agents are taken in once each has answered one.
  await waitFor(async () => (await Promise.all(nodes.map((n) => n.kamailio.rpc("dispatcher.list")))).every((l) => (l.match(/FLAGS: A/g) ?? []).length === 2), 10_000, "both agents active on both nodes");

  const userCall = (callIdFormat = META_CALL_ID) =>
    runSipp({ scenarioXml: userCallsBusiness("meta", 300), target: w.edgeUdp, workDir: w.us.workDir, service: BUSINESS, keys: { biz_domain: "sip.example.com", caller: WA_USER }, callIdFormat, timeoutS: 15 });
  const businessCall = (node: RoutingUnderTest, scenarioXml: string) =>
    runSipp({ scenarioXml, target: node.internal, workDir: node.workDir, service: WA_USER, keys: { business: BUSINESS }, timeoutS: 15 });
  const pair = async (node: RoutingUnderTest) => (await fetch(`${node.api}/permissions/${encodeURIComponent(BUSINESS)}/${encodeURIComponent(WA_USER)}`)).json();

  t.test("Meta's calls go through both nodes to both agents; each call's media stays on one rtpengine of the set", async (t) => {
    const calls = 10;
    for (let i = 0; i < calls; i++) {
      // The rtpengine module picks a set member by a hash of the Call-ID (the sum of its bytes):
      // Call-IDs that differ in one digit spread node A's calls (the even ones) over both members.
      const run = await userCall(`outgoing:wacid.scale${Math.floor(i / 2)}-${i % 2 ? "b" : "a"}@%s`);
      t.equal(run.exitCode, 0, `call ${i + 1} answered and ended: ${run.output.slice(-400)}`);
    }
    for (const [i, node] of nodes.entries()) {
      t.equal((node.kamailio.logText().match(/user-initiated call from/g) ?? []).length, calls / 2, `node ${i + 1} carried half of the calls`);
    }
    t.equal((await answeredBy(0)) + (await answeredBy(1)), calls, "every call reached an agent");
    t.ok((await answeredBy(0)) > 0 && (await answeredBy(1)) > 0, "both agents took calls (round robin on each node)");
    // Each rtpengine saw complete calls only: the offer, the answer and the delete of a call on one instance.
    const rtpengines = [w.us.rtpengine, sharedRtp, w.us2!.rtpengine];
    const offers = rtpengines.map((r) => commands(r.logText(), "offer"));
    for (const [i, r] of rtpengines.entries()) {
      t.same(commands(r.logText(), "answer"), offers[i], `rtpengine ${i + 1}: answers for exactly the calls it was offered`);
      t.same(commands(r.logText(), "delete"), offers[i], `rtpengine ${i + 1}: deletes for exactly those calls`);
    }
    t.equal(offers.reduce((n, o) => n + o.length, 0), calls, "each call offered once");
    t.ok(offers[1].length > 0 && offers[0].length + offers[2].length > 0, `both members of the sets took calls (own ${offers[0].length}+${offers[2].length}, shared ${offers[1].length})`);
  });

  t.test("an agent ends calls that came through either node: its BYE goes to the node that holds the call", async (t) => {
    // Each node sends its calls to the agents in turn, so of two calls per node one goes to the
    // agent whose own node (AGENT_KAMAILIO) is the other one.
    for (let i = 0; i < 4; i++) {
      const caller = await startSipp({ scenarioXml: userCallEndedByBusiness(), target: w.edgeUdp, workDir: w.us.workDir, service: BUSINESS, keys: { biz_domain: "sip.example.com", caller: WA_USER }, callIdFormat: META_CALL_ID, timeoutS: 15 });
      let live: { agent: number; callId: string } | undefined;
      for (let tries = 0; tries < 100 && !live; tries++) {
        for (const a of [0, 1]) {
          const call = (await agentCalls(a)).find((c) => c.status === "answered");
          if (call) live = { agent: a, callId: call.callId };
        }
        if (!live) await sleep(50);
      }
      t.ok(live, `call ${i + 1} is up at an agent`);
      await fetch(`http://${agentApis[live!.agent].host}:${agentApis[live!.agent].port}/calls/${encodeURIComponent(live!.callId)}`, { method: "DELETE" });
      const run = await caller.done;
      t.equal(run.exitCode, 0, `call ${i + 1}: the caller got agent ${live!.agent + 1}'s BYE: ${run.output.slice(-300)}`);
    }
    for (const [i, node] of nodes.entries()) {
      const calls = new Set([...node.kamailio.logText().matchAll(/media of call (\S+) deleted \(BYE from the callee \(internal side\)\)/g)].map((m) => m[1]));
      t.equal(calls.size, 2, `node ${i + 1} relayed the agents' BYEs of its two calls`);
    }
  });

  t.test("a permission granted through node A is enforced on node B; the daily limit counts across nodes", async (t) => {
    const refused = await businessCall(nodes[1], businessCallRefused(403));
    t.equal(refused.received.find((m) => m.status === 403)?.reason, "No Call Permission", "node B: no permission yet");
    const granted = await fetch(`${nodes[0].api}/permissions/${encodeURIComponent(BUSINESS)}/${encodeURIComponent(WA_USER)}`, { method: "PUT", body: '{"kind":"temporary"}' });
    t.equal(granted.status, 200);
    const ttl = Number(await redis.cli("TTL", PAIR));
    t.ok(ttl > 7 * 86400 - 60 && ttl <= 7 * 86400, `the pair's key expires with the temporary permission (TTL ${ttl} s)`);
    for (const node of [nodes[1], nodes[0]]) {
      const user = await startSipp({ scenarioXml: answerCall("WhatsApp user"), target: w.waUser, local: w.waUser, workDir: node.workDir, timeoutS: 15 });
      const call = await businessCall(node, businessCallsUser());
      t.equal(call.exitCode, 0, `a call through node ${node === nodes[0] ? "A" : "B"}: ${call.output.slice(-300)}`);
      await user.done;
    }
    t.match(await pair(nodes[1]), { permission: "temporary", connectedLast24h: 2, activeCall: null }, "node B's API shows both nodes' calls");
    const third = await businessCall(nodes[1], businessCallRefused(403));
    t.equal(third.received.find((m) => m.status === 403)?.reason, "Daily Call Limit Reached", "the third call of the day is refused (limit 2), whichever node");
    await fetch(`${nodes[1].api}/permissions/${encodeURIComponent(BUSINESS)}/${encodeURIComponent(WA_USER)}`, { method: "DELETE" });
  });

  t.test("concurrent business-initiated calls for one pair on both nodes: exactly one passes", async (t) => {
    for (let round = 1; round <= 3; round++) {
      const user = `+1555000444${round}`;
      const url = `${nodes[1].api}/permissions/${encodeURIComponent(BUSINESS)}/${encodeURIComponent(user)}`;
      t.equal((await fetch(url, { method: "PUT", body: '{"kind":"permanent"}' })).status, 200);
      if (round === 1) t.equal(await redis.cli("TTL", `wa:cb:{${BUSINESS}|${user}}`), "-1", "a permanent permission does not expire");
      const callee = await startSipp({ scenarioXml: answerCall("WhatsApp user"), target: w.waUser, local: w.waUser, workDir: nodes[0].workDir, timeoutS: 15 });
      const runs = await Promise.all(nodes.map((node) =>
        runSipp({ scenarioXml: businessCallRacing(1500), target: node.internal, workDir: node.workDir, service: user, keys: { business: BUSINESS }, timeoutS: 15 })));
      const finals = runs.map((r) => r.received.find((m) => m.kind === "response" && m.status >= 200)).map((m) => (m ? `${m.status} ${m.reason}` : "none"));
      t.equal(finals.filter((f) => f.startsWith("200")).length, 1, `round ${round}: one call connected (${finals.join(" | ")})`);
      t.equal(finals.filter((f) => f === "486 Busy Here - One Call Per User").length, 1, `round ${round}: the other is busy`);
      await callee.done;
      t.match(await (await fetch(url)).json(), { connectedLast24h: 1, activeCall: null }, `round ${round}: one call counted, none left active`);
    }
  });

  t.test("an agent killed: new calls go to the other at once, no caller hears a dead agent", async (t) => {
    const before = await answeredBy(1);
    killGroup(agents[0].pid, "SIGKILL");
    await agents[0].exited;
    const killedAt = Date.now();
    const firstAnswered: number[] = [];
    for (let i = 0; i < 4; i++) {
      const run = await userCall();
      t.equal(run.exitCode, 0, `call ${i + 1} after the kill answered: ${run.output.slice(-300)}`);
      firstAnswered.push(Date.now() - killedAt);
    }
    t.equal((await answeredBy(1)) - before, 4, "all four taken by the surviving agent");
    t.ok(firstAnswered[0] < 5000, `the first call after the kill was over within ${firstAnswered[0]} ms (goal: answered within 5 s)`);
    await waitFor(async () => (await Promise.all(nodes.map((n) => n.kamailio.rpc("dispatcher.list")))).every((l) => /FLAGS: I/.test(l)), 8000, "both nodes' probes took the dead agent out (1 s interval, 5 s without a reply)");
  });

  t.test("a node killed: its state is intact for the other; Redis gone: calls are refused, not guessed", async (t) => {
    const user = "+15550005555";
    await fetch(`${nodes[0].api}/permissions/${encodeURIComponent(BUSINESS)}/${encodeURIComponent(user)}`, { method: "PUT", body: '{"kind":"permanent"}' });
    await nodes[0].kamailio.crash();
    const state = (await (await fetch(`${nodes[1].api}/permissions/${encodeURIComponent(BUSINESS)}/${encodeURIComponent(user)}`)).json()) as Record<string, unknown>;
    t.match(state, { permission: "permanent" }, "node A's grant, read through node B after A died");
    await nodes[0].crashAndRestart();
    t.match(await (await fetch(`${nodes[0].api}/permissions/${encodeURIComponent(BUSINESS)}/${encodeURIComponent(user)}`)).json(), { permission: "permanent" }, "node A, restarted, has it too");
    t.match(await pair(nodes[0]), { permission: null, connectedLast24h: 2 }, "and the other pair's calls of the day");
    await redis.stop();
    const call = await businessCall(nodes[1], businessCallRefused(503));
    t.equal(call.received.find((m) => m.status === 503)?.reason, "Service Unavailable - Callback State Unavailable");
    const api = await fetch(`${nodes[1].api}/permissions/${encodeURIComponent(BUSINESS)}/${encodeURIComponent(user)}`, { method: "PUT", body: '{"kind":"permanent"}' });
    t.equal(api.status, 503, "the permission API says the state is unavailable: the backend tries again");
    await nodes[1].kamailio.waitForLog(/callback state unavailable: Redis did not answer/);
  });
});

/** rtpengine's commands of one kind, by Call-ID, sorted. */
function commands(log: string, command: string): string[] {
  const ids = new Set<string>();
  for (const m of log.matchAll(new RegExp(`\\[([^\\]\\s]+)\\]: \\[control\\] Received command '${command}'`, "g"))) ids.add(m[1]);
  return [...ids].sort();
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(100);
  }
}
