/**
 * The dialogs we hold, as the dialog module recorded them: which kind of call each is (so which
 * side its caller and callee are on) and where each side is reached (its Record-Route set and
 * Contact). In-dialog requests are checked against this, never against what they carry.
 * Reading $dlg(…)/$dlg_var(…) before loose_route finds the dialog by Call-ID and tags and
 * changes nothing: a refused BYE leaves the call as it was. Each read is one lookup of the
 * dialog in dialog's hash table, so each is made only when its answer is needed.
 */
import type { CallKind, DialogFacts } from "../policy/trust";
import { isDialogPeer, routeUris, type NextHop } from "../policy/route-set";
import { headerValues, pvRaw, pvString } from "../ksr/pv";

const CALL_KIND_VAR = "$dlg_var(wa_call)";

/**
 * Creates the call's dialog (tracked until BYE or timeout) and records its kind. A call the
 * dialog module ends itself (its timeout, an operator) is freed as dialog's BYE leaves
 * (dialog-events.ts).
 */
export function startDialog(kind: CallKind): void {
  KSR.dialog.dlg_manage();
  KSR.pv.sets(CALL_KIND_VAR, kind);
}

/**
 * The dialog this request names, or null when we hold none. Every dialog of ours has its kind
 * recorded (startDialog), and $dlg_var(…) of a request without a dialog is null (dialog keeps
 * variables set before dlg_manage for that message only, and the routing sets none here): so
 * the kind alone says whether the dialog exists — one lookup instead of is_known_dlg's and
 * then the variable's. Kind and tags are only compared (===), so they are read as they are.
 */
export function dialogOfRequest(): DialogFacts | null {
  const kind = pvRaw(CALL_KIND_VAR);
  if (kind === null) return null;
  return { kind, callerTag: pvRaw("$dlg(from_tag)") ?? "" };
}

/** What the dialog recorded of each leg: the caller's (from) and the callee's (to). */
const RECORDED = {
  from: { contact: "$dlg(from_contact)", routeSet: "$dlg(from_rs)" },
  to: { contact: "$dlg(to_contact)", routeSet: "$dlg(to_rs)" },
};

/**
 * Whether `hop` is where the dialog recorded the side opposite `from` (the side the request is
 * going to): its Contact or a hop of its Record-Route set, as the dialog recorded them from the
 * INVITE and its 2xx. A Request-URI is the other side's Contact (its remote target); a Route
 * is one of its Record-Routes: that one is read first, the other only if it does not match.
 */
export function isRecordedPeer(hop: Extract<NextHop, { ok: true }>, from: "caller" | "callee"): boolean {
  const leg = from === "caller" ? RECORDED.to : RECORDED.from;
  if (hop.isRequestUri) return isDialogPeer(hop.uri, recordedContact(leg.contact)) || isDialogPeer(hop.uri, recordedRouteSet(leg.routeSet));
  return isDialogPeer(hop.uri, recordedRouteSet(leg.routeSet)) || isDialogPeer(hop.uri, recordedContact(leg.contact));
}

function recordedContact(name: string): string[] {
  const uri = pvString(name);
  return uri ? [uri] : [];
}

function recordedRouteSet(name: string): string[] {
  return routeUris([pvString(name)]);
}

/** The request's Route URIs, top first. */
export function requestRoutes(): string[] {
  return routeUris(headerValues("Route"));
}
