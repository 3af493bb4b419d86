/**
 * The routing benchmark's native twin (bench/native/kamailio-twin.cfg) must take the same
 * decisions as the project's bundle, or comparing their cost means nothing: the same requests,
 * sent to each over the same listeners from the same addresses, get the same status and reason
 * phrase (or the same silence). 127.0.0.2 is Meta's edge (WA_META_PREFIXES), 127.0.0.3 an
 * outsider on the TLS listener, 127.0.0.5 a stranger on the internal listener.
 */
import t from "tap";
import {
  agentSdp, BUSINESS, hdr, META_IP, metaSdp, newId, OTHER_BUSINESS, OUTSIDER_IP, permittedUser, request, startStand, tlsClient, udpClient,
  type Msg, type SipClient, type Stand,
} from "../../bench/native/stand.js";
import { tempDir } from "../support/temp-dir.js";
import type { Teardown } from "../../build/teardown.js";

const STRANGER_IP = "127.0.0.5";

interface Case {
  name: string;
  /** Which client sends it. */
  from: "internal" | "meta" | "outsider" | "stranger";
  method: string;
  /** Request-URI user (business or user number); the host is ours. */
  user?: string;
  fromUser?: string;
  headers?: Array<[string, string]>;
  /** Headers to leave out (by name). */
  without?: string[];
  body?: "sdp" | "none";
  toTag?: boolean;
  /** CSeq method if not the request's (a malformed request). */
  cseqMethod?: string;
  /** What both must answer: "status reason", or null for no answer. */
  expect: string | null;
}

const FB: [string, string] = ["X-FB-External-Domain", "wa.meta.vc"];

const CASES: Case[] = [
  { name: "OPTIONS from an internal source", from: "internal", method: "OPTIONS", expect: "200 OK" },
  { name: "OPTIONS from Meta over TLS", from: "meta", method: "OPTIONS", expect: "200 OK" },
  { name: "OPTIONS from an outsider over TLS", from: "outsider", method: "OPTIONS", expect: "200 OK" },
  { name: "REGISTER", from: "internal", method: "REGISTER", expect: "405 Method Not Allowed - No Registrar Here" },
  { name: "an unknown method", from: "internal", method: "PUBLISH", expect: "405 Method Not Allowed" },
  { name: "REGISTER from Meta", from: "meta", method: "REGISTER", expect: "405 Method Not Allowed - No Registrar Here" },
  { name: "malformed: CSeq method differs", from: "internal", method: "OPTIONS", cseqMethod: "INVITE", expect: "400 CSeq method does not match request method" },
  { name: "Max-Forwards 0", from: "internal", method: "OPTIONS", headers: [["Max-Forwards", "0"]], without: ["Max-Forwards"], expect: "483 Too Many Hops" },
  { name: "BYE outside a dialog", from: "internal", method: "BYE", expect: "481 Call/Transaction Does Not Exist" },
  { name: "BYE for a dialog we do not hold", from: "meta", method: "BYE", toTag: true, expect: "481 Call/Transaction Does Not Exist" },
  { name: "CANCEL of no transaction", from: "internal", method: "CANCEL", expect: "481 Call/Transaction Does Not Exist" },
  { name: "a stranger on the internal listener", from: "stranger", method: "OPTIONS", expect: "403 Forbidden - Not An Internal Source" },
  { name: "a stranger's INVITE", from: "stranger", method: "INVITE", user: permittedUser(0), fromUser: BUSINESS, body: "sdp", expect: "403 Forbidden - Not An Internal Source" },
  { name: "a scanner's OPTIONS (dropped)", from: "outsider", method: "OPTIONS", headers: [["User-Agent", "friendly-scanner"]], without: ["User-Agent"], expect: null },
  { name: "Meta's INVITE", from: "meta", method: "INVITE", user: BUSINESS, headers: [FB], body: "sdp", expect: "200 OK" },
  { name: "Meta's INVITE with ;tgrp user params", from: "meta", method: "INVITE", user: `${BUSINESS};tgrp=wacall`, headers: [FB], body: "sdp", expect: "200 OK" },
  { name: "Meta's INVITE without X-FB-External-Domain", from: "meta", method: "INVITE", user: BUSINESS, body: "sdp", expect: "403 Bad X-FB-External-Domain" },
  { name: "Meta's INVITE with X-FB-External-Domain twice", from: "meta", method: "INVITE", user: BUSINESS, headers: [FB, FB], body: "sdp", expect: "403 Bad X-FB-External-Domain" },
  { name: "Meta's INVITE with another X-FB-External-Domain", from: "meta", method: "INVITE", user: BUSINESS, headers: [["X-FB-External-Domain", "evil.example"]], body: "sdp", expect: "403 Bad X-FB-External-Domain" },
  { name: "a forged Meta INVITE from an outsider", from: "outsider", method: "INVITE", user: BUSINESS, headers: [FB], body: "sdp", expect: "403 Not From Meta Edge" },
  { name: "Meta's INVITE to an unknown number", from: "meta", method: "INVITE", user: "+15559999999", headers: [FB], body: "sdp", expect: "404 Not Found - Unknown Business Number" },
  { name: "Meta's INVITE without SDP", from: "meta", method: "INVITE", user: BUSINESS, headers: [FB], body: "none", expect: "488 Not Acceptable Here - SDP Offer Required" },
  { name: "an internal INVITE claiming Meta", from: "internal", method: "INVITE", user: permittedUser(0), fromUser: BUSINESS, headers: [FB], body: "sdp", expect: "403 Meta Traffic Must Use TLS" },
  { name: "an internal INVITE from an unknown business", from: "internal", method: "INVITE", user: permittedUser(0), fromUser: "+15558888888", body: "sdp", expect: "403 Forbidden - Unknown Business Number" },
  { name: "an internal INVITE from a number without password", from: "internal", method: "INVITE", user: permittedUser(0), fromUser: OTHER_BUSINESS, body: "sdp", expect: "503 Service Unavailable - No SIP Password" },
  { name: "an internal INVITE to a non-E.164 user", from: "internal", method: "INVITE", user: "15551234567", fromUser: BUSINESS, body: "sdp", expect: "484 Address Incomplete - E.164 With + Or BSUID Expected" },
  { name: "a business call without permission", from: "internal", method: "INVITE", user: permittedUser(7), fromUser: BUSINESS, body: "sdp", expect: "403 No Call Permission" },
  { name: "a business call to a BSUID without permission", from: "internal", method: "INVITE", user: "US.13491208655302741918", fromUser: BUSINESS, body: "sdp", expect: "403 No Call Permission" },
  { name: "a business call with permission", from: "internal", method: "INVITE", user: permittedUser(0), fromUser: BUSINESS, body: "sdp", expect: "200 OK" },
];

function write(c: Case, client: SipClient, stand: Stand, callId: string): string {
  const target = client.transport === "TLS" ? `${stand.tls.host}:${stand.tls.port};transport=tls` : `${stand.internal.host}:${stand.internal.port}`;
  const uri = c.user ? `sip:${c.user}@${target}` : `sip:sip.example.com`;
  const fromUser = c.fromUser ?? (c.from === "meta" ? "+15551234567" : "probe");
  const fromHost = c.from === "meta" ? "wa.meta.vc" : client.local.host;
  const headers: Array<[string, string]> = [
    ["Via", `SIP/2.0/${client.transport} ${client.local.host}:${client.local.port};branch=z9hG4bK-${newId()};rport`],
    ["Max-Forwards", "70"],
    ["From", `<sip:${fromUser}@${fromHost}>;tag=${newId()}`],
    ["To", `<sip:${c.user ?? "sip.example.com"}@sip.example.com>${c.toTag ? `;tag=${newId()}` : ""}`],
    ["Call-ID", callId],
    ["CSeq", `1 ${c.cseqMethod ?? c.method}`],
    ["Contact", `<sip:caller@${client.local.host}:${client.local.port}${client.transport === "TLS" ? ";transport=tls" : ""}>`],
    ["User-Agent", "twin-test"],
  ].filter(([n]) => !(c.without ?? []).includes(n)) as Array<[string, string]>;
  headers.push(...(c.headers ?? []));
  const sdp = c.body === "sdp" ? (c.from === "internal" || c.from === "stranger" ? agentSdp(client.local.host, 44000) : metaSdp(client.local.host, 44000)) : "";
  if (sdp) headers.push(["Content-Type", "application/sdp"]);
  return request(c.method, uri, headers, sdp);
}

/** Each case's final answer from one variant: "status reason", or null when none came. */
async function answers(t: Teardown, variant: "bundle" | "native"): Promise<Array<string | null>> {
  const stand = await startStand(t, variant, tempDir(t, `routing-twin-${variant}-`), { permittedUsers: 1 });
  const clients: Record<Case["from"], SipClient> = {
    internal: await udpClient("127.0.0.1", stand.internal),
    stranger: await udpClient(STRANGER_IP, stand.internal),
    meta: await tlsClient(META_IP, stand.tls),
    outsider: await tlsClient(OUTSIDER_IP, stand.tls),
  };
  const finals = new Map<string, Msg>();
  for (const c of Object.values(clients)) {
    c.onMessage = (m) => {
      if (m.status >= 200 && !finals.has(hdr(m, "call-id"))) finals.set(hdr(m, "call-id"), m);
    };
    t.teardown(() => c.close());
  }
  const out: Array<string | null> = [];
  for (const c of CASES) {
    const callId = `twin-${newId()}`;
    clients[c.from].send(write(c, clients[c.from], stand, callId));
    const deadline = Date.now() + (c.expect === null ? 700 : 3000);
    while (!finals.has(callId) && Date.now() < deadline) await new Promise((done) => setTimeout(done, 10));
    const m = finals.get(callId);
    out.push(m ? `${m.status} ${m.reason}` : null);
  }
  return out;
}

t.test("the native twin answers every request as the bundle does", async (t) => {
  const bundle = await answers(t, "bundle");
  const native = await answers(t, "native");
  CASES.forEach((c, i) => {
    t.equal(bundle[i], c.expect, `bundle: ${c.name}`);
    t.equal(native[i], bundle[i], `twin = bundle: ${c.name}`);
  });
});
