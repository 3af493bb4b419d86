/**
 * KEMI calls per message of a user-initiated call (INVITE, its 200, ACK, BYE, its 200) and per
 * OPTIONS, counted with the KSR double: each call into Kamailio costs a Duktape→C crossing and
 * whatever the function does (a $dlg(…) read is a dialog lookup), and the routing benchmark
 * (bench/routing.ts) measures what they add up to. A budget here catches a change that quietly
 * adds reads to the hot path; lowering it after an optimisation is the point. Reading the
 * settings (kx.get_env, once per worker) is not counted. Each SDP that goes to rtpengine costs
 * two calls ($rb read, $var(wa_sdp) set: rtpengine reads the SDP from there, so that Meta's
 * ICE-lite mark can be moved to media level first); an in-dialog ACK one (tm.t_check_trans:
 * the ACK of a session change we refused ends at us); Meta's INVITE one for the calls counter
 * (xhttp_prom) and two for the agent pool (dispatcher's choice, and its $du for the log line),
 * and Meta's OPTIONS one for its keepalive counter.
 */
import t from "tap";
import { requestRoute } from "../../routing/request-route.js";
import { replyRoute } from "../../routing/reply-route.js";
import { createKsrDouble, runRoute, type DoubleOptions } from "../support/ksr-double.js";
import { LIVE_USER_CALL, sipFixture, withHeader } from "../support/fixtures.js";

const META = { proto: "tls", srcIp: "157.240.19.130", srcPort: 5061, rcvIp: "203.0.113.5", rcvPort: 5061 } as const;
const AGENT = { proto: "udp", srcIp: "127.0.0.1", srcPort: 5080, rcvIp: "127.0.0.1", rcvPort: 5070 } as const;
const ENV = { WA_NUMBERS: "+15550001111=sales", WA_AGENT_URI: "sip:127.0.0.1:5080", WA_INTERNAL_ALLOW: "127.0.0.1/32" };
const OUR_ROUTES = "<sip:203.0.113.5:5061;transport=tls;r2=on;lr;ftag=9c1f6a2e>, <sip:127.0.0.1:5070;r2=on;lr;ftag=9c1f6a2e>";
const BYE = withHeader(sipFixture("meta-bye").replace(/^BYE \S+/, "BYE sip:agent@127.0.0.1:5080"), "Route", OUR_ROUTES);
const ACK = BYE.replace(/^BYE /, "ACK ").replace("CSeq: 2 BYE", "CSeq: 1 ACK");

/** The agent's 200 OK to Meta's INVITE (with SDP) or to its BYE. */
function agentOk(cseq: string, sdp: boolean): string {
  return [
    "SIP/2.0 200 OK",
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcd5b.1",
    'From: "15551234567" <sip:+15551234567@wa.meta.vc>;tag=9c1f6a2e',
    "To: <sip:+15550001111@sip.example.com>;tag=as58f4d2e1",
    `Call-ID: ${LIVE_USER_CALL.callId}`,
    `CSeq: ${cseq}`,
    "Contact: <sip:agent@127.0.0.1:5080>",
    ...(sdp ? ["Content-Type: application/sdp", "Content-Length: 10", "", "v=0\r\ns=-\r\n"] : ["Content-Length: 0", "", ""]),
  ].join("\r\n");
}

const callback = (name: string) => () => (globalThis as unknown as Record<string, () => void>)[name]();

/** Runs one message and returns the KEMI calls it made, settings reads left out. */
function kemiCalls(opts: Partial<DoubleOptions> & { message: string }, route: () => void, outcome: "relayed" | "answered" | "passed"): string[] {
  const d = createKsrDouble({ env: ENV, myself: ["sip.example.com", "203.0.113.5", "127.0.0.1"], ...opts });
  runRoute(d, route);
  const got = d.relays.length ? "relayed" : d.replies.length ? "answered" : d.ended ?? "passed";
  if (got !== outcome) throw new Error(`expected the message to be ${outcome}, it was ${got}: ${JSON.stringify(d.replies)}`);
  return d.calls.filter((c) => c.fn !== "kx.get_env").map((c) => (c.fn.startsWith("pv.") ? `${c.fn}(${c.args[0]})` : c.fn));
}

const BUDGET: Array<[string, number, () => string[]]> = [
  ["OPTIONS from the internal side", 9, () => kemiCalls({ message: sipFixture("meta-options"), transport: AGENT }, requestRoute, "answered")],
  ["OPTIONS from Meta", 11, () => kemiCalls({ message: sipFixture("meta-options"), transport: META }, requestRoute, "answered")],
  ["Meta's INVITE", 31, () => kemiCalls({ message: sipFixture("meta-invite"), transport: META }, requestRoute, "relayed")],
  ["its 200 OK: ksr_reply_route", 2, () => kemiCalls({ message: agentOk("1 INVITE", true), transport: AGENT }, replyRoute, "passed")],
  ["its 200 OK: the agent's reply route", 6, () =>
    kemiCalls({ message: agentOk("1 INVITE", true), transport: AGENT, vars: { "$avp(wa_media)": "user-initiated" } }, callback("ksr_onreply_local"), "passed")],
  ["Meta's ACK", 19, () => kemiCalls({ message: ACK, transport: META, dialog: LIVE_USER_CALL }, requestRoute, "relayed")],
  ["Meta's BYE", 21, () => kemiCalls({ message: BYE, transport: META, dialog: LIVE_USER_CALL }, requestRoute, "relayed")],
  ["the BYE's 200 OK: ksr_reply_route", 2, () => kemiCalls({ message: agentOk("2 BYE", false), transport: AGENT }, replyRoute, "passed")],
];

t.test("KEMI calls per message stay within the budget", async (t) => {
  const rows: string[] = [];
  for (const [what, budget, run] of BUDGET) {
    const calls = run();
    rows.push(`${what}: ${calls.length} (budget ${budget})`);
    t.ok(calls.length <= budget, `${what}: ${calls.length} KEMI calls, budget ${budget}: ${calls.join(" ")}`);
  }
  t.comment(rows.join("\n"));
});

t.test("an in-dialog request reads each dialog value at most once, and only what its hop needs", async (t) => {
  const bye = kemiCalls({ message: BYE, transport: META, dialog: LIVE_USER_CALL }, requestRoute, "relayed");
  t.notOk(bye.includes("dialog.is_known_dlg"), "the dialog's kind says whether it exists");
  const dialogReads = bye.filter((fn) => fn.startsWith("pv.get($dlg"));
  t.same(dialogReads, ["pv.get($dlg_var(wa_call))", "pv.get($dlg(from_tag))", "pv.get($dlg(to_contact))"],
    "kind, caller's tag, and the agent's Contact (the Request-URI's peer); its route set is not needed");
  const loose = bye.indexOf("rr.loose_route");
  t.ok(loose > 0, "loose_route runs, after every check");
  t.same(bye.slice(0, loose).filter((fn) => fn === "is_myself").length, 2, "each of our two Routes is checked once");
});
