/**
 * The three /metrics endpoints of the supervised stack (as `npm start` runs it: Kamailio,
 * rtpengine and the media agent as their own processes) scraped while the Meta stand-in edge
 * places calls: one refused, one answered and ended by the caller, one answered and ended by the
 * agent. The documented metrics are there, and the counters move with each call.
 */
import t from "tap";
import { sleep } from "../../build/kamailio.js";
import type { CallRecord } from "../../media-agent/src/calls/call.js";
import { runSipp, startSipp } from "../support/sipp.js";
import { startSupervisedSite } from "../support/supervised-site.js";
import { tempDir } from "../support/temp-dir.js";
import { BUSINESS, WA_USER } from "../support/wa-interconnect.js";
import { META_CALL_ID, userCallEndedByBusiness, userCallRefused, userCallsBusiness } from "../support/wa-scenarios.js";

/** The value of one sample (name with its labels as Prometheus writes them); 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const [, k, v] of (m[3] ?? "").matchAll(/(\w+)="([^"]*)"/g)) have[k] = v;
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return 0;
}

t.test("site mode: each /metrics endpoint answers with the documented metrics, and the counters move with the calls", async (t) => {
  const dir = tempDir(t, "wa-site-metrics-");
  const { edge, apiPort, agentUrl, rtpengineMetricsUrl } = await startSupervisedSite(t, dir, () => undefined);

  const scrape = async () => ({
    kamailio: await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text(),
    rtpengine: await (await fetch(rtpengineMetricsUrl)).text(),
    agent: await (await fetch(`${agentUrl}/metrics`)).text(),
  });
  const sipp = { target: edge.udp, workDir: dir, keys: { biz_domain: "sip.example.com", caller: WA_USER }, callIdFormat: META_CALL_ID };
  const agentCalls = async () => ((await (await fetch(`${agentUrl}/calls`)).json()) as { calls: CallRecord[] }).calls;
  const ended = async (n: number) => {
    for (let i = 0; i < 50 && (await agentCalls()).filter((c) => c.status === "ended").length < n; i++) await sleep(100);
  };

  const before = await scrape();
  t.match(before.kamailio, /^kamailio_dialog_active_dialogs /m, "Kamailio's own statistics");
  t.match(before.rtpengine, /^rtpengine_sessions\{type="own"\} 0$/m, "rtpengine's own");
  t.match(before.agent, /^wa_agent_active_calls 0$/m, "the agent's");

  // Refused: a number we do not serve.
  const refused = await runSipp({ ...sipp, service: "+15559999999", scenarioXml: userCallRefused(404), timeoutS: 15 });
  t.equal(refused.exitCode, 0, refused.output);
  // Answered, ended by the caller.
  const byCaller = await runSipp({ ...sipp, service: BUSINESS, scenarioXml: userCallsBusiness(), timeoutS: 15 });
  t.equal(byCaller.exitCode, 0, byCaller.output);
  await ended(1);
  // Answered, ended by the agent (through its API, as the business backend would).
  const byAgent = await startSipp({ ...sipp, service: BUSINESS, scenarioXml: userCallEndedByBusiness(), timeoutS: 15 });
  let live: CallRecord | undefined;
  for (let i = 0; i < 50 && !live; i++) {
    live = (await agentCalls()).find((c) => c.status === "answered");
    if (!live) await sleep(100);
  }
  const during = await scrape();
  t.equal(sample(during.rtpengine, "rtpengine_sessions", { type: "own" }), 1, "rtpengine holds the call in progress");
  t.equal(sample(during.agent, "wa_agent_active_calls"), 1);
  await fetch(`${agentUrl}/calls/${encodeURIComponent(live!.callId)}`, { method: "DELETE" });
  t.equal((await byAgent.done).exitCode, 0, "the caller got the agent's BYE");
  await ended(2);

  const after = await scrape();
  const moved = (which: keyof typeof after, name: string, labels: Record<string, string>) => sample(after[which], name, labels) - sample(before[which], name, labels);
  t.equal(moved("kamailio", "kamailio_wa_refusals_total", { method: "INVITE", code: "404", reason: "Not Found - Unknown Business Number" }), 1, "the refusal");
  t.equal(moved("kamailio", "kamailio_wa_calls_total", { direction: "user-initiated", outcome: "relayed to the agent" }), 2, "two calls to the agent");
  t.equal(moved("agent", "wa_agent_calls_total", { direction: "inbound", profile: "default", status: "ended", end_reason: "remote BYE" }), 1, "ended by the caller");
  t.equal(moved("agent", "wa_agent_calls_total", { direction: "inbound", profile: "default", status: "ended", end_reason: "local BYE" }), 1, "ended by the agent");
  t.ok(moved("agent", "wa_agent_rtp_packets_total", { kind: "sent" }) > 10, "the calls' RTP is counted (the agent sends from the answer on)");
  t.equal(sample(after.rtpengine, "rtpengine_sessions", { type: "own" }), 0, "rtpengine holds nothing after the calls");
  t.equal(sample(after.agent, "wa_agent_active_calls"), 0);
});
