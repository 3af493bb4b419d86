/** Business numbers in Request-URIs: Meta appends configured user params (";tgrp=wacall"). */
import type { BusinessNumber } from "../config";

/** A phone number as Meta writes it: E.164 with "+". */
export function isE164(n: string): boolean {
  return /^\+[1-9]\d{6,14}$/.test(n);
}

/**
 * A business-scoped user id (BSUID): Meta's id for a WhatsApp user, scoped to one business, in
 * webhooks since April 2026 and in calls ("US.13491208655302741918"); a user who changes number
 * gets a new one. Meta's form: a two-letter country code, a dot, letters and digits, at most 256
 * characters. Kept that strict: the id goes into Request-URIs, To headers and table keys.
 */
export function isBsuid(id: string): boolean {
  return id.length <= 256 && /^[A-Z]{2}\.[A-Za-z0-9]+$/.test(id);
}

/** A WhatsApp user as a business may call them: a +E.164 number or a BSUID. */
export function isWhatsAppUser(id: string): boolean {
  return isE164(id) || isBsuid(id);
}

/**
 * The user part of Meta's Request-URI (and To) for a WhatsApp user: a number as it is; a BSUID
 * with WA_BSUID_URI_PREFIX in front (empty by default: Meta's SIP pages do not say how a BSUID
 * is written there).
 */
export function metaUserPart(user: string, bsuidPrefix: string): string {
  return isBsuid(user) ? `${bsuidPrefix}${user}` : user;
}

/** "+15550001111;tgrp=wacall" → "+15550001111". */
export function numberFromUser(user: string): string {
  const semi = user.indexOf(";");
  return semi < 0 ? user : user.slice(0, semi);
}

export function lookupBusinessNumber(
  ruriUser: string,
  numbers: { [n: string]: BusinessNumber },
): BusinessNumber | null {
  const n = numberFromUser(ruriUser);
  return numbers.hasOwnProperty(n) ? numbers[n] : null;
}

/** Meta's digest username for a number: the number without "+". */
export function digestUsername(number: string): string {
  return number.replace(/^\+/, "");
}
