/**
 * A transfer to a person: Meta's side has no REFER, so the agent calls the person itself — a new
 * leg from the business number to `target` through Kamailio, marked X-WA-Transfer (Kamailio
 * sends it to WA_TRANSFER_PROXY) — and, once they answer, joins the two calls' audio; the
 * caller's profile audio (the voice pipeline) is closed. When either call ends, the other is
 * hung up (Call.end).
 */
import { bridgeAudio } from "../audio/bridge.js";
import type { TransferResult } from "../audio/call-audio.js";
import type { CallDesk } from "./call.js";
import { dial } from "./outbound.js";

/** Marks the agent's transfer legs for Kamailio (value: the caller's Call-ID). */
const TRANSFER_HEADER = "X-WA-Transfer";

export async function transferCall(desk: CallDesk, callId: string, target: string, ringTimeoutMs: number): Promise<TransferResult> {
  const caller = desk.call(callId);
  if (!caller || caller.record.status !== "answered" || !caller.media) return { ok: false, reason: "the call is no longer up" };
  const media = await desk.openMedia(desk.log);
  if (!media) return { ok: false, reason: "no free RTP port pair" };
  const { call: leg, outcome } = dial(desk, media, {
    requestUri: target,
    from: `<sip:${caller.record.businessNumber}@${desk.config.AGENT_KAMAILIO.host}>`,
    to: `<${target}>`,
    headers: [{ name: TRANSFER_HEADER, value: callId }],
    profile: "transfer",
    number: caller.record.businessNumber,
    remote: target,
    ringTimeoutMs,
  });
  leg.log.info({ target, transferOf: callId }, "transfer: calling");
  const dialed = await outcome;
  if (!dialed.ok) return dialed;
  if (!desk.call(callId)) {
    await desk.hangUp(leg.record.callId, "the caller hung up during the transfer");
    return { ok: false, reason: "the caller hung up" };
  }
  const [callerEnd, personEnd] = bridgeAudio();
  desk.begin(leg, dialed.negotiated, personEnd);
  const previous = caller.audio;
  caller.audio = callerEnd;
  caller.media.setAudio(callerEnd);
  caller.joinedWith = leg.record.callId;
  leg.joinedWith = callId;
  await previous?.close();
  leg.log.info({ target, transferOf: callId }, "transfer: answered, calls joined");
  return { ok: true };
}
