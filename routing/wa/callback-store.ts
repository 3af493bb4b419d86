/**
 * What a store of the callback-rule state does (callback-state.ts picks one): the single node's
 * htable + SQLite (callback-state-sqlite.ts) or Redis shared by several nodes
 * (callback-state-redis.ts). Each change of a pair is one atomic step against every other
 * change of that pair, on this node and, with Redis, on every node.
 */
import type { CallbackDecision, CallbackLimits, PairEvent, PairState } from "../policy/callback-rules";

export interface CallbackStore {
  /** The pair's state; null when it records nothing. */
  readPair(key: string): PairState | null;
  /** Applies an event to a pair and stores the result (a failure is logged: the call goes on). */
  updatePair(key: string, event: PairEvent): void;
  /** A permission granted or revoked (API, webhook): stored before this returns, or throws stateUnavailable. */
  recordPermission(key: string, event: Extract<PairEvent, { type: "granted" | "revoked" }>): PairState;
  /** Applies an event only to a pair that has state already (e.g. a user's own call). */
  updateExistingPair(key: string, event: PairEvent): void;
  /** Decides on a new call and, when allowed, marks it active, in one atomic step. */
  admitCall(key: string, callId: string, limits: CallbackLimits): CallbackDecision;
  /** Every pair with its state (for the permission API's list). */
  allPairs(): Array<{ key: string; state: PairState }>;
}

/**
 * The store cannot be reached or refused a change: what depended on it must fail visibly. An
 * Error named "StateUnavailable" (not a subclass: ES5 cannot extend Error, so instanceof would
 * never hold in Duktape).
 */
export function stateUnavailable(message: string): Error {
  const e = new Error(message);
  e.name = "StateUnavailable";
  return e;
}

export function isStateUnavailable(e: unknown): e is Error {
  return e instanceof Error && e.name === "StateUnavailable";
}

export function nowSeconds(): number {
  return Math.floor(new Date().getTime() / 1000);
}

/** A stored state (JSON); null for none, and for an unreadable one, which is logged. */
export function parsePairState(key: string, raw: string | number | null): PairState | null {
  if (raw === null || raw === "") return null;
  try {
    return JSON.parse(String(raw)) as PairState;
  } catch (e) {
    KSR.err(`callback state for ${key} is not JSON ('${String(raw)}'): treated as empty\n`);
    return null;
  }
}
