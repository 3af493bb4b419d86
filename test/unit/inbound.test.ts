/** User-initiated calls through the request route, with Meta's INVITE as the docs show it. */
import t from "tap";
import { requestRoute } from "../../routing/request-route.js";
import { createKsrDouble, runRoute, type DoubleOptions } from "../support/ksr-double.js";
import { LIVE_USER_CALL, sipFixture, withHeader } from "../support/fixtures.js";

const META = { proto: "tls", srcIp: "157.240.19.130", srcPort: 5061, rcvIp: "203.0.113.5", rcvPort: 5061 } as const;
const ENV = { WA_NUMBERS: "+15550001111=sales", WA_AGENT_URI: "sip:127.0.0.1:5080", WA_MAX_CALLS_PER_NUMBER: "2" };

function route(opts: Partial<DoubleOptions> = {}) {
  const d = createKsrDouble({ message: sipFixture("meta-invite"), transport: META, env: ENV, myself: ["sip.example.com"], ...opts });
  runRoute(d, requestRoute);
  return d;
}

t.test("Meta's INVITE goes to the agent with the profile, in a dialog, record-routed", async (t) => {
  const d = route();
  t.same(d.replies, []);
  t.equal(d.relays.length, 1);
  t.equal(d.relays[0].duri, "sip:127.0.0.1:5080");
  t.same([...d.counters], [["wa_calls_total{user-initiated,relayed to the agent}", 1]], "counted in Kamailio's /metrics");
  t.equal(d.relays[0].ruri, "sip:+15550001111@sip.example.com;transport=tls", "R-URI untouched");
  t.ok(d.dialog.managed);
  t.same(d.dialog.profiles, ["calls_per_number/+15550001111"]);
  t.ok(d.headerOps.some((h) => h.op === "record_route"));
  t.notOk(d.headerOps.some((h) => h.op === "remove_hf_exp"), "Meta's own X-WA-Meta-* only: nothing to strip");
});

t.test("a forged X-WA-Profile from Meta's side is stripped before ours is appended", async (t) => {
  // reqinit strips every X-WA-* (but X-WA-Meta-*) from the public side: one profile header, ours.
  const d = route({ message: withHeader(sipFixture("meta-invite"), "X-WA-Profile", "support") });
  t.equal(d.relays.length, 1);
  const ops = d.headerOps.map((h) => `${h.op} ${h.args[0]}`);
  const strip = ops.indexOf("remove_hf_exp ^X-WA-");
  t.ok(strip >= 0 && d.headerOps[strip].args[1] === "^X-WA-Meta-", "every X-WA-* from the public side is stripped");
  t.ok(strip < ops.indexOf("append X-WA-Profile: sales\r\n"), "a forged profile header is replaced");
  t.same(d.headerOps.filter((h) => /X-WA-Profile/.test(h.args[0])).map((h) => h.op), ["append"]);
  t.ok(d.headerOps.some((h) => h.op === "append" && h.args[0] === "X-WA-Profile: sales\r\n"));
  t.notOk(d.headerOps.some((h) => h.op === "remove" && /x-wa-meta|Record-Route/i.test(h.args[0])), "Meta's headers pass untouched");
});

t.test("user params in the Request-URI user are tolerated; a business-scoped user id as From works", async (t) => {
  let msg = sipFixture("meta-invite").replace("INVITE sip:+15550001111@", "INVITE sip:+15550001111;tgrp=wacall@");
  msg = withHeader(msg, "From", '"Ana" <sip:US.13491208655302741918@wa.meta.vc>;tag=9c1f6a2e');
  const d = route({ message: msg });
  t.same(d.replies, []);
  t.equal(d.relays.length, 1);
});

t.test("each failed Meta check has its own answer", async (t) => {
  t.same(route({ transport: { ...META, srcIp: "198.51.100.7" } }).replies.map((r) => [r.code, r.reason]), [[403, "Not From Meta Edge"]]);
  t.same(route({ message: withHeader(sipFixture("meta-invite"), "X-FB-External-Domain", "evil.example") }).replies.map((r) => r.reason), ["Bad X-FB-External-Domain"]);
  t.same(route({ message: withHeader(sipFixture("meta-invite"), "X-FB-External-Domain", null) }).replies.map((r) => r.reason), ["Bad X-FB-External-Domain"]);
  const overUdp = route({ transport: { ...META, proto: "udp", srcIp: "127.0.0.1" } });
  t.same(overUdp.replies.map((r) => [r.code, r.reason]), [[403, "Meta Traffic Must Use TLS"]]);
});

t.test("an unknown number gets 404; the call limit 486; bad settings 503", async (t) => {
  const unknown = route({ message: sipFixture("meta-invite").replace(/\+15550001111/g, "+15550009999") });
  t.same(unknown.replies.map((r) => [r.code, r.reason]), [[404, "Not Found - Unknown Business Number"]]);
  const busy = route({ dialogProfiles: { "calls_per_number/+15550001111": 2 } });
  t.same(busy.replies.map((r) => [r.code, r.reason]), [[486, "Busy Here - Call Limit Reached"]]);
  t.equal(busy.relays.length, 0);
  const misconfigured = route({ env: { WA_NUMBERS: "nonsense" } });
  t.same(misconfigured.replies.map((r) => r.code), [503]);
  t.match(misconfigured.logs.find((l) => l.level === "err")?.text, /configuration error: WA_NUMBERS/);
});

t.test("no re-INVITE or UPDATE goes toward Meta from our side", async (t) => {
  const reinvite = withHeader(sipFixture("meta-invite"), "To", "<sip:+15550001111@sip.example.com>;tag=as58f4d2e1");
  // A business-initiated call: the agent (the INVITE's From tag) called Meta, which answered.
  const callId = /^Call-ID: (.*)$/m.exec(reinvite)![1].trim();
  const fromTag = /^From: .*;tag=([^;\s]+)/m.exec(reinvite)![1];
  const dialog = { callId, fromTag, toTag: "as58f4d2e1", vars: { wa_call: "business-initiated" } };
  const d = route({ message: reinvite, transport: { proto: "udp", srcIp: "127.0.0.1", srcPort: 5080 }, dialog });
  t.same(d.replies.map((r) => r.code), [488]);
  t.match(d.replies[0].reason, /No Session Updates Toward WhatsApp/);
  t.equal(d.relays.length, 0);
});

t.test("Meta's re-INVITE or UPDATE in a call is answered here (488, the call goes on); it never reaches the agent or rtpengine", async (t) => {
  const ourRoutes = "<sip:203.0.113.5:5061;transport=tls;r2=on;lr;ftag=9c1f6a2e>, <sip:127.0.0.1:5070;r2=on;lr;ftag=9c1f6a2e>";
  for (const method of ["INVITE", "UPDATE"]) {
    const inDialog = withHeader(
      withHeader(sipFixture("meta-invite").replace(/^INVITE \S+/, `${method} sip:agent@127.0.0.1:5080`).replace(/^CSeq: .*$/m, `CSeq: 2 ${method}`), "To", "<sip:+15550001111@sip.example.com>;tag=as58f4d2e1"),
      "Route",
      ourRoutes,
    );
    const d = route({ message: inDialog, transport: META, dialog: LIVE_USER_CALL });
    t.same(d.replies.map((r) => [r.code, r.reason]), [[488, "Not Acceptable Here - Session Changes Not Supported"]], method);
    t.equal(d.relays.length, 0, `${method}: not relayed`);
    t.notOk(d.calls.some((c) => c.fn.startsWith("rtpengine.")), `${method}: rtpengine untouched`);
    t.match(d.logs.map((l) => l.text).join("\n"), new RegExp(`in-dialog ${method} from Meta: the call keeps its media session`));
  }
});

t.test("the user calling the business clears the unanswered-calls guard for that pair", async (t) => {
  const key = "+15550001111|+15551234567";
  const state = { permission: "permanent", permissionExpires: null, connected: [], unanswered: 2, blockedUntil: null, activeCall: null };
  const d = route({ htables: { wa_callback: { [key]: JSON.stringify(state) } } });
  t.equal(d.relays.length, 1);
  t.equal(JSON.parse(d.htables.wa_callback[key]).unanswered, 0);
  const fresh = route();
  t.same(fresh.htables.wa_callback ?? {}, {}, "no state is made up for users without any");
});

t.test("WA_INBOUND_AUTH: Meta's INVITE is challenged, checked, and the credentials consumed", async (t) => {
  const env = { ...ENV, WA_INBOUND_AUTH: "SHA-256", WA_SIP_PASSWORDS: "+15550001111=pw", WA_DOMAIN: "sip.example.com" };
  const challenged = route({ env, answers: { "auth.pv_auth_check": () => -5 } });
  t.same(challenged.replies.map((r) => r.code), [407]);
  t.match(challenged.replies[0].reason, /realm sip\.example\.com, flags 1/);
  t.equal(challenged.relays.length, 0);

  const withCredentials = withHeader(sipFixture("meta-invite"), "Proxy-Authorization", 'Digest username="15550001111", realm="sip.example.com"');
  let checked: unknown[] = [];
  const ok = route({ env, message: withCredentials, answers: { "auth.pv_auth_check": (...args: unknown[]) => ((checked = args), 1) } });
  t.same(checked, ["sip.example.com", "pw", 0, 0], "realm = our domain, the number's password");
  t.equal(ok.relays.length, 1);
  t.ok(ok.headerOps.some((h) => h.op === "remove" && h.args[0] === "Proxy-Authorization"), "credentials do not travel on");

  const wrongUser = withHeader(sipFixture("meta-invite"), "Proxy-Authorization", 'Digest username="15550002222"');
  t.same(route({ env, message: wrongUser, answers: { "auth.pv_auth_check": () => 1 } }).replies.map((r) => r.reason), ["Forbidden - Wrong Digest User"]);
  t.same(route({ env, message: withCredentials, answers: { "auth.pv_auth_check": () => -2 } }).replies.map((r) => r.reason), ["Forbidden - Digest Check Failed"]);
  const stale = route({ env, message: withCredentials, answers: { "auth.pv_auth_check": () => -4 } });
  t.match(stale.replies[0].reason, /flags 17/, "stale nonce: challenged again with stale=true");
});

t.test("agent pool: dispatcher picks an agent that answers probes; with none up the call is refused before anything is recorded", async (t) => {
  const pool = [{ uri: "sip:127.0.0.1:5080", up: false }, { uri: "sip:127.0.0.1:5082", up: true }];
  const d = route({ agents: pool, env: { ...ENV, WA_AGENT_URI: "sip:127.0.0.1:5080, sip:127.0.0.1:5082" } });
  t.equal(d.relays[0].duri, "sip:127.0.0.1:5082", "the agent that is up");
  t.same(d.timers, { frInv: 0, fr: 2000 }, "with another agent to go to, one that sends no reply at all is given up after 2 s");
  t.equal(route().timers, null, "a lone agent gets tm's own timer");
  const none = route({ agents: pool.map((a) => ({ ...a, up: false })) });
  t.same(none.replies.map((r) => [r.code, r.reason]), [[503, "Service Unavailable - No Media Agent"]]);
  t.equal(none.relays.length, 0);
  t.notOk(none.dialog.managed, "no dialog");
  t.same(none.rtpengine, [], "no media offered");
  t.match(none.logs.map((l) => l.text).join(""), /no agent of WA_AGENT_URI answers dispatcher's probes/);
});
