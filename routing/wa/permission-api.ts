/**
 * The permission API over HTTP on loopback (xhttp; kamailio.cfg listens on WA_API_PORT), so
 * the business backend that receives Meta's permission webhooks can feed the callback rules.
 *
 *   GET    /permissions                      every pair with its state
 *   GET    /permissions/{business}/{user}    one pair (404 if unknown)
 *   PUT    /permissions/{business}/{user}    {"kind": "temporary" | "permanent"}: grant
 *   DELETE /permissions/{business}/{user}    revoke (the pair's other state, e.g. calls counted
 *                                            today, stays; a pair left with none is gone)
 *
 * A grant or revocation is stored before the answer: on disk (fsynced) with SQLite, in Redis
 * (shared by every node) with WA_STATE_REDIS_URL; 503 when Redis does not answer.
 *
 * Numbers are E.164 with "+" (URL-encoded as %2B or not); a user may also be a business-scoped
 * user id. Meta's own webhook deliveries come in on /webhooks/whatsapp (permission-webhook.ts).
 */
import { routingConfig } from "../config";
import { pvString } from "../ksr/pv";
import { allPairs, nowSeconds, pairKey, readPair, recordPermission, isStateUnavailable } from "./callback-state";
import { DAY, type PairState } from "../policy/callback-rules";
import { isWhatsAppUser } from "../policy/numbers";
import { permissionWebhook, WEBHOOK_PATH } from "./permission-webhook";

function reply(code: number, reason: string, body: unknown): void {
  KSR.xhttp.xhttp_reply(code, reason, "application/json", `${JSON.stringify(body)}\n`);
}

/** The state as the API shows it: connected calls counted over the last 24 h. */
function view(key: string, s: PairState) {
  const [business, user] = key.split("|");
  const now = nowSeconds();
  return {
    business,
    user,
    permission: s.permission,
    permissionExpires: s.permissionExpires,
    connectedLast24h: s.connected.filter((t) => t > now - DAY).length,
    unansweredInARow: s.unanswered,
    blockedUntil: s.blockedUntil,
    activeCall: s.activeCall,
  };
}

export function permissionApi(): void {
  try {
    handle(pvString("$rm"), String(KSR.xhttp.get_hu() || ""));
  } catch (err) {
    if (isStateUnavailable(err)) {
      // Nothing was recorded: the backend (or Meta, for a webhook delivery) tries again later.
      KSR.err(`permission API: callback state unavailable: ${err.message}\n`);
      return reply(503, "Service Unavailable", { error: `callback state unavailable: ${err.message}` });
    }
    KSR.err(`permission API error: ${String(err)}\n`);
    reply(500, "Internal Server Error", { error: "internal error, see the Kamailio log" });
  }
}

function handle(method: string, url: string): void {
  const path = url.split("?")[0];
  if (path === WEBHOOK_PATH) return permissionWebhook(method, url);
  // Prometheus text: Kamailio's statistics and the routing's counters (wa/metrics.ts).
  if (path === "/metrics") return void KSR.xhttp_prom.dispatch();
  if (path === "/permissions" || path === "/permissions/") {
    if (method !== "GET") return reply(405, "Method Not Allowed", { error: "use GET on /permissions" });
    const list: unknown[] = [];
    for (const p of allPairs()) list.push(view(p.key, p.state));
    return reply(200, "OK", list);
  }
  const m = path.match(/^\/permissions\/([^/]+)\/([^/]+)$/);
  if (!m) return reply(404, "Not Found", { error: `no such resource ${path}` });
  const business = decodeURIComponent(m[1]);
  const user = decodeURIComponent(m[2]);
  const cfg = routingConfig();
  if (!cfg) return reply(503, "Service Unavailable", { error: "routing settings are invalid (see the Kamailio log)" });
  if (!cfg.numbers.hasOwnProperty(business)) return reply(400, "Bad Request", { error: `business ${business} is not in WA_NUMBERS` });
  if (!isWhatsAppUser(user)) return reply(400, "Bad Request", { error: `user ${user} is neither E.164 with + nor a business-scoped user id (e.g. US.13491208655302741918)` });
  const key = pairKey(business, user);
  switch (method) {
    case "GET": {
      const s = readPair(key);
      return s ? reply(200, "OK", view(key, s)) : reply(404, "Not Found", { error: `no state for ${business} → ${user}` });
    }
    case "PUT": {
      let kind: unknown;
      try {
        kind = (JSON.parse(pvString("$rb")) as { kind?: unknown }).kind;
      } catch (e) {
        return reply(400, "Bad Request", { error: "body must be JSON like {\"kind\":\"temporary\"}" });
      }
      if (kind !== "temporary" && kind !== "permanent") {
        return reply(400, "Bad Request", { error: "kind must be \"temporary\" (7 days) or \"permanent\"" });
      }
      KSR.notice(`permission API: ${kind} permission for ${business} → ${user}\n`);
      return reply(200, "OK", view(key, recordPermission(key, { type: "granted", kind })));
    }
    case "DELETE":
      KSR.notice(`permission API: permission revoked for ${business} → ${user}\n`);
      return reply(200, "OK", view(key, recordPermission(key, { type: "revoked" })));
    default:
      return reply(405, "Method Not Allowed", { error: "use GET, PUT or DELETE" });
  }
}
