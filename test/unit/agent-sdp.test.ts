import t from "tap";
import { acceptAnswer, answerOffer, createOffer, type LocalMedia, type Negotiation } from "../../media-agent/src/sdp/negotiate.js";
import { parseSdp, SdpParseError, serializeSdp } from "../../media-agent/src/sdp/sdp.js";
import { parseSipMessage } from "../../media-agent/src/sip/message.js";
import { sipFixture } from "../support/fixtures.js";

const LOCAL: LocalMedia = { address: "127.0.0.1", rtpPort: 40000, preferences: ["opus", "PCMA", "PCMU"], sessionId: "4021", sessionVersion: 1 };
const OPUS_FMTP = "maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1";

/** What rtpengine sends the agent for Meta's offer: plain RTP on loopback, PCMA/PCMU added for transcoding. */
const RTPENGINE_OFFER = parseSipMessage(sipFixture("kamailio-invite")).body;

/** baresip 1.0 with no media encryption configured. */
const BARESIP_OFFER = [
  "v=0", "o=- 1938306218 2418475563 IN IP4 192.0.2.10", "s=-", "c=IN IP4 192.0.2.10", "t=0 0", "a=tool:baresip 1.0.0",
  "m=audio 10004 RTP/AVP 111 0 8 101", "b=AS:64", "a=rtpmap:111 opus/48000/2", "a=fmtp:111 stereo=1;sprop-stereo=1",
  "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15",
  "a=sendrecv", "a=label:1", "a=rtcp-rsize", "a=ssrc:1491426327 cname:7a9c4e2f-1b3d-4f6a-8c0e-2d4b6f8a0c1e", "a=ptime:20", "",
].join("\r\n");

function answered(n: Negotiation) {
  if (!n.ok) throw new Error(`negotiation failed: ${n.reason}`);
  return n;
}

/** An offer with the given m-line and attribute lines (session c= on 192.0.2.20). */
function offer(mLine: string, ...lines: string[]) {
  return parseSdp(["v=0", "o=- 1 1 IN IP4 192.0.2.20", "s=-", "c=IN IP4 192.0.2.20", "t=0 0", mLine, ...lines, ""].join("\r\n"));
}

t.test("rtpengine's rewrite of Meta's offer is answered with Opus and telephone-event", async (t) => {
  const n = answered(answerOffer(parseSdp(RTPENGINE_OFFER), LOCAL));
  t.same(n.media, {
    remoteAddress: "127.0.0.1", remotePort: 30000, remoteRtcpPort: 30001, rtcpMux: false,
    codec: { name: "opus", payloadType: 111, clockRate: 48000, channels: 2, fmtp: OPUS_FMTP },
    telephoneEvent: { payloadType: 126 }, ptime: 20, direction: "sendrecv",
  });
  t.equal(n.sdp, [
    "v=0", "o=- 4021 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
    "m=audio 40000 RTP/AVP 111 126", "a=rtpmap:111 opus/48000/2", `a=fmtp:111 ${OPUS_FMTP}`,
    "a=rtpmap:126 telephone-event/8000", "a=fmtp:126 0-15", "a=ptime:20", "a=sendrecv", "a=rtcp:40001", "",
  ].join("\r\n"));
  t.equal(parseSdp(n.sdp).media.length, 1);
});

t.test("a baresip offer: payload types echoed, preference order honoured", async (t) => {
  const opus = answered(answerOffer(parseSdp(BARESIP_OFFER), LOCAL));
  t.same([opus.media.remoteAddress, opus.media.remotePort, opus.media.remoteRtcpPort], ["192.0.2.10", 10004, 10005]);
  t.same([opus.media.codec.name, opus.media.telephoneEvent], ["opus", { payloadType: 101 }]);
  t.equal(opus.media.codec.fmtp, "stereo=1;sprop-stereo=1", "the peer's fmtp, as it describes what it receives");
  t.same(parseSdp(opus.sdp).media[0].formats, ["111", "101"]);

  const pcma = answered(answerOffer(parseSdp(BARESIP_OFFER), { ...LOCAL, preferences: ["PCMA", "opus"] }));
  t.same([pcma.media.codec.name, pcma.media.codec.payloadType, pcma.media.codec.clockRate, pcma.media.codec.channels], ["PCMA", 8, 8000, 1]);
  t.same(parseSdp(pcma.sdp).media[0].formats, ["8", "101"], "PCMA picked though opus is first in the offer");
  t.match(pcma.sdp, /a=rtpmap:8 PCMA\/8000\r\na=rtpmap:101 telephone-event\/8000\r\n/);
  t.notMatch(pcma.sdp, /fmtp:8/);
});

t.test("static payload types need no rtpmap; dynamic ones match by name, case-insensitively", async (t) => {
  const pcmu = answered(answerOffer(offer("m=audio 5000 RTP/AVP 18 0"), LOCAL));
  t.same([pcmu.media.codec.name, pcmu.media.codec.payloadType, pcmu.media.telephoneEvent], ["PCMU", 0, undefined]);
  t.same(parseSdp(pcmu.sdp).media[0].formats, ["0"]);
  const upper = answered(answerOffer(offer("m=audio 5000 RTP/AVP 96 97", "a=rtpmap:96 OPUS/48000/2", "a=rtpmap:97 Telephone-Event/8000"), LOCAL));
  t.same([upper.media.codec.name, upper.media.codec.payloadType, upper.media.telephoneEvent], ["opus", 96, { payloadType: 97 }]);
  const mono = answerOffer(offer("m=audio 5000 RTP/AVP 96", "a=rtpmap:96 opus/48000"), LOCAL);
  t.same(mono, { ok: false, reason: "no common codec (offered: opus)" }, "opus must be 48000/2");
  const wideband = answered(answerOffer(offer("m=audio 5000 RTP/AVP 101 8", "a=rtpmap:101 telephone-event/48000"), LOCAL));
  t.equal(wideband.media.telephoneEvent, undefined, "only telephone-event/8000 is used");
});

t.test("Meta's own SDES offer is refused: the agent speaks plain RTP only", async (t) => {
  const meta = parseSdp(parseSipMessage(sipFixture("meta-invite")).body);
  t.same(answerOffer(meta, LOCAL), { ok: false, reason: "RTP/SAVP audio not supported (plain RTP/AVP only)" });
  const baresipSrtp = parseSdp(parseSipMessage(sipFixture("baresip-invite")).body);
  t.notOk(answerOffer(baresipSrtp, LOCAL).ok);
});

t.test("offers without a usable audio stream are refused with a reason", async (t) => {
  const cases: Array<[ReturnType<typeof offer>, string]> = [
    [offer("m=audio 5000 RTP/AVP 18 3 96", "a=rtpmap:96 AMR/8000"), "no common codec (offered: G729, GSM, AMR)"],
    [offer("m=audio 0 RTP/AVP 0"), "audio stream refused (port 0)"],
    [offer("m=video 5000 RTP/AVP 96"), "no audio stream"],
    [parseSdp("v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"), "no connection address for audio"],
  ];
  for (const [sdp, reason] of cases) t.same(answerOffer(sdp, LOCAL), { ok: false, reason });
});

t.test("a media-level c= overrides the session's; other m-lines are refused in place", async (t) => {
  const n = answered(answerOffer(offer("m=video 6000 RTP/AVP 96", "a=rtpmap:96 VP8/90000", "m=audio 5000 RTP/AVP 8", "c=IN IP4 192.0.2.99", "m=audio 7000 RTP/AVP 0"), LOCAL));
  t.equal(n.media.remoteAddress, "192.0.2.99");
  t.equal(n.media.remotePort, 5000, "the first audio m-line is the one used");
  const media = parseSdp(n.sdp).media;
  t.same(media.map((m) => [m.type, m.port, m.formats.join(" ")]), [["video", 0, "96"], ["audio", 40000, "8"], ["audio", 0, "0"]]);
  t.same(media[0].attributes, []);
});

t.test("direction is mirrored", async (t) => {
  const cases: Array<[string[], string, string]> = [
    [[], "sendrecv", "a=sendrecv"],
    [["a=sendonly"], "recvonly", "a=recvonly"],
    [["a=recvonly"], "sendonly", "a=sendonly"],
    [["a=inactive"], "inactive", "a=inactive"],
  ];
  for (const [attrs, ours, line] of cases) {
    const n = answered(answerOffer(offer("m=audio 5000 RTP/AVP 0", ...attrs), LOCAL));
    t.equal(n.media.direction, ours, attrs.join() || "no attribute");
    t.match(n.sdp, new RegExp(`\\r\\n${line}\\r\\n`));
  }
  const sessionLevel = parseSdp("v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\na=sendonly\r\nm=audio 5000 RTP/AVP 0\r\n");
  t.equal(answered(answerOffer(sessionLevel, LOCAL)).media.direction, "recvonly", "a session-level direction applies");
});

t.test("rtcp: a=rtcp, port + 1, or the RTP port with rtcp-mux", async (t) => {
  t.equal(answered(answerOffer(offer("m=audio 5000 RTP/AVP 0", "a=rtcp:5999 IN IP4 192.0.2.20"), LOCAL)).media.remoteRtcpPort, 5999);
  t.equal(answered(answerOffer(offer("m=audio 5000 RTP/AVP 0"), LOCAL)).media.remoteRtcpPort, 5001);
  const mux = answered(answerOffer(offer("m=audio 5000 RTP/AVP 0", "a=rtcp:5000", "a=rtcp-mux"), LOCAL));
  t.same([mux.media.rtcpMux, mux.media.remoteRtcpPort], [true, 5000]);
  t.match(mux.sdp, /\r\na=rtcp:40000\r\na=rtcp-mux\r\n/, "mux agreed in the answer");
});

t.test("ptime: the peer's, else 20", async (t) => {
  t.equal(answered(answerOffer(offer("m=audio 5000 RTP/AVP 8", "a=ptime:30"), LOCAL)).media.ptime, 30);
  t.equal(answered(answerOffer(offer("m=audio 5000 RTP/AVP 8"), LOCAL)).media.ptime, 20);
});

t.test("createOffer offers our preferences in order, and acceptAnswer checks the answer", async (t) => {
  const ours = createOffer({ ...LOCAL, preferences: ["PCMA", "opus", "PCMU"] });
  t.equal(ours, [
    "v=0", "o=- 4021 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
    "m=audio 40000 RTP/AVP 8 111 0 126", "a=rtpmap:8 PCMA/8000", "a=rtpmap:111 opus/48000/2", `a=fmtp:111 ${OPUS_FMTP}`,
    "a=rtpmap:0 PCMU/8000", "a=rtpmap:126 telephone-event/8000", "a=fmtp:126 0-15", "a=ptime:20", "a=sendrecv", "a=rtcp:40001", "",
  ].join("\r\n"));

  const rtpengineAnswer = parseSdp([
    "v=0", "o=- 1545997028 2 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0", "m=audio 30002 RTP/AVP 111 126",
    "a=rtpmap:111 opus/48000/2", `a=fmtp:111 ${OPUS_FMTP}`, "a=rtpmap:126 telephone-event/8000", "a=sendrecv", "a=rtcp:30003", "a=ptime:20", "",
  ].join("\r\n"));
  t.same(acceptAnswer(rtpengineAnswer, LOCAL), {
    ok: true, sdp: "",
    media: {
      remoteAddress: "127.0.0.1", remotePort: 30002, remoteRtcpPort: 30003, rtcpMux: false,
      codec: { name: "opus", payloadType: 111, clockRate: 48000, channels: 2, fmtp: OPUS_FMTP },
      telephoneEvent: { payloadType: 126 }, ptime: 20, direction: "sendrecv",
    },
  });
  const recvonly = acceptAnswer(offer("m=audio 5000 RTP/AVP 0", "a=recvonly"), LOCAL);
  t.equal(answered(recvonly).media.direction, "sendonly");
  t.same(acceptAnswer(offer("m=audio 5000 RTP/AVP 18"), LOCAL), { ok: false, reason: "answer has none of our codecs (answered: G729)" });
  t.same(acceptAnswer(offer("m=audio 5000 RTP/AVP 0"), { ...LOCAL, preferences: ["opus"] }), {
    ok: false, reason: "answer has none of our codecs (answered: PCMU)",
  });
  t.same(acceptAnswer(offer("m=audio 0 RTP/AVP 0"), LOCAL), { ok: false, reason: "audio stream refused (port 0)" });
});

t.test("serialize(parse(x)) gives x back", async (t) => {
  for (const text of [RTPENGINE_OFFER, createOffer(LOCAL), parseSipMessage(sipFixture("meta-invite")).body]) {
    t.equal(serializeSdp(parseSdp(text)), text);
  }
  const lf = serializeSdp(parseSdp(RTPENGINE_OFFER.replace(/\r\n/g, "\n")));
  t.equal(lf, RTPENGINE_OFFER, "LF-only input is accepted and written with CRLF");
  const parsed = parseSdp(BARESIP_OFFER);
  t.same(parsed.attributes, [{ name: "tool", value: "baresip 1.0.0" }]);
  t.same(parsed.media[0].attributes.find((a) => a.name === "rtcp-rsize"), { name: "rtcp-rsize" }, "a flag attribute has no value");
  t.notMatch(serializeSdp(parsed), /b=AS/, "b= lines are skipped");
  const ports = parseSdp("v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\nm=audio 5000/2 RTP/AVP 0\r\n");
  t.same([ports.connection, ports.media[0].port, ports.media[0].portCount], ["2001:db8::1", 5000, 2]);
  t.match(serializeSdp(ports), /c=IN IP6 2001:db8::1\r\n[^]*m=audio 5000\/2 RTP\/AVP 0\r\n/);
});

t.test("malformed SDP throws SdpParseError with a short reason", async (t) => {
  const base = RTPENGINE_OFFER;
  const cases: Array<[string, string, RegExp]> = [
    ["empty", "", /^first line must be v=0$/],
    ["not SDP", "hello world", /^bad line 'hello world'$/],
    ["v=1", base.replace("v=0", "v=1"), /^first line must be v=0$/],
    ["o= first", base.replace("v=0\r\n", ""), /^first line must be v=0$/],
    ["o= short", base.replace("o=- 1545997027 2 IN IP4 127.0.0.1", "o=- 1545997027 IN IP4 127.0.0.1"), /^bad o= /],
    ["o= non-numeric version", base.replace("1545997027 2", "1545997027 two"), /^bad o= /],
    ["missing s=", base.replace("s=-\r\n", ""), /^s= must follow o=$/],
    ["c= without address", base.replace("c=IN IP4 127.0.0.1", "c=IN IP4"), /^bad c= 'IN IP4'$/],
    ["c= bad address type", base.replace("c=IN IP4 127.0.0.1", "c=IN IPX 127.0.0.1"), /^bad c= /],
    ["two session c=", base.replace("t=0 0", "c=IN IP4 127.0.0.2\r\nt=0 0"), /^more than one c= line$/],
    ["missing t=", base.replace("t=0 0\r\n", ""), /^missing t=$/],
    ["bad t=", base.replace("t=0 0", "t=now"), /^bad t= 'now'$/],
    ["m= port not a number", base.replace("m=audio 30000", "m=audio port"), /^bad m= 'audio port RTP/],
    ["m= port too large", base.replace("m=audio 30000", "m=audio 70000"), /^bad m= /],
    ["m= without formats", base.replace("m=audio 30000 RTP/AVP 111 8 0 126", "m=audio 30000 RTP/AVP"), /^bad m= 'audio 30000 RTP\/AVP'$/],
    ["uppercase line type", base.replace("a=sendrecv", "A=sendrecv"), /^bad line 'A=sendrecv'$/],
    ["line without =", base.replace("a=sendrecv", "sendrecv"), /^bad line 'sendrecv'$/],
    ["bad attribute name", base.replace("a=sendrecv", "a=:x"), /^bad a= ':x'$/],
    ["second v=", `${base}v=0\r\n`, /^unexpected v= line$/],
    ["binary", "v=0\r\n\u0000\u0001\u0002", /^bad line '\?\?\?'$/],
    ["a long garbage line", `${base}${"x".repeat(10000)}\r\n`, /^bad line 'x{40}\.\.\.'$/],
  ];
  for (const [name, text, reason] of cases) t.throws(() => parseSdp(text), { name: "SdpParseError", message: reason }, name);
  t.throws(() => parseSdp(""), SdpParseError);
});
