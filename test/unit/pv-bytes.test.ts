/**
 * Header bytes as Duktape holds them: the routing decodes them strictly (routing/ksr/pv.ts), so
 * no invalid sequence ever reaches a regular expression. Byte cases from the malformed corpus.
 */
import t from "tap";
import { decodeUtf8 } from "../../routing/ksr/pv.js";

const hex = (...bytes: number[]) => Buffer.from(bytes).toString("hex");

t.test("valid UTF-8 is decoded as text, whatever its length", async (t) => {
  t.equal(decodeUtf8(Buffer.from("Düsseldorf").toString("hex")), "Düsseldorf");
  t.equal(decodeUtf8(Buffer.from("€ 𝄞 ok").toString("hex")), "€ 𝄞 ok");
  t.equal(decodeUtf8(""), "");
});

t.test("each byte of an invalid sequence becomes U+FFFD, the rest is kept", async (t) => {
  t.equal(decodeUtf8(hex(0x46, 0xac, 0x63, 0x65)), "F\ufffdce", "a stray continuation byte (Duktape throws on it)");
  t.equal(decodeUtf8(hex(0xc3, 0x28)), "\ufffd(", "a lead byte without its continuation");
  t.equal(decodeUtf8(hex(0x41, 0xe2, 0x82)), "A\ufffd\ufffd", "truncated at the end");
  t.equal(decodeUtf8(hex(0x41, 0xff, 0xfe, 0x42)), "A\ufffd\ufffdB", "bytes that are never UTF-8");
  t.equal(decodeUtf8(hex(0xed, 0xa0, 0x80)), "\ufffd\ufffd\ufffd", "an encoded surrogate");
  t.equal(decodeUtf8(hex(0xc0, 0xaf)), "\ufffd\ufffd", "an overlong '/'");
  t.equal(decodeUtf8(hex(0xf4, 0x90, 0x80, 0x80)), "\ufffd\ufffd\ufffd\ufffd", "past U+10FFFF");
  t.equal(decodeUtf8(hex(0x43, 0x6f, 0x6e, 0xf1, 0x65, 0x6e)), "Con\ufffden", "a 4-byte lead before ASCII");
});

t.test("the result always survives a regular expression", async (t) => {
  for (let b = 0x80; b <= 0xff; b++) {
    const s = decodeUtf8(hex(0x41, b, 0x42));
    t.ok(/^A.+B$/u.test(s), `byte ${b.toString(16)}`);
  }
});
