/**
 * rtpengine flags for the two call legs, as pure functions. Toward Meta: SRTP, either SDES
 * (`RTP/SAVP` + a=crypto, the default: Meta recommends it against clipped call starts) or
 * DTLS-SRTP with ICE (Meta's default, `UDP/TLS/RTP/SAVPF`; Meta is ICE-lite, so rtpengine, a
 * full ICE agent, ends up controlling). Toward the agent: plain RTP on loopback.
 *
 * Codecs: Meta always has Opus 48000/2; the agent gets Opus when it offers/accepts it (no
 * transcoding) and otherwise G.711, which rtpengine transcodes. rtpengine only transcodes
 * where a flag asks it to, so the flags below add the codecs the other side may lack.
 */

export type SrtpMode = "SDES" | "DTLS";

export interface MediaSettings {
  srtpMode: SrtpMode;
  /** rtpengine interface names for the Meta side and the agent side, when it has several. */
  directions: { external: string; internal: string } | null;
}

/** Meta's Opus parameters (shared/docs/whatsapp-sip.md), for Opus that rtpengine adds itself. */
export const META_OPUS_FMTP = "maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1";

const COMMON = ["replace-origin", "replace-session-connection"];

/** Crypto suites rtpengine could offer besides Meta's two: AES_CM_128_HMAC_SHA1_80 first, _32 accepted. */
const SDES_SUITES_NOT_FOR_META = [
  "AEAD_AES_256_GCM", "AEAD_AES_128_GCM", "AES_256_CM_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_32",
  "AES_192_CM_HMAC_SHA1_80", "AES_192_CM_HMAC_SHA1_32", "F8_128_HMAC_SHA1_80", "F8_128_HMAC_SHA1_32",
  "NULL_HMAC_SHA1_80", "NULL_HMAC_SHA1_32",
];

/** The SRTP side as rtpengine must present it to Meta. */
function metaSideFlags(mode: SrtpMode): string[] {
  if (mode === "SDES") {
    return ["RTP/SAVP", "DTLS=off", "ICE=remove"].concat(SDES_SUITES_NOT_FOR_META.map((s) => `SDES-no-${s}`));
  }
  return ["UDP/TLS/RTP/SAVPF", "ICE=force", "SDES-off", "rtcp-mux-offer", "generate-mid"];
}

/** The plain side the agent sees: RTP/AVP, no ICE, no DTLS, separate RTCP. */
const AGENT_SIDE = ["RTP/AVP", "DTLS=off", "ICE=remove", "rtcp-mux-demux"];

function directionFlags(settings: MediaSettings, from: "external" | "internal"): string[] {
  if (!settings.directions) return [];
  const d = settings.directions;
  return from === "external" ? [`direction=${d.external}`, `direction=${d.internal}`] : [`direction=${d.internal}`, `direction=${d.external}`];
}

/**
 * User-initiated call, Meta's INVITE → agent: strip SRTP, and offer G.711 besides Meta's
 * Opus so an agent without Opus can still answer (rtpengine then transcodes).
 */
export function offerTowardAgentFlags(settings: MediaSettings): string {
  return COMMON.concat(AGENT_SIDE, ["codec-transcode=PCMA", "codec-transcode=PCMU"], directionFlags(settings, "external")).join(" ");
}

/** The agent's 200 OK → Meta: rtpengine answers in the profile Meta offered (SDES or DTLS). */
export function answerTowardMetaFlags(settings: MediaSettings): string {
  return COMMON.concat(settings.srtpMode === "DTLS" ? ["ICE=force"] : ["ICE=remove"]).join(" ");
}

/**
 * Business-initiated call, agent's INVITE → Meta: SRTP toward Meta, and Opus offered even
 * when the agent only has G.711 (Meta requires Opus; rtpengine transcodes).
 */
export function offerTowardMetaFlags(settings: MediaSettings): string {
  return COMMON.concat(metaSideFlags(settings.srtpMode), ["codec-transcode=opus"], directionFlags(settings, "internal")).join(" ");
}

/** Meta's 200 OK → agent: back to plain RTP in what the agent offered. */
export function answerTowardAgentFlags(): string {
  return COMMON.concat(["ICE=remove"]).join(" ");
}

/**
 * A transfer leg, agent's INVITE → a person's phone (a PBX): plain RTP both ways, the agent's
 * codecs as offered; rtpengine only relays, from the agent's interface to the outward one.
 */
export function offerTowardTransferFlags(settings: MediaSettings): string {
  return COMMON.concat(AGENT_SIDE, directionFlags(settings, "internal")).join(" ");
}

/** WA_SRTP_MODE and WA_RTPENGINE_DIRECTIONS ("external,internal" interface names, or empty). */
export function parseMediaSettings(mode: string, directions: string, errors: string[]): MediaSettings {
  if (mode !== "SDES" && mode !== "DTLS") errors.push(`WA_SRTP_MODE: '${mode}' is not SDES or DTLS`);
  let pair: MediaSettings["directions"] = null;
  if (directions) {
    const names = directions.split(",");
    if (names.length !== 2 || !/^[A-Za-z0-9_-]+$/.test(names[0]) || !/^[A-Za-z0-9_-]+$/.test(names[1])) {
      errors.push(`WA_RTPENGINE_DIRECTIONS: '${directions}' is not "external,internal" (two rtpengine interface names)`);
    } else pair = { external: names[0], internal: names[1] };
  }
  return { srtpMode: mode === "DTLS" ? "DTLS" : "SDES", directions: pair };
}

/**
 * Meta's DTLS SDP marks Meta as ICE-lite with `a=ice-lite` at session level (RFC 8839's place
 * for it; seen in signalwire/freeswitch #2904). rtpengine 10.5 reads the mark only at media
 * level (sipwise/rtpengine #1721); without it rtpengine takes the ICE-CONTROLLED role and
 * never nominates, and against an ICE-lite peer nobody else does: the call has no audio. So
 * the SDP rtpengine gets from Meta carries the mark in each media section as well.
 *
 * The SDP with `a=ice-lite` added to every media section that lacks it; null when the session
 * level has no `a=ice-lite` (then the SDP goes to rtpengine as it came).
 */
export function iceLiteAtMediaLevel(sdp: string): string | null {
  // Most SDPs (every SDES call) have no ICE at all: no need to look at their lines.
  if (sdp.indexOf("a=ice-lite") < 0) return null;
  const eol = sdp.indexOf("\r\n") >= 0 ? "\r\n" : "\n";
  const lines = sdp.split(/\r?\n/);
  while (lines.length && lines[lines.length - 1] === "") lines.pop();
  let firstMedia = -1;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].indexOf("m=") === 0) {
      firstMedia = i;
      break;
    }
  }
  if (firstMedia < 0) return null;
  const isIceLite = (line: string) => /^a=ice-lite\s*$/.test(line);
  let sessionLite = false;
  for (let i = 0; i < firstMedia; i++) if (isIceLite(lines[i])) sessionLite = true;
  if (!sessionLite) return null;
  const out: string[] = lines.slice(0, firstMedia);
  let section: string[] = [];
  const endSection = () => {
    let marked = false;
    for (const line of section) if (isIceLite(line)) marked = true;
    if (!marked) section.push("a=ice-lite");
    for (const line of section) out.push(line);
  };
  for (let i = firstMedia; i < lines.length; i++) {
    if (i > firstMedia && lines[i].indexOf("m=") === 0) {
      endSection();
      section = [];
    }
    section.push(lines[i]);
  }
  endSection();
  return out.join(eol) + eol;
}
