import { endRoute } from "../runtime/route-end";

/**
 * Stateful forwarding; tm answers itself when the next hop cannot be reached. A request that
 * cannot be forwarded at all gets the error answer, after `undo` has taken back what the route
 * recorded for it (no failure route runs then).
 */
export function relay(undo?: () => void): never {
  if (KSR.tm.t_relay() < 0) {
    if (undo) undo();
    KSR.sl.sl_reply_error();
  }
  return endRoute();
}
