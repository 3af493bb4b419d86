/**
 * Meta's permission webhooks through the real Kamailio (real bundle, the crypto module's
 * HMAC-SHA256): the verification handshake, a signed delivery of users' call-permission replies
 * updating the callback rules' state, and deliveries with a bad or missing signature refused with
 * nothing changed. The deliveries have the shape of Meta's calling webhooks (a `messages` change
 * with an interactive `call_permission_reply`), including a user's name in UTF-8 (the signature
 * is over the raw bytes).
 */
import t from "tap";
import { createHmac } from "node:crypto";
import { startRoutingUnderTest } from "../support/routing-under-test.js";

const BUSINESS = "+15550001111";
const SECRET = "meta-app-secret-6f1c";
const TOKEN = "verify-me-42";

function reply(from: string, response: "accept" | "reject", isPermanent: boolean, name = "Zoë Müller") {
  return {
    contacts: [{ profile: { name }, wa_id: from }],
    messages: [{
      from,
      id: `wamid.${from}`,
      timestamp: "1796232000",
      type: "interactive",
      interactive: {
        type: "call_permission_reply",
        call_permission_reply: { response, is_permanent: isPermanent, ...(isPermanent ? {} : { expiration_timestamp: 1796836800 }), response_source: "user_action" },
      },
    }],
  };
}

function delivery(...values: Array<Record<string, unknown>>): string {
  return JSON.stringify({
    object: "whatsapp_business_account",
    entry: [{
      id: "102290129340398",
      changes: values.map((v) => ({ field: "messages", value: { messaging_product: "whatsapp", metadata: { display_phone_number: "15550001111", phone_number_id: "106540352242922" }, ...v } })),
    }],
  });
}

const sign = (body: string, secret = SECRET) => `sha256=${createHmac("sha256", secret).update(Buffer.from(body, "utf8")).digest("hex")}`;

t.test("Meta's permission webhooks", async (t) => {
  const us = await startRoutingUnderTest(t, { env: { WA_NUMBERS: `${BUSINESS}=sales`, WA_WEBHOOK_VERIFY_TOKEN: TOKEN, WA_APP_SECRET: SECRET } });
  const hook = `${us.api}/webhooks/whatsapp`;
  const post = (body: string, signature?: string) =>
    fetch(hook, { method: "POST", headers: { "content-type": "application/json", ...(signature ? { "x-hub-signature-256": signature } : {}) }, body });
  const pair = async (user: string) => (await fetch(`${us.api}/permissions/${encodeURIComponent(BUSINESS)}/${encodeURIComponent(user)}`)).json();

  t.test("the verification handshake answers the challenge only for the verify token", async (t) => {
    const ok = await fetch(`${hook}?hub.mode=subscribe&hub.verify_token=${TOKEN}&hub.challenge=1158201444`);
    t.equal(ok.status, 200);
    t.equal(await ok.text(), "1158201444");
    const wrong = await fetch(`${hook}?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1`);
    t.equal(wrong.status, 403);
    await us.kamailio.waitForLog(/webhook: verification refused from 127\.0\.0\.1:\d+/);
  });

  t.test("a signed delivery grants (temporary, permanent, for a number and a BSUID) and revokes", async (t) => {
    await fetch(`${us.api}/permissions/${encodeURIComponent(BUSINESS)}/%2B15557770000`, { method: "PUT", body: '{"kind":"permanent"}' });
    const body = delivery(reply("15551234567", "accept", false), reply("US.13491208655302741918", "accept", true), reply("15557770000", "reject", false));
    const res = await post(body, sign(body));
    t.equal(res.status, 200);
    t.same(((await res.json()) as { applied: string[] }).applied, [
      `${BUSINESS} → +15551234567: temporary`,
      `${BUSINESS} → US.13491208655302741918: permanent`,
      `${BUSINESS} → +15557770000: revoked`,
    ]);
    t.match(await pair("+15551234567"), { permission: "temporary" });
    t.match(await pair("US.13491208655302741918"), { permission: "permanent" });
    t.match(await pair("+15557770000"), { permission: null });
    await us.kamailio.waitForLog(/webhook: US\.13491208655302741918 answered \+15550001111's call permission request: accept \(permanent\) → permanent permission/);
  });

  t.test("a bad or missing signature is refused 403 and changes nothing", async (t) => {
    const body = delivery(reply("15559990000", "accept", true));
    for (const signature of [undefined, sign(body, "not-the-secret"), "sha256=zz", sign(`${body} `)]) {
      const res = await post(body, signature);
      t.equal(res.status, 403, String(signature).slice(0, 20));
    }
    t.equal((await fetch(`${us.api}/permissions/${encodeURIComponent(BUSINESS)}/%2B15559990000`)).status, 404, "no state for the pair");
    await us.kamailio.waitForLog(/webhook: delivery from 127\.0\.0\.1:\d+ refused: X-Hub-Signature-256 does not match the body signed with WA_APP_SECRET/);
    await us.kamailio.waitForLog(/webhook: delivery from 127\.0\.0\.1:\d+ refused: no X-Hub-Signature-256 of the form sha256=<64 hex digits>/);
  });

  t.test("a signed delivery for another number or of other events is answered 200 and ignored with the reason", async (t) => {
    const other = delivery({ metadata: { display_phone_number: "15550009999" }, ...reply("15551234567", "reject", false) }, { statuses: [{ id: "wamid.x", status: "read" }] });
    const res = await post(other, sign(other));
    t.equal(res.status, 200);
    t.match(await res.json(), { applied: [], ignored: ["+15550009999 is not in WA_NUMBERS"] });
    t.match(await pair("+15551234567"), { permission: "temporary" }, "unchanged");
  });
});

t.test("without WA_WEBHOOK_VERIFY_TOKEN and WA_APP_SECRET the endpoint says it is not configured", async (t) => {
  const us = await startRoutingUnderTest(t, { env: { WA_NUMBERS: `${BUSINESS}=sales` } });
  const res = await fetch(`${us.api}/webhooks/whatsapp`, { method: "POST", body: "{}" });
  t.equal(res.status, 503);
  t.match(await res.json(), { error: /not configured \(WA_WEBHOOK_VERIFY_TOKEN, WA_APP_SECRET\)/ });
});
