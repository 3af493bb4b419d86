/** Barge-in decisions frame by frame (a fake 20 ms clock), and what the caller actually heard. */
import t from "tap";
import { BargeInDetector, DEFAULT_BACKCHANNELS, heardText, isBackchannel } from "../../media-agent/src/pipeline/barge-in.js";

/** Runs frames given as a pattern: "." silence, "s" speech (20 ms each); returns the frame index of a barge-in. */
function run(d: BargeInDetector, pattern: string): number {
  for (let i = 0; i < pattern.length; i++) if (d.callerFrame(pattern[i] === "s")) return i;
  return -1;
}

t.test("caller speech of 200 ms while the agent speaks barges in, within one frame of the threshold", async (t) => {
  const d = new BargeInDetector();
  d.agentStarted();
  const at = run(d, `${".".repeat(25)}${"s".repeat(30)}`);
  t.equal(at, 25 + 9, "the 10th speech frame (200 ms) triggers it");
});

t.test("no barge-in: backchannels, coughs, echo right after the agent starts, or when the agent is silent", async (t) => {
  const d = new BargeInDetector();
  d.agentStarted();
  t.equal(run(d, `${".".repeat(20)}sssssss.....ssss....sssssss`), -1, "'mhm', 'okay' bursts under 200 ms");
  d.agentStarted();
  t.equal(run(d, `sssssssssssssssssssssssss`), -1, "speech that began inside the 250 ms echo guard is echo");
  t.equal(run(d, `....ssssssssssssssss`), 4 + 9, "after a pause it counts again");
  const idle = new BargeInDetector();
  t.equal(run(idle, "s".repeat(50)), -1, "nothing to interrupt");
});

t.test("after a barge-in the detector waits for the agent's next reply", async (t) => {
  const d = new BargeInDetector({ minSpeechMs: 300 });
  d.agentStarted();
  t.equal(run(d, `${".".repeat(15)}${"s".repeat(15)}`), 29);
  t.equal(run(d, "s".repeat(30)), -1, "the caller has the turn now");
});

t.test("heard text: whole pieces played, then the played share of the interrupted one", async (t) => {
  const pieces = [
    { text: "In Düsseldorf it is 14 degrees,", durationMs: 2000 },
    { text: "with light rain and a fresh breeze from the west.", durationMs: 3000 },
    { text: "Take an umbrella!", durationMs: 1000 },
  ];
  t.equal(heardText(pieces, 3500), "In Düsseldorf it is 14 degrees, with light rain and a…");
  t.equal(heardText(pieces, 100), "", "too little to have heard a word");
  t.equal(heardText(pieces, 9000), "In Düsseldorf it is 14 degrees, with light rain and a fresh breeze from the west. Take an umbrella!");
});

t.test("backchannels: only acknowledgement lets the reply go on", async (t) => {
  const words = ["mhm", "okay", "yes", "uh huh", "right"];
  const cases: Array<[string, boolean]> = [
    ["Okay.", true],
    [" Yes, yes.", true],
    ["Uh-huh", true],
    ["okay right", true],
    ["Mhm!", true],
    ["Okay, but what about Berlin?", false],
    ["Yesterday", false],
    ["Stop.", false],
    ["", false],
    ["...", false],
  ];
  for (const [text, expected] of cases) t.equal(isBackchannel(text, words), expected, JSON.stringify(text));
  t.equal(isBackchannel("genau", DEFAULT_BACKCHANNELS), true, "the defaults include German acknowledgements");
});
