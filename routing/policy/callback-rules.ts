/**
 * Meta's call-permission rules for business-initiated calls ("callback rules"), enforced
 * before anything goes to Meta. Pure: the state of one business+user pair in, a decision
 * or the next state out; times are epoch seconds.
 */

export const DAY = 24 * 3600;
export const TEMPORARY_PERMISSION_SECONDS = 7 * DAY;

export interface PairState {
  /** Permission kind; null when none (never granted, revoked, or withdrawn by Meta). */
  permission: "temporary" | "permanent" | null;
  /** When a temporary permission ends. */
  permissionExpires: number | null;
  /** Start times of connected calls (the rolling 24 h window). */
  connected: number[];
  /** Consecutive business-initiated calls that were not answered. */
  unanswered: number;
  /** Meta said the daily limit was hit: no calls before this time. */
  blockedUntil: number | null;
  /** Call-ID of the call in progress for this pair (one at a time). */
  activeCall: string | null;
}

export interface CallbackLimits {
  /** Connected calls per pair per rolling 24 h. */
  dailyLimit: number;
  /** Consecutive unanswered calls after which we stop (Meta revokes at 4). */
  unansweredLimit: number;
}

export type CallbackDecision =
  | { allow: true }
  | { allow: false; code: number; reason: string; cause: string };

export function emptyPairState(): PairState {
  return { permission: null, permissionExpires: null, connected: [], unanswered: 0, blockedUntil: null, activeCall: null };
}

/** True when the state records nothing (a pair in this state needs no entry, in memory or on disk). */
export function isEmptyPairState(s: PairState): boolean {
  return s.permission === null && s.permissionExpires === null && s.connected.length === 0 && s.unanswered === 0 && s.blockedUntil === null && s.activeCall === null;
}

/**
 * The part of a state that outlives the process: all but the call in progress. Dialogs live
 * in memory, so after a restart no call is in progress and none will report its end.
 */
export function lastingPairState(s: PairState): PairState {
  return {
    permission: s.permission, permissionExpires: s.permissionExpires, connected: s.connected,
    unanswered: s.unanswered, blockedUntil: s.blockedUntil, activeCall: null,
  };
}

/** Whether two states (null: none) have the same lasting part (field by field: no JSON). */
export function sameLastingState(a: PairState | null, b: PairState | null): boolean {
  if (a === null || b === null) return (a === null || isEmptyLasting(a)) && (b === null || isEmptyLasting(b));
  if (a.permission !== b.permission || a.permissionExpires !== b.permissionExpires || a.unanswered !== b.unanswered || a.blockedUntil !== b.blockedUntil) return false;
  if (a.connected.length !== b.connected.length) return false;
  for (let i = 0; i < a.connected.length; i++) if (a.connected[i] !== b.connected[i]) return false;
  return true;
}

function isEmptyLasting(s: PairState): boolean {
  return s.permission === null && s.permissionExpires === null && s.connected.length === 0 && s.unanswered === 0 && s.blockedUntil === null;
}

/**
 * Until when a state's lasting part still matters (epoch seconds), for a store that lets entries
 * expire (Redis TTLs); null: for good (a permanent permission, or unanswered calls, which only
 * the user's call or a new permission clears). A temporary permission matters until it ends,
 * a connected call for 24 h, Meta's daily-limit block until it lifts.
 */
export function lastingUntil(s: PairState): number | null {
  if (s.permission === "permanent" || s.unanswered > 0) return null;
  if (s.permission === "temporary" && s.permissionExpires === null) return null;
  let until = 0;
  if (s.permission === "temporary" && s.permissionExpires !== null) until = s.permissionExpires;
  for (let i = 0; i < s.connected.length; i++) if (s.connected[i] + DAY > until) until = s.connected[i] + DAY;
  if (s.blockedUntil !== null && s.blockedUntil > until) until = s.blockedUntil;
  return until;
}

export function callbackDecision(state: PairState | null, now: number, limits: CallbackLimits): CallbackDecision {
  const s = state || emptyPairState();
  if (s.permission === null) {
    return { allow: false, code: 403, reason: "No Call Permission", cause: "no call permission on record for this user" };
  }
  if (s.permission === "temporary" && s.permissionExpires !== null && now >= s.permissionExpires) {
    return { allow: false, code: 403, reason: "No Call Permission", cause: `the temporary permission expired at ${iso(s.permissionExpires)}` };
  }
  if (s.blockedUntil !== null && now < s.blockedUntil) {
    return { allow: false, code: 403, reason: "Daily Call Limit Reached", cause: `Meta reported the daily limit; blocked until ${iso(s.blockedUntil)}` };
  }
  if (s.activeCall !== null) {
    return { allow: false, code: 486, reason: "Busy Here - One Call Per User", cause: `call ${s.activeCall} to this user is still active` };
  }
  const today = s.connected.filter((t) => t > now - DAY).length;
  if (today >= limits.dailyLimit) {
    return { allow: false, code: 403, reason: "Daily Call Limit Reached", cause: `${today} connected calls in the last 24 h (limit ${limits.dailyLimit})` };
  }
  if (s.unanswered >= limits.unansweredLimit) {
    return {
      allow: false,
      code: 403,
      reason: "Too Many Unanswered Calls",
      cause: `${s.unanswered} consecutive unanswered calls (limit ${limits.unansweredLimit}; Meta revokes at 4) until the user calls or a new permission is recorded`,
    };
  }
  return { allow: true };
}

export type PairEvent =
  | { type: "call-started"; callId: string }
  | { type: "answered"; callId: string }
  | { type: "unanswered"; callId: string }
  | { type: "failed"; callId: string }
  | { type: "ended"; callId: string }
  | { type: "meta-no-permission"; callId: string }
  | { type: "meta-daily-limit"; callId: string }
  | { type: "user-called" }
  | { type: "granted"; kind: "temporary" | "permanent" }
  | { type: "revoked" };

/** The state after an event. Connected-call times older than 24 h are dropped. */
export function applyPairEvent(state: PairState | null, event: PairEvent, now: number): PairState {
  const s = state || emptyPairState();
  // Loops, not filter() and closures: Duktape allocates every function object it evaluates.
  const connected: number[] = [];
  for (let i = 0; i < s.connected.length; i++) if (s.connected[i] > now - DAY) connected.push(s.connected[i]);
  const next: PairState = {
    permission: s.permission,
    permissionExpires: s.permissionExpires,
    connected,
    unanswered: s.unanswered,
    blockedUntil: s.blockedUntil !== null && s.blockedUntil > now ? s.blockedUntil : null,
    activeCall: s.activeCall,
  };
  switch (event.type) {
    case "call-started":
      next.activeCall = event.callId;
      break;
    case "answered":
      next.connected.push(now);
      next.unanswered = 0;
      break;
    case "unanswered":
      next.unanswered += 1;
      endsCall(next, event.callId);
      break;
    case "failed":
    case "ended":
      endsCall(next, event.callId);
      break;
    case "meta-no-permission":
      next.permission = null;
      next.permissionExpires = null;
      endsCall(next, event.callId);
      break;
    case "meta-daily-limit":
      next.blockedUntil = now + DAY;
      endsCall(next, event.callId);
      break;
    case "user-called":
      next.unanswered = 0;
      break;
    case "granted":
      next.permission = event.kind;
      next.permissionExpires = event.kind === "temporary" ? now + TEMPORARY_PERMISSION_SECONDS : null;
      next.unanswered = 0;
      break;
    case "revoked":
      next.permission = null;
      next.permissionExpires = null;
      break;
  }
  return next;
}

/** The call, if it is the pair's call in progress, is no longer. */
function endsCall(next: PairState, callId: string): void {
  if (next.activeCall === callId) next.activeCall = null;
}

/** How a final answer from Meta to our INVITE counts. */
export function classifyMetaFailure(status: number, reason: string): "unanswered" | "meta-no-permission" | "meta-daily-limit" | "failed" {
  if (status === 403 && /No Approved Call Permission/i.test(reason)) return "meta-no-permission";
  if (status === 403 && /Per Day Limit/i.test(reason)) return "meta-daily-limit";
  if (status === 480 || status === 408 || status === 487) return "unanswered";
  return "failed";
}

function iso(epoch: number): string {
  return new Date(epoch * 1000).toISOString();
}
