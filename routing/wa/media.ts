/**
 * rtpengine at the edges of a call: offer on the INVITE, answer on the reply that carries the
 * callee's SDP, delete when the call ends any way (BYE, CANCEL, failure, dialog timeout).
 * The flags themselves are pure functions in policy/media.ts.
 */
import type { MediaSettings } from "../policy/media";
import { answerTowardAgentFlags, answerTowardMetaFlags, iceLiteAtMediaLevel, offerTowardAgentFlags, offerTowardMetaFlags, offerTowardTransferFlags } from "../policy/media";
import { pvRaw, pvString, wellFormed } from "../ksr/pv";
import { refuse } from "../sip/reply";
import { routingConfig } from "../config";
import { exportReplyRoute, exportRequestRoute } from "../runtime/callbacks";
import { tryNextAgent } from "../policy/agent-pool";
import { nextAgent } from "./agent-pool";

export type CallDirection = "user-initiated" | "business-initiated" | "transfer";

/**
 * The flags are pure functions of the settings, which a worker keeps until app_jsdt.reload: each
 * string is built once per worker (and settings), not per INVITE and per answer.
 */
let flagsOf: MediaSettings | null = null;
let builtFlags: { [use: string]: string } = {};

function cachedFlags(settings: MediaSettings, use: string, build: (settings: MediaSettings) => string): string {
  if (flagsOf !== settings) {
    flagsOf = settings;
    builtFlags = {};
  }
  return builtFlags.hasOwnProperty(use) ? builtFlags[use] : (builtFlags[use] = build(settings));
}

function offerFlags(direction: CallDirection, settings: MediaSettings): string {
  if (direction === "user-initiated") return cachedFlags(settings, "offer toward agent", offerTowardAgentFlags);
  return direction === "transfer" ? cachedFlags(settings, "offer toward transfer", offerTowardTransferFlags) : cachedFlags(settings, "offer toward Meta", offerTowardMetaFlags);
}

/** An INVITE without SDP is refused: late offer is not supported. */
export function requireSdpOffer(direction: CallDirection): void {
  if (KSR.textops.has_body_type("application/sdp") < 0) {
    refuse(488, "Not Acceptable Here - SDP Offer Required", `${direction} INVITE without an SDP offer (late offer is not supported)`);
  }
}

/**
 * Sends the INVITE's SDP (checked by requireSdpOffer) through rtpengine; no rtpengine refuses
 * the call, after `undo` has taken back what the route recorded for it.
 */
export function offerMedia(direction: CallDirection, settings: MediaSettings, undo?: () => void): void {
  const flags = offerFlags(direction, settings);
  sdpForRtpengine(direction === "user-initiated" ? "Meta" : "our side");
  if (KSR.rtpengine.rtpengine_offer(flags) < 0) {
    if (undo) undo();
    refuse(503, "Service Unavailable - Media Relay Failed", `rtpengine_offer failed (${direction}); is rtpengine running on WA_RTPENGINE_SOCK?`);
  }
  KSR.pv.sets("$avp(wa_media)", direction);
}

/**
 * In a reply route: a 18x/2xx with SDP gets rtpengine's answer. A failure here leaves the
 * reply's SDP pointing at the callee directly, which cannot carry audio, so it is logged loudly.
 */
export function answerMedia(settings: MediaSettings, from: SdpSource): void {
  // Cheapest question first: most replies (100 Trying, most 18x, failures) carry no SDP.
  if (KSR.textops.has_body_type("application/sdp") < 0) return;
  const status = KSR.pv.get("$rs") as number;
  if (status >= 300) return;
  const direction = pvString("$avp(wa_media)");
  if (!direction) return;
  const flags = direction === "user-initiated" ? cachedFlags(settings, "answer toward Meta", answerTowardMetaFlags) : cachedFlags(settings, "answer toward agent", answerTowardAgentFlags);
  sdpForRtpengine(from);
  if (KSR.rtpengine.rtpengine_answer(flags) < 0) {
    KSR.err(`rtpengine_answer failed for ${status} of call ${pvString("$ci")} (${direction}): the call will have no audio\n`);
  }
}

/** Whose SDP it is: Meta's (trusted only as far as the caller of this function checked the source) or ours. */
export type SdpSource = "Meta" | "our side";

/**
 * rtpengine reads the SDP from $var(wa_sdp) (kamailio.cfg: read_sdp_pv) and writes its own into
 * the message: the message's SDP as it is, or Meta's with its session-level ICE-lite mark
 * repeated in the media sections (iceLiteAtMediaLevel: rtpengine 10.5 reads it only there).
 */
function sdpForRtpengine(from: SdpSource): void {
  const body = pvRaw("$rb") ?? "";
  // Only an SDP with ICE-lite (Meta's DTLS offer) is read as text; indexOf compares bytes, so it
  // is safe on a peer's unchecked body, and an SDES call skips checking its whole SDP.
  const fixed = from === "Meta" && body.indexOf("a=ice-lite") >= 0 ? iceLiteAtMediaLevel(wellFormed(body)) : null;
  if (fixed !== null) KSR.info(`call ${pvString("$ci")}: Meta's session-level a=ice-lite repeated at media level for rtpengine\n`);
  KSR.pv.sets(SDP_FOR_RTPENGINE, fixed === null ? body : fixed);
}

const SDP_FOR_RTPENGINE = "$var(wa_sdp)";

/** Ends the call's media in rtpengine; the reason goes to the log. */
export function deleteMedia(reason: string): void {
  if (KSR.rtpengine.rtpengine_delete0() < 0) {
    KSR.notice(`rtpengine had no media for call ${pvString("$ci")} (${reason})\n`);
    return;
  }
  KSR.info(`media of call ${pvString("$ci")} deleted (${reason})\n`);
}

/**
 * A dialog ended without a BYE passing the request route (the dialog timeout; dialog then
 * sends the BYEs itself): the message is the dialog module's own, so the call is named.
 */
export function deleteMediaOfDialog(reason: string): void {
  const callId = pvString("$dlg(callid)");
  const fromTag = pvString("$dlg(from_tag)");
  if (!callId) return;
  if (KSR.rtpengine.rtpengine_delete(`call-id=${callId} from-tag=${fromTag}`) < 0) {
    KSR.notice(`rtpengine had no media for call ${callId} (${reason})\n`);
    return;
  }
  KSR.info(`media of call ${callId} deleted (${reason})\n`);
}

/** ksr_onreply_local: a callee on our side (the agent, a transfer target) answered: its plain SDP goes through rtpengine. */
export const LOCAL_CALLEE_REPLY_ROUTE = exportReplyRoute("ksr_onreply_local", () => {
  const cfg = routingConfig();
  if (cfg) answerMedia(cfg.media, "our side");
});

/**
 * ksr_failure_local: that callee refused or never answered; a CANCEL already freed the media.
 * An agent that could not take the call (5xx, no answer) hands it to the next agent of the pool,
 * with the media already offered; Meta hears nothing of it.
 */
export const LOCAL_CALLEE_FAILURE_ROUTE = exportRequestRoute("ksr_failure_local", () => {
  const transfer = pvString("$avp(wa_media)") === "transfer";
  const status = KSR.tm.t_get_status_code();
  const canceled = KSR.tm.t_is_canceled() > 0;
  if (!transfer && tryNextAgent(status, canceled)) {
    const moved = nextAgent();
    if (moved) {
      KSR.warn(`agent ${moved.failed} answered ${status}: call moved to ${moved.next}\n`);
      KSR.tm.t_on_reply(LOCAL_CALLEE_REPLY_ROUTE);
      KSR.tm.t_on_failure(LOCAL_CALLEE_FAILURE_ROUTE);
      if (KSR.tm.t_relay() > 0) return;
      KSR.err(`call could not be relayed to ${moved.next}\n`);
    }
  }
  if (!canceled) deleteMedia(`${transfer ? "the transfer target" : "the agent"} answered ${status}`);
});
