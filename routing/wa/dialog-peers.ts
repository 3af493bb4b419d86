/**
 * The dialogs we hold, as the dialog module recorded them: which kind of call each is (so which
 * side its caller and callee are on) and where each side is reached (its Record-Route set and
 * Contact). In-dialog requests are checked against this, never against what they carry.
 * Reading $dlg(…)/$dlg_var(…) before loose_route finds the dialog by Call-ID and tags and
 * changes nothing: a refused BYE leaves the call as it was.
 */
import type { CallKind, DialogFacts } from "../policy/trust";
import { routeUris } from "../policy/route-set";
import { headerValues, pvString } from "../ksr/pv";

const CALL_KIND_VAR = "$dlg_var(wa_call)";

/** Creates the call's dialog (tracked until BYE or timeout) and records its kind. */
export function startDialog(kind: CallKind): void {
  KSR.dialog.dlg_manage();
  KSR.pv.sets(CALL_KIND_VAR, kind);
}

/** The dialog this request names, or null when we hold none. */
export function dialogOfRequest(): DialogFacts | null {
  if (KSR.dialog.is_known_dlg() < 0) return null;
  return { kind: pvString(CALL_KIND_VAR), callerTag: pvString("$dlg(from_tag)") };
}

/** Where the dialog's other side is reached, as the dialog recorded it from the INVITE and its 2xx. */
export function recordedPeers(from: "caller" | "callee"): string[] {
  const leg = from === "caller" ? "to" : "from";
  const peers = routeUris([pvString(`$dlg(${leg}_rs)`)]);
  const contact = pvString(`$dlg(${leg}_contact)`);
  if (contact) peers.push(contact);
  return peers;
}

/** The request's Route URIs, top first. */
export function requestRoutes(): string[] {
  return routeUris(headerValues("Route"));
}
