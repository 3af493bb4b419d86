import t from "tap";
import { parseNameAddr, parseSipMessage, parseUri } from "../../media-agent/src/sip/message.js";
import { sipFixture } from "../support/fixtures.js";

t.test("real messages parse", async (t) => {
  const invite = parseSipMessage(sipFixture("meta-invite"));
  t.equal(invite.method, "INVITE");
  t.equal(invite.headers.filter((h) => h.name === "Record-Route").length, 2);
  t.match(invite.body, /^v=0\r\n/);
  const reply = parseSipMessage("SIP/2.0 407 Proxy Authentication Required\r\nv: SIP/2.0/TLS a\r\nf: <sip:a@b>;tag=1\r\nt: <sip:c@d>;tag=2\r\ni: x\r\nCSeq: 1 INVITE\r\n\r\n");
  t.equal(reply.status, 407);
  t.equal(reply.headers[0].name, "Via", "compact header names expand");
});

t.test("malformed messages are rejected with the reason", async (t) => {
  const cases: Array<[string, RegExp]> = [
    ["INVITE sip:a@b SIP/2.0\r\nVia: x\r\n", /no empty line/],
    ["INVITE sip:a@b\r\n\r\n", /bad start line/],
    ["SIP/2.0 99 Weird\r\n\r\n", /bad start line/],
    ["OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\nbad header\r\n\r\n", /bad header line/],
    ["OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\nFrom: <sip:a@b>\r\nTo: <sip:a@b>\r\nCSeq: 1 OPTIONS\r\n\r\n", /missing Call-ID/],
  ];
  for (const [text, reason] of cases) t.throws(() => parseSipMessage(text), reason);
  t.throws(() => parseUri("http://x"), /bad URI/);
});

t.test("URIs and name-addrs", async (t) => {
  t.same(parseUri("sip:+15550001111;tgrp=wacall@sip.example.com:5061;transport=tls"), {
    scheme: "sip", user: "+15550001111;tgrp=wacall", host: "sip.example.com", port: "5061", params: { transport: "tls" },
  });
  t.same(parseNameAddr('"15551234567" <sip:+15551234567@wa.meta.vc>;tag=9c1f6a2e'), {
    display: "15551234567", uri: "sip:+15551234567@wa.meta.vc", params: { tag: "9c1f6a2e" },
  });
});
