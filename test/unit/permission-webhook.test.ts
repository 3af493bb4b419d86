/** Meta's permission webhooks, the pure part: the signature header and the users' replies in a delivery. */
import t from "tap";
import { createHmac } from "node:crypto";
import { hubSignatureAsBase64url, permissionReplies, sameSecret } from "../../routing/policy/permission-webhook.js";

t.test("X-Hub-Signature-256 in the form Kamailio's crypto module writes the HMAC (base64url, no padding)", async (t) => {
  for (const body of ["{}", '{"object":"whatsapp_business_account"}', "Zoë"]) {
    const mac = () => createHmac("sha256", "secret").update(body);
    const hex = mac().digest("hex");
    t.equal(hubSignatureAsBase64url(`sha256=${hex}`), mac().digest("base64url"), body);
    t.equal(hubSignatureAsBase64url(`sha256=${hex.toUpperCase()}`), mac().digest("base64url"), "hex in capitals");
  }
  for (const bad of ["", "sha256=", "sha1=abcdef", `sha256=${"g".repeat(64)}`, `sha256=${"a".repeat(63)}`]) t.equal(hubSignatureAsBase64url(bad), null, bad || "(empty)");
  t.ok(sameSecret("abc", "abc"));
  t.notOk(sameSecret("abc", "abd"));
  t.notOk(sameSecret("abc", "abcd"));
});

const delivery = (messages: unknown[], display = "15550001111") => ({
  object: "whatsapp_business_account",
  entry: [{ id: "1", changes: [{ field: "messages", value: { metadata: { display_phone_number: display }, messages } }] }],
});
const permissionReply = (from: string, reply: Record<string, unknown>) => ({
  from, type: "interactive", interactive: { type: "call_permission_reply", call_permission_reply: reply },
});

t.test("call-permission replies: accept temporary or permanent, reject; numbers get their +, BSUIDs stay", async (t) => {
  const { updates, ignored } = permissionReplies(delivery([
    permissionReply("15551234567", { response: "accept", is_permanent: false, expiration_timestamp: 1796836800, response_source: "user_action" }),
    permissionReply("US.13491208655302741918", { response: "accept", is_permanent: true, response_source: "user_action" }),
    permissionReply("15557770000", { response: "reject", is_permanent: false, response_source: "automatic" }),
    { from: "15551234567", type: "text", text: { body: "hello" } },
  ]));
  t.same(updates.map((u) => [u.business, u.user, u.grant]), [
    ["+15550001111", "+15551234567", "temporary"],
    ["+15550001111", "US.13491208655302741918", "permanent"],
    ["+15550001111", "+15557770000", null],
  ]);
  t.same(ignored, [], "a text message is not ours and not worth a word");
});

t.test("what cannot be taken is named; other deliveries are left alone", async (t) => {
  t.same(permissionReplies({ object: "page", entry: [] }).ignored, ["not a whatsapp_business_account delivery"]);
  t.same(permissionReplies(null).updates, []);
  t.same(permissionReplies(delivery([permissionReply("not-a-user", { response: "accept" })])).ignored, ["call_permission_reply from 'not-a-user', neither a number nor a business-scoped user id"]);
  t.same(permissionReplies(delivery([permissionReply("15551234567", { response: "maybe" })])).ignored, ["call_permission_reply from +15551234567 without response accept/reject"]);
  t.same(permissionReplies(delivery([permissionReply("15551234567", { response: "accept" })], "n/a")).ignored, ["call_permission_reply without a usable metadata.display_phone_number"]);
  t.same(permissionReplies(delivery([permissionReply("15551234567", { response: "accept" })], "+1 555-000-1111")).updates.map((u) => u.business), ["+15550001111"], "a display number with spaces and dashes");
  const statuses = { object: "whatsapp_business_account", entry: [{ changes: [{ field: "messages", value: { statuses: [{ status: "read" }] } }, { field: "calls", value: {} }] }] };
  t.same(permissionReplies(statuses), { updates: [], ignored: [] });
});
