/**
 * Puts routing functions on the global object under the names Kamailio calls
 * (ksr_request_route, ksr_reply_route, and names given to t_on_failure/t_on_branch/…).
 *
 * Each callback runs guarded: an exception is logged with a readable stack and, for
 * request-side routes, the request still gets a 500 — never silence. endRoute(), like
 * KSR.x.exit(), ends a route by throwing EXIT_SENTINEL, which must pass through.
 */
import { describeError } from "./errors";
import { answerOnce, wasAnswered } from "../sip/reply";
import { EXIT_SENTINEL } from "./route-end";

/** Event callbacks (dialog, xhttp) get the event name. */
type Route = (event?: string) => void;
const globalScope = globalThis as unknown as Record<string, unknown>;

/** Request route, failure route, branch failure route: may still answer the request. */
export function exportRequestRoute(name: string, route: Route): string {
  globalScope[name] = guarded(name, route, answerAfterError);
  return name;
}

/** Reply and branch routes: nothing can be answered there; the error is logged. */
export function exportReplyRoute(name: string, route: Route): string {
  globalScope[name] = guarded(name, route, nothingToAnswer);
  return name;
}

/**
 * The callback as Kamailio calls it. Built once per name: Duktape allocates every function
 * object it evaluates (with its prototype), about 1.5 µs each, so nothing here is created per call.
 */
function guarded(name: string, route: Route, afterError: () => void): Route {
  return function (event?: string) {
    try {
      route(event);
    } catch (err) {
      if (err === EXIT_SENTINEL) throw err;
      KSR.err(describeError(name, err));
      afterError();
    }
  };
}

function nothingToAnswer(): void {}

function answerAfterError(): void {
  if (KSR.is_ACK() || wasAnswered()) return;
  answerOnce(500, "Server Internal Error");
}
