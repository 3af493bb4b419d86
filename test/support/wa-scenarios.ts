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

/** Headers shared by the WhatsApp user's requests ([service] = business number). */
function userRequest(method: string, ruri: string, cseq: string, extra: string[]): string {
  return [
    `${method} ${ruri} SIP/2.0`,
    "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport",
    'From: "15551234567" <sip:[caller]@wa.meta.vc>;tag=[pid]SIPpTag00[call_number]',
    "To: <sip:[service]@[biz_domain]>" + (method === "INVITE" ? "" : "[peer_tag_param]"),
    "Call-ID: [call_id]",
    `CSeq: ${cseq}`,
    "Max-Forwards: 70",
    ...extra,
  ].join("\n");
}

const INVITE_URI = "sip:[service]@[biz_domain];transport=tls";

function invite(testSource: string): string {
  return `<send retrans="500"><![CDATA[
${userRequest("INVITE", INVITE_URI, "1 INVITE", [
  "Contact: <sip:[caller]@[local_ip]:[local_port];transport=udp;ob>",
  "Allow: INVITE, ACK, BYE, CANCEL, NOTIFY, OPTIONS",
  `X-Test-Source: ${testSource}`,
  "Content-Type: application/sdp",
  "Content-Length: [len]",
])}

${SDP}
]]></send>
<recv response="100" optional="true"/>
<recv response="180" optional="true"/>
<recv response="183" optional="true"/>`;
}

/**
 * The WhatsApp user calls the business through the Meta edge: INVITE → 200 → ACK → BYE.
 * `testSource` "outsider" makes the edge send it from a non-Meta address.
 */
export function userCallsBusiness(testSource = "meta"): string {
  return xml(
    "WhatsApp user calls the business",
    `${invite(testSource)}
<recv response="200" rtd="true" rrs="true"/>
<send><![CDATA[
${userRequest("ACK", "[next_url]", "1 ACK", ["[routes]", "Content-Length: 0"])}

]]></send>
<pause milliseconds="300"/>
<send retrans="500"><![CDATA[
${userRequest("BYE", "[next_url]", "2 BYE", ["[routes]", "Reason: Q.850;cause=16", "Content-Length: 0"])}

]]></send>
<recv response="200" crlf="true"/>`,
  );
}

/** The WhatsApp user's call is refused with `status`; the user acknowledges the answer. */
export function userCallRefused(status: number, testSource = "meta"): string {
  return xml(
    `WhatsApp user call refused with ${status}`,
    `${invite(testSource)}
<recv response="${status}"/>
<send><![CDATA[
ACK ${INVITE_URI} SIP/2.0
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>`,
  );
}

/** A UAS that answers one INVITE with 200 and SDP, then takes ACK and BYE (the agent, or the WhatsApp user). */
export function answerCall(name: string): string {
  return xml(
    name,
    `<recv request="INVITE" crlf="true"/>
<send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:uas@[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
<send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:uas@[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

${SDP}
]]></send>
<recv request="ACK" rtd="true" crlf="true"/>
<recv request="BYE"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>`,
  );
}

/** Requests of the agent (internal UAC) calling a WhatsApp user ([service] = user number). */
function agentRequest(method: string, ruri: string, cseq: string, extra: string[]): string {
  return [
    `${method} ${ruri} SIP/2.0`,
    "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport",
    "From: <sip:[business]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]",
    "To: <sip:[service]@[remote_ip]:[remote_port]>" + (method === "INVITE" ? "" : "[peer_tag_param]"),
    "Call-ID: [call_id]",
    `CSeq: ${cseq}`,
    "Max-Forwards: 70",
    ...extra,
  ].join("\n");
}

function agentInvite(): string {
  return `<send retrans="500"><![CDATA[
${agentRequest("INVITE", "sip:[service]@[remote_ip]:[remote_port]", "1 INVITE", [
  "Contact: <sip:agent@[local_ip]:[local_port]>",
  "Content-Type: application/sdp",
  "Content-Length: [len]",
])}

${SDP}
]]></send>
<recv response="100" optional="true"/>
<recv response="180" optional="true"/>
<recv response="183" optional="true"/>`;
}

/** The agent places a business-initiated call: INVITE → 200 → ACK → BYE. */
export function businessCallsUser(): string {
  return xml(
    "business calls a WhatsApp user",
    `${agentInvite()}
<recv response="200" rtd="true" rrs="true"/>
<send><![CDATA[
${agentRequest("ACK", "[next_url]", "1 ACK", ["[routes]", "Content-Length: 0"])}

]]></send>
<pause milliseconds="300"/>
<send retrans="500"><![CDATA[
${agentRequest("BYE", "[next_url]", "2 BYE", ["[routes]", "Content-Length: 0"])}

]]></send>
<recv response="200" crlf="true"/>`,
  );
}

/** The agent's business-initiated call ends with `status`. */
export function businessCallRefused(status: number): string {
  return xml(
    `business call refused with ${status}`,
    `${agentInvite()}
<recv response="${status}"/>
<send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>`,
  );
}
