/**
 * The app_jsdt floor for the routing benchmark (bench/routing.ts): the least JavaScript that
 * carries each benchmarked path, with the same kamailio.cfg, modules and rtpengine flags as the
 * project's bundle. No checks at all: this is what any JavaScript routing costs before it
 * decides anything. kamailio.cfg has rtpengine read the SDP from $var(wa_sdp)
 * (read_sdp_pv), so the floor puts the message's SDP there as the bundle does; without it
 * rtpengine gets no SDP, every offer and answer fails, and the floor skips the media work a
 * call needs (no session, no SDP rewritten).
 *
 *   OPTIONS           is_OPTIONS + sl_send_reply 200                     (the two-call route)
 *   Meta's INVITE     $du = agent, record_route, rtpengine_offer, t_relay
 *   agent's INVITE    $ru/$du/SNI toward Meta, record_route, rtpengine_offer, t_relay
 *   ACK/BYE           loose_route (+ rtpengine_delete for BYE), t_relay
 *   replies           rtpengine_answer on SDP
 */
const scope = globalThis as unknown as Record<string, unknown>;

const COMMON = "replace-origin replace-session-connection ";
const OFFER_TOWARD_AGENT = `${COMMON}RTP/AVP DTLS=off ICE=remove rtcp-mux-demux codec-transcode=PCMA codec-transcode=PCMU`;
const OFFER_TOWARD_META =
  `${COMMON}RTP/SAVP DTLS=off ICE=remove SDES-no-AEAD_AES_256_GCM SDES-no-AEAD_AES_128_GCM SDES-no-AES_256_CM_HMAC_SHA1_80 ` +
  "SDES-no-AES_256_CM_HMAC_SHA1_32 SDES-no-AES_192_CM_HMAC_SHA1_80 SDES-no-AES_192_CM_HMAC_SHA1_32 SDES-no-F8_128_HMAC_SHA1_80 " +
  "SDES-no-F8_128_HMAC_SHA1_32 SDES-no-NULL_HMAC_SHA1_80 SDES-no-NULL_HMAC_SHA1_32 codec-transcode=opus";
const ANSWER = `${COMMON}ICE=remove`;

/** The message's SDP where kamailio.cfg's rtpengine reads it. */
function sdpForRtpengine(): void {
  KSR.pv.sets("$var(wa_sdp)", String(KSR.pv.get("$rb")));
}

let agentUri = "";
let metaEdge = "";

scope.ksr_request_route = function () {
  if (KSR.is_OPTIONS()) {
    KSR.sl.sl_send_reply(200, "OK");
    return;
  }
  if (KSR.siputils.has_totag() > 0) {
    if (KSR.rr.loose_route() > 0) {
      if (KSR.is_BYE()) KSR.rtpengine.rtpengine_delete0();
      KSR.tm.t_relay();
    }
    return;
  }
  if (!agentUri) {
    agentUri = String(KSR.kx.get_env("WA_AGENT_URI"));
    metaEdge = String(KSR.kx.get_env("WA_META_EDGE"));
  }
  if (KSR.pv.get("$pr") === "tls") {
    KSR.pv.sets("$du", agentUri);
    KSR.rr.record_route();
    sdpForRtpengine();
    KSR.rtpengine.rtpengine_offer(OFFER_TOWARD_AGENT);
  } else {
    KSR.pv.sets("$ru", `sip:${KSR.pv.get("$rU")}@wa.meta.vc;transport=tls`);
    KSR.pv.sets("$du", `sip:${metaEdge};transport=tls`);
    KSR.pv.sets("$xavp(tls=>server_name)", "wa.meta.vc");
    KSR.rr.record_route();
    sdpForRtpengine();
    KSR.rtpengine.rtpengine_offer(OFFER_TOWARD_META);
  }
  KSR.tm.t_relay();
};

scope.ksr_reply_route = function () {
  if (KSR.textops.has_body_type("application/sdp") > 0) {
    sdpForRtpengine();
    KSR.rtpengine.rtpengine_answer(ANSWER);
  }
};

// kamailio.cfg names these callbacks; the floor creates no dialogs and serves no API.
scope.ksr_dialog_event = function () {};
scope.ksr_xhttp_event = function () {
  KSR.xhttp.xhttp_reply(501, "Not Implemented", "text/plain", "");
};
