/**
 * Callback-rule state per business+user pair: where it lives is the site's choice. With
 * WA_STATE_REDIS_URL, in Redis shared by every node (callback-state-redis.ts); without, in this
 * node's htable and SQLite file (callback-state-sqlite.ts). The rules are policy/callback-rules.ts.
 */
import { routingConfig } from "../config";
import type { CallbackDecision, CallbackLimits, PairEvent, PairState } from "../policy/callback-rules";
import { redisStore } from "./callback-state-redis";
import { sqliteStore } from "./callback-state-sqlite";
import type { CallbackStore } from "./callback-store";

export { isStateUnavailable, nowSeconds } from "./callback-store";

export function pairKey(business: string, user: string): string {
  return `${business}|${user}`;
}

function store(): CallbackStore {
  const cfg = routingConfig();
  return cfg && cfg.stateRedis ? redisStore : sqliteStore;
}

export function readPair(key: string): PairState | null {
  return store().readPair(key);
}

export function updatePair(key: string, event: PairEvent): void {
  store().updatePair(key, event);
}

export function recordPermission(key: string, event: Extract<PairEvent, { type: "granted" | "revoked" }>): PairState {
  return store().recordPermission(key, event);
}

export function updateExistingPair(key: string, event: PairEvent): void {
  store().updateExistingPair(key, event);
}

export function admitCall(key: string, callId: string, limits: CallbackLimits): CallbackDecision {
  return store().admitCall(key, callId, limits);
}

export function allPairs(): Array<{ key: string; state: PairState }> {
  return store().allPairs();
}
