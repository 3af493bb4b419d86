/** Kamailio rtpengine flag strings as the ng dictionaries the module sends (build/rtpengine-ng.ts). */
import t from "tap";
import { ngFlagsFromKamailio } from "../../build/rtpengine-ng.js";
import { answerTowardMetaFlags, offerTowardAgentFlags, offerTowardMetaFlags } from "../../routing/policy/media.js";

t.test("the routing's flags for both legs", async (t) => {
  const sdes = { srtpMode: "SDES", directions: null } as const;
  t.same(ngFlagsFromKamailio(offerTowardAgentFlags(sdes)), {
    replace: ["origin", "session-connection"], "transport-protocol": "RTP/AVP", DTLS: "off", ICE: "remove",
    "rtcp-mux": ["demux"], codec: { transcode: ["PCMA", "PCMU"] },
  });
  t.same(ngFlagsFromKamailio(answerTowardMetaFlags(sdes)), { replace: ["origin", "session-connection"], ICE: "remove" });
  const towardMeta = ngFlagsFromKamailio(offerTowardMetaFlags(sdes));
  t.equal(towardMeta["transport-protocol"], "RTP/SAVP");
  t.ok((towardMeta.SDES as string[]).every((s) => s.startsWith("no-")) && (towardMeta.SDES as string[]).length === 10);
  t.same(towardMeta.codec, { transcode: ["opus"] });
  const dtls = ngFlagsFromKamailio(offerTowardMetaFlags({ srtpMode: "DTLS", directions: { external: "pub", internal: "lo" } }));
  t.same(
    { tp: dtls["transport-protocol"], ICE: dtls.ICE, SDES: dtls.SDES, mux: dtls["rtcp-mux"], flags: dtls.flags, direction: dtls.direction },
    { tp: "UDP/TLS/RTP/SAVPF", ICE: "force", SDES: ["off"], mux: ["offer"], flags: ["generate-mid"], direction: ["lo", "pub"] },
  );
});
