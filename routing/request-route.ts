/**
 * ksr_request_route: every SIP request enters here.
 *
 *   reqinit ─► CANCEL ─► withindlg ─► initial request by method
 *                                      OPTIONS → 200 · INVITE → call routing · others → refused
 *
 * The public side is the TLS listener (Meta); the internal side is the UDP listener on
 * loopback (the media agent and other internal UAs).
 */
import { ALLOW_HEADER, initialRequestDecision, isScannerUserAgent } from "./policy/methods";
import { pvString } from "./ksr/pv";
import { answerOnce, dropSilently, refuse } from "./sip/reply";
import { relay } from "./sip/relay";
import { routingConfig } from "./config";
import { userInitiatedCall } from "./wa/inbound";
import { businessInitiatedCall } from "./wa/outbound";
import { isTransferLeg, transferCall } from "./wa/transfer";
import { shiftInDialogRequest } from "./wa/cseq-shift";
import { deleteMedia } from "./wa/media";

export function requestRoute(): void {
  reqinit();
  if (KSR.is_CANCEL()) return cancel();
  if (KSR.siputils.has_totag() > 0) return withindlg();
  initialRequest();
}

/** Drops floods and scanners, then lets sanity and Max-Forwards checks answer bad requests. */
function reqinit(): void {
  if (fromPublicSide() && KSR.pike.pike_check_req() < 0) dropSilently("request rate over the pike limit");
  if (isScannerUserAgent(pvString("$ua"))) dropSilently(`scanner User-Agent '${pvString("$ua")}'`);

  // Bad request line, CSeq, Content-Length, URIs …: sanity answers 400 itself.
  if (KSR.sanity.sanity_check(17895, 7) < 0) {
    KSR.notice(`malformed ${pvString("$rm")} from ${pvString("$si")}:${pvString("$sp")} answered by sanity\n`);
    KSR.x.exit();
  }
  const maxfwd = KSR.maxfwd.process_maxfwd(10);
  if (maxfwd === -1) refuse(483, "Too Many Hops", "Max-Forwards reached 0");
  if (maxfwd < 0) refuse(400, "Bad Max-Forwards", `unusable Max-Forwards '${pvString("$hdr(Max-Forwards)")}'`);
}

/** CANCEL follows its INVITE transaction; without one there is nothing to cancel. */
function cancel(): void {
  if (KSR.tm.t_check_trans() > 0) {
    deleteMedia("CANCEL");
    relay();
  }
  refuse(481, "Call/Transaction Does Not Exist", "CANCEL matches no transaction");
}

/**
 * In-dialog requests follow the route set; ACKs for our own negative replies are absorbed.
 * Meta answers re-INVITE and UPDATE with 500 and has no session timers or hold, so those
 * never leave toward Meta: they are answered here.
 */
function withindlg(): void {
  if (!fromPublicSide() && KSR.is_method_in("IU")) {
    refuse(488, "Not Acceptable Here - No Session Updates Toward WhatsApp", `in-dialog ${pvString("$rm")} from the internal side: Meta accepts no re-INVITE/UPDATE`);
  }
  if (KSR.rr.loose_route() > 0) {
    if (KSR.is_BYE()) deleteMedia(`BYE from the ${fromPublicSide() ? "WhatsApp" : "agent"} side`);
    if (!fromPublicSide()) shiftInDialogRequest();
    relay();
  }
  if (KSR.is_ACK()) {
    if (KSR.tm.t_check_trans() > 0) relay();
    else dropSilently("in-dialog ACK without route set or transaction");
    return;
  }
  refuse(404, "Not Here", "in-dialog request without a route set through us");
}

function initialRequest(): void {
  const decision = initialRequestDecision(pvString("$rm"));
  switch (decision.kind) {
    case "keepalive":
      KSR.hdr.append_to_reply(`${ALLOW_HEADER}\r\n`);
      answerOnce(200, "OK");
      return;
    case "absorb-ack":
      if (KSR.tm.t_check_trans() > 0) relay();
      else dropSilently("ACK matches no transaction");
      return;
    case "call":
      return routeCall();
    case "refuse":
      refuse(decision.code, decision.reason, decision.cause, decision.headers);
  }
}

/**
 * Meta's calls arrive on the public TLS side; on the internal side the agent places
 * business-initiated calls and transfer legs to people.
 */
function routeCall(): void {
  const cfg = routingConfig();
  if (!cfg) refuse(503, "Service Unavailable - Configuration Error", "the WA_* routing settings are invalid (errors logged above)");
  if (fromPublicSide()) userInitiatedCall(cfg);
  else if (isTransferLeg()) transferCall(cfg);
  else businessInitiatedCall(cfg);
}

function fromPublicSide(): boolean {
  return KSR.is_TLS();
}
