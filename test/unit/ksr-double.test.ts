import t from "tap";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { KEMI_DIR, type KemiApi } from "../../build/gen-kemi.js";
import { createKsrDouble } from "../support/ksr-double.js";
import { sipFixture } from "../support/fixtures.js";

const api: KemiApi = JSON.parse(readFileSync(join(KEMI_DIR, "api.json"), "utf8"));

t.test("the double exports exactly the functions of app_jsdt.api_list", async (t) => {
  const d = createKsrDouble({ message: sipFixture("meta-invite") });
  const ksr = d.KSR as unknown as Record<string, any>;
  for (const f of api.functions) {
    const fn = f.module ? ksr[f.module]?.[f.name] : ksr[f.name];
    t.type(fn, "function", `KSR.${f.module ? `${f.module}.` : ""}${f.name}`);
  }
  t.equal(ksr.hdr.append_hf, undefined, "KSR.hdr.append_hf does not exist in 5.6");
  t.equal(ksr.nosuchmodule, undefined);
});

t.test("it answers from the parsed message and the transport", async (t) => {
  const d = createKsrDouble({
    message: sipFixture("meta-invite"),
    transport: { proto: "tls", srcIp: "157.240.19.130", srcPort: 5061 },
  });
  const { KSR: ksr } = d;
  t.equal(ksr.pv.get("$rU"), "+15550001111");
  t.equal(ksr.pv.get("$fU"), "+15551234567");
  t.equal(ksr.pv.get("$fn"), "15551234567");
  t.equal(ksr.pv.get("$hdr(X-FB-External-Domain)"), "wa.meta.vc");
  t.equal(ksr.pv.get("$hdrc(Record-Route)"), 2);
  t.equal(ksr.hdr.get("User-Agent"), "Facebook SipGateway");
  t.equal(ksr.kx.get_srcip(), "157.240.19.130");
  t.equal(ksr.kx.get_srcuri(), "sip:157.240.19.130:5061;transport=tls");
  t.equal(ksr.is_TLS(), true);
  t.equal(ksr.is_INVITE(), true);
  t.equal(ksr.is_method_in("IB"), true);
  t.equal(ksr.siputils.has_totag(), -1);
});

t.test("wrong arity or types fail like app_jsdt, and unsimulated calls fail loudly", async (t) => {
  const { KSR: ksr } = createKsrDouble({ message: sipFixture("meta-invite") });
  t.throws(() => (ksr.sl.sl_send_reply as any)(200), /takes 2 parameter/);
  t.throws(() => (ksr.sl.sl_send_reply as any)("200", "OK"), /parameter 1 must be int/);
  t.throws(() => ksr.htable.sht_inc("callback", "x"), /KSR\.htable\.sht_inc is not simulated/);
  t.throws(() => ksr.pv.get("$sht(a=>b)"), /pseudo-variable \$sht\(a=>b\) is not simulated/);
});

t.test("replies, relays, header changes and rtpengine calls are recorded", async (t) => {
  const d = createKsrDouble({ message: sipFixture("meta-invite") });
  d.KSR.hdr.append_to_reply("Allow: INVITE\r\n");
  d.KSR.sl.send_reply(486, "Busy Here");
  d.KSR.hdr.append("X-Agent-Profile: sales\r\n");
  d.KSR.rtpengine.rtpengine_offer("RTP/AVP replace-origin");
  d.KSR.tm.t_on_failure("ksr_failure_meta");
  d.KSR.tm.t_relay();
  t.same(d.replies, [{ code: 486, reason: "Busy Here", headers: ["Allow: INVITE"], via: "sl" }]);
  t.same(d.headerOps, [{ op: "append", args: ["X-Agent-Profile: sales\r\n"] }]);
  t.same(d.rtpengine, [{ fn: "rtpengine_offer", flags: "RTP/AVP replace-origin" }]);
  t.same(d.relays, [{ via: "t_relay", ruri: "sip:+15550001111@sip.example.com;transport=tls", duri: null, failureRoute: "ksr_failure_meta", replyRoute: null }]);
});
