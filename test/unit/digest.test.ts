/** Digest answers against the published test vectors of RFC 2617 and RFC 7616. */
import t from "tap";
import { createHash } from "node:crypto";
import { digestCredentials, digestResponse, parseDigestChallenge, parseDigestChallenges, strongestChallenge, type HashFn } from "../../routing/policy/digest.js";

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

// Meta's 407 as traced in the field (livekit/sip #685): two Proxy-Authenticate headers.
const META_SHA256 = 'Digest realm="wa.meta.vc",nonce="Y2FsbGVyLW5vbmNl",opaque="b3BhcXVl",algorithm=SHA-256,qop="auth"';
const META_MD5 = 'Digest realm="wa.meta.vc",nonce="Y2FsbGVyLW5vbmNl",opaque="b3BhcXVl",algorithm=MD5,qop="auth"';

t.test("Meta's double challenge: SHA-256 is answered whichever header comes first", async (t) => {
  for (const [headers, order] of [[[META_SHA256, META_MD5], ["SHA-256", "MD5"]], [[META_MD5, META_SHA256], ["MD5", "SHA-256"]]]) {
    const challenges = parseDigestChallenges(headers);
    t.same(challenges.map((c) => c.algorithm), order, "both challenges read, in order");
    t.match(strongestChallenge(challenges), { algorithm: "SHA-256", realm: "wa.meta.vc", opaque: "b3BhcXVl", qop: ["auth"] });
  }
});

t.test("several challenges in one header, quoted commas, other schemes and unknown algorithms", async (t) => {
  const one = parseDigestChallenges([`${META_MD5}, ${META_SHA256}`]);
  t.same(one.map((c) => [c.algorithm, c.nonce, c.qop]), [["MD5", "Y2FsbGVyLW5vbmNl", ["auth"]], ["SHA-256", "Y2FsbGVyLW5vbmNl", ["auth"]]]);
  const quoted = parseDigestChallenges(['Digest realm="a, b", nonce="n1", qop="auth,auth-int", algorithm=MD5, Basic realm="x", Digest realm="c", nonce="n2", algorithm=SHA-512-256']);
  t.same(quoted.map((c) => [c.realm, c.nonce, c.qop, c.algorithm]), [["a, b", "n1", ["auth", "auth-int"], "MD5"], ["c", "n2", [], "SHA-512-256"]], "a quoted comma stays in its value; Basic is left out");
  t.equal(strongestChallenge(quoted)?.nonce, "n1", "SHA-512-256 cannot be answered: MD5 it is");
  t.equal(strongestChallenge(parseDigestChallenges(['Digest realm="c", nonce="n2", algorithm=SHA-512-256', 'Basic realm="x"'])), null, "nothing we support");
  t.equal(strongestChallenge(parseDigestChallenges([META_MD5, META_MD5.replace("Y2FsbGVyLW5vbmNl", "second")]))?.nonce, "Y2FsbGVyLW5vbmNl", "the first of equals");
  t.equal(strongestChallenge(parseDigestChallenges(['Digest realm="wa.meta.vc", nonce="x"']))?.algorithm, "MD5", "no algorithm: MD5 (RFC 2617)");
});
