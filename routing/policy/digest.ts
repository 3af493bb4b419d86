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
