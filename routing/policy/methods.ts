/** What we do with an initial (out-of-dialog) request, by method. Pure: unit tests call it. */

/** Methods of a WhatsApp call leg (Meta's Allow header lists the same). */
export const ALLOWED_METHODS = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "NOTIFY"];
export const ALLOW_HEADER = `Allow: ${ALLOWED_METHODS.join(", ")}`;

export type InitialRequestDecision =
  | { kind: "keepalive" }
  | { kind: "call" }
  | { kind: "absorb-ack" }
  | { kind: "refuse"; code: number; reason: string; cause: string; headers: string[] };

export function initialRequestDecision(method: string): InitialRequestDecision {
  switch (method) {
    case "OPTIONS":
      return { kind: "keepalive" };
    case "INVITE":
      return { kind: "call" };
    case "ACK":
      return { kind: "absorb-ack" };
    case "REGISTER":
      return {
        kind: "refuse",
        code: 405,
        reason: "Method Not Allowed - No Registrar Here",
        cause: "REGISTER is not used by WhatsApp Business Calling (Meta never registers)",
        headers: [ALLOW_HEADER],
      };
    case "BYE":
    case "CANCEL":
    case "NOTIFY":
      return {
        kind: "refuse",
        code: 481,
        reason: "Call/Transaction Does Not Exist",
        cause: `${method} outside any dialog or transaction`,
        headers: [],
      };
    default:
      return {
        kind: "refuse",
        code: 405,
        reason: "Method Not Allowed",
        cause: `method ${method} is not part of a WhatsApp call`,
        headers: [ALLOW_HEADER],
      };
  }
}

/** SIP scanners announce themselves; answering them only invites more traffic. */
export function isScannerUserAgent(userAgent: string): boolean {
  return /friendly-scanner|sipvicious|sipcli|sip-scan|sundayddr|iWar|VaxSIPUserAgent|pplsip/i.test(userAgent);
}

/**
 * In-dialog session changes (re-INVITE, UPDATE), refused here with the reason; null: not one we
 * stop. Toward Meta: Meta answers them with 500 and has no session timers or hold. From Meta:
 * the call has one media session, set up through rtpengine, which holds Meta's SRTP side; Meta's
 * new offer would reach the agent as SRTP SDP it cannot use (or change nothing it needs). A 488
 * leaves the call and its media as they were (RFC 3261 §14.2), so the call goes on.
 * `sourceIsMeta`: the request arrived from Meta (its TLS address), not what it claims.
 */
export function sessionChangeDecision(method: string, sourceIsMeta: boolean, towardMeta: boolean): { code: number; reason: string; cause: string } | null {
  if (method !== "INVITE" && method !== "UPDATE") return null;
  if (towardMeta) {
    return { code: 488, reason: "Not Acceptable Here - No Session Updates Toward WhatsApp", cause: `in-dialog ${method} from the internal side: Meta accepts no re-INVITE/UPDATE` };
  }
  if (sourceIsMeta) {
    return { code: 488, reason: "Not Acceptable Here - Session Changes Not Supported", cause: `in-dialog ${method} from Meta: the call keeps its media session as set up (no media changes mid-call)` };
  }
  return null;
}
