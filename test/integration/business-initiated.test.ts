/**
 * Business-initiated calls: SIPp (media agent) → our Kamailio → TLS → the Meta-edge peer,
 * which challenges with digest, verifies our answer with its own auth module, checks
 * Meta's From/To/R-URI rules, and forwards to SIPp (the WhatsApp user).
 */
import t from "tap";
import { runSipp, startSipp } from "../support/sipp.js";
import { answerCall, businessCallRefused, businessCallsUser } from "../support/wa-scenarios.js";
import { BUSINESS, grantPermission, startInterconnect, WA_USER, type Interconnect } from "../support/wa-interconnect.js";
import { header } from "../../media-agent/src/sip/message.js";
import type { Test } from "tap";

async function businessCall(w: Interconnect, scenarioXml: string, user = WA_USER) {
  return runSipp({ scenarioXml, target: w.us.internal, workDir: w.us.workDir, service: user, keys: { business: BUSINESS }, timeoutS: 15 });
}

/** A permitted business-initiated call that the WhatsApp user (SIPp) answers; both sides' runs checked. */
async function answeredBusinessCall(t: Test, opts: Parameters<typeof startInterconnect>[1], userId = WA_USER) {
  const w = await startInterconnect(t, opts);
  await grantPermission(w, userId);
  const user = await startSipp({ scenarioXml: answerCall("WhatsApp user"), target: w.waUser, local: w.waUser, workDir: w.us.workDir, timeoutS: 15 });
  const agent = await businessCall(w, businessCallsUser(), userId);
  const userRun = await user.done;
  t.equal(agent.exitCode, 0, `agent side: ${agent.output}`);
  t.equal(userRun.exitCode, 0, `WhatsApp user side: ${userRun.output}`);
  return { w, agent, userRun };
}

for (const algorithm of ["MD5", "SHA-256"] as const) {
  t.test(`${algorithm} digest: a full call INVITE → 407 → INVITE with credentials → 200 → ACK → BYE`, async (t) => {
    const { w, agent, userRun } = await answeredBusinessCall(t, { digestAlgorithm: algorithm });

    const invite = userRun.received.find((m) => m.method === "INVITE")!;
    t.equal(header(invite, "X-Edge-Verified"), BUSINESS.slice(1), "the edge's auth module accepted username = number without +");
    t.match(invite.uri, /^sip:\+15551234567@/);
    t.match(header(invite, "From"), /<sip:\+15550001111@sip\.example\.com>/, "From as Meta wants it");
    t.match(header(invite, "To"), /<sip:\+15551234567@wa\.meta\.vc>/, "To consistent with the R-URI");
    await w.edge.waitForLog(new RegExp(`edge: accepted business call from \\+15550001111 to \\+15551234567, digest user 15550001111, 1 credentials header\\(s\\)`));
    await w.us.kamailio.waitForLog(new RegExp(`answering Meta's 407 \\(${algorithm} of 1 challenge header\\(s\\)\\) for \\+15550001111`));
    t.ok(userRun.received.some((m) => m.method === "BYE"), "BYE reached the WhatsApp user");
    // The digest re-send is a new transaction (CSeq 2); the agent's ACK and BYE are shifted to
    // match, and the agent gets its own CSeq back in the replies.
    t.equal(header(invite, "CSeq"), "2 INVITE");
    t.equal(header(userRun.received.find((m) => m.method === "ACK")!, "CSeq"), "2 ACK");
    t.equal(header(userRun.received.find((m) => m.method === "BYE")!, "CSeq"), "3 BYE");
    const agentReplies = agent.received.filter((m) => m.status === 200).map((m) => header(m, "CSeq"));
    t.same(agentReplies, ["1 INVITE", "2 BYE"]);
  });
}

for (const decoy of ["first", "after"] as const) {
  t.test(`Meta's double 407 (MD5 challenge ${decoy === "first" ? "before" : "after"} SHA-256): the SHA-256 one is answered, once`, async (t) => {
    const { w, userRun } = await answeredBusinessCall(t, { digestAlgorithm: "SHA-256", digestDecoy: decoy });
    await w.edge.waitForLog(/edge: double challenge, decoy Proxy-Authenticate: Digest .*algorithm=MD5/);
    await w.edge.waitForLog(/edge: accepted business call from .*, digest user 15550001111, 1 credentials header\(s\)/);
    t.equal(header(userRun.received.find((m) => m.method === "INVITE")!, "X-Edge-Verified"), BUSINESS.slice(1), "the edge's auth module verified a SHA-256 answer");
    await w.us.kamailio.waitForLog(/answering Meta's 407 \(SHA-256 of 2 challenge header\(s\)\) for \+15550001111/);
    t.equal((w.us.kamailio.logText().match(/answering Meta's 407/g) ?? []).length, 1, "one answer");
    const metrics = await (await fetch(`${w.us.api}/metrics`)).text();
    t.match(metrics, /kamailio_wa_digest_answers_total\{algorithm="SHA-256", ?result="sent"\} 1/, "Kamailio's /metrics counts the digest answer");
    t.match(metrics, /kamailio_wa_callback_decisions_total\{decision="allowed"\} 1/);
    t.match(metrics, /kamailio_wa_calls_total\{direction="business-initiated", ?outcome="answered"\} 1/);
  });
}

t.test("a call to a business-scoped user id (BSUID) reaches the edge in Meta's form, with its own permission", async (t) => {
  const BSUID = "US.13491208655302741918";
  const { w, userRun } = await answeredBusinessCall(t, {}, BSUID);
  const invite = userRun.received.find((m) => m.method === "INVITE")!;
  t.match(invite.uri, new RegExp(`^sip:${BSUID.replace(".", "\\.")}@`), "the R-URI carries the BSUID");
  t.match(header(invite, "To"), new RegExp(`<sip:${BSUID.replace(".", "\\.")}@wa\\.meta\\.vc>`));
  await w.edge.waitForLog(new RegExp(`edge: accepted business call from \\+15550001111 to ${BSUID.replace(".", "\\.")}`));
  const pair = await (await fetch(`${w.us.api}/permissions/${encodeURIComponent(BUSINESS)}/${BSUID}`)).json();
  t.match(pair, { permission: "permanent", connectedLast24h: 1 }, "the BSUID's own pair counted the call");
  const bad = await fetch(`${w.us.api}/permissions/${encodeURIComponent(BUSINESS)}/not-a-user`, { method: "PUT", body: '{"kind":"permanent"}' });
  t.equal(bad.status, 400);
  t.match((await bad.json()) as object, { error: /neither E\.164 with \+ nor a business-scoped user id/ });
});

t.test("a wrong password ends the call with Meta's 403, answered once, no loop", async (t) => {
  const w = await startInterconnect(t, { edgePassword: "not-what-we-have" });
  await grantPermission(w, WA_USER);
  const agent = await businessCall(w, businessCallRefused(403));
  t.equal(agent.exitCode, 0, agent.output);
  t.equal(agent.received.find((m) => m.status === 403)?.reason, "Forbidden");
  t.equal((w.us.kamailio.logText().match(/answering Meta's 407/g) ?? []).length, 1, "one digest answer");
  await w.us.kamailio.waitForLog(/business-initiated call to .* ended by Meta: 403 Forbidden/);
});

t.test("an edge whose certificate has a valid chain but is not for wa.meta.vc gets no credentials; the call ends 502", async (t) => {
  const w = await startInterconnect(t, { edgeCertHosts: ["evil.example.net", "127.0.0.2"] });
  await grantPermission(w, WA_USER);
  const agent = await businessCall(w, businessCallRefused(502));
  t.equal(agent.exitCode, 0, agent.output);
  t.equal(agent.received.find((m) => m.status === 502)?.reason, "Bad Gateway - Meta Certificate Name Mismatch");
  await w.us.kamailio.waitForLog(/untrusted reply 407 from 127\.0\.0\.2:\d+: peer certificate is for 'evil\.example\.net', not wa\.meta\.vc/);
  t.notMatch(w.us.kamailio.logText(), /answering Meta's 407/, "no credentials were sent to it");
});
