/** ksr_reply_route: only the sources we send requests to may answer them (KSR double, real reply text). */
import t from "tap";
import { replyRoute } from "../../routing/reply-route.js";
import { createKsrDouble, runRoute, type Transport } from "../support/ksr-double.js";

const OK = [
  "SIP/2.0 200 OK",
  "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcd5b.8e0f0b8bc7a5b1e4f5c9c0d36a5b1a2e.0",
  "Via: SIP/2.0/TLS 157.240.19.130:5061;received=157.240.19.130;branch=z9hG4bK-524287-1---8a4e3c2b1f0d9e7a;rport=5061",
  "From: \"15551234567\" <sip:+15551234567@wa.meta.vc>;tag=9c1f6a2e",
  "To: <sip:+15550001111@sip.example.com>;tag=as58f4d2e1",
  "Call-ID: outgoing:wacid.HBgLMTU1NTEyMzQ1NjcVAgARGCBBQ0Q5RjE2QzM0",
  "CSeq: 1 INVITE",
  "Contact: <sip:agent@127.0.0.1:5080>",
  "Content-Length: 0",
  "",
  "",
].join("\r\n");

function reply(transport: Partial<Transport>) {
  const d = createKsrDouble({ message: OK, transport, answers: { "sanity.sanity_reply": () => 1 } });
  runRoute(d, replyRoute);
  return d;
}

t.test("the agent's and Meta's replies go on to tm", async (t) => {
  t.equal(reply({ proto: "udp", srcIp: "127.0.0.1", srcPort: 5080 }).ended, null, "the agent (internal side)");
  t.equal(reply({ proto: "tls", srcIp: "157.240.19.130", srcPort: 5061 }).ended, null, "Meta's edge");
});

t.test("a reply from anyone else is dropped before tm can match it, with a log line", async (t) => {
  const outsider = reply({ proto: "tls", srcIp: "198.51.100.66", srcPort: 40000 });
  t.equal(outsider.ended, "drop", "an outsider's forged 200 on the TLS listener");
  t.match(outsider.logs.map((l) => l.text).join(""), /dropped reply 200 OK from tls:198\.51\.100\.66:40000: a TLS peer outside WA_META_PREFIXES answers no request of ours/);
  t.equal(reply({ proto: "udp", srcIp: "10.9.9.9", srcPort: 5060 }).ended, "drop", "a stranger on the internal listener");
  t.equal(reply({ proto: "tcp", srcIp: "127.0.0.1", srcPort: 41000 }).ended, "drop", "the API's TCP port");
});
