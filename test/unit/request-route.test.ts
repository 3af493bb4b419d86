import t from "tap";
import type { Test } from "tap";
import { requestRoute } from "../../routing/request-route.js";
import { createKsrDouble, runRoute, type DialogRecord, type DoubleOptions } from "../support/ksr-double.js";
import { LIVE_USER_CALL, sipFixture, withHeader } from "../support/fixtures.js";

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
  const d = route({ message: sipFixture("baresip-register"), transport: { proto: "udp", srcIp: "127.0.0.1" } });
  t.same(d.replies.map((r) => [r.code, r.reason]), [[405, "Method Not Allowed - No Registrar Here"]]);
  t.match(d.replies[0].headers, [/^Allow: INVITE, ACK/]);
  t.match(d.logs.find((l) => l.level === "notice")?.text, /refused REGISTER .* from udp:127\.0\.0\.1:5060 with 405 .*Meta never registers/);
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

/** Our Record-Routes in the live call (fixtures.ts): 203.0.113.5:5061 (TLS) and 127.0.0.1:5070. */
const OUR_ROUTES = "<sip:203.0.113.5:5061;transport=tls;r2=on;lr>, <sip:127.0.0.1:5070;r2=on;lr>";
const OUTSIDER = { ...META, srcIp: "198.51.100.66" } as const;
const AGENT = { proto: "udp", srcIp: "127.0.0.1", srcPort: 5080, rcvIp: "127.0.0.1", rcvPort: 5070 } as const;

/** Meta's BYE for the live call, toward the agent's Contact, through our Record-Routes. */
function metaBye(routes: string | null = OUR_ROUTES): string {
  const bye = sipFixture("meta-bye").replace(/^BYE \S+/, "BYE sip:agent@127.0.0.1:5080");
  return routes === null ? bye : withHeader(bye, "Route", routes);
}

/** The agent's BYE for the same call, toward Meta's Contact through our and Meta's Record-Routes. */
function agentBye(): string {
  return metaBye(`${OUR_ROUTES.split(", ").reverse().join(", ")}, <sip:wa.meta.vc;transport=tls;lr>, <sip:onevc-sip-proxy.fbinfra.net:8191;transport=tls;lr>`)
    .replace(/^BYE \S+/, "BYE sip:+15551234567@wa.meta.vc;transport=tls;ob")
    .replace(/^To: .*$/m, 'To: "15551234567" <sip:+15551234567@wa.meta.vc>;tag=9c1f6a2e')
    .replace(/^From: .*$/m, "From: <sip:+15550001111@sip.example.com>;tag=as58f4d2e1")
    .replace(/^Via: .*$/m, "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-agent-bye;rport");
}

const didNotTouchTheCall = (t: Test, d: ReturnType<typeof route>) => {
  t.same(d.relays, [], "nothing relayed");
  t.same(d.rtpengine, [], "the media stays");
  t.notOk(d.calls.some((c) => c.fn === "rr.loose_route"), "loose_route (which ends the dialog on a BYE) never ran");
};

t.test("in-dialog requests: only for a dialog we hold, from its own sides, toward its own peers", async (t) => {
  t.test("Meta's BYE for the live call is relayed to the agent and frees the media", async (t) => {
    const d = route({ message: metaBye(), transport: META, dialog: LIVE_USER_CALL });
    t.same(d.replies, []);
    t.equal(d.relays.length, 1);
    t.same(d.rtpengine.map((r) => r.fn), ["rtpengine_delete"]);
  });

  t.test("the agent's BYE toward Meta follows Meta's recorded route", async (t) => {
    const d = route({ message: agentBye(), transport: AGENT, dialog: LIVE_USER_CALL });
    t.same(d.replies, []);
    t.equal(d.relays.length, 1);
  });

  t.test("an outsider's BYE with the live call's Call-ID, tags and our Route is refused 403", async (t) => {
    const d = route({ message: metaBye(), transport: OUTSIDER, dialog: LIVE_USER_CALL });
    t.same(d.replies.map((r) => [r.code, r.reason]), [[403, "Forbidden - Not A Party To This Call"]]);
    didNotTouchTheCall(t, d);
    t.match(d.logs.find((l) => l.level === "notice")?.text, /refused BYE .* from tls:198\.51\.100\.66:5061 with 403 .*caller is on the Meta .* side, this came from a TLS peer outside WA_META_PREFIXES/);
  });

  t.test("Meta's edge cannot pose as the agent's side of the call", async (t) => {
    const d = route({ message: agentBye(), transport: META, dialog: LIVE_USER_CALL });
    t.same(d.replies.map((r) => r.code), [403]);
    didNotTouchTheCall(t, d);
  });

  t.test("a stranger on the internal listener gets nothing at all", async (t) => {
    const d = route({ message: agentBye(), transport: { ...AGENT, srcIp: "10.9.9.9" }, dialog: LIVE_USER_CALL });
    t.same(d.replies.map((r) => [r.code, r.reason]), [[403, "Forbidden - Not An Internal Source"]]);
    didNotTouchTheCall(t, d);
  });

  t.test("our Route followed by a third host is refused: no open relay", async (t) => {
    const d = route({ message: metaBye(`${OUR_ROUTES}, <sip:evil.example.net:5060;lr>`), transport: META, dialog: LIVE_USER_CALL });
    t.same(d.replies.map((r) => [r.code, r.reason]), [[403, "Forbidden - Route Leaves This Call"]]);
    t.match(d.logs.find((l) => l.level === "notice")?.text, /leads to <sip:evil\.example\.net:5060;lr>, not to this dialog's internal side/);
    didNotTouchTheCall(t, d);
  });

  t.test("a Request-URI that is not the agent's Contact is refused", async (t) => {
    const d = route({ message: metaBye().replace(/^BYE \S+/, "BYE sip:victim@192.0.2.99:5060"), transport: META, dialog: LIVE_USER_CALL });
    t.same(d.replies.map((r) => r.code), [403]);
    didNotTouchTheCall(t, d);
  });

  t.test("a first Route that is not ours is not routed", async (t) => {
    const d = route({ message: metaBye("<sip:evil.example.net;lr>"), transport: META, dialog: LIVE_USER_CALL });
    t.same(d.replies.map((r) => [r.code, r.reason]), [[404, "Not Here"]]);
    didNotTouchTheCall(t, d);
  });

  t.test("a BYE for a dialog we do not hold is answered 481", async (t) => {
    const d = route({ message: metaBye(), transport: META });
    t.same(d.replies.map((r) => [r.code, r.reason]), [[481, "Call/Transaction Does Not Exist"]]);
    didNotTouchTheCall(t, d);
  });

  t.test("re-INVITE from the agent toward Meta is answered 488 here", async (t) => {
    const reinvite = agentBye().replace(/^BYE /, "INVITE ").replace("CSeq: 2 BYE", "CSeq: 3 INVITE");
    const d = route({ message: reinvite, transport: AGENT, dialog: LIVE_USER_CALL });
    t.same(d.replies.map((r) => r.code), [488]);
  });

  t.test("an ACK nobody may send is dropped, never forwarded", async (t) => {
    const ack = metaBye().replace(/^BYE /, "ACK ").replace("CSeq: 2 BYE", "CSeq: 1 ACK");
    const d = route({ message: ack, transport: OUTSIDER, dialog: LIVE_USER_CALL });
    t.same(d.replies, []);
    t.equal(d.ended, "drop");
    didNotTouchTheCall(t, d);
  });
});

t.test("CANCEL only from the INVITE's own sender", async (t) => {
  const cancel = sipFixture("meta-invite").replace(/^INVITE /, "CANCEL ").replace("1 INVITE", "1 CANCEL").replace(/\r\n\r\n[\s\S]*$/, "\r\n\r\n").replace(/Content-Length: \d+/, "Content-Length: 0");
  const callId = /^Call-ID: (.*)$/m.exec(cancel)![1].trim();
  const fromTag = /^From: .*;tag=([^;\s]+)/m.exec(cancel)![1];
  const ringing: DialogRecord = { callId, fromTag, vars: { wa_call: "user-initiated" } };

  t.same(route({ message: cancel, transport: META }).replies.map((r) => r.code), [481], "no call, nothing to cancel");
  const matched = route({ message: cancel, transport: META, transactionExists: true, dialog: ringing });
  t.same(matched.replies, []);
  t.equal(matched.relays.length, 1);
  t.same(matched.rtpengine.map((r) => r.fn), ["rtpengine_delete"]);

  const outsider = route({ message: cancel, transport: OUTSIDER, transactionExists: true, dialog: ringing });
  t.same(outsider.replies.map((r) => r.code), [403], "an outsider's CANCEL of a ringing call is refused");
  t.same(outsider.rtpengine, [], "and its media is not touched");
  const agent = route({ message: cancel, transport: AGENT, transactionExists: true, dialog: ringing });
  t.same(agent.replies.map((r) => r.code), [403], "the internal side did not send that INVITE");
  t.same(agent.rtpengine, []);
});

t.test("SIP on the HTTP API's TCP listener is refused", async (t) => {
  const d = route({ message: sipFixture("meta-options"), transport: { proto: "tcp", srcIp: "127.0.0.1", rcvPort: 5072 } });
  t.same(d.replies.map((r) => [r.code, r.reason]), [[403, "Forbidden - No SIP On This Listener"]]);
});

t.test("X-WA-* headers are stripped from everything that enters from the public side", async (t) => {
  const strip = (d: ReturnType<typeof route>) => d.headerOps.filter((o) => o.op === "remove_hf_exp").map((o) => o.args);
  const forged = withHeader(sipFixture("meta-options"), "x-wA-pRoFiLe", "sales");
  t.same(strip(route({ message: forged, transport: META })), [["^X-WA-", "^X-WA-Meta-"]], "from Meta (its own X-WA-Meta-* stay), in any case");
  t.same(strip(route({ message: forged, transport: OUTSIDER })), [["^X-WA-", "^X-WA-Meta-"]], "from outsiders");
  t.same(strip(route({ message: forged, transport: AGENT })), [], "the agent's own are kept");
  // Nothing to strip, no strip (textops compiles its expressions on every call).
  t.same(strip(route({ message: sipFixture("meta-options"), transport: OUTSIDER })), [], "none in the message");
  t.same(strip(route({ message: withHeader(sipFixture("meta-options"), "X-WA-Meta-Wacid", "wacid.x"), transport: META })), [], "only Meta's own");
});

t.test("flood control: Meta and the internal side are never throttled, everyone else is", async (t) => {
  const flooding = { "pike.pike_check_req": () => -1 };
  const meta = route({ message: sipFixture("meta-options"), transport: META, answers: flooding });
  t.same(meta.replies.map((r) => r.code), [200], "Meta's edge at any rate");
  t.notOk(meta.calls.some((c) => c.fn === "pike.pike_check_req"));
  const agent = route({ message: sipFixture("meta-options"), transport: AGENT, answers: flooding });
  t.same(agent.replies.map((r) => r.code), [200]);
  for (const transport of [OUTSIDER, { ...AGENT, srcIp: "10.9.9.9" }]) {
    const d = route({ message: sipFixture("meta-options"), transport, answers: flooding });
    t.same(d.replies, [], `${transport.srcIp} over the limit: dropped`);
    t.equal(d.ended, "drop");
  }
});
