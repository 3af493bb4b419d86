/**
 * Calls the agent places through Kamailio: business-initiated calls (the call API) and the legs
 * of a transfer. The INVITE carries our offer; the record follows the call (calling → answered,
 * or failed with the answer Meta, Kamailio or the callee gave); no answer within the ring
 * timeout cancels it.
 */
import type { MediaSession } from "../rtp/media-session.js";
import { acceptAnswer, createOffer, type NegotiatedMedia } from "../sdp/negotiate.js";
import { parseSdp } from "../sdp/sdp.js";
import type { SipHeader } from "../sip/message.js";
import type { Call, CallDesk, CallRecord } from "./call.js";
import { PROFILE_HEADER } from "./inbound.js";

/** A request the API refuses (bad input), with the HTTP status to answer. */
export class AgentRequestError extends Error {
  constructor(message: string, readonly status = 400) {
    super(message);
  }
}

export interface DialRequest {
  requestUri: string;
  from: string;
  to: string;
  headers: SipHeader[];
  profile: string;
  number: string;
  remote: string;
  ringTimeoutMs?: number;
}

export type DialOutcome = { ok: true; negotiated: NegotiatedMedia } | { ok: false; reason: string };

/**
 * A business-initiated call. Resolves once the INVITE has left; the record follows the call
 * (calling → answered → ended, or failed with Meta's/Kamailio's answer).
 */
export async function placeCall(desk: CallDesk, p: { to: string; number: string; profile: string }): Promise<CallRecord> {
  if (!desk.hasProfile(p.profile)) throw new AgentRequestError(`no agent profile '${p.profile}' (AGENT_PROFILES)`);
  const media = await desk.openMedia(desk.log);
  if (!media) throw new AgentRequestError("no free RTP port pair", 503);
  const k = desk.config.AGENT_KAMAILIO;
  const { call, outcome } = dial(desk, media, {
    requestUri: `sip:${p.to}@${k.host}:${k.port}`,
    from: `<sip:${p.number}@${k.host}>`,
    to: `<sip:${p.to}@${k.host}>`,
    headers: [{ name: PROFILE_HEADER, value: p.profile }],
    profile: p.profile,
    number: p.number,
    remote: p.to,
  });
  void outcome.then((dialed) => dialed.ok && desk.begin(call, dialed.negotiated));
  return call.record;
}

/**
 * An outgoing INVITE through Kamailio: the call is tracked at once (so it can be cancelled);
 * `outcome` says whether it was answered with a usable SDP answer (then the caller begins the
 * media) or why not (the call is ended then).
 */
export function dial(desk: CallDesk, media: MediaSession, p: DialRequest): { call: Call; outcome: Promise<DialOutcome> } {
  const local = desk.localMedia(media);
  const invite = desk.ua.invite({ requestUri: p.requestUri, from: p.from, to: p.to, sdp: createOffer(local), headers: p.headers });
  const call = desk.newCall(invite.callId, "outbound", p.profile, p.number, p.remote);
  call.media = media;
  call.cancel = invite.cancel;
  desk.track(call);
  const ringing = p.ringTimeoutMs ? setTimeout(() => invite.cancel(), p.ringTimeoutMs) : undefined;
  const outcome = invite.result.then(async (result): Promise<DialOutcome> => {
    clearTimeout(ringing);
    if (result.status >= 300 || !result.dialog) {
      const reason = result.status === 487 && p.ringTimeoutMs ? `no answer within ${p.ringTimeoutMs} ms` : `${result.status} ${result.reason}`;
      await call.end(reason);
      return { ok: false, reason };
    }
    let answer;
    try {
      answer = acceptAnswer(parseSdp(result.answerSdp ?? ""), local);
    } catch (err) {
      answer = { ok: false as const, reason: `bad SDP answer: ${(err as Error).message}` };
    }
    if (!answer.ok) {
      call.log.error({ reason: answer.reason }, "unusable SDP answer");
      await desk.hangUp(invite.callId, answer.reason);
      return { ok: false, reason: answer.reason };
    }
    return { ok: true, negotiated: answer.media };
  });
  return { call, outcome };
}
