/**
 * Typed, safe access to pseudo-variables and headers (KSR.pv.get returns string | number | null).
 *
 * A peer can put any bytes in a header. Duktape keeps such bytes as they are, and its regular
 * expressions throw "internal error" on an invalid UTF-8 sequence, so every string read from a
 * message is rebuilt from its character codes before routing code sees it: the result is always
 * well-formed, and valid text (e.g. "Düsseldorf") comes out unchanged.
 */

/** The value as a well-formed string; "" when the variable is unset. */
export function pvString(name: string): string {
  const v = KSR.pv.get(name);
  return v === null ? "" : wellFormed(String(v));
}

/** Every value of a header, in order (one per header line). */
export function headerValues(name: string): string[] {
  const count = KSR.pv.get(`$hdrc(${name})`) as number | null;
  const out: string[] = [];
  for (let i = 0; i < (count || 0); i++) out.push(pvString(`$(hdr(${name})[${i}])`));
  return out;
}

/** ASCII strings (nearly every SIP value) come back as they are; others are rebuilt. */
export function wellFormed(s: string): string {
  let ascii = true;
  for (let i = 0; i < s.length && ascii; i++) ascii = s.charCodeAt(i) < 0x80;
  if (ascii) return s;
  const codes: number[] = [];
  for (let i = 0; i < s.length; i++) codes.push(s.charCodeAt(i));
  return String.fromCharCode.apply(null, codes);
}
