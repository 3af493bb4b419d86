/**
 * Callback-rule state in Kamailio: one JSON entry per business+user pair in the htable
 * wa_callback (shared by all workers, loaded from and written back to db_text), changed
 * only under the pair's htable lock. The rules themselves are policy/callback-rules.ts.
 */
import {
  applyPairEvent, callbackDecision, type CallbackDecision, type CallbackLimits, type PairEvent, type PairState,
} from "../policy/callback-rules";

export const CALLBACK_TABLE = "wa_callback";

export function pairKey(business: string, user: string): string {
  return `${business}|${user}`;
}

export function nowSeconds(): number {
  return Math.floor(new Date().getTime() / 1000);
}

export function readPair(key: string): PairState | null {
  const raw = KSR.htable.sht_get(CALLBACK_TABLE, key);
  if (raw === null || raw === "") return null;
  try {
    return JSON.parse(String(raw)) as PairState;
  } catch (e) {
    KSR.err(`callback state for ${key} is not JSON ('${String(raw)}'): treated as empty\n`);
    return null;
  }
}

function locked<T>(key: string, work: () => T): T {
  KSR.htable.sht_lock(CALLBACK_TABLE, key);
  try {
    return work();
  } finally {
    KSR.htable.sht_unlock(CALLBACK_TABLE, key);
  }
}

function write(key: string, state: PairState): void {
  KSR.htable.sht_sets(CALLBACK_TABLE, key, JSON.stringify(state));
}

/** Lock slot that serialises stores, so an older snapshot never lands after a newer one. */
const STORE_LOCK = "~store~";

/**
 * Writes the table to the database (htable.store), after every change and outside any pair
 * lock: state survives a restart or a crash. The table is small (one row per pair).
 */
function persist(): void {
  KSR.htable.sht_lock(CALLBACK_TABLE, STORE_LOCK);
  try {
    KSR.jsonrpcs.exec(JSON.stringify({ jsonrpc: "2.0", method: "htable.store", params: [CALLBACK_TABLE], id: 1 }));
  } finally {
    KSR.htable.sht_unlock(CALLBACK_TABLE, STORE_LOCK);
  }
}

/** Applies an event to a pair and stores the result. */
export function updatePair(key: string, event: PairEvent): PairState {
  const next = locked(key, () => {
    const state = applyPairEvent(readPair(key), event, nowSeconds());
    write(key, state);
    return state;
  });
  persist();
  return next;
}

/** Applies an event only to a pair that has state already (e.g. a user's own call). */
export function updateExistingPair(key: string, event: PairEvent): void {
  // Most callers have no state: one unlocked read settles that without taking the lock (a pair
  // created meanwhile is ordered after this event, which is then a no-op for it anyway).
  const raw = KSR.htable.sht_get(CALLBACK_TABLE, key);
  if (raw === null || raw === "") return;
  const changed = locked(key, () => {
    const current = readPair(key);
    if (current) write(key, applyPairEvent(current, event, nowSeconds()));
    return current !== null;
  });
  if (changed) persist();
}

/** Decides on a new call and, when allowed, marks it active, in one locked step. */
export function admitCall(key: string, callId: string, limits: CallbackLimits): CallbackDecision {
  const decision = locked(key, () => {
    const now = nowSeconds();
    const current = readPair(key);
    const verdict = callbackDecision(current, now, limits);
    if (verdict.allow) write(key, applyPairEvent(current, { type: "call-started", callId }, now));
    return verdict;
  });
  if (decision.allow) persist();
  return decision;
}

/** Every pair with its state (for the permission API's list). */
export function allPairs(): Array<{ key: string; state: PairState }> {
  const out: Array<{ key: string; state: PairState }> = [];
  if (KSR.htable.sht_iterator_start("wa_cb_it", CALLBACK_TABLE) < 0) return out;
  while (KSR.htable.sht_iterator_next("wa_cb_it") > 0) {
    const key = String(KSR.pv.get("$shtitkey(wa_cb_it)"));
    const state = readPair(key);
    if (state) out.push({ key, state });
  }
  KSR.htable.sht_iterator_end("wa_cb_it");
  return out;
}
