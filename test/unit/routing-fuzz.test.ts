/**
 * Property: nothing a peer sends can throw inside the routing. fast-check drives the request
 * route through the KSR double with real SIP messages mutated at random (methods, Request-URIs,
 * headers added, repeated, dropped or filled with arbitrary text, tags, Route sets, our own
 * X-WA-* and Meta's X-FB-External-Domain) from every kind of source, with or without a dialog
 * or transaction that matches, and pike saying yes or no. Every request must end answered,
 * relayed or dropped by policy (or, for an ACK that matches a transaction, left to tm), never
 * by an exception. A failing case prints its seed and the shrunk message.
 */
import t from "tap";
import fc from "fast-check";
import { requestRoute } from "../../routing/request-route.js";
import { createKsrDouble, runRoute, type DialogRecord, type Transport } from "../support/ksr-double.js";
import { sipFixture, withHeader } from "../support/fixtures.js";
import { parseSipMessage } from "../../media-agent/src/sip/message.js";

const OUR_ROUTES = "<sip:203.0.113.5:5061;transport=tls;r2=on;lr>, <sip:127.0.0.1:5070;r2=on;lr>";
/** Meta's BYE of a live call through our Record-Routes, and the agent's toward Meta's route. */
const IN_DIALOG = [
  withHeader(sipFixture("meta-bye").replace(/^BYE \S+/, "BYE sip:agent@127.0.0.1:5080"), "Route", OUR_ROUTES),
  withHeader(sipFixture("meta-bye"), "Route", "<sip:127.0.0.1:5070;r2=on;lr>, <sip:203.0.113.5:5061;transport=tls;r2=on;lr>, <sip:wa.meta.vc;transport=tls;lr>")
    .replace(/^BYE \S+/, "BYE sip:+15551234567@wa.meta.vc;transport=tls;ob")
    .replace(/^To: .*$/m, 'To: "15551234567" <sip:+15551234567@wa.meta.vc>;tag=9c1f6a2e')
    .replace(/^From: .*$/m, "From: <sip:+15550001111@sip.example.com>;tag=as58f4d2e1"),
];
const FIXTURES = [...["meta-invite", "meta-bye", "meta-options", "baresip-invite", "sipp-invite", "kamailio-invite", "baresip-register"].map(sipFixture), ...IN_DIALOG, ...IN_DIALOG];
const METHODS = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "NOTIFY", "INFO", "UPDATE", "PRACK", "REGISTER", "MESSAGE", "REFER", "SUBSCRIBE", "FOO"];
const HEADER_NAMES = [
  "Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "Contact", "Route", "Record-Route", "User-Agent", "Content-Type", "Content-Length",
  "X-FB-External-Domain", "X-WA-Profile", "X-WA-Transfer", "x-wa-meta-wacid", "Proxy-Authorization", "Authorization", "Allow", "Reason", "Expires",
];
const SOURCES: Array<Partial<Transport>> = [
  { proto: "tls", srcIp: "157.240.19.130", srcPort: 5061 },
  { proto: "tls", srcIp: "198.51.100.66", srcPort: 40000 },
  { proto: "udp", srcIp: "127.0.0.1", srcPort: 5080 },
  { proto: "udp", srcIp: "10.9.9.9", srcPort: 5060 },
  { proto: "tcp", srcIp: "127.0.0.1", srcPort: 41000 },
  { proto: "tls", srcIp: "2a03:2880:f12c:83:face:b00c::25de", srcPort: 5061 },
];
const ENV = { WA_NUMBERS: "+15550001111=sales", WA_SIP_PASSWORDS: "+15550001111=pw", WA_AGENT_URI: "sip:127.0.0.1:5080", WA_TRANSFER_PROXY: "sip:127.0.0.1:5099" };

/** Header values: SIP-shaped pieces and arbitrary text, never a line break (that would be a new header). */
const headerValue = fc.oneof(
  fc.constantFrom("wa.meta.vc", "<sip:203.0.113.5:5061;transport=tls;lr>", "<sip:evil.example.net;lr>", "<sip:+15550001111@sip.example.com>;tag=as58f4d2e1",
    "1 INVITE", "2 BYE", "70", "0", "-1", "99999999999", "application/sdp", "sales", "Digest username=\"x\"", "", ";tag=", "<>", "sip:", "%00"),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
).map((v) => v.replace(/[\r\n]/g, " "));

type Edit =
  | { kind: "method"; method: string }
  | { kind: "uri"; uri: string }
  | { kind: "add"; name: string; value: string }
  | { kind: "set"; name: string; value: string }
  | { kind: "drop"; name: string }
  | { kind: "repeat"; name: string };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ kind: fc.constant("method" as const), method: fc.constantFrom(...METHODS) }),
  fc.record({ kind: fc.constant("uri" as const), uri: fc.oneof(fc.constantFrom("sip:+15550001111@sip.example.com;transport=tls", "sip:agent@127.0.0.1:5080", "sip:x@198.51.100.9", "sips:a@b", "tel:+1555"), headerValue.map((v) => `sip:${v.replace(/\s/g, "")}@h`)) }),
  fc.record({ kind: fc.constant("add" as const), name: fc.constantFrom(...HEADER_NAMES), value: headerValue }),
  fc.record({ kind: fc.constant("set" as const), name: fc.constantFrom(...HEADER_NAMES), value: headerValue }),
  fc.record({ kind: fc.constant("drop" as const), name: fc.constantFrom(...HEADER_NAMES) }),
  fc.record({ kind: fc.constant("repeat" as const), name: fc.constantFrom(...HEADER_NAMES) }),
);

function applyEdit(text: string, e: Edit): string {
  const [head, ...rest] = text.split("\r\n\r\n");
  const lines = head.split("\r\n");
  const named = (l: string, name: string) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`);
  switch (e.kind) {
    case "method": {
      const [, uri, version] = lines[0].split(" ");
      lines[0] = `${e.method} ${uri} ${version}`;
      lines.forEach((l, i) => named(l, "CSeq") && (lines[i] = l.replace(/[A-Za-z]+\s*$/, e.method)));
      break;
    }
    case "uri": {
      const [method, , version] = lines[0].split(" ");
      lines[0] = `${method} ${e.uri} ${version}`;
      break;
    }
    case "add":
      lines.splice(1 + (e.value.length % lines.length), 0, `${e.name}: ${e.value}`);
      break;
    case "set": {
      const at = lines.findIndex((l) => named(l, e.name));
      if (at > 0) lines[at] = `${e.name}: ${e.value}`;
      else lines.push(`${e.name}: ${e.value}`);
      break;
    }
    case "drop":
      return [lines.filter((l, i) => i === 0 || !named(l, e.name)).join("\r\n"), ...rest].join("\r\n\r\n");
    case "repeat": {
      const line = lines.find((l) => named(l, e.name));
      if (line) lines.push(line);
      break;
    }
  }
  return [lines.join("\r\n"), ...rest].join("\r\n\r\n");
}

/** A dialog the double holds: for the message's own Call-ID and tags (so it matches), or an unrelated one. */
const dialogFor = (message: string) =>
  fc.option(
    fc.record({
      kind: fc.constantFrom("user-initiated", "user-initiated", "business-initiated", "transfer", "", "bogus"),
      swapTags: fc.boolean(),
      early: fc.constantFrom(false, false, false, true),
      toContact: fc.constantFrom("sip:agent@127.0.0.1:5080", "sip:agent@127.0.0.1:5080", "sip:+15551234567@wa.meta.vc;transport=tls;ob", "", "garbage"),
      fromRs: fc.constantFrom("<sip:wa.meta.vc;transport=tls;lr>,<sip:onevc-sip-proxy.fbinfra.net:8191;transport=tls;lr>", "", "<broken"),
    }),
    { freq: 2 }, // no dialog one time in two
  ).map((d): DialogRecord | undefined => {
    if (!d) return undefined;
    const callId = /^Call-ID:\s*(.*)$/im.exec(message)?.[1]?.trim() ?? "none";
    const fromTag = /^From:.*;tag=([^;\s]+)/im.exec(message)?.[1] ?? "f";
    const toTag = /^To:.*;tag=([^;\s]+)/im.exec(message)?.[1] ?? "t";
    return {
      callId,
      fromTag: d.swapTags ? toTag : fromTag,
      toTag: d.early ? undefined : d.swapTags ? fromTag : toTag,
      toContact: d.toContact,
      fromContact: "sip:+15551234567@wa.meta.vc;transport=tls;ob",
      fromRs: d.fromRs,
      vars: { wa_call: d.kind },
    };
  });

const scenario = fc
  .record({ base: fc.constantFrom(...FIXTURES), edits: fc.array(edit, { maxLength: 6 }) })
  .map(({ base, edits }) => edits.reduce(applyEdit, base))
  .filter((message) => {
    try {
      parseSipMessage(message); // what Kamailio's own parser drops never reaches the script
      return true;
    } catch {
      return false;
    }
  })
  .chain((message) =>
    fc.record({
      message: fc.constant(message),
      transport: fc.constantFrom(...SOURCES, SOURCES[0], SOURCES[2]),
      dialog: dialogFor(message),
      transactionExists: fc.boolean(),
      pikeSaysFlood: fc.boolean(),
    }),
  );

t.test("no mutated request makes the routing throw: each is answered, relayed or dropped by policy", async (t) => {
  let runs = 0;
  const outcomes: Record<string, number> = {};
  fc.assert(
    fc.property(scenario, (s) => {
      const d = createKsrDouble({
        message: s.message,
        transport: { ...s.transport, rcvIp: "203.0.113.5", rcvPort: 5061 },
        myself: ["sip.example.com", "203.0.113.5", "127.0.0.1"],
        env: ENV,
        dialog: s.dialog,
        transactionExists: s.transactionExists,
        answers: { "pike.pike_check_req": () => (s.pikeSaysFlood ? -1 : 1) },
      });
      runRoute(d, requestRoute); // an exception other than exit/drop fails the property here
      runs++;
      const outcome = d.replies.length ? `answered ${d.replies[0].code}` : d.relays.length ? "relayed" : d.ended === "drop" ? "dropped" : "left to tm";
      outcomes[outcome.replace(/\d\d$/, "xx")] = (outcomes[outcome.replace(/\d\d$/, "xx")] ?? 0) + 1;
      if (outcome === "left to tm") {
        // Only an ACK that matches a transaction is left to tm (absorbed, or an end-to-end ACK).
        return d.message.kind === "request" && d.message.method === "ACK" && s.transactionExists;
      }
      return d.replies.length + d.relays.length <= 1 && !d.logs.some((l) => /routing error/.test(l.text));
    }),
    { numRuns: 4000 },
  );
  t.comment(`outcomes over ${runs} requests: ${JSON.stringify(outcomes)}`);
  t.ok(runs >= 4000, `${runs} mutated requests routed`);
  for (const kind of ["answered 2xx", "answered 4xx", "relayed", "dropped"]) t.ok(outcomes[kind] > 0, `some were ${kind}`);
});
