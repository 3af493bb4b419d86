/**
 * rtpengine in the call flow: which flags each leg gets (pure), and that the routing offers,
 * answers and deletes at the right moments (KSR double with real SIP text).
 */
import t from "tap";
import { requestRoute } from "../../routing/request-route.js";
import {
  answerTowardAgentFlags, answerTowardMetaFlags, iceLiteAtMediaLevel, offerTowardAgentFlags, offerTowardMetaFlags, offerTowardTransferFlags, parseMediaSettings,
} from "../../routing/policy/media.js";
import { createKsrDouble, runRoute, type DoubleOptions } from "../support/ksr-double.js";
import { AGENT_SDP, sipFixture, withHeader } from "../support/fixtures.js";

const SDES = { srtpMode: "SDES", directions: null } as const;
const flags = (s: string) => s.split(" ");

t.test("toward the agent: plain RTP, no ICE/DTLS, G.711 added for an agent without Opus", async (t) => {
  const f = flags(offerTowardAgentFlags(SDES));
  for (const want of ["RTP/AVP", "ICE=remove", "DTLS=off", "rtcp-mux-demux", "codec-transcode=PCMA", "codec-transcode=PCMU", "replace-origin"]) {
    t.ok(f.includes(want), want);
  }
  t.notOk(f.some((x) => x.startsWith("direction=")), "one interface: no direction flags");
  t.same(flags(answerTowardAgentFlags()), ["replace-origin", "replace-session-connection", "ICE=remove"]);
});

t.test("toward Meta: SDES keeps only AES_CM_128_HMAC_SHA1_80/_32, Opus always offered", async (t) => {
  const f = flags(offerTowardMetaFlags(SDES));
  t.ok(f.includes("RTP/SAVP") && f.includes("codec-transcode=opus"));
  t.notOk(f.some((x) => /SDES-no-AES_CM_128_HMAC_SHA1_(80|32)$/.test(x)), "Meta's suites are not removed");
  t.ok(f.includes("SDES-no-AEAD_AES_256_GCM") && f.includes("SDES-no-F8_128_HMAC_SHA1_80"));
  t.same(flags(answerTowardMetaFlags(SDES)).slice(-1), ["ICE=remove"]);
});

t.test("DTLS mode and direction pairs are chosen by configuration; bad values name the key", async (t) => {
  const errors: string[] = [];
  const dtls = parseMediaSettings("DTLS", "public,loopback", errors);
  t.same(errors, []);
  const f = flags(offerTowardMetaFlags(dtls));
  t.ok(f.includes("UDP/TLS/RTP/SAVPF") && f.includes("ICE=force") && f.includes("SDES-off"));
  t.same(f.filter((x) => x.startsWith("direction=")), ["direction=loopback", "direction=public"], "agent → Meta: internal first");
  t.same(flags(offerTowardAgentFlags(dtls)).filter((x) => x.startsWith("direction=")), ["direction=public", "direction=loopback"]);
  t.same(flags(answerTowardMetaFlags(dtls)).slice(-1), ["ICE=force"], "rtpengine answers Meta's ICE-lite as full agent (controlling)");
  parseMediaSettings("ZRTP", "a,b,c", errors);
  t.same(errors, [
    "WA_SRTP_MODE: 'ZRTP' is not SDES or DTLS",
    `WA_RTPENGINE_DIRECTIONS: 'a,b,c' is not "external,internal" (two rtpengine interface names)`,
  ]);
});

const META = { proto: "tls", srcIp: "157.240.19.130", srcPort: 5061, rcvIp: "203.0.113.5", rcvPort: 5061 } as const;
const AGENT = { proto: "udp", srcIp: "127.0.0.1", srcPort: 5080, rcvIp: "127.0.0.1", rcvPort: 5070 } as const;
const ENV = { WA_NUMBERS: "+15550001111=sales", WA_SIP_PASSWORDS: "+15550001111=pw", WA_AGENT_URI: "sip:127.0.0.1:5080" };

function run(message: string, opts: Partial<DoubleOptions> = {}, route: () => void = requestRoute) {
  const d = createKsrDouble({ message, transport: META, env: ENV, myself: ["sip.example.com", "127.0.0.1"], ...opts });
  runRoute(d, route);
  return d;
}

t.test("Meta's INVITE: rtpengine offer toward the agent, answer in the agent's reply route", async (t) => {
  const d = run(sipFixture("meta-invite"));
  t.same(d.rtpengine, [{ fn: "rtpengine_offer", flags: offerTowardAgentFlags(SDES) }]);
  t.equal(d.relays[0].replyRoute, "ksr_onreply_local");
  t.equal(d.relays[0].failureRoute, "ksr_failure_local");

  const ok = agentOk();
  const r = run(ok, { transport: AGENT, vars: { "$avp(wa_media)": "user-initiated" } }, callback("ksr_onreply_local"));
  t.same(r.rtpengine, [{ fn: "rtpengine_answer", flags: answerTowardMetaFlags(SDES) }]);
  const ringing = run(ok.replace("200 OK", "180 Ringing").replace(/Content-Type[^]*$/, "Content-Length: 0\r\n\r\n"), {
    transport: AGENT, vars: { "$avp(wa_media)": "user-initiated" },
  }, callback("ksr_onreply_local"));
  t.same(ringing.rtpengine, [], "a reply without SDP is not an answer");
});

t.test("no SDP offer → 488; rtpengine down → 503 naming the cause; nothing is relayed", async (t) => {
  const bare = withHeader(sipFixture("meta-invite"), "Content-Type", null).replace(/\r\n\r\n[^]*$/, "\r\n\r\n").replace(/Content-Length: \d+/, "Content-Length: 0");
  const noSdp = run(bare);
  t.same(noSdp.replies.map((r) => [r.code, r.reason]), [[488, "Not Acceptable Here - SDP Offer Required"]]);
  const down = run(sipFixture("meta-invite"), { answers: { "rtpengine.rtpengine_offer": () => -1 } });
  t.same(down.replies.map((r) => [r.code, r.reason]), [[503, "Service Unavailable - Media Relay Failed"]]);
  t.match(down.logs.map((l) => l.text).join(""), /rtpengine_offer failed \(user-initiated\); is rtpengine running on WA_RTPENGINE_SOCK/);
  t.same([...noSdp.relays, ...down.relays], []);
});

t.test("BYE from either side and CANCEL delete the call's media", async (t) => {
  const call = { callId: "outgoing:wacid.HBgLMTU1NTEyMzQ1NjcVAgARGCBBQ0Q5RjE2QzM0", toContact: "sip:+15550001111@127.0.0.1:5070", vars: { wa_call: "user-initiated" } };
  const bye = run(withHeader(sipFixture("meta-bye"), "Route", "<sip:sip.example.com;transport=tls;lr;r2=on>"), {
    dialog: { ...call, fromTag: "9c1f6a2e", toTag: "as58f4d2e1" },
  });
  t.same(bye.rtpengine, [{ fn: "rtpengine_delete", flags: "" }]);
  t.equal(bye.relays.length, 1);
  t.match(bye.logs.map((l) => l.text).join(""), /deleted \(BYE from the caller \(meta side\)\)/);
  const invite = sipFixture("meta-invite");
  const cancel = run(invite.replace(/^INVITE/, "CANCEL").replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL"), {
    transactionExists: true,
    dialog: { ...call, callId: /^Call-ID: (.*)$/m.exec(invite)![1].trim(), fromTag: /^From: .*;tag=([^;\s]+)/m.exec(invite)![1] },
  });
  t.same(cancel.rtpengine, [{ fn: "rtpengine_delete", flags: "" }]);
  const failed = run(sipFixture("meta-invite"), { answers: { "tm.t_is_canceled": () => -1, "tm.t_get_status_code": () => 486 } }, callback("ksr_failure_local"));
  t.same(failed.rtpengine, [{ fn: "rtpengine_delete", flags: "" }], "agent refused: media deleted");
  const canceled = run(sipFixture("meta-invite"), { answers: { "tm.t_is_canceled": () => 1, "tm.t_get_status_code": () => 487 } }, callback("ksr_failure_local"));
  t.same(canceled.rtpengine, [], "canceled: the CANCEL already deleted it");
});

t.test("business-initiated: offer toward Meta with SRTP; the agent's INVITE without SDP gets 488", async (t) => {
  const htables = { wa_callback: { "+15550001111|+15551234567": JSON.stringify({ permission: "permanent", permissionExpires: null, connected: [], unanswered: 0, blockedUntil: null, activeCall: null }) } };
  const invite = (sdp: string) => [
    "INVITE sip:+15551234567@127.0.0.1:5070 SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-m1", "Max-Forwards: 70",
    "From: <sip:+15550001111@127.0.0.1:5080>;tag=a1", "To: <sip:+15551234567@127.0.0.1:5070>", "Call-ID: media-1", "CSeq: 1 INVITE",
    "Contact: <sip:agent@127.0.0.1:5080>", ...(sdp ? ["Content-Type: application/sdp"] : []), `Content-Length: ${sdp.length}`, "", sdp,
  ].join("\r\n");
  const d = run(invite(AGENT_SDP), { transport: AGENT, htables: structuredClone(htables) });
  t.same(d.rtpengine, [{ fn: "rtpengine_offer", flags: offerTowardMetaFlags(SDES) }]);
  const late = run(invite(""), { transport: AGENT, htables: structuredClone(htables) });
  t.same(late.replies.map((r) => r.code), [488]);
});

function callback(name: string): () => void {
  return () => (globalThis as unknown as Record<string, () => void>)[name]();
}

function agentOk(): string {
  return [
    "SIP/2.0 200 OK",
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-k1", "Via: SIP/2.0/TLS 157.240.19.130:5061;branch=z9hG4bK-m1",
    "From: <sip:+15551234567@wa.meta.vc>;tag=m1", "To: <sip:+15550001111@sip.example.com>;tag=ag1",
    "Call-ID: media-call", "CSeq: 1 INVITE", "Contact: <sip:127.0.0.1:5080>", "Content-Type: application/sdp",
    `Content-Length: ${AGENT_SDP.length}`, "", AGENT_SDP,
  ].join("\r\n");
}

t.test("a transfer leg from the agent: plain RTP through rtpengine to WA_TRANSFER_PROXY, the marker header removed", async (t) => {
  const transferInvite = [
    "INVITE sip:support@pbx.example.com SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-x1", "Max-Forwards: 70",
    "From: <sip:+15550001111@127.0.0.1>;tag=x1", "To: <sip:support@pbx.example.com>", "Call-ID: transfer-1", "CSeq: 1 INVITE",
    "Contact: <sip:agent@127.0.0.1:5080>", "X-WA-Transfer: wa-call-7", "Content-Type: application/sdp",
    `Content-Length: ${AGENT_SDP.length}`, "", AGENT_SDP,
  ].join("\r\n");
  const d = run(transferInvite, { transport: AGENT, env: { ...ENV, WA_TRANSFER_PROXY: "sip:192.0.2.10:5060" } });
  t.same(d.rtpengine, [{ fn: "rtpengine_offer", flags: offerTowardTransferFlags(SDES) }]);
  t.notOk(flags(offerTowardTransferFlags(SDES)).some((x) => /SAVP|codec-transcode/.test(x)), "no SRTP, no transcoding");
  t.equal(d.relays.length, 1);
  t.match(d.relays[0], { duri: "sip:192.0.2.10:5060", replyRoute: "ksr_onreply_local", failureRoute: "ksr_failure_local" });
  t.ok(d.headerOps.some((op) => op.op === "remove" && op.args[0] === "X-WA-Transfer"), "X-WA-Transfer does not leave");
  t.match(d.logs.map((l) => l.text).join(""), /transfer leg of call wa-call-7 to sip:support@pbx\.example\.com → sip:192\.0\.2\.10:5060/);

  const refused = run(transferInvite, { transport: AGENT });
  t.same(refused.replies.map((r) => `${r.code} ${r.reason}`), ["503 Service Unavailable - No Transfer Proxy"]);
  t.same(refused.rtpengine, [], "nothing reaches rtpengine");
});

// Meta's DTLS offer as reported in signalwire/freeswitch #2904: ICE-lite at session level.
const META_DTLS_OFFER = [
  "v=0",
  "o=- 1727370954 1727370954 IN IP4 157.240.19.130",
  "s=-",
  "t=0 0",
  "a=group:BUNDLE audio",
  "a=msid-semantic: WMS",
  "a=ice-lite",
  "m=audio 3480 UDP/TLS/RTP/SAVPF 111 126",
  "c=IN IP4 157.240.19.130",
  "a=rtcp:3480 IN IP4 157.240.19.130",
  "a=candidate:3152277880 1 udp 2122260223 157.240.19.130 3480 typ host generation 0 network-cost 50",
  "a=ice-ufrag:Jx6q",
  "a=ice-pwd:eP4rcHyOlqGE1JNm0sOiQOXm",
  "a=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08",
  "a=setup:actpass",
  "a=mid:audio",
  "a=sendrecv",
  "a=rtcp-mux",
  "a=rtpmap:111 opus/48000/2",
  "a=fmtp:111 maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1",
  "a=rtpmap:126 telephone-event/8000",
  "a=ptime:20",
  "",
].join("\r\n");

t.test("Meta's session-level a=ice-lite is repeated in the media section for rtpengine; nothing else changes", async (t) => {
  const fixed = iceLiteAtMediaLevel(META_DTLS_OFFER)!;
  t.ok(fixed, "rewritten");
  t.equal(fixed, `${META_DTLS_OFFER}a=ice-lite\r\n`, "the media section ends with a=ice-lite; the session-level one stays");
  t.equal(iceLiteAtMediaLevel(fixed), fixed, "idempotent: a section that has it is left alone");
});

t.test("ICE-lite mark: no session-level mark, no media, LF line ends, several media sections", async (t) => {
  t.equal(iceLiteAtMediaLevel(META_DTLS_OFFER.replace("a=ice-lite\r\n", "")), null, "a full ICE peer: unchanged");
  t.equal(iceLiteAtMediaLevel("v=0\r\na=ice-lite\r\n"), null, "no media section");
  t.equal(iceLiteAtMediaLevel("v=0\na=ice-lite\nm=audio 1 RTP/AVP 0\na=sendrecv\n"), "v=0\na=ice-lite\nm=audio 1 RTP/AVP 0\na=sendrecv\na=ice-lite\n");
  t.equal(
    iceLiteAtMediaLevel("v=0\r\na=ice-lite\r\nm=audio 1 RTP/AVP 0\r\nm=video 2 RTP/AVP 96\r\na=ice-lite\r\n"),
    "v=0\r\na=ice-lite\r\nm=audio 1 RTP/AVP 0\r\na=ice-lite\r\nm=video 2 RTP/AVP 96\r\na=ice-lite\r\n",
  );
  t.equal(iceLiteAtMediaLevel("v=0\r\na=ice-lite-not\r\nm=audio 1 RTP/AVP 0\r\n"), null, "only the attribute itself");
});

t.test("agent pool: an agent that fails the call (5xx, no answer) hands it to the next with the media as offered; a refusal or a CANCEL does not", async (t) => {
  const agents = [{ uri: "sip:127.0.0.1:5080", up: true }, { uri: "sip:127.0.0.1:5082", up: true }];
  const failure = (status: number, opts: Partial<DoubleOptions> = {}) =>
    run(sipFixture("meta-invite"), { agents, dstUri: agents[0].uri, answers: { "tm.t_is_canceled": () => -1, "tm.t_get_status_code": () => status }, ...opts }, callback("ksr_failure_local"));
  for (const status of [503, 500, 408]) {
    const d = failure(status);
    t.match(d.relays, [{ duri: "sip:127.0.0.1:5082", replyRoute: "ksr_onreply_local", failureRoute: "ksr_failure_local" }], `${status}: relayed to the next agent`);
    t.same(d.timers, { frInv: 0, fr: 2000 }, `${status}: the next agent too must reply within 2 s`);
    t.same(d.rtpengine, [], `${status}: the media offer stands for the next agent`);
    t.match(d.logs.map((l) => l.text).join(""), new RegExp(`agent sip:127.0.0.1:5080 answered ${status}: call moved to sip:127.0.0.1:5082`));
  }
  const last = failure(503, { dstUri: agents[1].uri });
  t.same(last.relays, [], "the last agent's 503 goes to Meta");
  t.same(last.rtpengine, [{ fn: "rtpengine_delete", flags: "" }]);
  const refused = failure(486);
  t.same(refused.relays, [], "486 is the agent's answer about the call");
  t.same(refused.rtpengine, [{ fn: "rtpengine_delete", flags: "" }]);
  const canceled = failure(503, { answers: { "tm.t_is_canceled": () => 1, "tm.t_get_status_code": () => 503 } });
  t.same(canceled.relays, [], "the caller hung up: nothing moves");
  const transfer = failure(503, { vars: { "$avp(wa_media)": "transfer" } });
  t.same(transfer.relays, [], "a transfer target is no agent of the pool");
});
