/**
 * Typed, safe access to pseudo-variables and headers (KSR.pv.get returns string | number | null).
 *
 * A peer can put any bytes in a header. Duktape keeps a string's bytes as they came, and reading
 * an invalid UTF-8 sequence (a stray continuation byte, a truncated or 0xFF lead) throws
 * "internal error" from charCodeAt and from every regular expression. So every string read from
 * a message is checked on its raw bytes (Duktape.enc, native) before routing code sees it: ASCII
 * (nearly all SIP) comes back as it is, valid UTF-8 is decoded, and each invalid byte becomes
 * U+FFFD. The result is always well-formed.
 */

import { memoize } from "../runtime/memo";

/** Duktape's own built-in; absent under Node (the unit tests), whose strings are always well-formed. */
declare const Duktape: { enc(format: "hex" | "jx", value: string): string } | undefined;

/** The value as a well-formed string; "" when the variable is unset. */
export function pvString(name: string): string {
  const v = KSR.pv.get(name);
  return v === null ? "" : wellFormed(String(v));
}

/**
 * The value exactly as Kamailio holds it (null when unset), unchecked: only for values that are
 * compared with === or passed back to Kamailio (tags, our own dialog variables), never given to
 * a regular expression, charCodeAt or case mapping. Comparing raw bytes is exact, and it saves
 * the check on every ACK and BYE.
 */
export function pvRaw(name: string): string | null {
  const v = KSR.pv.get(name);
  return v === null ? null : String(v);
}

/**
 * Every value of a header, in order (one per header line), of the request being routed or, in a
 * failure route, of the reply that failed the transaction ($T_rpl).
 */
export function headerValues(name: string, of: "request" | "failed reply" = "request"): string[] {
  const pv = (inner: string) => (of === "request" ? inner : `$T_rpl(${inner})`);
  const count = KSR.pv.get(pv(`$hdrc(${name})`)) as number | null;
  const out: string[] = [];
  for (let i = 0; i < (count || 0); i++) out.push(pvString(pv(`$(hdr(${name})[${i}])`)));
  return out;
}

const ASCII_HEX = /^(?:[0-7][0-9a-f])*$/;

export function wellFormed(s: string): string {
  return typeof Duktape === "undefined" ? s : checkedOnce(s);
}

/**
 * checkBytes, once per value and worker: most values read per request come again and again (the
 * method, Meta's User-Agent and domain, our numbers, the agent's address), and the check makes
 * two new strings each time (~1.4 µs in Duktape, ~4 values per request). A value seen before is
 * one property lookup; values unique per call (Call-IDs, tags) only empty the table now and then.
 */
const checkedOnce = memoize(256, checkBytes);

/** Only under Duktape (wellFormed says so). */
function checkBytes(s: string): string {
  const duktape = Duktape!;
  // Fast path for printable ASCII (nearly every value): JX writes every other byte, and " and \,
  // as an ASCII escape, so only a printable-ASCII value comes back as itself. A string compare
  // costs a fraction of the regular expression below on the hex (~0.7 vs 2.5 µs for a Route).
  if (duktape.enc("jx", s) === `"${s}"`) return s;
  const hex = duktape.enc("hex", s);
  return ASCII_HEX.test(hex) ? s : decodeUtf8(hex);
}

/** Strict UTF-8 decoding of hex-written bytes; each byte of an invalid sequence becomes U+FFFD. */
export function decodeUtf8(hex: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < hex.length; i += 2) bytes.push(parseInt(hex.substr(i, 2), 16));
  let out = "";
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    const n = b < 0x80 ? 0 : b >= 0xc2 && b < 0xe0 ? 1 : b >= 0xe0 && b < 0xf0 ? 2 : b >= 0xf0 && b < 0xf5 ? 3 : -1;
    let cp = n === 0 ? b : n === 1 ? b & 0x1f : n === 2 ? b & 0x0f : b & 0x07;
    let ok = n >= 0 && i + n < bytes.length + (n === 0 ? 1 : 0);
    for (let k = 1; ok && k <= n; k++) {
      ok = (bytes[i + k] & 0xc0) === 0x80;
      cp = (cp << 6) | (bytes[i + k] & 0x3f);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid too.
    if (ok && ((n === 2 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) || (n === 3 && (cp < 0x10000 || cp > 0x10ffff)))) ok = false;
    if (!ok) {
      out += "\ufffd";
      i++;
      continue;
    }
    out += cp > 0xffff ? String.fromCharCode(0xd800 + ((cp - 0x10000) >> 10), 0xdc00 + ((cp - 0x10000) & 0x3ff)) : String.fromCharCode(cp);
    i += n + 1;
  }
  return out;
}
