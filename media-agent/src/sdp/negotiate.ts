/**
 * Offer/answer (RFC 3264) for the agent's one audio stream: plain RTP toward rtpengine on
 * loopback, one codec (Opus 48000/2, PCMA or PCMU) picked by our preference order, and
 * telephone-event for DTMF when the peer has it. Failures come back as a reason that the
 * caller puts in a 488 or a log line, so they name what was offered.
 */
import { attributeValues, serializeSdp, type SdpAttribute, type SdpMedia, type SessionDescription } from "./sdp.js";

/** The same union as CodecName in ../codecs/codec.ts. */
export type SdpCodecName = "opus" | "PCMA" | "PCMU";

export type Direction = "sendrecv" | "sendonly" | "recvonly" | "inactive";

export interface NegotiatedMedia {
  remoteAddress: string;
  remotePort: number;
  /** From a=rtcp, else the RTP port + 1; the RTP port when rtcp-mux is agreed. */
  remoteRtcpPort: number;
  rtcpMux: boolean;
  /** The peer's payload type, and its fmtp: how it wants to receive the codec. */
  codec: { name: SdpCodecName; payloadType: number; clockRate: number; channels: number; fmtp?: string };
  telephoneEvent?: { payloadType: number };
  /** The packet time the peer asked for (a=ptime), 20 when it did not say. */
  ptime: number;
  /** Our direction: what we put in the answer, or the mirror of the peer's answer. */
  direction: Direction;
}

export interface LocalMedia {
  address: string;
  rtpPort: number;
  /** Codecs we accept, most wanted first. */
  preferences: SdpCodecName[];
  sessionId: string;
  sessionVersion: number;
}

export type Negotiation = { ok: true; sdp: string; media: NegotiatedMedia } | { ok: false; reason: string };

interface CodecSpec {
  encoding: string;
  clockRate: number;
  channels: number;
  /** The payload type we offer it with. */
  payloadType: number;
  fmtp?: string;
}

/** WhatsApp's own Opus settings (16 kHz wideband, in-band FEC), so rtpengine need not transcode. */
const OPUS_FMTP = "maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1";
const CODECS: Record<SdpCodecName, CodecSpec> = {
  opus: { encoding: "opus", clockRate: 48000, channels: 2, payloadType: 111, fmtp: OPUS_FMTP },
  PCMA: { encoding: "PCMA", clockRate: 8000, channels: 1, payloadType: 8 },
  PCMU: { encoding: "PCMU", clockRate: 8000, channels: 1, payloadType: 0 },
};
const TELEPHONE_EVENT = { encoding: "telephone-event", clockRate: 8000, payloadType: 126, fmtp: "0-15" };
/** The agent's frame size (audio/frames.ts): what we ask to receive. */
const PTIME = 20;
/** Static payload types (RFC 3551) an offer may list without a=rtpmap. */
const STATIC: Record<number, { encoding: string; clockRate: number; channels: number }> = {
  0: { encoding: "PCMU", clockRate: 8000, channels: 1 },
  3: { encoding: "GSM", clockRate: 8000, channels: 1 },
  4: { encoding: "G723", clockRate: 8000, channels: 1 },
  8: { encoding: "PCMA", clockRate: 8000, channels: 1 },
  9: { encoding: "G722", clockRate: 8000, channels: 1 },
  13: { encoding: "CN", clockRate: 8000, channels: 1 },
  18: { encoding: "G729", clockRate: 8000, channels: 1 },
};
const MIRROR: Record<Direction, Direction> = { sendrecv: "sendrecv", sendonly: "recvonly", recvonly: "sendonly", inactive: "inactive" };

/** One format of an m-line, as its rtpmap (or the static table) describes it. */
interface Format {
  payloadType: number;
  /** The encoding name, or the format itself when nothing describes it. */
  encoding: string;
  clockRate: number;
  channels: number;
  fmtp?: string;
}

/** What both an offer and an answer must give us for the audio stream. */
interface RemoteAudio {
  media: SdpMedia;
  index: number;
  address: string;
  formats: Format[];
}

export function answerOffer(offer: SessionDescription, local: LocalMedia): Negotiation {
  const audio = remoteAudio(offer);
  if ("reason" in audio) return { ok: false, reason: audio.reason };
  const codec = pickCodec(audio.formats, local.preferences);
  if (!codec) return { ok: false, reason: `no common codec (offered: ${describe(audio.formats)})` };
  const telephoneEvent = audio.formats.find(isTelephoneEvent);
  const media = negotiated(offer, audio, codec, telephoneEvent);
  media.direction = MIRROR[media.direction];

  const answered: SdpMedia = {
    type: "audio",
    port: local.rtpPort,
    proto: "RTP/AVP",
    formats: [codec, telephoneEvent].filter((f) => f !== undefined).map((f) => String(f.payloadType)),
    attributes: [
      ...codecAttributes(codec.name, codec.payloadType),
      ...(telephoneEvent ? telephoneEventAttributes(telephoneEvent.payloadType) : []),
      ...streamAttributes(local.rtpPort, media.direction, media.rtcpMux),
    ],
  };
  // Every offered m-line gets one in the answer, in order; all but ours are refused (port 0).
  const mediaLines = offer.media.map((m, i): SdpMedia =>
    i === audio.index ? answered : { type: m.type, port: 0, proto: m.proto, formats: m.formats, attributes: [] });
  return { ok: true, sdp: serializeSdp(description(local, mediaLines)), media };
}

export function createOffer(local: LocalMedia): string {
  const formats = local.preferences.map((name) => CODECS[name].payloadType);
  const offered: SdpMedia = {
    type: "audio",
    port: local.rtpPort,
    proto: "RTP/AVP",
    formats: [...formats, TELEPHONE_EVENT.payloadType].map(String),
    attributes: [
      ...local.preferences.flatMap((name) => codecAttributes(name, CODECS[name].payloadType)),
      ...telephoneEventAttributes(TELEPHONE_EVENT.payloadType),
      ...streamAttributes(local.rtpPort, "sendrecv", false),
    ],
  };
  return serializeSdp(description(local, [offered]));
}

/** The peer's answer to createOffer: it must have kept one of the codecs we offered. */
export function acceptAnswer(answer: SessionDescription, local: LocalMedia): Negotiation {
  const audio = remoteAudio(answer);
  if ("reason" in audio) return { ok: false, reason: audio.reason };
  const codec = pickCodec(audio.formats, local.preferences);
  if (!codec) return { ok: false, reason: `answer has none of our codecs (answered: ${describe(audio.formats)})` };
  const media = negotiated(answer, audio, codec, audio.formats.find(isTelephoneEvent));
  media.direction = MIRROR[media.direction];
  return { ok: true, sdp: "", media };
}

/** The first audio m-line, checked to be usable plain RTP. */
function remoteAudio(d: SessionDescription): RemoteAudio | { reason: string } {
  const index = d.media.findIndex((m) => m.type === "audio");
  const media = d.media[index];
  if (!media) return { reason: "no audio stream" };
  if (media.proto.toUpperCase() !== "RTP/AVP") return { reason: `${media.proto} audio not supported (plain RTP/AVP only)` };
  if (media.port === 0) return { reason: "audio stream refused (port 0)" };
  const address = media.connection ?? d.connection;
  if (address === undefined) return { reason: "no connection address for audio" };
  return { media, index, address, formats: media.formats.map((f) => describeFormat(media, f)) };
}

function describeFormat(media: SdpMedia, format: string): Format {
  const payloadType = /^\d{1,3}$/.test(format) && Number(format) <= 127 ? Number(format) : -1;
  const rtpmap = attributeValues(media.attributes, "rtpmap")
    .map((v) => v.match(/^(\d+) +([^/ ]+)\/(\d+)(?:\/(\d+))?/))
    .find((m) => m !== null && Number(m[1]) === payloadType);
  const fmtp = attributeValues(media.attributes, "fmtp")
    .map((v) => v.match(/^(\d+) +(.*)$/))
    .find((m) => m !== null && Number(m[1]) === payloadType)?.[2];
  const described = rtpmap
    ? { encoding: rtpmap[2], clockRate: Number(rtpmap[3]), channels: Number(rtpmap[4] ?? 1) }
    : STATIC[payloadType] ?? { encoding: format, clockRate: 0, channels: 0 };
  return { payloadType, ...described, ...(fmtp === undefined ? {} : { fmtp }) };
}

/** Our most preferred codec among the formats, with the peer's payload type. */
function pickCodec(formats: Format[], preferences: SdpCodecName[]): (Format & { name: SdpCodecName }) | undefined {
  for (const name of preferences) {
    const spec = CODECS[name];
    const found = formats.find((f) =>
      f.payloadType >= 0 &&
      f.encoding.toLowerCase() === spec.encoding.toLowerCase() &&
      f.clockRate === spec.clockRate &&
      f.channels === spec.channels);
    if (found) return { ...found, name };
  }
  return undefined;
}

function isTelephoneEvent(f: Format): boolean {
  return f.payloadType >= 0 && f.encoding.toLowerCase() === TELEPHONE_EVENT.encoding && f.clockRate === TELEPHONE_EVENT.clockRate;
}

function describe(formats: Format[]): string {
  return [...new Set(formats.map((f) => f.encoding))].join(", ");
}

/** The stream as the peer described it; direction is the peer's until the caller mirrors it. */
function negotiated(d: SessionDescription, audio: RemoteAudio, codec: Format & { name: SdpCodecName }, telephoneEvent?: Format): NegotiatedMedia {
  const { media } = audio;
  const rtcpMux = attributeValues(media.attributes, "rtcp-mux").length > 0;
  const rtcpPort = Number(attributeValues(media.attributes, "rtcp")[0]?.match(/^(\d{1,5})\b/)?.[1] ?? media.port + 1);
  const ptime = Number(attributeValues(media.attributes, "ptime")[0] ?? attributeValues(d.attributes, "ptime")[0]);
  return {
    remoteAddress: audio.address,
    remotePort: media.port,
    remoteRtcpPort: rtcpMux ? media.port : rtcpPort,
    rtcpMux,
    codec: {
      name: codec.name,
      payloadType: codec.payloadType,
      clockRate: codec.clockRate,
      channels: codec.channels,
      ...(codec.fmtp === undefined ? {} : { fmtp: codec.fmtp }),
    },
    ...(telephoneEvent ? { telephoneEvent: { payloadType: telephoneEvent.payloadType } } : {}),
    ptime: Number.isInteger(ptime) && ptime > 0 ? ptime : PTIME,
    direction: direction(media.attributes) ?? direction(d.attributes) ?? "sendrecv",
  };
}

function direction(attributes: SdpAttribute[]): Direction | undefined {
  return attributes.map((a) => a.name).find((name): name is Direction => name in MIRROR);
}

function codecAttributes(name: SdpCodecName, payloadType: number): SdpAttribute[] {
  const spec = CODECS[name];
  const channels = spec.channels > 1 ? `/${spec.channels}` : "";
  return [
    { name: "rtpmap", value: `${payloadType} ${spec.encoding}/${spec.clockRate}${channels}` },
    ...(spec.fmtp ? [{ name: "fmtp", value: `${payloadType} ${spec.fmtp}` }] : []),
  ];
}

function telephoneEventAttributes(payloadType: number): SdpAttribute[] {
  return [
    { name: "rtpmap", value: `${payloadType} ${TELEPHONE_EVENT.encoding}/${TELEPHONE_EVENT.clockRate}` },
    { name: "fmtp", value: `${payloadType} ${TELEPHONE_EVENT.fmtp}` },
  ];
}

/** With rtcp-mux agreed, RTCP shares the RTP port (RFC 5761 §5.1.3). */
function streamAttributes(rtpPort: number, dir: Direction, rtcpMux: boolean): SdpAttribute[] {
  return [
    { name: "ptime", value: String(PTIME) },
    { name: dir },
    { name: "rtcp", value: String(rtcpMux ? rtpPort : rtpPort + 1) },
    ...(rtcpMux ? [{ name: "rtcp-mux" }] : []),
  ];
}

function description(local: LocalMedia, media: SdpMedia[]): SessionDescription {
  return {
    version: 0,
    origin: {
      username: "-", sessionId: local.sessionId, sessionVersion: String(local.sessionVersion),
      netType: "IN", addrType: local.address.includes(":") ? "IP6" : "IP4", address: local.address,
    },
    sessionName: "-",
    connection: local.address,
    timing: "0 0",
    attributes: [],
    media,
  };
}
