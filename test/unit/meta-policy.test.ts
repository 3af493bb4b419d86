import t from "tap";
import { ipInAnyCidr, ipInCidr, isCidr } from "../../routing/policy/cidr.js";
import { isFromMeta } from "../../routing/policy/meta-edge.js";
import { classifySource, mayCarryWaHeadersToStrip } from "../../routing/policy/trust.js";
import { digestUsername, isWhatsAppUser, lookupBusinessNumber, metaUserPart, numberFromUser } from "../../routing/policy/numbers.js";
import { META_PREFIXES_DEFAULT, parseRoutingConfig } from "../../routing/config.js";
import { certificateNameMatches } from "../../routing/policy/certificate.js";

t.test("certificate names: exact or one-label wildcard", async (t) => {
  t.ok(certificateNameMatches("wa.meta.vc", "wa.meta.vc"));
  t.ok(certificateNameMatches("WA.Meta.VC", "wa.meta.vc"));
  t.ok(certificateNameMatches("*.meta.vc", "wa.meta.vc"));
  t.notOk(certificateNameMatches("*.meta.vc", "a.wa.meta.vc"));
  t.notOk(certificateNameMatches("*.meta.vc", "meta.vc"));
  t.notOk(certificateNameMatches("evil.example.net", "wa.meta.vc"));
  t.notOk(certificateNameMatches("wa.meta.vc.evil.net", "wa.meta.vc"));
});

t.test("address prefixes, IPv4 and IPv6", async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ["157.240.19.130", "157.240.0.0/16", true],
    ["157.241.0.1", "157.240.0.0/16", false],
    ["57.147.255.255", "57.144.0.0/14", true],
    ["57.148.0.0", "57.144.0.0/14", false],
    ["127.0.0.2", "127.0.0.2/32", true],
    ["127.0.0.3", "127.0.0.2/32", false],
    ["10.0.0.1", "0.0.0.0/0", true],
    ["2a03:2880:f12c:83:face:b00c::25de", "2a03:2880::/32", true],
    ["2a03:2881::1", "2a03:2880::/32", false],
    ["::1", "::1/128", true],
    ["157.240.19.130", "2a03:2880::/32", false],
    ["not-an-ip", "0.0.0.0/0", false],
    ["300.1.1.1", "0.0.0.0/0", false],
  ];
  for (const [ip, cidr, want] of cases) t.equal(ipInCidr(ip, cidr), want, `${ip} in ${cidr}`);
  t.ok(ipInAnyCidr("163.70.130.1", META_PREFIXES_DEFAULT), "Meta's published prefixes are the default");
  t.ok(isCidr("2a03:2880::/32") && isCidr("31.13.24.0/21"));
  t.notOk(isCidr("31.13.24.0/33") || isCidr("31.13.24.0") || isCidr("wa.meta.vc/24"));
});

t.test("isFromMeta needs TLS, a Meta source and exactly one header with the value, each with its own answer", async (t) => {
  const settings = { metaPrefixes: ["157.240.0.0/16"], internalAllow: ["127.0.0.1/32"], metaDomain: "wa.meta.vc" };
  // The source class as reqinit decides it, from the listener and the address alone.
  const from = (proto: string, srcIp: string) => ({ proto, srcIp, source: classifySource(proto, srcIp, settings) });
  const meta = { ...from("tls", "157.240.19.130"), externalDomains: ["wa.meta.vc"] };
  t.same(isFromMeta(meta, settings), { fromMeta: true });
  t.match(isFromMeta({ ...meta, ...from("udp", "157.240.19.130") }, settings), { fromMeta: false, code: 403, reason: "Meta Traffic Must Use TLS" });
  t.match(isFromMeta({ ...meta, ...from("udp", "127.0.0.1"), externalDomains: [] }, settings), { reason: "Not From Meta Edge" });
  t.match(isFromMeta({ ...meta, ...from("tls", "198.51.100.7") }, settings), { reason: "Not From Meta Edge", cause: /198\.51\.100\.7 is outside the Meta prefixes .*forged/ });
  t.match(isFromMeta({ ...meta, ...from("tls", "198.51.100.7"), externalDomains: [] }, settings), { reason: "Not From Meta Edge" });
  t.match(isFromMeta({ ...meta, externalDomains: ["evil.example"] }, settings), { reason: "Bad X-FB-External-Domain", cause: /'evil.example'/ });
  t.match(isFromMeta({ ...meta, externalDomains: [] }, settings), { reason: "Bad X-FB-External-Domain", cause: /missing/ });
  t.match(isFromMeta({ ...meta, externalDomains: ["wa.meta.vc", "evil.example"] }, settings), { reason: "Bad X-FB-External-Domain", cause: /present 2 times/ });
  t.match(isFromMeta({ ...meta, externalDomains: ["wa.meta.vc", "wa.meta.vc"] }, settings), { reason: "Bad X-FB-External-Domain", cause: /present 2 times/ }, "the right value twice is refused too");
  t.match(isFromMeta({ ...meta, externalDomains: ["evil.example", "wa.meta.vc"] }, settings), { fromMeta: false });
  t.match(isFromMeta({ ...meta, externalDomains: ["wa.meta.vc, evil.example"] }, settings), { fromMeta: false }, "a list in one header is not the value");
});

t.test("business numbers: user params tolerated, digest username without +", async (t) => {
  const numbers = { "+15550001111": { number: "+15550001111", profile: "sales", password: null } };
  t.equal(numberFromUser("+15550001111;tgrp=wacall"), "+15550001111");
  t.equal(lookupBusinessNumber("+15550001111;tgrp=wacall", numbers)?.profile, "sales");
  t.equal(lookupBusinessNumber("15550001111", numbers), null, "the + is part of the number");
  t.equal(lookupBusinessNumber("toString", numbers), null, "no prototype keys");
  t.equal(digestUsername("+15550001111"), "15550001111");
});

t.test("routing settings: parsed, defaulted, and every error names its key", async (t) => {
  const env = (vars: Record<string, string>) => (n: string) => vars[n] ?? null;
  const ok = parseRoutingConfig(env({ WA_NUMBERS: "+15550001111=sales, +15550002222=support", WA_SIP_PASSWORDS: "+15550001111=a=b" }));
  t.same(ok.errors, []);
  t.same(ok.config?.numbers["+15550001111"], { number: "+15550001111", profile: "sales", password: "a=b" });
  t.equal(ok.config?.metaDomain, "wa.meta.vc");
  t.equal(ok.config?.maxCallsPerNumber, 1000);
  t.equal(ok.config?.bsuidUriPrefix, "", "a BSUID goes into Meta's R-URI as it is unless WA_BSUID_URI_PREFIX says otherwise");
  t.equal(ok.config?.webhook, null, "no webhooks unless configured");
  t.same(parseRoutingConfig(env({ WA_WEBHOOK_VERIFY_TOKEN: "t", WA_APP_SECRET: "s" })).config?.webhook, { verifyToken: "t", appSecret: "s" });
  t.match(parseRoutingConfig(env({ WA_APP_SECRET: "s" })).errors, [/^WA_WEBHOOK_VERIFY_TOKEN: Meta's webhooks need both/]);
  t.match(parseRoutingConfig(env({ WA_WEBHOOK_VERIFY_TOKEN: "t" })).errors, [/^WA_APP_SECRET: Meta's webhooks need both/]);
  t.same(ok.config?.metaPrefixes, META_PREFIXES_DEFAULT);
  t.same(ok.config?.internalAllow, ["127.0.0.1/32"], "the internal side is the agent's address by default");
  const withPbx = parseRoutingConfig(env({ WA_AGENT_URI: "sip:10.1.2.3:5080", WA_TRANSFER_PROXY: "sip:192.0.2.44:5060" }));
  t.same(withPbx.config?.internalAllow, ["10.1.2.3/32", "192.0.2.44/32"], "and the transfer proxy's, which sends its BYEs there");
  const listed = parseRoutingConfig(env({ WA_INTERNAL_ALLOW: "10.0.0.0/24, 10.9.9.9, fd00::/8" }));
  t.same(listed.config?.internalAllow, ["10.0.0.0/24", "10.9.9.9/32", "fd00::/8"]);
  const named = parseRoutingConfig(env({ WA_AGENT_URI: "sip:agent.internal:5080" }));
  t.match(named.errors, [/^WA_INTERNAL_ALLOW: must be set when WA_AGENT_URI names no IPv4 address/]);
  const pool = parseRoutingConfig(env({ WA_AGENT_URI: "sip:10.1.2.3:5080;weight=3, sip:10.1.2.4:5080" }));
  t.same(pool.config?.agents, [{ uri: "sip:10.1.2.3:5080", weight: 3 }, { uri: "sip:10.1.2.4:5080", weight: 1 }], "a pool of agents, weights optional");
  t.same(pool.config?.internalAllow, ["10.1.2.3/32", "10.1.2.4/32"], "every agent of the pool may send SIP to the internal side");
  for (const wrong of ["sip:10.1.2.3:5080;weight=0", "sip:10.1.2.3:5080;weight=101", "sip:10.1.2.3:5080, sip:10.1.2.3:5080", "10.1.2.3", " , "]) {
    t.match(parseRoutingConfig(env({ WA_AGENT_URI: wrong, WA_INTERNAL_ALLOW: "10.0.0.0/8" })).errors, [/^WA_AGENT_URI: /], `'${wrong}' is refused, naming the key`);
  }
  t.match(parseRoutingConfig(env({ WA_STATE_REDIS_URL: "127.0.0.1:6379" })).errors, [/^WA_STATE_REDIS_URL: '127.0.0.1:6379' is not a redis:\/\/ URL/]);
  t.equal(parseRoutingConfig(env({ WA_STATE_REDIS_URL: "redis://10.0.0.9:6379/2" })).config?.stateRedis, true, "a Redis URL puts the callback state in Redis");
  const bad = parseRoutingConfig(env({
    WA_NUMBERS: "15550001111=sales",
    WA_SIP_PASSWORDS: "+15559999999=x",
    WA_META_PREFIXES: "157.240.0.0/40",
    WA_INBOUND_AUTH: "off",
    WA_MAX_CALLS_PER_NUMBER: "0",
    WA_AGENT_URI: "127.0.0.1:5080",
    WA_META_EDGE: "wa.meta.vc",
    WA_INTERNAL_ALLOW: "10.0.0.0/33",
    WA_BSUID_URI_PREFIX: "sip:",
  }));
  t.equal(bad.config, null);
  for (const key of ["WA_NUMBERS", "WA_SIP_PASSWORDS", "WA_META_PREFIXES", "WA_INBOUND_AUTH", "WA_MAX_CALLS_PER_NUMBER", "WA_AGENT_URI", "WA_META_EDGE", "WA_INTERNAL_ALLOW", "WA_BSUID_URI_PREFIX"]) {
    t.ok(bad.errors.some((e) => e.startsWith(`${key}:`)), `${key} is named`);
  }
});

t.test("WhatsApp users: +E.164 numbers and business-scoped user ids (BSUIDs), strictly", async (t) => {
  for (const ok of ["+15551234567", "US.13491208655302741918", "DE.a1B2c3", `US.${"1".repeat(253)}`]) t.ok(isWhatsAppUser(ok), ok.slice(0, 30));
  for (const bad of ["15551234567", "+0123456", "us.1349", "USA.1349", "US.", "US.12-34", "US.12 34", "US.12;x=1", `US.${"1".repeat(254)}`, ""]) t.notOk(isWhatsAppUser(bad), bad.slice(0, 30));
  t.equal(metaUserPart("+15551234567", "+"), "+15551234567", "a number is never prefixed");
  t.equal(metaUserPart("US.13491208655302741918", ""), "US.13491208655302741918");
  t.equal(metaUserPart("US.13491208655302741918", "+"), "+US.13491208655302741918");
});

t.test("X-WA-* headers to strip: found in any case after any line end; Meta's X-WA-Meta-* alone are not", async (t) => {
  const msg = (...headers: string[]) => ["BYE sip:+15550001111@sip.example.com SIP/2.0", "Via: SIP/2.0/TLS 157.240.19.130:5061", ...headers, "Content-Length: 0", "", ""].join("\r\n");
  t.notOk(mayCarryWaHeadersToStrip(msg()), "none");
  t.notOk(mayCarryWaHeadersToStrip(msg("x-wa-meta-wacid: wacid.1", "X-WA-META-Call-Duration: 12", "x-Wa-Meta-user-id: 7")), "Meta's own only, in any case");
  for (const name of ["X-WA-Profile", "x-wa-profile", "x-wA-pRoFiLe", "X-Wa-Transfer", "X-WA-Metadata", "X-WA-Met-a"]) {
    t.ok(mayCarryWaHeadersToStrip(msg("x-wa-meta-wacid: wacid.1", `${name}: x`)), `${name}, also next to Meta's own`);
  }
  t.ok(mayCarryWaHeadersToStrip("BYE sip:a@b SIP/2.0\nX-WA-Meta-Wacid: 2\nX-WA-Profile: x\n\n"), "after a bare LF");
  t.ok(mayCarryWaHeadersToStrip("BYE sip:a@b SIP/2.0\rX-WA-Profile: x\r\n\r\n"), "after a lone CR");
  t.ok(mayCarryWaHeadersToStrip(msg("X-WA-")), "at the end of the text");
  t.notOk(mayCarryWaHeadersToStrip(msg("X-Other: X-WA-Profile", "Subject: x-wa-profile")), "inside a value is no header name");
  t.notOk(mayCarryWaHeadersToStrip("-wa-x: 1\r\n"), "a middle at the very start has no line start before it");
  t.notOk(mayCarryWaHeadersToStrip("x-wa-x: 1\r\n"), "nor has a name at the very start");
  t.notOk(mayCarryWaHeadersToStrip("\n-wa-x\r\n-WA-\nX"), "a middle without its x");
});

t.test("X-WA-* headers to strip: the same answer as the rule's definition, for 3,000 messages made of its edge cases", async (t) => {
  // The definition: a line end, then x-wa- in any case, not followed by meta- in any case.
  const definition = (raw: string) => /[\r\n]x-wa-(?!meta-)/i.test(raw);
  const parts = ["\r\n", "\n", "\r", "x", "X", "-", "wa", "wA", "Wa", "WA", "x-wA-", "\rX-Wa-m", "-wa-", "x-wa-", "X-WA-", "meta-", "MeTa-", "meta", "Via: a", "x-wa-meta-", "\nX-WA-Meta-", ": 1"];
  let state = 7;
  const next = () => (state = (state * 1103515245 + 12345) % 2147483648);
  let mismatches = 0;
  for (let n = 0; n < 3000; n++) {
    let raw = "";
    for (let k = next() % 12; k >= 0; k--) raw += parts[next() % parts.length];
    if (mayCarryWaHeadersToStrip(raw) !== definition(raw) && mismatches++ < 5) t.fail(`differs from the definition for ${JSON.stringify(raw)}`);
  }
  t.equal(mismatches, 0);
});
