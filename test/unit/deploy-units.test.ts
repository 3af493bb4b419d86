/**
 * The systemd unit runs the media agent as the launcher does (`npm start`, stack/daemons.ts):
 * the same V8 flags, so production gets what the benchmarks measured.
 */
import t from "tap";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../../build/bundle.js";
import { AGENT_NODE_FLAGS } from "../../stack/daemons.js";

t.test("wa-media-agent.service starts node with the launcher's flags for the agent", async (t) => {
  const unit = readFileSync(join(REPO_ROOT, "deploy/systemd/wa-media-agent.service"), "utf8");
  const execStart = unit.split("\n").filter((line) => line.startsWith("ExecStart="));
  t.same(execStart, [`ExecStart=/usr/bin/node ${AGENT_NODE_FLAGS.join(" ")} --import tsx media-agent/src/main.ts`]);
});
