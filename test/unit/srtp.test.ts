/** SRTP AES_CM_128_HMAC_SHA1_80 of the benchmarks (bench/lib/srtp.ts) against published vectors. */
import t from "tap";
import { aesCmKeystream, cryptoLine, deriveSessionKeys, newSrtpKeys, parseCryptoLine, SrtpSession } from "../../bench/lib/srtp.js";

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");

t.test("AES-CM keystream: RFC 3711 appendix B.2", async (t) => {
  const key = hex("2B7E151628AED2A6ABF7158809CF4F3C");
  const iv = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000");
  const stream = aesCmKeystream(key, iv, 0xff02 * 16);
  const block = (counter: number) => stream.subarray(counter * 16, counter * 16 + 16).toString("hex").toUpperCase();
  t.equal(block(0x0000), "E03EAD0935C95E80E166B16DD92B4EB4");
  t.equal(block(0x0001), "D23513162B02D0F72A43A2FE4A5F97AB");
  t.equal(block(0x0002), "41E95B3BB0A2E8DD477901E4FCA894C0");
  t.equal(block(0xfeff), "EC8CDF7398607CB0F2D21675EA9EA1E4");
  t.equal(block(0xff00), "362B7C3C6773516318A077D7FC5073AE");
  t.equal(block(0xff01), "6A2CC3787889374FBEB4C81B17BA6C44");
});

t.test("session key derivation: RFC 3711 appendix B.3", async (t) => {
  const session = deriveSessionKeys({ key: hex("E1F97A0D3E018BE0D64FA32C06DE4139"), salt: hex("0EC675AD498AFEEBB6960B3AABE6") });
  t.equal(session.encryption.toString("hex").toUpperCase(), "C61E7A93744F39EE10734AFE3FF7A087");
  t.equal(session.salt.toString("hex").toUpperCase(), "30CBBC08863D8C85D49DB34A9AE1");
  t.equal(session.auth.toString("hex").toUpperCase(), "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4");
});

t.test("a whole packet: libsrtp's reference vector (SSRC cafebabe, seq 0x1234)", async (t) => {
  const keys = { key: hex("E1F97A0D3E018BE0D64FA32C06DE4139"), salt: hex("0EC675AD498AFEEBB6960B3AABE6") };
  const plain = Buffer.concat([hex("800f1234decafbadcafebabe"), Buffer.alloc(16, 0xab)]);
  const cipher = hex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb");
  t.same(new SrtpSession(keys).protect(plain), cipher);
  t.same(new SrtpSession(keys).unprotect(cipher), plain);
});

function rtp(seq: number, ssrc: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(12);
  header[0] = 0x80;
  header[1] = 111;
  header.writeUInt16BE(seq, 2);
  header.writeUInt32BE((seq * 960) >>> 0, 4);
  header.writeUInt32BE(ssrc, 8);
  return Buffer.concat([header, payload]);
}

t.test("round trip across a sequence number wrap, two SSRCs, tampering refused", async (t) => {
  const keys = newSrtpKeys();
  const sender = new SrtpSession(keys);
  const receiver = new SrtpSession(keys);
  let encrypted = 0;
  let recovered = 0;
  for (const ssrc of [0x11223344, 0xfedcba98]) {
    for (let i = 0; i < 40; i++) {
      const seq = (65520 + i) & 0xffff;
      const packet = rtp(seq, ssrc, Buffer.from(`frame ${i} of ${ssrc}`));
      const srtp = sender.protect(packet);
      if (srtp.subarray(12, packet.length).toString() !== `frame ${i} of ${ssrc}`) encrypted++;
      if (receiver.unprotect(srtp).equals(packet)) recovered++;
    }
  }
  t.equal(encrypted, 80, "every payload encrypted");
  t.equal(recovered, 80, "every packet recovered, before and after the wrap");
  // Past the wrap both sides are at rollover counter 1; a packet that used ROC 0 would not authenticate.
  const late = sender.protect(rtp(5, 0x11223344, Buffer.from("after wrap")));
  t.same(receiver.unprotect(late).subarray(12).toString(), "after wrap");

  const tampered = Buffer.from(sender.protect(rtp(6, 0x11223344, Buffer.from("hello"))));
  tampered[13] ^= 1;
  t.throws(() => receiver.unprotect(tampered), /auth tag mismatch/);
  t.throws(() => new SrtpSession(newSrtpKeys()).unprotect(sender.protect(rtp(7, 1, Buffer.from("x")))), /auth tag mismatch/, "other keys");
  t.throws(() => receiver.unprotect(Buffer.alloc(15)), /too short/);
});

t.test("a=crypto lines: written, read back, bad ones refused with the cause", async (t) => {
  const keys = newSrtpKeys();
  const line = cryptoLine(1, keys);
  t.match(line, /^a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:[A-Za-z0-9+/]{40}$/);
  const sdp = `v=0\r\nm=audio 4000 RTP/SAVP 111\r\na=crypto:2 AES_256_CM_HMAC_SHA1_80 inline:${Buffer.alloc(46).toString("base64")}\r\n${line}|2^31\r\n`;
  t.same(parseCryptoLine(sdp), keys, "skips other suites, ignores the lifetime");
  t.throws(() => parseCryptoLine("v=0\r\nm=audio 4000 RTP/AVP 0\r\n"), /no a=crypto line/);
  t.throws(() => parseCryptoLine("a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:AAAA\r\n"), /no AES_CM_128_HMAC_SHA1_80/);
  t.throws(() => parseCryptoLine("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA\r\n"), /3 bytes/);
  t.throws(() => parseCryptoLine(`${line}|2^20|1:4\r\n`), /MKI/);
  t.throws(() => cryptoLine(1, { key: Buffer.alloc(15), salt: Buffer.alloc(14) }), /16 bytes/);
});
