/**
 * A call to the agent (user-initiated, through Kamailio): INVITE → the profile (X-WA-Profile, set
 * by the routing) → the SDP answer → 180, then 200 and the first packet at once. Refusals carry
 * their reason: an unknown profile 404, bad SDP 400, no RTP ports 503, no common codec 488.
 */
import { parseSdp, SdpParseError } from "../sdp/sdp.js";
import { answerOffer } from "../sdp/negotiate.js";
import { header, parseNameAddr, parseUri } from "../sip/message.js";
import type { IncomingInvite } from "../sip/user-agent.js";
import type { CallDesk } from "./call.js";
import { ownLoopTurn } from "../loop-turns.js";

/** Header the routing sets on user-initiated calls (routing/wa/inbound.ts). */
export const PROFILE_HEADER = "X-WA-Profile";

export async function answerInvite(desk: CallDesk, invite: IncomingInvite): Promise<void> {
  const request = invite.request;
  const profile = header(request, PROFILE_HEADER) ?? desk.config.AGENT_DEFAULT_PROFILE;
  const call = desk.newCall(invite.callId, "inbound", profile, parseUri(request.uri).user, userOf(header(request, "From")!));
  const refuse = (status: number, reason: string) => {
    invite.reject(status, reason);
    void call.end(`${status} ${reason}`);
  };
  if (!desk.hasProfile(profile)) {
    call.log.warn({ profile }, "unknown agent profile");
    return refuse(404, `Not Found - No Agent Profile '${profile}'`);
  }
  let offer;
  try {
    offer = parseSdp(request.body);
  } catch (err) {
    if (!(err instanceof SdpParseError)) throw err;
    return refuse(400, `Bad Request - Bad SDP: ${(err as Error).message}`);
  }
  call.media = await desk.openMedia(call.log);
  if (!call.media) return refuse(503, "Service Unavailable - No RTP Ports");
  // Answering (the SDP answer, the pipeline, the 200, the first packet) costs the loop ~2 ms:
  // INVITEs that arrive together (their sockets bound in the same poll) are answered spread over
  // loop turns, so the calls already up keep their pacing.
  await ownLoopTurn();
  const negotiation = answerOffer(offer, desk.localMedia(call.media));
  if (!negotiation.ok) return refuse(488, `Not Acceptable Here - ${negotiation.reason}`);
  invite.ringing();
  if (desk.config.AGENT_ANSWER_DELAY_MS > 0) await new Promise((done) => setTimeout(done, desk.config.AGENT_ANSWER_DELAY_MS));
  if (invite.canceled) return void call.end("CANCEL");
  invite.accept(negotiation.sdp);
  desk.begin(call, negotiation.media);
}

function userOf(nameAddr: string): string {
  try {
    return parseUri(parseNameAddr(nameAddr).uri).user;
  } catch {
    return "";
  }
}
