/** Digest answers against the published test vectors of RFC 2617 and RFC 7616. */
import t from "tap";
import { createHash } from "node:crypto";
import { digestCredentials, digestResponse, parseDigestChallenge, type HashFn } from "../../routing/policy/digest.js";

const hash: HashFn = (alg, s) => createHash(alg === "MD5" ? "md5" : "sha256").update(s).digest("hex");

t.test("RFC 2617 §3.5 example (MD5, qop=auth)", async (t) => {
  const ch = parseDigestChallenge(
    'Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
  )!;
  const answer = { username: "Mufasa", password: "Circle Of Life", method: "GET", uri: "/dir/index.html", cnonce: "0a4f113b", nc: "00000001" };
  t.equal(digestResponse(ch, answer, hash), "6629fae49393a05397450978507c4ef1");
  t.equal(
    digestCredentials(ch, answer, hash),
    'Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", ' +
      'response="6629fae49393a05397450978507c4ef1", algorithm=MD5, qop=auth, nc=00000001, cnonce="0a4f113b", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
  );
});

t.test("RFC 7616 §3.9.1 example, SHA-256 and MD5", async (t) => {
  const challenge = (alg: string) =>
    parseDigestChallenge(
      `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=${alg}, ` +
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
    )!;
  const answer = {
    username: "Mufasa", password: "Circle of Life", method: "GET", uri: "/dir/index.html",
    cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", nc: "00000001",
  };
  t.equal(digestResponse(challenge("SHA-256"), answer, hash), "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
  t.equal(digestResponse(challenge("MD5"), answer, hash), "8ca523f5e9506fed4657c9700eebdbec");
});

t.test("Meta's challenge as documented parses; odd ones are refused", async (t) => {
  t.same(parseDigestChallenge('Digest realm="wa.meta.vc",nonce="5f2b1a",opaque="9d8e",algorithm=MD5,qop="auth"'), {
    realm: "wa.meta.vc", nonce: "5f2b1a", opaque: "9d8e", qop: ["auth"], algorithm: "MD5",
  });
  t.equal(parseDigestChallenge('Basic realm="x"'), null);
  t.equal(parseDigestChallenge('Digest nonce="x"'), null, "no realm");
  const noQop = parseDigestChallenge('Digest realm="r", nonce="n"')!;
  t.same(noQop.qop, []);
  t.notMatch(digestCredentials(noQop, { username: "u", password: "p", method: "INVITE", uri: "sip:a@b", cnonce: "c", nc: "00000001" }, hash), /qop|nc=|cnonce|opaque/);
  t.throws(() => digestResponse({ ...noQop, algorithm: "SHA-512-256" }, { username: "u", password: "p", method: "INVITE", uri: "sip:a@b", cnonce: "c", nc: "00000001" }, hash), /unsupported digest algorithm/);
});
