/**
 * Meta's webhooks for call permissions, on the permission API's listener (WA_API_PORT, loopback:
 * the site's HTTPS reverse proxy forwards Meta's deliveries for this path only):
 *
 *   GET  /webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…
 *        Meta's verification handshake: the challenge back when the token is WA_WEBHOOK_VERIFY_TOKEN
 *   POST /webhooks/whatsapp  a delivery, signed by Meta: X-Hub-Signature-256 = HMAC-SHA256 of the
 *        raw body with the app secret (WA_APP_SECRET); the users' call-permission replies update
 *        the same state as PUT/DELETE /permissions
 *
 * Whom it trusts: only a delivery whose signature matches (the source address is the proxy's).
 * A bad or missing signature is refused 403 and logged with the peer; nothing is changed.
 */
import { routingConfig } from "../config";
import { pvRaw, pvString, wellFormed } from "../ksr/pv";
import { hubSignatureAsBase64url, permissionReplies, sameSecret } from "../policy/permission-webhook";
import { pairKey, recordPermission } from "./callback-state";

export const WEBHOOK_PATH = "/webhooks/whatsapp";

function reply(code: number, reason: string, type: string, body: string): void {
  KSR.xhttp.xhttp_reply(code, reason, type, body);
}

function json(code: number, reason: string, body: unknown): void {
  reply(code, reason, "application/json", `${JSON.stringify(body)}\n`);
}

function queryParam(url: string, name: string): string {
  const q = url.indexOf("?") >= 0 ? url.slice(url.indexOf("?") + 1) : "";
  for (const part of q.split("&")) {
    const eq = part.indexOf("=");
    const key = decodeURIComponent((eq < 0 ? part : part.slice(0, eq)).replace(/\+/g, " "));
    if (key === name) return decodeURIComponent((eq < 0 ? "" : part.slice(eq + 1)).replace(/\+/g, " "));
  }
  return "";
}

export function permissionWebhook(method: string, url: string): void {
  const cfg = routingConfig();
  if (!cfg) return json(503, "Service Unavailable", { error: "routing settings are invalid (see the Kamailio log)" });
  const hook = cfg.webhook;
  if (!hook) return json(503, "Service Unavailable", { error: "webhooks are not configured (WA_WEBHOOK_VERIFY_TOKEN, WA_APP_SECRET)" });
  const peer = `${pvString("$si")}:${pvString("$sp")}`;
  if (method === "GET") {
    if (queryParam(url, "hub.mode") === "subscribe" && sameSecret(queryParam(url, "hub.verify_token"), hook.verifyToken)) {
      KSR.notice(`webhook: Meta's verification handshake answered (from ${peer})\n`);
      return reply(200, "OK", "text/plain", queryParam(url, "hub.challenge"));
    }
    KSR.warn(`webhook: verification refused from ${peer}: hub.mode '${queryParam(url, "hub.mode")}' or the verify token does not match WA_WEBHOOK_VERIFY_TOKEN\n`);
    return json(403, "Forbidden", { error: "verification failed" });
  }
  if (method !== "POST") return json(405, "Method Not Allowed", { error: "use GET (verification) or POST (deliveries)" });
  const expected = hubSignatureAsBase64url(pvString("$hdr(X-Hub-Signature-256)"));
  // The HMAC is over the body's bytes exactly as they came (pvRaw: not re-encoded).
  KSR.crypto.hmac_sha256(pvRaw("$rb") ?? "", hook.appSecret, "$var(wa_webhook_hmac)");
  if (!expected || !sameSecret(expected, pvString("$var(wa_webhook_hmac)"))) {
    KSR.err(`webhook: delivery from ${peer} refused: ${expected ? "X-Hub-Signature-256 does not match the body signed with WA_APP_SECRET" : "no X-Hub-Signature-256 of the form sha256=<64 hex digits>"}\n`);
    return json(403, "Forbidden", { error: "bad signature" });
  }
  let payload: unknown;
  try {
    payload = JSON.parse(wellFormed(pvRaw("$rb") ?? ""));
  } catch (e) {
    KSR.err(`webhook: signed delivery from ${peer} is not JSON\n`);
    return json(400, "Bad Request", { error: "body is not JSON" });
  }
  const { updates, ignored } = permissionReplies(payload);
  const applied: string[] = [];
  for (const u of updates) {
    if (!cfg.numbers.hasOwnProperty(u.business)) {
      ignored.push(`${u.business} is not in WA_NUMBERS`);
      continue;
    }
    recordPermission(pairKey(u.business, u.user), u.grant ? { type: "granted", kind: u.grant } : { type: "revoked" });
    KSR.notice(`webhook: ${u.user} answered ${u.business}'s call permission request: ${u.said} → ${u.grant ? `${u.grant} permission` : "revoked"}\n`);
    applied.push(`${u.business} → ${u.user}: ${u.grant ?? "revoked"}`);
  }
  for (const why of ignored) KSR.warn(`webhook: ignored: ${why}\n`);
  // Meta retries a delivery that is not answered 200: a signed one always is, with what was done.
  json(200, "OK", { applied, ignored });
}
