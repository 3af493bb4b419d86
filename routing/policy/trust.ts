/**
 * Who sent a request, decided by what a peer cannot write: the listener it arrived on and its
 * source address. Headers, Route sets, Call-IDs and tags are claims; they only ever narrow
 * what a trusted source may do, never make a source trusted. Pure: unit tests call it.
 *
 *   TLS listener, source in WA_META_PREFIXES        → "meta"      (Meta's SIP edge)
 *   TLS listener, any other source                  → "outsider"  (the Internet)
 *   internal UDP listener, source in WA_INTERNAL_ALLOW → "internal" (agents, the PBX)
 *   internal UDP listener, any other source         → "stranger"
 *   anything else (SIP on the HTTP API's TCP port)  → "wrong-listener"
 */
import { ipInAnyCidr } from "./cidr";

export type SourceClass = "meta" | "outsider" | "internal" | "stranger" | "wrong-listener";

/** The two sides a call of ours can have. */
export type Side = "meta" | "internal";

export interface TrustSettings {
  metaPrefixes: string[];
  internalAllow: string[];
}

export function classifySource(proto: string, srcIp: string, settings: TrustSettings): SourceClass {
  if (proto === "tls") return ipInAnyCidr(srcIp, settings.metaPrefixes) ? "meta" : "outsider";
  if (proto === "udp") return ipInAnyCidr(srcIp, settings.internalAllow) ? "internal" : "stranger";
  return "wrong-listener";
}

/** Trusted sources are never throttled: Meta concentrates many calls on few addresses. */
export function isTrusted(source: SourceClass): source is Side {
  return source === "meta" || source === "internal";
}

/** Which kind of call a dialog is; kept in the dialog ($dlg_var(wa_call)) when it starts. */
export type CallKind = "user-initiated" | "business-initiated" | "transfer";

/** The sides of each kind of call: the INVITE's sender (caller) and its callee. */
export function dialogSides(kind: CallKind): { caller: Side; callee: Side } {
  if (kind === "user-initiated") return { caller: "meta", callee: "internal" };
  if (kind === "business-initiated") return { caller: "internal", callee: "meta" };
  return { caller: "internal", callee: "internal" };
}

export function isCallKind(value: string): value is CallKind {
  return value === "user-initiated" || value === "business-initiated" || value === "transfer";
}

/** What the routing knows of the dialog an in-dialog request names (null: none we hold). */
export interface DialogFacts {
  kind: string;
  /** The caller's From tag, as the dialog recorded it. */
  callerTag: string;
}

export type Refusal = { ok: false; code: number; reason: string; cause: string };

/** An in-dialog request (or a CANCEL) that may go on, sent by `from` toward `toward`. */
export type SenderVerdict = { ok: true; from: "caller" | "callee"; toward: Side } | Refusal;

/**
 * May this source send this in-dialog request? Only for a dialog we hold, and only from the
 * side of that dialog its From tag claims to be: Meta's side from Meta, the internal side from
 * an allowed internal source. A CANCEL (`cancel`) only ever comes from the caller.
 */
export function inDialogSender(source: SourceClass, fromTag: string, dialog: DialogFacts | null, cancel: boolean): SenderVerdict {
  if (!dialog) return { ok: false, code: 481, reason: "Call/Transaction Does Not Exist", cause: "no dialog of ours matches its Call-ID and tags" };
  if (!isCallKind(dialog.kind)) {
    return { ok: false, code: 481, reason: "Call/Transaction Does Not Exist", cause: `the dialog was not set up by this routing (kind '${dialog.kind}')` };
  }
  const sides = dialogSides(dialog.kind);
  const from = fromTag === dialog.callerTag ? "caller" : "callee";
  if (cancel && from !== "caller") {
    return { ok: false, code: 481, reason: "Call/Transaction Does Not Exist", cause: "the CANCEL's From tag is not the INVITE's" };
  }
  const expected = from === "caller" ? sides.caller : sides.callee;
  if (source !== expected) {
    return {
      ok: false,
      code: 403,
      reason: "Forbidden - Not A Party To This Call",
      cause: `${dialog.kind} call: its ${from} is on the ${expected === "meta" ? "Meta (TLS, WA_META_PREFIXES)" : "internal (WA_INTERNAL_ALLOW)"} side, this came from ${describeSource(source)}`,
    };
  }
  return { ok: true, from, toward: from === "caller" ? sides.callee : sides.caller };
}

export function describeSource(source: SourceClass): string {
  switch (source) {
    case "meta":
      return "Meta's edge";
    case "outsider":
      return "a TLS peer outside WA_META_PREFIXES";
    case "internal":
      return "an allowed internal source";
    case "stranger":
      return "an internal-listener source outside WA_INTERNAL_ALLOW";
    default:
      return "a listener that takes no SIP";
  }
}

/**
 * The parts of a header named X-WA-* (header names are case-insensitive): "-wa-" in every mix of
 * case; before it a line start (after LF or a lone CR) and "x"; after it, in Meta's own
 * X-WA-Meta-*, "meta-".
 */
const WA_MIDDLES = ["-wa-", "-wA-", "-Wa-", "-WA-"];
const LINE_START_X: Record<string, boolean> = { "\nx": true, "\nX": true, "\rx": true, "\rX": true };
const META_NAME_PART: Record<string, boolean> = {};
for (const m of ["m", "M"]) for (const e of ["e", "E"]) for (const t of ["t", "T"]) for (const a of ["a", "A"]) META_NAME_PART[`${m}${e}${t}${a}-`] = true;

/**
 * Whether a message (its raw text, as a peer sent it) may carry a header that reqinit strips: a
 * name starting X-WA- (ours toward the agent) but not X-WA-Meta- (Meta's own, which stay). "No"
 * is exact: every header line starts after a line end, so textops' strip would remove nothing.
 * A false "yes" (a body line starting so) only costs the strip. Only indexOf, substr and a
 * property lookup touch the text: they work on its bytes, so whatever a peer sent is safe here
 * (a string that is no valid UTF-8 throws from charCodeAt, case mapping and regular expressions).
 */
export function mayCarryWaHeadersToStrip(rawMessage: string): boolean {
  // Four scans for the middle, not sixteen for every line start and case: in Duktape each
  // indexOf over a ~1.2 KB message costs ~1.2 µs (16 scans: 20-33 µs per request, 4: ~5).
  for (let i = 0; i < WA_MIDDLES.length; i++) {
    const middle = WA_MIDDLES[i];
    for (let at = rawMessage.indexOf(middle); at >= 0; at = rawMessage.indexOf(middle, at + 1)) {
      // at >= 2: substr counts a negative start from the end.
      if (at >= 2 && LINE_START_X[rawMessage.substr(at - 2, 2)] === true && META_NAME_PART[rawMessage.substr(at + 4, 5)] !== true) return true;
    }
  }
  return false;
}
