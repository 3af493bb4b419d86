/**
 * SRTP for the benchmarks that play Meta's side of a call: AES_CM_128_HMAC_SHA1_80 (RFC 3711),
 * RTP only (rtpengine does not need SRTCP from us to forward media), keys exchanged with SDES
 * (RFC 4568 a=crypto lines) as Meta offers them. Built on node:crypto so the benchmarks need no
 * native SRTP library; the benchmark against rtpengine is what proves it interoperates.
 */
import { createCipheriv, createHash, randomBytes, timingSafeEqual, type Cipher, type Hash } from "node:crypto";

export interface SrtpKeys {
  /** Master key, 16 bytes. */
  key: Buffer;
  /** Master salt, 14 bytes. */
  salt: Buffer;
}

const SUITE = "AES_CM_128_HMAC_SHA1_80";
const KEY_BYTES = 16;
const SALT_BYTES = 14;
const AUTH_KEY_BYTES = 20;
const TAG_BYTES = 10;
const RTP_HEADER_BYTES = 12;

export function newSrtpKeys(): SrtpKeys {
  return { key: randomBytes(KEY_BYTES), salt: randomBytes(SALT_BYTES) };
}

/** The SDP attribute offering these keys, e.g. "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:…". */
export function cryptoLine(tag: number, keys: SrtpKeys): string {
  checkKeys(keys);
  return `a=crypto:${tag} ${SUITE} inline:${Buffer.concat([keys.key, keys.salt]).toString("base64")}`;
}

/** The keys of the first AES_CM_128_HMAC_SHA1_80 a=crypto line of an SDP. */
export function parseCryptoLine(sdp: string): SrtpKeys {
  const lines = sdp.split(/\r?\n/).filter((l) => l.startsWith("a=crypto:"));
  if (lines.length === 0) throw new Error("SDP has no a=crypto line");
  const line = lines.find((l) => l.split(/\s+/)[1] === SUITE);
  if (!line) throw new Error(`SDP has no ${SUITE} a=crypto line (has: ${lines.join(" | ")})`);
  // inline:<base64 key||salt>[|lifetime][|MKI:length]; lifetime and MKI are not used here.
  const match = /inline:([A-Za-z0-9+/=]+)(\|[^\s]*)?/.exec(line);
  if (!match) throw new Error(`a=crypto line has no inline key: ${line}`);
  if (match[2] && /\|\d+:\d+/.test(match[2])) throw new Error(`a=crypto line uses an MKI, which is not supported: ${line}`);
  const material = Buffer.from(match[1], "base64");
  if (material.length !== KEY_BYTES + SALT_BYTES) {
    throw new Error(`a=crypto inline key is ${material.length} bytes, ${SUITE} needs ${KEY_BYTES + SALT_BYTES}: ${line}`);
  }
  return { key: material.subarray(0, KEY_BYTES), salt: material.subarray(KEY_BYTES) };
}

function checkKeys(keys: SrtpKeys): void {
  if (keys.key.length !== KEY_BYTES) throw new Error(`SRTP master key must be ${KEY_BYTES} bytes, got ${keys.key.length}`);
  if (keys.salt.length !== SALT_BYTES) throw new Error(`SRTP master salt must be ${SALT_BYTES} bytes, got ${keys.salt.length}`);
}

/** AES-128 on single blocks: one cipher per key, reused for every packet (creating one costs ~10× a packet's encryption). */
function blockCipher(key: Buffer): Cipher {
  const ecb = createCipheriv("aes-128-ecb", key, null);
  ecb.setAutoPadding(false);
  return ecb;
}

/**
 * AES counter-mode keystream (RFC 3711 4.1.1): the blocks IV, IV+1, … encrypted. In SRTP the
 * IV's low 16 bits are zero and the block number goes there.
 */
function keystream(ecb: Cipher, iv: Buffer, length: number): Buffer {
  const blocks = Math.ceil(length / 16);
  if (iv.readUInt16BE(14) !== 0 || blocks > 0x10000) throw new Error("AES-CM: IV's low 16 bits must be zero and the stream at most 2^16 blocks");
  const counters = Buffer.alloc(blocks * 16);
  for (let b = 0; b < blocks; b++) {
    iv.copy(counters, b * 16, 0, 14);
    counters.writeUInt16BE(b, b * 16 + 14);
  }
  return ecb.update(counters).subarray(0, length);
}

/** The AES-CM keystream for a key and IV. Exported for the RFC 3711 B.2 test vector. */
export function aesCmKeystream(key: Buffer, iv: Buffer, length: number): Buffer {
  return keystream(blockCipher(key), iv, length);
}

export interface SessionKeys {
  encryption: Buffer;
  salt: Buffer;
  auth: Buffer;
}

/**
 * Session keys from master keys (RFC 3711 4.3.1) with key derivation rate 0, the SDES default:
 * derived once, r = 0. Exported for the RFC 3711 B.3 test vector.
 */
export function deriveSessionKeys(keys: SrtpKeys): SessionKeys {
  checkKeys(keys);
  const derive = (label: number, length: number) => {
    // x = (label || r) XOR master salt, placed as the top 112 bits of the 128-bit IV.
    const iv = Buffer.alloc(16);
    keys.salt.copy(iv);
    iv[7] ^= label;
    return aesCmKeystream(keys.key, iv, length);
  };
  return { encryption: derive(0, KEY_BYTES), auth: derive(1, AUTH_KEY_BYTES), salt: derive(2, SALT_BYTES) };
}

/** Where an RTP packet's payload starts (after CSRCs and a header extension); throws if malformed. */
function payloadOffset(rtp: Buffer): number {
  if (rtp.length < RTP_HEADER_BYTES) throw new Error(`RTP packet of ${rtp.length} bytes is shorter than its header`);
  if (rtp[0] >> 6 !== 2) throw new Error(`RTP version ${rtp[0] >> 6}, expected 2`);
  let offset = RTP_HEADER_BYTES + 4 * (rtp[0] & 0x0f);
  if (rtp[0] & 0x10) {
    if (rtp.length < offset + 4) throw new Error("RTP header extension is cut off");
    offset += 4 + 4 * rtp.readUInt16BE(offset + 2);
  }
  if (offset > rtp.length) throw new Error(`RTP header (${offset} bytes) is longer than the packet (${rtp.length})`);
  return offset;
}

/** Per-SSRC state: highest sequence number seen and rollover counter (RFC 3711 3.3.1). */
interface StreamState {
  highestSeq: number;
  roc: number;
}

/**
 * One direction of an SRTP stream's keys (what one a=crypto line offers): protects what that side
 * sends, or unprotects what it receives. Keeps a rollover counter per SSRC. No replay list: the
 * benchmarks count duplicates themselves.
 */
export class SrtpSession {
  private readonly salt: Buffer;
  private readonly ecb: Cipher;
  /** HMAC-SHA1's inner and outer hashes with the key blocks already absorbed, copied per packet. */
  private readonly hmacInner: Hash;
  private readonly hmacOuter: Hash;
  private readonly streams = new Map<number, StreamState>();

  constructor(keys: SrtpKeys) {
    const session = deriveSessionKeys(keys);
    this.salt = session.salt;
    this.ecb = blockCipher(session.encryption);
    const pad = (byte: number) => {
      const block = Buffer.alloc(64, byte);
      for (let i = 0; i < session.auth.length; i++) block[i] ^= session.auth[i];
      return block;
    };
    this.hmacInner = createHash("sha1").update(pad(0x36));
    this.hmacOuter = createHash("sha1").update(pad(0x5c));
  }

  /** RTP packet → SRTP packet (payload encrypted, 10-byte auth tag appended). */
  protect(rtp: Buffer): Buffer {
    const offset = payloadOffset(rtp);
    const ssrc = rtp.readUInt32BE(8);
    const seq = rtp.readUInt16BE(2);
    const roc = this.rocFor(ssrc, seq);
    const out = Buffer.alloc(rtp.length + TAG_BYTES);
    rtp.copy(out, 0, 0, offset);
    this.crypt(rtp.subarray(offset), out.subarray(offset, rtp.length), ssrc, roc, seq);
    this.tag(out.subarray(0, rtp.length), roc).copy(out, rtp.length);
    this.accept(ssrc, seq, roc);
    return out;
  }

  /** SRTP packet → RTP packet; throws if the auth tag does not match. */
  unprotect(srtp: Buffer): Buffer {
    if (srtp.length < RTP_HEADER_BYTES + TAG_BYTES) throw new Error(`SRTP packet of ${srtp.length} bytes is too short`);
    const body = srtp.subarray(0, srtp.length - TAG_BYTES);
    const offset = payloadOffset(body);
    const ssrc = body.readUInt32BE(8);
    const seq = body.readUInt16BE(2);
    const roc = this.rocFor(ssrc, seq);
    const expected = this.tag(body, roc);
    if (!timingSafeEqual(expected, srtp.subarray(body.length))) {
      throw new Error(`SRTP auth tag mismatch (SSRC ${ssrc.toString(16)}, seq ${seq}, ROC ${roc})`);
    }
    const out = Buffer.alloc(body.length);
    body.copy(out, 0, 0, offset);
    this.crypt(body.subarray(offset), out.subarray(offset), ssrc, roc, seq);
    this.accept(ssrc, seq, roc);
    return out;
  }

  /** The rollover counter a sequence number belongs to (RFC 3711 3.3.1 and appendix A). */
  private rocFor(ssrc: number, seq: number): number {
    const state = this.streams.get(ssrc);
    if (!state) return 0;
    if (state.highestSeq < 0x8000) return seq - state.highestSeq > 0x8000 && state.roc > 0 ? state.roc - 1 : state.roc;
    return state.highestSeq - 0x8000 > seq ? state.roc + 1 : state.roc;
  }

  /** Records a packet as authentic: moves the highest sequence number and rollover counter. */
  private accept(ssrc: number, seq: number, roc: number): void {
    const state = this.streams.get(ssrc);
    if (!state) this.streams.set(ssrc, { highestSeq: seq, roc });
    else if (roc > state.roc || (roc === state.roc && seq > state.highestSeq)) {
      state.roc = roc;
      state.highestSeq = seq;
    }
  }

  /** XORs the keystream for one packet (RFC 3711 4.1.1) into `to`. */
  private crypt(from: Buffer, to: Buffer, ssrc: number, roc: number, seq: number): void {
    // IV = (session salt * 2^16) XOR (SSRC * 2^64) XOR (packet index * 2^16).
    const iv = Buffer.alloc(16);
    this.salt.copy(iv);
    iv.writeUInt32BE((iv.readUInt32BE(4) ^ ssrc) >>> 0, 4);
    iv.writeUInt32BE((iv.readUInt32BE(8) ^ roc) >>> 0, 8);
    iv.writeUInt16BE(iv.readUInt16BE(12) ^ seq, 12);
    const stream = keystream(this.ecb, iv, from.length);
    for (let i = 0; i < from.length; i++) to[i] = from[i] ^ stream[i];
  }

  /** HMAC-SHA1 (RFC 2104) over the authenticated portion and the rollover counter, cut to 80 bits. */
  private tag(authenticated: Buffer, roc: number): Buffer {
    const rocBytes = Buffer.alloc(4);
    rocBytes.writeUInt32BE(roc);
    const inner = this.hmacInner.copy().update(authenticated).update(rocBytes).digest();
    return this.hmacOuter.copy().update(inner).digest().subarray(0, TAG_BYTES);
  }
}
