/** Real SIP message texts from test/fixtures/sip, with optional header edits for a case. */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { REPO_ROOT } from "../../build/bundle.js";
import type { DialogRecord } from "./ksr-double.js";

export function sipFixture(name: string): string {
  return readFileSync(resolve(REPO_ROOT, "test/fixtures/sip", `${name}.sip`), "utf8");
}

/** Replaces (or with value null removes) a header line in a message text. */
export function withHeader(text: string, name: string, value: string | null): string {
  const re = new RegExp(`^${name}:.*\\r\\n`, "im");
  if (value === null) return text.replace(re, "");
  return re.test(text) ? text.replace(re, `${name}: ${value}\r\n`) : text.replace("\r\n", `\r\n${name}: ${value}\r\n`);
}

/** What the media agent offers: plain RTP on loopback, Opus first. */
export const AGENT_SDP = [
  "v=0", "o=- 4021 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
  "m=audio 40000 RTP/AVP 111 8 0 126", "a=rtpmap:111 opus/48000/2", "a=rtpmap:8 PCMA/8000",
  "a=rtpmap:0 PCMU/8000", "a=rtpmap:126 telephone-event/8000", "a=ptime:20", "a=sendrecv", "",
].join("\r\n");


/**
 * A live user-initiated call as the dialog module holds it (for the KSR double): Meta's user
 * (tag 9c1f6a2e, meta-invite.sip) called, the agent (tag as58f4d2e1, Contact 127.0.0.1:5080)
 * answered; Meta's Record-Routes are the caller's route set.
 */
export const LIVE_USER_CALL: DialogRecord = {
  callId: "outgoing:wacid.HBgLMTU1NTEyMzQ1NjcVAgARGCBBQ0Q5RjE2QzM0",
  fromTag: "9c1f6a2e",
  toTag: "as58f4d2e1",
  fromRs: "<sip:wa.meta.vc;transport=tls;lr>,<sip:onevc-sip-proxy.fbinfra.net:8191;transport=tls;lr>",
  fromContact: "sip:+15551234567@wa.meta.vc;transport=tls;ob",
  toContact: "sip:agent@127.0.0.1:5080",
  vars: { wa_call: "user-initiated" },
};
