/**
 * Meta's webhook deliveries as far as call permissions go, as pure functions: the signature
 * header, and the users' replies to a call-permission request. A reply is a `messages` change
 * whose message is `interactive` of type `call_permission_reply`:
 *
 *   {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {
 *     "metadata": {"display_phone_number": "15550001111", …},
 *     "messages": [{"from": "15551234567", "type": "interactive", "interactive": {
 *       "type": "call_permission_reply",
 *       "call_permission_reply": {"response": "accept", "is_permanent": false,
 *                                 "expiration_timestamp": 1796836800, "response_source": "user_action"}}}]}}]}]}
 *
 * accept + is_permanent → a permanent permission, accept otherwise → a temporary one (7 days),
 * reject → revoked. Everything else in a delivery (statuses, other messages, calls) is not ours.
 */
import { isBsuid } from "./numbers";

export interface PermissionUpdate {
  business: string;
  user: string;
  /** null: revoke. */
  grant: "temporary" | "permanent" | null;
  /** For the log: what Meta said. */
  said: string;
}

/**
 * X-Hub-Signature-256 ("sha256=<hex>") as Kamailio's crypto module writes an HMAC-SHA256:
 * base64url without padding. null when the header is not of that form.
 */
export function hubSignatureAsBase64url(header: string): string | null {
  const m = /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim());
  if (!m) return null;
  const bytes: number[] = [];
  for (let i = 0; i < 64; i += 2) bytes.push(parseInt(m[1].substr(i, 2), 16));
  return base64url(bytes);
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

function base64url(bytes: number[]): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] || 0) << 8) | (bytes[i + 2] || 0);
    out += ALPHABET.charAt((n >> 18) & 63) + ALPHABET.charAt((n >> 12) & 63);
    if (i + 1 < bytes.length) out += ALPHABET.charAt((n >> 6) & 63);
    if (i + 2 < bytes.length) out += ALPHABET.charAt(n & 63);
  }
  return out;
}

/** Compares in time that does not depend on where the strings differ. */
export function sameSecret(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= (a.charCodeAt(i) || 0) ^ (b.charCodeAt(i) || 0);
  return diff === 0;
}

/** Meta writes numbers without "+" (and the display number maybe with spaces or dashes). */
function userId(from: unknown): string | null {
  if (typeof from !== "string") return null;
  if (/^\d{7,15}$/.test(from)) return `+${from}`;
  return isBsuid(from) ? from : null;
}

function businessNumber(display: unknown): string | null {
  if (typeof display !== "string") return null;
  const digits = display.replace(/[\s()+.-]/g, "");
  return /^\d{7,15}$/.test(digits) ? `+${digits}` : null;
}

type Json = { [key: string]: unknown };
const asObject = (v: unknown): Json | null => (v !== null && typeof v === "object" && !(v instanceof Array) ? (v as Json) : null);
const asArray = (v: unknown): unknown[] => (v instanceof Array ? v : []);

/** The call-permission replies of one delivery, and why anything that looked like one was not taken. */
export function permissionReplies(payload: unknown): { updates: PermissionUpdate[]; ignored: string[] } {
  const updates: PermissionUpdate[] = [];
  const ignored: string[] = [];
  const root = asObject(payload);
  if (!root || root.object !== "whatsapp_business_account") {
    ignored.push("not a whatsapp_business_account delivery");
    return { updates, ignored };
  }
  for (const entry of asArray(root.entry)) {
    for (const change of asArray(asObject(entry)?.changes)) {
      const c = asObject(change);
      const value = asObject(c?.value);
      if (!c || c.field !== "messages" || !value) continue;
      const business = businessNumber(asObject(value.metadata)?.display_phone_number);
      for (const message of asArray(value.messages)) {
        const m = asObject(message);
        const interactive = asObject(m?.interactive);
        if (!m || m.type !== "interactive" || !interactive || interactive.type !== "call_permission_reply") continue;
        const reply = asObject(interactive.call_permission_reply);
        const user = userId(m.from);
        if (!business) ignored.push("call_permission_reply without a usable metadata.display_phone_number");
        else if (!user) ignored.push(`call_permission_reply from '${String(m.from)}', neither a number nor a business-scoped user id`);
        else if (!reply || (reply.response !== "accept" && reply.response !== "reject")) ignored.push(`call_permission_reply from ${user} without response accept/reject`);
        else {
          const grant = reply.response === "reject" ? null : reply.is_permanent === true ? "permanent" : "temporary";
          updates.push({ business, user, grant, said: `${String(reply.response)}${reply.is_permanent === true ? " (permanent)" : ""}` });
        }
      }
    }
  }
  return { updates, ignored };
}
