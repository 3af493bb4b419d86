/** Business numbers in Request-URIs: Meta appends configured user params (";tgrp=wacall"). */
import type { BusinessNumber } from "../config";

/** A phone number as Meta writes it: E.164 with "+". */
export function isE164(n: string): boolean {
  return /^\+[1-9]\d{6,14}$/.test(n);
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
