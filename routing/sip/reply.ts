/** Answering requests: every refusal carries a reason phrase and a log line naming why. */
import { pvString } from "../ksr/pv";
import { countRefusal } from "../wa/metrics";
import { dropMessage, endRoute } from "../runtime/route-end";

/** Message flag set once this request has been answered (flags live with the message). */
const FLAG_ANSWERED = 30;

export function wasAnswered(): boolean {
  return KSR.isflagset(FLAG_ANSWERED);
}

/** Sends the reply statefully if a transaction exists, else statelessly. */
export function answerOnce(code: number, reason: string): void {
  KSR.setflag(FLAG_ANSWERED);
  KSR.sl.send_reply(code, reason);
}

/** Answers, logs the cause with the peer's address, and ends the script. */
export function refuse(code: number, reason: string, cause: string, headers?: string[]): never {
  KSR.notice(
    `refused ${pvString("$rm")} ${pvString("$ru")} from ${pvString("$proto")}:${pvString("$si")}:${pvString("$sp")}` +
      ` with ${code} ${reason}: ${cause}\n`,
  );
  if (headers) for (const h of headers) KSR.hdr.append_to_reply(`${h}\r\n`);
  countRefusal(pvString("$rm"), code, reason);
  answerOnce(code, reason);
  return endRoute();
}

/** Drops the request without an answer (floods, stray ACKs), logging why. */
export function dropSilently(cause: string): never {
  KSR.info(`dropped ${pvString("$rm")} from ${pvString("$si")}:${pvString("$sp")}: ${cause}\n`);
  return dropMessage();
}
