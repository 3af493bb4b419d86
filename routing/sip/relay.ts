/** Stateful forwarding; tm answers itself when the next hop cannot be reached. */
export function relay(): never {
  if (KSR.tm.t_relay() < 0) KSR.sl.sl_reply_error();
  return KSR.x.exit();
}
