/** ksr_reply_route: every SIP reply enters here before tm matches it to a transaction. */
import { pvString } from "./ksr/pv";

export function replyRoute(): void {
  if (KSR.sanity.sanity_reply() < 0) {
    KSR.notice(`malformed reply ${pvString("$rs")} from ${pvString("$si")}:${pvString("$sp")} dropped\n`);
    KSR.x.drop();
  }
}
