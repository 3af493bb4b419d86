/** SIPp scenarios for WhatsApp calls: the WhatsApp user's side and the agent's side. */

/** Meta's Call-IDs look like "outgoing:wacid.…" (SIPp -cid_str). */
export const META_CALL_ID = "outgoing:wacid.%u-%p@%s";

const SDP = `v=0
o=- 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=ptime:20
a=sendrecv`;

const xml = (name: string, body: string) =>
  `<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="${name}">\n${body}\n</scenario>\n`;

/** One side placing calls: its Request-URI, From and To, and what its INVITE adds. */
interface Caller {
  name: string;
  inviteUri: string;
  from: string;
  to: string;
  inviteHeaders: string[];
}

/** The WhatsApp user behind Meta's edge ([service] = business number, [caller] = user). */
const whatsappUser = (testSource: string): Caller => ({
  name: "WhatsApp user calls the business",
  inviteUri: "sip:[service]@[biz_domain];transport=tls",
  from: 'From: "15551234567" <sip:[caller]@wa.meta.vc>;tag=[pid]SIPpTag00[call_number]',
  to: "To: <sip:[service]@[biz_domain]>",
  inviteHeaders: [
    "Contact: <sip:[caller]@[local_ip]:[local_port];transport=udp;ob>",
    "Allow: INVITE, ACK, BYE, CANCEL, NOTIFY, OPTIONS",
    `X-Test-Source: ${testSource}`,
  ],
});

/** The media agent on the internal side ([service] = user number, [business] = our number). */
const agent: Caller = {
  name: "business calls a WhatsApp user",
  inviteUri: "sip:[service]@[remote_ip]:[remote_port]",
  from: "From: <sip:[business]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]",
  to: "To: <sip:[service]@[remote_ip]:[remote_port]>",
  inviteHeaders: ["Contact: <sip:agent@[local_ip]:[local_port]>"],
};

function request(c: Caller, method: string, ruri: string, cseq: string, extra: string[]): string {
  return [
    `${method} ${ruri} SIP/2.0`,
    "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport",
    c.from,
    c.to + (method === "INVITE" && cseq === "1 INVITE" ? "" : "[peer_tag_param]"),
    "Call-ID: [call_id]",
    `CSeq: ${cseq}`,
    "Max-Forwards: 70",
    ...extra,
  ].join("\n");
}

function invite(c: Caller): string {
  return `<send retrans="500"><![CDATA[
${request(c, "INVITE", c.inviteUri, "1 INVITE", [...c.inviteHeaders, "Content-Type: application/sdp", "Content-Length: [len]"])}

${SDP}
]]></send>
<recv response="100" optional="true"/>
<recv response="180" optional="true"/>
<recv response="183" optional="true"/>`;
}

/**
 * INVITE → 200 → ACK → (holdMs) → BYE, in-dialog requests along the recorded route set.
 * `refusedReinvite`: after the ACK, a re-INVITE with a new offer that must be answered 488 (and
 * is acknowledged); the call then goes on to its BYE.
 */
function fullCall(c: Caller, holdMs = 300, refusedReinvite = false): string {
  const reinvite = `<send retrans="500"><![CDATA[
${request(c, "INVITE", "[next_url]", "2 INVITE", ["[routes]", ...c.inviteHeaders, "Content-Type: application/sdp", "Content-Length: [len]"])}

${SDP}
]]></send>
<recv response="100" optional="true"/>
<recv response="488"/>
<send><![CDATA[
${request(c, "ACK", "[next_url]", "2 ACK", ["[routes]", "Content-Length: 0"]).replace(/^Via: .*$/m, "[last_Via:]")}

]]></send>`;
  return xml(
    c.name,
    `${invite(c)}
<recv response="200" rtd="true" rrs="true"/>
<send><![CDATA[
${request(c, "ACK", "[next_url]", "1 ACK", ["[routes]", "Content-Length: 0"])}

]]></send>
${refusedReinvite ? reinvite : ""}
<pause milliseconds="${holdMs}"/>
<send retrans="500"><![CDATA[
${request(c, "BYE", "[next_url]", `${refusedReinvite ? 3 : 2} BYE`, ["[routes]", "Reason: Q.850;cause=16", "Content-Length: 0"])}

]]></send>
<recv response="200" crlf="true"/>`,
  );
}

/**
 * The agent places a call that may race another for the same user: 486 (busy: the other won) is
 * acknowledged and ends the scenario; 200 is the full call, held `holdMs`.
 */
export function businessCallRacing(holdMs: number): string {
  return xml(
    "business calls a WhatsApp user, racing another call",
    `${invite(agent)}
<recv response="486" optional="true" next="busy"/>
<recv response="200" rtd="true" rrs="true"/>
<send><![CDATA[
${request(agent, "ACK", "[next_url]", "1 ACK", ["[routes]", "Content-Length: 0"])}

]]></send>
<pause milliseconds="${holdMs}"/>
<send retrans="500"><![CDATA[
${request(agent, "BYE", "[next_url]", "2 BYE", ["[routes]", "Reason: Q.850;cause=16", "Content-Length: 0"])}

]]></send>
<recv response="200" crlf="true" next="done"/>
<label id="busy"/>
${ackFailure(agent)}
<label id="done"/>`,
  );
}

/** The other side ends the call: its BYE in, our 200 out. */
const BYE_ANSWERED = `<recv request="BYE"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>`;

/** INVITE → 200 → ACK, then the other side ends the call: BYE in, 200 out. */
function callEndedByCallee(c: Caller): string {
  return xml(
    `${c.name}: the callee hangs up`,
    `${invite(c)}
<recv response="200" rtd="true" rrs="true"/>
<send><![CDATA[
${request(c, "ACK", "[next_url]", "1 ACK", ["[routes]", "Content-Length: 0"])}

]]></send>
${BYE_ANSWERED}`,
  );
}

/** The hop-by-hop ACK of a failure answer to the INVITE. */
function ackFailure(c: Caller): string {
  return `<send><![CDATA[
ACK ${c.inviteUri} SIP/2.0
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>`;
}

/** The call is refused with `status`; the caller acknowledges the answer (hop-by-hop ACK). */
function refusedCall(c: Caller, status: number): string {
  return xml(
    `${c.name}: refused with ${status}`,
    `${invite(c)}
<recv response="${status}"/>
${ackFailure(c)}`,
  );
}

/**
 * The WhatsApp user calls the business through the Meta edge: INVITE → 200 → ACK → BYE.
 * `testSource` "outsider" makes the edge send it from a non-Meta address.
 */
export const userCallsBusiness = (testSource = "meta", holdMs?: number) => fullCall(whatsappUser(testSource), holdMs);
/** The WhatsApp user calls the business and the business (the agent) hangs up. */
export const userCallEndedByBusiness = () => callEndedByCallee(whatsappUser("meta"));
/** The same call with a re-INVITE from Meta in the middle, which must be answered 488. */
export const userCallWithRefusedReinvite = () => fullCall(whatsappUser("meta"), 300, true);
export const userCallRefused = (status: number, testSource = "meta") => refusedCall(whatsappUser(testSource), status);
/** The agent places a business-initiated call: INVITE → 200 → ACK → (holdMs) → BYE. */
export const businessCallsUser = (holdMs?: number) => fullCall(agent, holdMs);
export const businessCallRefused = (status: number) => refusedCall(agent, status);
/** The agent places a business-initiated call and holds it until a BYE comes (the user's, or Kamailio's at WA_MAX_CALL_SECONDS). */
export const businessCallHeldUntilBye = () => callEndedByCallee(agent);

/** Headers of the UAS's dialog-forming responses (same To-tag, route set and Contact). */
const UAS_DIALOG_HEADERS = `[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:uas@[local_ip]:[local_port];transport=[transport]>`;

/** A UAS that answers one INVITE with 200 and SDP, then takes ACK and BYE (the agent, or the WhatsApp user). */
export function answerCall(name: string): string {
  return xml(
    name,
    `<recv request="INVITE" crlf="true"/>
<send><![CDATA[
SIP/2.0 180 Ringing
${UAS_DIALOG_HEADERS}
Content-Length: 0

]]></send>
<send retrans="500"><![CDATA[
SIP/2.0 200 OK
${UAS_DIALOG_HEADERS}
Content-Type: application/sdp
Content-Length: [len]

${SDP}
]]></send>
<recv request="ACK" rtd="true" crlf="true"/>
${BYE_ANSWERED}`,
  );
}
