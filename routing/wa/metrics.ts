/**
 * The routing's counters in Kamailio's Prometheus text (GET /metrics on WA_API_PORT, xhttp_prom;
 * declared in kamailio.cfg, shown with the prefix "kamailio_"). Label values are the routing's
 * own constants (directions, outcomes, reason phrases), never a peer's text.
 */

/** A call by direction and what became of it (user-initiated: relayed to the agent; business-initiated: Meta's outcome). */
export function countCall(direction: string, outcome: string): void {
  KSR.xhttp_prom.counter_inc_l2("wa_calls_total", 1, direction, outcome);
}

export function countRefusal(method: string, code: number, reason: string): void {
  KSR.xhttp_prom.counter_inc_l3("wa_refusals_total", 1, method, String(code), reason);
}

/** Our answers to Meta's digest challenges: sent (by algorithm), rejected by Meta, or not possible. */
export function countDigestAnswer(algorithm: string, result: "sent" | "rejected" | "unusable challenge"): void {
  KSR.xhttp_prom.counter_inc_l2("wa_digest_answers_total", 1, algorithm, result);
}

/** The callback rules' decision for a business-initiated call: allowed, or the refusal's reason. */
export function countCallbackDecision(decision: string): void {
  KSR.xhttp_prom.counter_inc_l1("wa_callback_decisions_total", 1, decision);
}

/** An OPTIONS from Meta's edge (its keepalive). */
export function countMetaKeepalive(): void {
  KSR.xhttp_prom.counter_inc_l0("wa_meta_options_total", 1);
}

/** A call that claimed to come from Meta and did not pass (the refusal's reason). */
export function countMetaClassificationFailure(cause: string): void {
  KSR.xhttp_prom.counter_inc_l1("wa_meta_classification_failures_total", 1, cause);
}
