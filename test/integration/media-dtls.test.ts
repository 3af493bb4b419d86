/**
 * WA_SRTP_MODE=DTLS: Meta's default key exchange (DTLS-SRTP). First baresip's dtls_srtp (a full
 * ICE agent) plays the WhatsApp side; then the Meta-edge peer's own rtpengine plays Meta's media
 * side as Meta really is: ICE-lite with the mark at session level, which rtpengine 10.5 only
 * reads at media level (the routing moves it: routing/policy/media.ts, iceLiteAtMediaLevel).
 * rtpengine terminates DTLS toward it and gives the agent plain RTP.
 */
import t from "tap";
import { sleep } from "../../build/kamailio.js";
import { listCalls } from "../../build/rtpengine-ng.js";
import { bestCorrelation } from "../../media-agent/src/audio/compare.js";
import { recordingPaths } from "../../media-agent/src/profiles/play-record.js";
import { wav16k } from "../../build/speech.js";
import { businessUri, setUpMediaCall } from "../support/media-call.js";
import { tempDir } from "../support/temp-dir.js";
import { BUSINESS, grantPermission, WA_USER } from "../support/wa-interconnect.js";

t.test("DTLS-SRTP from the WhatsApp side: audio both ways through rtpengine", async (t) => {
  const s = await setUpMediaCall(t, tempDir(t, "wa-media-"), { env: { WA_SRTP_MODE: "DTLS" }, mediaEncryption: "dtls_srtp" });
  const answered = s.nextAnswered();
  s.baresip.dial(businessUri(s.w));
  await s.baresip.waitForEvent("CALL_ESTABLISHED", 15_000);
  const record = await answered;
  await sleep(6500);
  const ended = s.nextEnded();
  s.baresip.hangup();
  await ended;
  const heard = bestCorrelation(wav16k(s.callerWav), wav16k(recordingPaths(s.recordDir, record.callId).caller), 16000);
  t.comment(`DTLS caller → agent: correlation ${heard.score.toFixed(3)}`);
  t.ok(heard.score > 0.6);
  const heardByUser = bestCorrelation(wav16k(s.agentWav), wav16k(s.baresip.dumps().dec[0]), 16000);
  t.comment(`DTLS agent → caller: correlation ${heardByUser.score.toFixed(3)}`);
  t.ok(heardByUser.score > 0.6);
  t.match(s.w.us.rtpengine.logText(), /ICE negotiated/, "ICE completed with the WhatsApp side");
  t.match(s.w.us.rtpengine.logText(), /DTLS: Peer certificate accepted/, "the DTLS handshake keyed SRTP");
  t.same(await listCalls(s.w.us.rtpengine.ng), []);
});

t.test("DTLS-SRTP toward the WhatsApp user on a business-initiated call", async (t) => {
  const s = await setUpMediaCall(t, tempDir(t, "wa-media-"), {
    env: { WA_SRTP_MODE: "DTLS" }, mediaEncryption: "dtls_srtp", answerMode: "auto", hangUpAfterPromptMs: 1000,
  });
  await grantPermission(s.w, WA_USER);
  const ended = s.nextEnded();
  await s.agent.placeCall({ to: WA_USER, number: BUSINESS, profile: "sales" });
  await s.baresip.waitForEvent("CALL_ESTABLISHED", 15_000);
  await ended;
  await s.baresip.waitForEvent("CALL_CLOSED");
  const heardByUser = bestCorrelation(wav16k(s.agentWav), wav16k(s.baresip.dumps().dec[0]), 16000);
  t.comment(`DTLS business-initiated agent → user: correlation ${heardByUser.score.toFixed(3)}`);
  t.ok(heardByUser.score > 0.6);
  t.match(s.w.us.rtpengine.logText(), /DTLS: Peer certificate accepted/);
  t.same(await listCalls(s.w.us.rtpengine.ng), []);
});

for (const direction of ["user-initiated", "business-initiated"] as const) {
  t.test(`Meta's media side is ICE-lite (a=ice-lite at session level), ${direction}: our side controls, nominates, completes DTLS; audio both ways`, async (t) => {
    const s = await setUpMediaCall(t, tempDir(t, "wa-media-"), {
      env: { WA_SRTP_MODE: "DTLS" }, metaMedia: true, ...(direction === "business-initiated" ? { answerMode: "auto", hangUpAfterPromptMs: 6000 } : {}),
    });
    let record;
    if (direction === "user-initiated") {
      const answered = s.nextAnswered();
      s.baresip.dial(businessUri(s.w));
      await s.baresip.waitForEvent("CALL_ESTABLISHED", 15_000);
      record = await answered;
      await sleep(6500);
      const ended = s.nextEnded();
      s.baresip.hangup();
      await ended;
    } else {
      await grantPermission(s.w, WA_USER);
      const ended = s.nextEnded();
      record = await s.agent.placeCall({ to: WA_USER, number: BUSINESS, profile: "sales" });
      await s.baresip.waitForEvent("CALL_ESTABLISHED", 15_000);
      await ended;
      await s.baresip.waitForEvent("CALL_CLOSED");
    }
    const ours = s.w.us.rtpengine.logText();
    const meta = s.w.metaMedia!.logText();
    t.match(meta, /"ICE-lite": "(forward|backward)"/, "the edge's rtpengine played an ICE-lite peer");
    t.match(ours, /Sending nominating ICE\/STUN request/, "our rtpengine nominated (the ICE-CONTROLLING role)");
    t.match(ours, /DTLS: Peer certificate accepted/, "the DTLS handshake keyed SRTP");
    t.match(s.w.us.kamailio.logText(), /Meta's session-level a=ice-lite repeated at media level for rtpengine/, "the routing moved Meta's mark");
    const heardByUser = bestCorrelation(wav16k(s.agentWav), wav16k(s.baresip.dumps().dec[0]), 16000);
    t.comment(`ICE-lite peer, ${direction}: agent → WhatsApp user correlation ${heardByUser.score.toFixed(3)}`);
    t.ok(heardByUser.score > 0.6, "the WhatsApp user heard the agent");
    const heard = bestCorrelation(wav16k(s.callerWav), wav16k(recordingPaths(s.recordDir, record.callId).caller), 16000);
    t.comment(`ICE-lite peer, ${direction}: WhatsApp user → agent correlation ${heard.score.toFixed(3)}`);
    t.ok(heard.score > 0.6, "the agent heard the WhatsApp user");
    t.same(await listCalls(s.w.us.rtpengine.ng), []);
  });
}
