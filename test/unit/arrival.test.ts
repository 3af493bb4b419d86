/** How a message arrived, read from Kamailio's source URI, and the per-worker memo behind it. */
import t from "tap";
import { parseSourceUri } from "../../routing/ksr/arrival.js";
import { memoize } from "../../routing/runtime/memo.js";

t.test("the source URI as kx.get_srcuri writes it gives protocol, address and port", async (t) => {
  t.same(parseSourceUri("sip:157.240.19.130:5061;transport=tls"), { proto: "tls", srcIp: "157.240.19.130", srcPort: 5061 });
  t.same(parseSourceUri("sip:127.0.0.1:5080"), { proto: "udp", srcIp: "127.0.0.1", srcPort: 5080 }, "UDP has no transport parameter");
  t.same(parseSourceUri("sip:[2a03:2880:f12c:83:face:b00c::25de]:5061;transport=tls"), { proto: "tls", srcIp: "2a03:2880:f12c:83:face:b00c::25de", srcPort: 5061 });
});

t.test("anything else is left to Kamailio's own getters (null)", async (t) => {
  for (const uri of ["sip:127.0.0.1:5072;transport=tcp", "sip:127.0.0.1:443;transport=ws", "", "null", "sip:127.0.0.1", "sip::5060", "sips:127.0.0.1:5061"]) {
    t.equal(parseSourceUri(uri), null, JSON.stringify(uri));
  }
});

t.test("the memo computes each key once, takes any key, and empties itself when full", async (t) => {
  const computed: string[] = [];
  const upper = memoize(3, (k) => (computed.push(k), k.toUpperCase()));
  for (const k of ["hasOwnProperty", "__proto__", "hasOwnProperty", "__proto__"]) upper(k);
  t.same(computed, ["hasOwnProperty", "__proto__"], "a peer's bytes are ordinary keys");
  t.equal(upper("__proto__"), "__PROTO__");
  upper("a");
  upper("b");
  t.same(computed, ["hasOwnProperty", "__proto__", "a", "b"], "the fourth key emptied the table");
  upper("hasOwnProperty");
  t.equal(computed.length, 5, "so an earlier key is computed again");
});
