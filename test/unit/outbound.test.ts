/** Business-initiated calls through the request route: an internal INVITE toward Meta. */
import t from "tap";
import { requestRoute } from "../../routing/request-route.js";
import { createKsrDouble, runRoute, type DoubleOptions } from "../support/ksr-double.js";
import { AGENT_SDP } from "../support/fixtures.js";

const AGENT = { proto: "udp", srcIp: "127.0.0.1", srcPort: 5080, rcvIp: "127.0.0.1", rcvPort: 5070 } as const;
const ENV = {
  WA_NUMBERS: "+15550001111=sales,+15550002222=support",
  WA_SIP_PASSWORDS: "+15550001111=pw",
  WA_DOMAIN: "sip.example.com",
  WA_META_EDGE: "wa.meta.vc:5061",
};

function agentInvite(user: string, from = "+15550001111", extra = "", sdp = AGENT_SDP): string {
  return [
    `INVITE sip:${user}@127.0.0.1:5070 SIP/2.0`,
    "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-agent-1;rport",
    "Max-Forwards: 70",
    `From: <sip:${from}@127.0.0.1:5080>;tag=agent1`,
    `To: <sip:${user}@127.0.0.1:5070>`,
    "Call-ID: 3c1f0a9e-agent",
    "CSeq: 1 INVITE",
    "Contact: <sip:agent@127.0.0.1:5080>",
    ...(extra ? [extra] : []),
    ...(sdp ? ["Content-Type: application/sdp"] : []),
    `Content-Length: ${Buffer.byteLength(sdp)}`,
    "",
    sdp,
  ].join("\r\n");
}

/** The pair +15550001111 → +15551234567 with a permanent permission granted an hour ago. */
const PERMITTED = {
  wa_callback: {
    "+15550001111|+15551234567": JSON.stringify({
      permission: "permanent", permissionExpires: null, connected: [], unanswered: 0, blockedUntil: null, activeCall: null,
    }),
  },
};

function route(message: string, opts: Partial<DoubleOptions> = {}) {
  const d = createKsrDouble({ message, transport: AGENT, env: ENV, myself: ["127.0.0.1"], htables: structuredClone(PERMITTED), ...opts });
  runRoute(d, requestRoute);
  return d;
}

t.test("an internal INVITE becomes Meta's form and goes to the edge over TLS with SNI", async (t) => {
  const d = route(agentInvite("+15551234567"));
  t.same(d.replies, []);
  t.same(d.relays, [{
    via: "t_relay",
    ruri: "sip:+15551234567@wa.meta.vc;transport=tls",
    duri: "sip:wa.meta.vc:5061;transport=tls",
    failureRoute: "ksr_failure_meta",
    replyRoute: "ksr_onreply_meta",
  }]);
  t.ok(d.headerOps.some((h) => h.op === "replace_from" && h.args[0] === "sip:+15550001111@sip.example.com"));
  t.ok(d.headerOps.some((h) => h.op === "replace_to" && h.args[0] === "sip:+15551234567@wa.meta.vc"));
  t.equal(d.vars.get("$xavp(tls=>server_name)"), "wa.meta.vc");
  t.ok(d.dialog.managed);
  t.equal(d.htables.wa_callactive["+15550001111|+15551234567"], "3c1f0a9e-agent", "the pair has its one active call");
  t.equal(JSON.parse(d.htables.wa_callback["+15550001111|+15551234567"]).activeCall, null, "in its own entry, not in the lasting state");
});

t.test("a business-scoped user id (BSUID) is called like a number: Meta's R-URI and To, its own pair; WA_BSUID_URI_PREFIX in front when set", async (t) => {
  const BSUID = "US.13491208655302741918";
  const permitted = { wa_callback: { [`+15550001111|${BSUID}`]: PERMITTED.wa_callback["+15550001111|+15551234567"] } };
  const d = route(agentInvite(BSUID), { htables: structuredClone(permitted) });
  t.same(d.replies, []);
  t.equal(d.relays[0]?.ruri, `sip:${BSUID}@wa.meta.vc;transport=tls`);
  t.ok(d.headerOps.some((h) => h.op === "replace_to" && h.args[0] === `sip:${BSUID}@wa.meta.vc`));
  t.equal(d.htables.wa_callactive[`+15550001111|${BSUID}`], "3c1f0a9e-agent");
  const prefixed = route(agentInvite(BSUID), { htables: structuredClone(permitted), env: { ...ENV, WA_BSUID_URI_PREFIX: "+" } });
  t.equal(prefixed.relays[0]?.ruri, `sip:+${BSUID}@wa.meta.vc;transport=tls`);
  t.same(route(agentInvite(BSUID)).replies.map((r) => r.code), [403], "no permission for the BSUID's own pair: refused locally");
  for (const bad of ["us.1349", "US.", "US.1349-1", `US.${"1".repeat(260)}`]) {
    t.same(route(agentInvite(bad)).replies.map((r) => [r.code, r.reason]), [[484, "Address Incomplete - E.164 With + Or BSUID Expected"]], bad.slice(0, 20));
  }
});

t.test("callback rules refuse locally before anything goes to Meta", async (t) => {
  const none = route(agentInvite("+15557654321"));
  t.same(none.replies.map((r) => [r.code, r.reason]), [[403, "No Call Permission"]]);
  t.same([...none.counters].sort(), [["wa_callback_decisions_total{No Call Permission}", 1], ["wa_refusals_total{INVITE,403,No Call Permission}", 1]], "counted for Kamailio's /metrics");
  t.equal(none.relays.length, 0);
  t.match(none.logs.find((l) => l.level === "notice")?.text, /\+15550001111 → \+15557654321: no call permission on record/);

  const busy = structuredClone(PERMITTED);
  Object.assign(busy, { wa_callactive: { "+15550001111|+15551234567": "earlier-call" } });
  t.same(route(agentInvite("+15551234567"), { htables: busy }).replies.map((r) => r.code), [486]);
});

t.test("refusals before anything goes to Meta", async (t) => {
  const cases: Array<[string, number, RegExp]> = [
    [agentInvite("+15551234567", "+15559999999"), 403, /Unknown Business Number/],
    [agentInvite("+15551234567", "+15550002222"), 503, /No SIP Password/],
    [agentInvite("15551234567"), 484, /E\.164/],
    [agentInvite("+15551234567", "+15550001111", "X-FB-External-Domain: wa.meta.vc"), 403, /Meta Traffic Must Use TLS/],
  ];
  for (const [msg, code, reason] of cases) {
    const d = route(msg);
    t.equal(d.replies[0]?.code, code);
    t.match(d.replies[0]?.reason, reason);
    t.equal(d.relays.length, 0);
  }
});

t.test("a call refused after admission (no SDP, rtpengine down) does not leave its pair busy", async (t) => {
  const noSdp = route(agentInvite("+15551234567", "+15550001111", "", ""));
  t.same(noSdp.replies.map((r) => [r.code, r.reason]), [[488, "Not Acceptable Here - SDP Offer Required"]]);
  t.notOk("+15550001111|+15551234567" in (noSdp.htables.wa_callactive ?? {}), "nothing recorded for a call without an offer");

  const down = route(agentInvite("+15551234567"), { answers: { "rtpengine.rtpengine_offer": () => -1 } });
  t.same(down.replies.map((r) => r.code), [503]);
  t.equal(down.relays.length, 0);
  t.notOk("+15550001111|+15551234567" in (down.htables.wa_callactive ?? {}), "the admitted call is released when its media cannot be set up");
  const next = route(agentInvite("+15551234567"), { htables: down.htables });
  t.equal(next.relays.length, 1, "the next call for the pair goes through");
});

t.test("a call that cannot be sent toward Meta at all frees its pair and its media", async (t) => {
  const d = route(agentInvite("+15551234567"), { answers: { "tm.t_relay": () => -1, "sl.sl_reply_error": () => 1 } });
  t.notOk("+15550001111|+15551234567" in (d.htables.wa_callactive ?? {}));
  t.same(d.rtpengine.map((r) => r.fn), ["rtpengine_offer", "rtpengine_delete"]);
});
