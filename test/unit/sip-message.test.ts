import t from "tap";
import {
  buildResponse, formatNameAddr, header, headerValues, parseCSeq, parseNameAddr, parseSipDatagram, parseSipMessage, parseUri,
  parseVia, serializeSipMessage, SipParseError, type SipMessage,
} from "../../media-agent/src/sip/message.js";
import { sipFixture, withHeader } from "../support/fixtures.js";

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

const datagram = (name: string) => parseSipDatagram(Buffer.from(sipFixture(name), "utf8"));

t.test("every fixture parses strictly as a datagram, with its body framed by Content-Length", async (t) => {
  for (const name of ["meta-invite", "meta-bye", "meta-options", "baresip-register", "baresip-invite", "sipp-invite", "kamailio-invite"]) {
    const msg = datagram(name);
    t.equal(msg.kind, "request", name);
    t.equal(Buffer.byteLength(msg.body), Number(header(msg, "Content-Length")), `${name}: body is Content-Length bytes`);
    t.equal(parseCSeq(header(msg, "CSeq")!).method, msg.method, `${name}: CSeq method`);
  }
});

t.test("a baresip INVITE", async (t) => {
  const invite = datagram("baresip-invite");
  t.same(parseCSeq(header(invite, "CSeq")!), { seq: 26518, method: "INVITE" });
  t.same(parseVia(header(invite, "Via")!), {
    transport: "UDP", host: "192.0.2.10", port: 5060, params: { branch: "z9hG4bK3c7a1e9f20b4d6a8", rport: "" },
  });
  t.same(parseUri(parseNameAddr(header(invite, "Contact")!).uri).params, { transport: "udp" });
  t.same(headerValues(invite, "Allow"), ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "PRACK", "MESSAGE", "SUBSCRIBE", "NOTIFY", "INFO", "REFER", "UPDATE"]);
  t.match(header(invite, "User-Agent"), /^baresip v1\.0\.0 /);
  t.match(invite.body, /^v=0\r\n[^]*a=crypto:1 AES_CM_128_HMAC_SHA1_80 [^]*a=ptime:20\r\n$/);
});

t.test("a SIPp INVITE: padded Content-Length, token display names, a bare Contact", async (t) => {
  const invite = datagram("sipp-invite");
  t.equal(header(invite, "Content-Length"), "129");
  t.same(parseNameAddr(header(invite, "From")!), { display: "sipp", uri: "sip:sipp@127.0.0.1:5061", params: { tag: "28451SIPpTag001" } });
  t.equal(parseNameAddr(header(invite, "Contact")!).uri, "sip:sipp@127.0.0.1:5061");
  t.equal(parseVia(header(invite, "Via")!).params.branch, "z9hG4bK-28451-1-0");
});

t.test("a Kamailio-relayed INVITE: two Vias, two Record-Routes, the profile header", async (t) => {
  const invite = datagram("kamailio-invite");
  const vias = headerValues(invite, "Via").map(parseVia);
  t.same(vias.map((v) => [v.transport, v.host, v.port]), [["UDP", "127.0.0.1", 5060], ["TLS", "157.240.19.130", 5061]]);
  t.same(vias[1].params, { received: "157.240.19.130", branch: "z9hG4bK-524287-1---8a4e3c2b1f0d9e7a", rport: "5061" });
  t.same(headerValues(invite, "Record-Route"), ["<sip:127.0.0.1:5060;lr;r2=on>", "<sip:203.0.113.5:5061;transport=tls;lr;r2=on>"]);
  t.equal(header(invite, "x-wa-profile"), "echo", "header names are case-insensitive");
  t.equal(parseUri(invite.uri).params.transport, "udp");
});

t.test("Content-Length frames the body in bytes", async (t) => {
  const head = "MESSAGE sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\n";
  const text = "Olá, café ☕";
  const exact = parseSipDatagram(Buffer.from(`${head}Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`));
  t.equal(exact.body, text, "multi-byte characters counted as bytes");
  const padded = parseSipDatagram(Buffer.from(`${head}Content-Length: 4\r\n\r\nOlá and some trailing junk`));
  t.equal(padded.body, "Olá", "a longer body is cut to Content-Length (RFC 3261 §18.3)");
  const unframed = parseSipDatagram(Buffer.from(`${head}\r\nwhole rest`));
  t.equal(unframed.body, "whole rest", "without Content-Length the body is the rest of the datagram");
  const lfBody = parseSipDatagram(Buffer.from(`${head}Content-Length: 8\r\n\r\nv=0\ns=-\n`));
  t.equal(lfBody.body, "v=0\ns=-\n", "an LF-only body is kept as sent");
});

t.test("malformed datagrams throw SipParseError naming the problem on one short line", async (t) => {
  const good = sipFixture("meta-options");
  const garbage = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 151 + 7) % 256));
  const cases: Array<[string, string | Buffer, RegExp]> = [
    ["empty", "", /no empty line/],
    ["binary garbage", garbage, /^no empty line/],
    ["binary garbage before an empty line", Buffer.concat([garbage, Buffer.from("\r\n\r\n")]), /^control character in /],
    ["missing CRLFCRLF", good.replace(/\r\n\r\n$/, "\r\n"), /no empty line/],
    ["bad start line", good.replace(/^OPTIONS (\S+) SIP\/2\.0/, "OPTIONS $1 HTTP/1.1"), /^bad start line 'OPTIONS/],
    ["header without colon", good.replace("Max-Forwards: 70", "Max-Forwards 70"), /^bad header line 'Max-Forwards 70'$/],
    ["CSeq method mismatch", withHeader(good, "CSeq", "1 INVITE"), /^CSeq method INVITE is not OPTIONS$/],
    ["CSeq non-numeric", withHeader(good, "CSeq", "one OPTIONS"), /^bad CSeq 'one OPTIONS'$/],
    ["CSeq 2^31", withHeader(good, "CSeq", "2147483648 OPTIONS"), /^bad CSeq/],
    ["CSeq without method", withHeader(good, "CSeq", "1"), /^bad CSeq '1'$/],
    ["Content-Length larger than body", withHeader(good, "Content-Length", "10"), /^Content-Length 10 but 0 body bytes$/],
    ["Content-Length non-numeric", withHeader(good, "Content-Length", "ten"), /^bad Content-Length 'ten'$/],
    ["Max-Forwards non-numeric", withHeader(good, "Max-Forwards", "lots"), /^bad Max-Forwards 'lots'$/],
    ["missing Call-ID", withHeader(good, "Call-ID", null), /^missing Call-ID$/],
    ["bad request URI", good.replace(/^OPTIONS \S+/, "OPTIONS http://sip.example.com"), /^bad Request-URI 'http:\/\/sip\.example\.com'$/],
    ["Via without branch", withHeader(good, "Via", "SIP/2.0/TLS 157.240.19.130:5061;rport"), /^Via without branch$/],
    ["Via not SIP/2.0", withHeader(good, "Via", "SIP/3.0/UDP x;branch=z9hG4bK1"), /^bad Via/],
    ["10 KB header line of garbage", good.replace("Max-Forwards: 70", "#".repeat(10 * 1024)), /^bad header line '#{40}\.\.\.'$/],
    ["NUL bytes", good.replace("Max-Forwards: 70", "Max-Forwards: 7\0"), /^control character in 'Max-Forwards: 7\\u\{0\}'$/],
  ];
  for (const [name, input, reason] of cases) {
    const buf = typeof input === "string" ? Buffer.from(input) : input;
    let thrown: unknown;
    try {
      parseSipDatagram(buf);
    } catch (err) {
      thrown = err;
    }
    t.type(thrown, SipParseError, name);
    const message = (thrown as Error | undefined)?.message ?? "";
    t.match(message, reason, name);
    t.ok(message.length < 100 && !/[\r\n]/.test(message), `${name}: short single-line reason`);
  }
});

t.test("parseSipMessage leaves CSeq and Max-Forwards to its caller (the KSR double models sanity_check)", async (t) => {
  const msg = parseSipMessage(withHeader(withHeader(sipFixture("meta-options"), "CSeq", "1 INVITE"), "Max-Forwards", "lots"));
  t.equal(parseCSeq(header(msg, "CSeq")!).method, "INVITE");
  t.equal(header(msg, "Max-Forwards"), "lots");
});

t.test("serialize: CRLF, header order kept, Content-Length recomputed", async (t) => {
  const invite = datagram("kamailio-invite");
  t.equal(serializeSipMessage(invite), sipFixture("kamailio-invite"), "a parsed fixture serializes back byte for byte");
  const edited = serializeSipMessage({ ...invite, body: "é" });
  t.match(edited, /\r\nContent-Length: 2\r\n\r\né$/);
  t.equal(edited.split("\r\n").findIndex((l) => l.startsWith("Content-Length")), invite.headers.findIndex((h) => h.name === "Content-Length") + 1);
  const bare = serializeSipMessage({ kind: "request", method: "BYE", uri: "sip:a@b", status: 0, reason: "", headers: [{ name: "Call-ID", value: "x" }], body: "" });
  t.equal(bare, "BYE sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n", "Content-Length added when missing");
});

t.test("buildResponse copies what RFC 3261 §8.2.6 says", async (t) => {
  const invite = datagram("kamailio-invite");
  const ok = buildResponse(invite, 200, "OK", {
    toTag: "as1", headers: [{ name: "Contact", value: "<sip:agent@127.0.0.1:5070>" }], body: "v=0\r\n", contentType: "application/sdp",
  });
  t.same(ok.headers.map((h) => h.name), ["Via", "Via", "Record-Route", "Record-Route", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Type"]);
  t.same(headerValues(ok, "Via"), headerValues(invite, "Via"), "Vias in order");
  t.equal(header(ok, "To"), "<sip:+15550001111@sip.example.com>;tag=as1");
  t.equal(header(ok, "CSeq"), "1 INVITE");
  const wire = parseSipDatagram(Buffer.from(serializeSipMessage(ok)));
  t.same([wire.kind, wire.status, wire.reason, wire.body], ["response", 200, "OK", "v=0\r\n"]);
  t.equal(header(wire, "Content-Length"), "5");

  t.notOk(header(buildResponse(invite, 100, "Trying"), "Record-Route"), "no Record-Route on 100");
  t.equal(header(buildResponse(invite, 100, "Trying"), "To"), "<sip:+15550001111@sip.example.com>", "no tag without toTag");
  t.ok(header(buildResponse(invite, 180, "Ringing", { toTag: "as1" }), "Record-Route"), "Record-Route on 180");
  t.notOk(header(buildResponse(invite, 486, "Busy Here", { toTag: "as1" }), "Record-Route"), "none on a failure");
  const bye = datagram("meta-bye");
  t.equal(header(buildResponse(bye, 200, "OK", { toTag: "other" }), "To"), header(bye, "To"), "an existing To tag is kept");
  t.notOk(header(buildResponse(withRecordRoute(bye), 200, "OK"), "Record-Route"), "no Record-Route outside INVITE");
});

t.test("formatNameAddr", async (t) => {
  t.equal(formatNameAddr({ display: "", uri: "sip:a@b;transport=udp", params: {} }), "<sip:a@b;transport=udp>");
  t.equal(formatNameAddr({ display: "15551234567", uri: "sip:+15551234567@wa.meta.vc", params: { tag: "9c1f6a2e", isfocus: "" } }),
    '"15551234567" <sip:+15551234567@wa.meta.vc>;tag=9c1f6a2e;isfocus');
  t.equal(formatNameAddr({ display: 'Say "hi"', uri: "sip:a@b", params: {} }), '"Say \\"hi\\"" <sip:a@b>');
  const quoted = '"A \\"B\\"" <sip:a@b>;tag=1';
  t.equal(formatNameAddr(parseNameAddr(quoted)), quoted, "parse and format round trip");
});

function withRecordRoute(msg: SipMessage): SipMessage {
  return { ...msg, headers: [...msg.headers, { name: "Record-Route", value: "<sip:127.0.0.1;lr>" }] };
}
