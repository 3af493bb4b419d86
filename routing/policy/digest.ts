/**
 * Digest answers to Meta's challenge (RFC 7616 / RFC 2617, qop=auth): parsing the challenge
 * and computing the response. Pure; the hash function is passed in (in Kamailio the
 * native {s.md5}/{s.sha256} transformations, in tests node's crypto).
 */

export interface DigestChallenge {
  realm: string;
  nonce: string;
  opaque: string | null;
  /** qop options offered; empty for RFC 2069-style challenges. */
  qop: string[];
  algorithm: string;
}

export type HashFn = (algorithm: "MD5" | "SHA-256", input: string) => string;

/** `Digest realm="…", nonce="…", …` → fields; null when it is not a usable Digest challenge. */
export function parseDigestChallenge(header: string): DigestChallenge | null {
  const m = header.match(/^\s*Digest\s+([\s\S]*)$/i);
  if (!m) return null;
  const fields: { [k: string]: string } = {};
  const re = /([A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[1])) !== null) fields[p[1].toLowerCase()] = p[2] !== undefined ? p[2] : p[3];
  if (!fields.realm || !fields.nonce) return null;
  return {
    realm: fields.realm,
    nonce: fields.nonce,
    opaque: fields.hasOwnProperty("opaque") ? fields.opaque : null,
    qop: fields.qop ? fields.qop.split(/\s*,\s*/) : [],
    algorithm: fields.algorithm || "MD5",
  };
}

/**
 * Every challenge in a message's Proxy-Authenticate (or WWW-Authenticate) headers: several
 * headers, or several challenges in one header separated by commas (RFC 7235: a new challenge
 * starts with a scheme token followed by its first parameter). Non-Digest and unusable
 * challenges are left out.
 */
export function parseDigestChallenges(headerValues: string[]): DigestChallenge[] {
  const found: DigestChallenge[] = [];
  for (const value of headerValues) {
    let current = "";
    for (const piece of splitOutsideQuotes(value)) {
      if (/^\s*[A-Za-z][A-Za-z0-9._-]*\s+[A-Za-z0-9_-]+\s*=/.test(piece)) {
        flush(current);
        current = piece;
      } else current += `,${piece}`;
    }
    flush(current);
  }
  return found;

  function flush(challenge: string): void {
    const parsed = challenge ? parseDigestChallenge(challenge) : null;
    if (parsed) found.push(parsed);
  }
}

/** Splits at commas that are not inside a quoted string. */
function splitOutsideQuotes(value: string): string[] {
  const pieces: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charAt(i);
    if (c === "\\" && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (c === "," && !quoted) {
      pieces.push(value.slice(start, i));
      start = i + 1;
    }
  }
  pieces.push(value.slice(start));
  return pieces;
}

/** Our preference among the algorithms we can answer: the stronger first. */
const STRENGTH: { [algorithm: string]: number } = { "SHA-256": 2, MD5: 1 };

/**
 * The challenge to answer: the strongest algorithm we support (SHA-256 over MD5), the first of
 * equals; null when none can be answered. Meta's 407 carries SHA-256 and MD5 challenges, in
 * either order; answering the first would send an MD5 digest although SHA-256 was offered.
 */
export function strongestChallenge(challenges: DigestChallenge[]): DigestChallenge | null {
  let best: DigestChallenge | null = null;
  for (const ch of challenges) {
    const alg = supportedAlgorithm(ch.algorithm);
    if (alg && (!best || STRENGTH[alg] > STRENGTH[supportedAlgorithm(best.algorithm)!])) best = ch;
  }
  return best;
}

/** The algorithm name as the hash function takes it, or null for ones we cannot answer. */
export function supportedAlgorithm(algorithm: string): "MD5" | "SHA-256" | null {
  const a = algorithm.toUpperCase();
  return a === "MD5" ? "MD5" : a === "SHA-256" ? "SHA-256" : null;
}

export interface DigestAnswer {
  username: string;
  password: string;
  method: string;
  uri: string;
  cnonce: string;
  /** Nonce count, 8 hex digits. */
  nc: string;
}

/** The response value: KD(H(A1), nonce:nc:cnonce:qop:H(A2)), or the RFC 2069 form without qop. */
export function digestResponse(ch: DigestChallenge, a: DigestAnswer, hash: HashFn): string {
  const alg = supportedAlgorithm(ch.algorithm);
  if (!alg) throw new Error(`unsupported digest algorithm ${ch.algorithm}`);
  const ha1 = hash(alg, `${a.username}:${ch.realm}:${a.password}`);
  const ha2 = hash(alg, `${a.method}:${a.uri}`);
  return ch.qop.length
    ? hash(alg, `${ha1}:${ch.nonce}:${a.nc}:${a.cnonce}:auth:${ha2}`)
    : hash(alg, `${ha1}:${ch.nonce}:${ha2}`);
}

/** The Authorization/Proxy-Authorization header value answering the challenge. */
export function digestCredentials(ch: DigestChallenge, a: DigestAnswer, hash: HashFn): string {
  const parts = [
    `username="${a.username}"`,
    `realm="${ch.realm}"`,
    `nonce="${ch.nonce}"`,
    `uri="${a.uri}"`,
    `response="${digestResponse(ch, a, hash)}"`,
    `algorithm=${ch.algorithm}`,
  ];
  if (ch.qop.length) parts.push("qop=auth", `nc=${a.nc}`, `cnonce="${a.cnonce}"`);
  if (ch.opaque !== null) parts.push(`opaque="${ch.opaque}"`);
  return `Digest ${parts.join(", ")}`;
}
