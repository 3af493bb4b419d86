/**
 * End to end with real parts: baresip as the WhatsApp user (TLS, SRTP SDES) → the Meta-edge
 * peer → our Kamailio → rtpengine → the media agent (play-record). What the agent recorded
 * must be what baresip said, what baresip heard must be what the agent played, the external
 * leg must carry SRTP, and hanging up must leave nothing behind.
 */
import t from "tap";
import { tempDir } from "../support/temp-dir.js";
import { listCalls } from "../../build/rtpengine-ng.js";
import { bestCorrelation } from "../../media-agent/src/audio/compare.js";
import { recordingPaths } from "../../media-agent/src/profiles/play-record.js";
import { parseRtp } from "../../media-agent/src/rtp/packet.js";
import { captureUdp } from "../support/capture.js";
import { wav16k } from "../../build/speech.js";
import { businessUri, setUpMediaCall } from "../support/media-call.js";
import { sleep } from "../../build/kamailio.js";
import { BUSINESS, grantPermission, WA_USER } from "../support/wa-interconnect.js";

/** Figures are printed so a regression shows as a number, not only as pass/fail. */
const MIN_SCORE = 0.6;


t.test("user-initiated call with Opus: both directions' audio arrives, SRTP outside, nothing left after BYE", async (t) => {
  const dir = tempDir(t, "wa-media-");
  const s = await setUpMediaCall(t, dir);
  const capture = await captureUdp(t, dir, `udp and not port ${s.w.us.internal.port} and not port ${s.w.agent.port}`);

  const answered = s.nextAnswered();
  s.baresip.dial(businessUri(s.w));
  await s.baresip.waitForEvent("CALL_ESTABLISHED", 15_000);
  const record = await answered;
  t.equal(record.codec, "opus", "the agent got Opus from WhatsApp's side without transcoding");
  t.equal(record.profile, "sales", "X-WA-Profile chose the profile");

  await sleep(6500); // the caller's sentence is ~5 s; the agent's prompt about as long
  const metrics = await (await fetch(s.w.us.rtpengineMetrics)).text();
  t.match(metrics, /^rtpengine_sessions\{type="own"\} 1$/m, "rtpengine's /metrics (as npm start runs it) shows the call's session");
  const ended = s.nextEnded();
  s.baresip.hangup();
  await s.baresip.waitForEvent("CALL_CLOSED");
  const done = await ended;
  t.equal(done.endReason, "remote BYE");
  t.same(await listCalls(s.w.us.rtpengine.ng), [], "rtpengine holds no session after the BYE");
  t.equal(s.agent.calls.get(record.callId)?.status, "ended");

  const files = recordingPaths(s.recordDir, record.callId);
  const heardByAgent = bestCorrelation(wav16k(s.callerWav), wav16k(files.caller), 16000);
  t.comment(`caller → agent: correlation ${heardByAgent.score.toFixed(3)} at ${heardByAgent.lagMs} ms`);
  t.ok(heardByAgent.score > MIN_SCORE, `the agent heard what baresip said (score ${heardByAgent.score.toFixed(3)})`);
  const wrongReference = bestCorrelation(wav16k(s.agentWav), wav16k(files.caller), 16000);
  t.ok(wrongReference.score < 0.5, `the measure tells speech apart: the agent's own prompt scores ${wrongReference.score.toFixed(3)} against the caller's recording`);

  const dec = s.baresip.dumps().dec;
  t.equal(dec.length, 1, "baresip dumped what it heard");
  const heardByUser = bestCorrelation(wav16k(s.agentWav), wav16k(dec[0]), 16000);
  t.comment(`agent → caller: correlation ${heardByUser.score.toFixed(3)} at ${heardByUser.lagMs} ms`);
  t.ok(heardByUser.score > MIN_SCORE, `baresip heard what the agent played (score ${heardByUser.score.toFixed(3)})`);

  const datagrams = await capture.stop();
  const agentSent = datagrams.filter((d) => d.srcPort >= s.agentRtp.min && d.srcPort <= s.agentRtp.max && d.srcPort % 2 === 0);
  const toBaresip = datagrams.filter((d) => d.dstPort >= s.baresipRtp.min && d.dstPort <= s.baresipRtp.max && d.dstPort % 2 === 0);
  t.ok(agentSent.length > 200, `the agent sent plain RTP (${agentSent.length} packets)`);
  t.ok(toBaresip.length > 200, `rtpengine sent media to baresip (${toBaresip.length} packets)`);
  const plainPayloads = new Set(agentSent.map((d) => Buffer.from(parseRtp(d.payload).payload).toString("hex")));
  const external = toBaresip.map((d) => parseRtp(d.payload));
  t.equal(external.filter((p) => plainPayloads.has(Buffer.from(p.payload).toString("hex"))).length, 0, "no plain payload crosses the external leg");
  // Opus passes through rtpengine, so each packet only gains SRTP's tag. The two captures can
  // differ by a packet at either end, so the sizes are compared as multisets (medians of Opus's
  // variable sizes could move by a byte with one packet more on one side).
  const plainSizes = agentSent.map((d) => parseRtp(d.payload).payload.length);
  const srtpSizes = external.map((p) => p.payload.length);
  const tagged = sizesMatchedWith(plainSizes, srtpSizes, 10);
  const fewer = Math.min(plainSizes.length, srtpSizes.length);
  t.ok(tagged >= fewer - 4, `external payloads carry the 80-bit SRTP auth tag (AES_CM_128_HMAC_SHA1_80): ${tagged} of ${fewer} sizes are 10 bytes longer`);
});

const G711_CASES = [
  { name: "an agent with only G.711: rtpengine transcodes WhatsApp's Opus to PCMA", baresipCodecs: ["opus/48000/2"], agentCodecs: "PCMA,PCMU" },
  { name: "G.711 forced on the WhatsApp side: the agent gets PCMA", baresipCodecs: ["PCMA/8000"], agentCodecs: "opus,PCMA,PCMU" },
];

for (const c of G711_CASES) {
  t.test(c.name, async (t) => {
    const dir = tempDir(t, "wa-media-");
    const s = await setUpMediaCall(t, dir, { baresipCodecs: c.baresipCodecs, agentCodecs: c.agentCodecs });
    const answered = s.nextAnswered();
    s.baresip.dial(businessUri(s.w));
    await s.baresip.waitForEvent("CALL_ESTABLISHED", 15_000);
    const record = await answered;
    t.equal(record.codec, "PCMA");
    await sleep(6500);
    const ended = s.nextEnded();
    s.baresip.hangup();
    await ended;
    const files = recordingPaths(s.recordDir, record.callId);
    const heard = bestCorrelation(wav16k(s.callerWav), wav16k(files.caller), 16000);
    t.comment(`${c.baresipCodecs[0]} caller → PCMA agent: correlation ${heard.score.toFixed(3)}`);
    t.ok(heard.score > MIN_SCORE, `the agent heard the caller (score ${heard.score.toFixed(3)})`);
    const heardByUser = bestCorrelation(wav16k(s.agentWav), wav16k(s.baresip.dumps().dec[0]), 16000);
    t.comment(`PCMA agent → ${c.baresipCodecs[0]} caller: correlation ${heardByUser.score.toFixed(3)}`);
    t.ok(heardByUser.score > MIN_SCORE, `the caller heard the agent (score ${heardByUser.score.toFixed(3)})`);
    t.same(await listCalls(s.w.us.rtpengine.ng), []);
  });
}

t.test("loss and reordering between rtpengine and the agent: the agent's audio stays continuous", async (t) => {
  const dir = tempDir(t, "wa-media-");
  let n = 0;
  let held: Buffer | null = null;
  const s = await setUpMediaCall(t, dir, {
    hooks: {
      // Every 10th packet dropped, every 7th held back and delivered after the next one.
      impairRtp: (packet, deliver) => {
        n++;
        if (n % 10 === 0) return;
        if (n % 7 === 0) {
          held = packet;
          return;
        }
        deliver(packet);
        if (held) {
          deliver(held);
          held = null;
        }
      },
    },
  });
  const answered = s.nextAnswered();
  s.baresip.dial(businessUri(s.w));
  await s.baresip.waitForEvent("CALL_ESTABLISHED", 15_000);
  const record = await answered;
  await sleep(6500);
  const ended = s.nextEnded();
  s.baresip.hangup();
  const done = await ended;
  const stats = done.media!;
  t.comment(`jitter buffer: ${JSON.stringify(stats.jitter)}; concealed ${stats.concealed}`);
  t.ok(stats.jitter.lost > 0 && stats.concealed > 0, "lost packets were concealed");
  t.ok(stats.jitter.reordered > 0, "reordered packets were put back in order");
  const files = recordingPaths(s.recordDir, record.callId);
  const caller = wav16k(files.caller);
  // Continuous: from the first frame to the last the agent got a frame every 20 ms.
  const expectedFrames = (Date.parse(done.endedAt!) - Date.parse(done.answeredAt!)) / 20;
  t.ok(caller.length / 320 > expectedFrames - 25, `no gaps: ${caller.length / 320} frames over ~${Math.round(expectedFrames)} ticks`);
  const heard = bestCorrelation(wav16k(s.callerWav), caller, 16000);
  t.comment(`with 10 % loss and reordering: correlation ${heard.score.toFixed(3)}`);
  t.ok(heard.score > 0.5);
});

t.test("business-initiated call: the agent speaks first, baresip answers and hears it", async (t) => {
  const dir = tempDir(t, "wa-media-");
  const s = await setUpMediaCall(t, dir, { answerMode: "auto", hangUpAfterPromptMs: 1500 });
  await grantPermission(s.w, WA_USER);
  const answered = s.nextAnswered();
  const ended = s.nextEnded();
  const record = await s.agent.placeCall({ to: WA_USER, number: BUSINESS, profile: "sales" });
  t.equal(record.status, "calling");
  await s.baresip.waitForEvent("CALL_ESTABLISHED", 15_000);
  await answered;
  const done = await ended;
  t.equal(done.endReason, "local BYE: prompt played", "the agent hung up after its prompt");
  // Meta expects the business to send first: the agent's first packet leaves as the 200 OK
  // arrives (baresip, like any UA, may start sending as soon as it answers).
  const firstOut = done.media!.firstSentAt! - Date.parse(done.answeredAt!);
  t.comment(`first packet out ${firstOut} ms after the 200 OK reached the agent`);
  t.ok(firstOut >= 0 && firstOut < 20, `the agent's first packet left within one frame of the answer (${firstOut} ms)`);
  await s.baresip.waitForEvent("CALL_CLOSED");
  const heardByUser = bestCorrelation(wav16k(s.agentWav), wav16k(s.baresip.dumps().dec[0]), 16000);
  t.comment(`business-initiated agent → user: correlation ${heardByUser.score.toFixed(3)}`);
  t.ok(heardByUser.score > MIN_SCORE, "the user heard the agent's prompt");
  t.match(s.baresip.logText(), /SRTP is Enabled \(cryptosuite=AES_CM_128_HMAC_SHA1_80\)/, "our SDES offer leads with AES_CM_128_HMAC_SHA1_80");
  t.same(await listCalls(s.w.us.rtpengine.ng), []);
});

/** How many sizes of `plain` are found in `grown` grown by `by` bytes, each found size counted once. */
function sizesMatchedWith(plain: number[], grown: number[], by: number): number {
  const left = new Map<number, number>();
  for (const size of grown) left.set(size, (left.get(size) ?? 0) + 1);
  let matched = 0;
  for (const size of plain) {
    const n = left.get(size + by) ?? 0;
    if (n > 0) {
      left.set(size + by, n - 1);
      matched++;
    }
  }
  return matched;
}
