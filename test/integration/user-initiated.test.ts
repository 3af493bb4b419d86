/**
 * User-initiated calls through an independent Meta-edge peer over TLS:
 * SIPp (WhatsApp user) → edge (UDP→TLS, Meta's headers) → our Kamailio → SIPp (media agent).
 */
import t from "tap";
import { startSipp, runSipp } from "../support/sipp.js";
import { answerCall, META_CALL_ID, userCallRefused, userCallsBusiness, userCallWithRefusedReinvite } from "../support/wa-scenarios.js";
import { BUSINESS, startInterconnect, WA_USER, type Interconnect } from "../support/wa-interconnect.js";
import { header, headerValues } from "../../media-agent/src/sip/message.js";

function callKeys(service = BUSINESS) {
  return { service, keys: { biz_domain: "sip.example.com", caller: WA_USER }, callIdFormat: META_CALL_ID };
}

async function userCall(w: Interconnect, scenarioXml: string, service = BUSINESS) {
  return runSipp({ scenarioXml, target: w.edgeUdp, workDir: w.us.workDir, ...callKeys(service), timeoutS: 15 });
}

t.test("WhatsApp user → Meta edge → our Kamailio → media agent", async (t) => {
  const w = await startInterconnect(t);

  t.test("a full call: INVITE → 200 → ACK → BYE, Meta's Record-Routes kept, profile and x-wa-meta headers on to the agent", async (t) => {
    const agent = await startSipp({ scenarioXml: answerCall("media agent"), target: w.agent, local: w.agent, workDir: w.us.workDir, timeoutS: 15 });
    const user = await userCall(w, userCallsBusiness());
    const agentRun = await agent.done;
    t.equal(user.exitCode, 0, `WhatsApp user side: ${user.output}`);
    t.equal(agentRun.exitCode, 0, `agent side: ${agentRun.output}`);

    const invite = agentRun.received.find((m) => m.method === "INVITE")!;
    t.equal(header(invite, "X-WA-Profile"), "sales", "the agent learns the number's profile");
    t.equal(header(invite, "X-FB-External-Domain"), "wa.meta.vc");
    t.match(header(invite, "x-wa-meta-wacid"), /^wacid\./);
    t.equal(header(invite, "x-wa-meta-user-name"), "Test User");
    t.match(invite.uri, /^sip:\+15550001111@sip\.example\.com/, "the agent sees the business number in the R-URI");

    const ok = user.received.find((m) => m.status === 200 && /INVITE/.test(header(m, "CSeq") ?? ""))!;
    const rr = headerValues(ok, "Record-Route");
    t.equal(rr.length, 4, `our two Record-Routes plus the edge's two: ${rr.join(" | ")}`);
    t.match(rr[0], /^<sip:127\.0\.0\.1:\d+;r2=on;lr/, "ours, loopback side, toward the agent");
    t.match(rr[1], /^<sip:127\.0\.0\.1:\d+;transport=tls;r2=on;lr/, "ours, TLS side, toward Meta");
    t.match(rr.slice(2).join(" "), /127\.0\.0\.2/, "the edge's own Record-Routes are still there, unchanged");
    t.ok(agentRun.received.some((m) => m.method === "BYE"), "BYE reached the agent through the route set");
  });

  t.test("Meta's re-INVITE mid-call is answered 488 by us (never reaches the agent) and the call goes on to its BYE", async (t) => {
    const agent = await startSipp({ scenarioXml: answerCall("media agent"), target: w.agent, local: w.agent, workDir: w.us.workDir, timeoutS: 15 });
    const user = await userCall(w, userCallWithRefusedReinvite());
    const agentRun = await agent.done;
    t.equal(user.exitCode, 0, `WhatsApp user side: ${user.output}`);
    t.equal(agentRun.exitCode, 0, `agent side (INVITE, ACK, BYE only): ${agentRun.output}`);
    t.equal(user.received.find((m) => m.status === 488)?.reason, "Not Acceptable Here - Session Changes Not Supported");
    t.same(agentRun.received.map((m) => m.method), ["INVITE", "ACK", "BYE"], "the agent saw no re-INVITE");
    await w.us.kamailio.waitForLog(/in-dialog INVITE from Meta: the call keeps its media session/);
  });

  t.test("a number we do not serve gets 404", async (t) => {
    const run = await userCall(w, userCallRefused(404), "+15559990000");
    t.equal(run.exitCode, 0, run.output);
    t.equal(run.received.find((m) => m.status === 404)?.reason, "Not Found - Unknown Business Number");
  });

  t.test("a call with Meta's headers from a non-Meta address is refused 403 and never reaches the agent", async (t) => {
    const run = await userCall(w, userCallRefused(403, "outsider"));
    t.equal(run.exitCode, 0, run.output);
    t.equal(run.received.find((m) => m.status === 403)?.reason, "Not From Meta Edge");
    await w.us.kamailio.waitForLog(/refused INVITE .* from tls:127\.0\.0\.3:\d+ with 403 Not From Meta Edge: source 127\.0\.0\.3 is outside the Meta prefixes \(X-FB-External-Domain forged\?\)/);
  });
});

t.test("with WA_INBOUND_AUTH=MD5 Meta's INVITE is challenged and the call connects once Meta answers", async (t) => {
  const w = await startInterconnect(t, { env: { WA_INBOUND_AUTH: "MD5" } });
  const agent = await startSipp({ scenarioXml: answerCall("media agent"), target: w.agent, local: w.agent, workDir: w.us.workDir, timeoutS: 15 });
  const user = await userCall(w, userCallsBusiness());
  t.equal(user.exitCode, 0, user.output);
  t.equal((await agent.done).exitCode, 0);
  await w.edge.waitForLog(/edge: answered the business's challenge/);
  t.notOk((await agent.done).received.some((m) => /Proxy-Authorization/i.test(m.headers.map((h) => h.name).join(" "))), "credentials are consumed, not passed to the agent");
});

t.test("with WA_INBOUND_AUTH=MD5 a wrong answer from 'Meta' is refused 403", async (t) => {
  const w = await startInterconnect(t, { env: { WA_INBOUND_AUTH: "MD5" }, edgeAnswerPassword: "guessed" });
  const run = await userCall(w, userCallRefused(403));
  t.equal(run.exitCode, 0, run.output);
  t.equal(run.received.find((m) => m.status === 403)?.reason, "Forbidden - Digest Check Failed");
  await w.us.kamailio.waitForLog(/refused INVITE .* with 403 Forbidden - Digest Check Failed: wrong digest response/);
});
