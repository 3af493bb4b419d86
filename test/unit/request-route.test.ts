import t from "tap";
import { requestRoute } from "../../routing/request-route.js";
import { createKsrDouble, runRoute, type DoubleOptions } from "../support/ksr-double.js";
import { sipFixture, withHeader } from "../support/fixtures.js";

const META = { proto: "tls", srcIp: "157.240.19.130", srcPort: 5061, rcvIp: "203.0.113.5", rcvPort: 5061 } as const;

function route(opts: DoubleOptions) {
  const d = createKsrDouble({ myself: ["sip.example.com", "203.0.113.5", "127.0.0.1"], ...opts });
  runRoute(d, requestRoute);
  return d;
}

t.test("OPTIONS keepalive from Meta is answered 200 with Allow", async (t) => {
  const d = route({ message: sipFixture("meta-options"), transport: META });
  t.same(d.replies.map((r) => [r.code, r.reason]), [[200, "OK"]]);
  t.match(d.replies[0].headers, ["Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, NOTIFY"]);
  t.equal(d.ended, null);
});

t.test("REGISTER is refused 405 with a reason and an Allow header, and the cause is logged", async (t) => {
  const d = route({ message: sipFixture("baresip-register"), transport: { proto: "udp", srcIp: "192.0.2.10" } });
  t.same(d.replies.map((r) => [r.code, r.reason]), [[405, "Method Not Allowed - No Registrar Here"]]);
  t.match(d.replies[0].headers, [/^Allow: INVITE, ACK/]);
  t.match(d.logs.find((l) => l.level === "notice")?.text, /refused REGISTER .* from udp:192\.0\.2\.10:5060 with 405 .*Meta never registers/);
  t.equal(d.ended, "exit");
});

t.test("an unknown method is refused 405 with Allow", async (t) => {
  const msg = sipFixture("meta-options").replace(/OPTIONS/g, "PUBLISH");
  const d = route({ message: msg, transport: META });
  t.same(d.replies.map((r) => r.code), [405]);
  t.match(d.replies[0].headers, [/^Allow: /]);
});

t.test("Max-Forwards 0 is answered 483, a garbage value 400", async (t) => {
  const zero = route({ message: withHeader(sipFixture("meta-options"), "Max-Forwards", "0"), transport: META });
  t.same(zero.replies.map((r) => [r.code, r.reason]), [[483, "Too Many Hops"]]);
  const garbage = route({ message: withHeader(sipFixture("meta-options"), "Max-Forwards", "lots"), transport: META });
  t.same(garbage.replies.map((r) => r.code), [400]);
});

t.test("a request whose CSeq method does not match is answered 400 by sanity and goes no further", async (t) => {
  const d = route({ message: withHeader(sipFixture("meta-options"), "CSeq", "1 INVITE"), transport: META });
  t.same(d.replies.map((r) => r.code), [400]);
  t.equal(d.ended, "exit");
  t.notOk(d.calls.some((c) => c.fn === "maxfwd.process_maxfwd"), "no routing after sanity refused it");
});

t.test("scanners are dropped without an answer", async (t) => {
  const d = route({ message: withHeader(sipFixture("meta-options"), "User-Agent", "friendly-scanner"), transport: META });
  t.same(d.replies, []);
  t.equal(d.ended, "drop");
});

t.test("a pike flood from the public side is dropped silently", async (t) => {
  const d = route({ message: sipFixture("meta-options"), transport: META, answers: { "pike.pike_check_req": () => -1 } });
  t.same(d.replies, []);
  t.equal(d.ended, "drop");
});

t.test("an in-dialog BYE without a route set through us is answered 404", async (t) => {
  const d = route({ message: sipFixture("meta-bye"), transport: META });
  t.same(d.replies.map((r) => [r.code, r.reason]), [[404, "Not Here"]]);
});

t.test("an in-dialog BYE with our Route follows the route set", async (t) => {
  const bye = withHeader(sipFixture("meta-bye"), "Route", "<sip:203.0.113.5:5061;transport=tls;lr>");
  const d = route({ message: bye, transport: META });
  t.same(d.replies, []);
  t.equal(d.relays.length, 1);
});

t.test("CANCEL without a transaction is answered 481; with one it is relayed", async (t) => {
  const cancel = sipFixture("meta-invite").replace(/^INVITE /, "CANCEL ").replace("1 INVITE", "1 CANCEL").replace(/\r\n\r\n[\s\S]*$/, "\r\n\r\n").replace(/Content-Length: \d+/, "Content-Length: 0");
  t.same(route({ message: cancel, transport: META }).replies.map((r) => r.code), [481]);
  const matched = route({ message: cancel, transport: META, transactionExists: true });
  t.same(matched.replies, []);
  t.equal(matched.relays.length, 1);
});
