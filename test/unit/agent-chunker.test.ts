/** Streamed LLM text into speakable pieces: the first clause goes early, numbers and abbreviations stay whole. */
import t from "tap";
import { SentenceChunker } from "../../media-agent/src/pipeline/chunker.js";

/** Feeds text in small token-like pieces, as Ollama streams it. */
function stream(text: string, size = 3): { pieces: string[]; firstAfterChars: number } {
  const c = new SentenceChunker();
  const pieces: string[] = [];
  let firstAfterChars = -1;
  for (let i = 0; i < text.length; i += size) {
    const got = c.push(text.slice(i, i + size));
    if (got.length && firstAfterChars < 0) firstAfterChars = i + size;
    pieces.push(...got);
  }
  pieces.push(...c.flush());
  return { pieces, firstAfterChars };
}

t.test("the first clause is spoken before the sentence is finished", async (t) => {
  const { pieces, firstAfterChars } = stream("In Düsseldorf it is 14.5 degrees, with light rain and a fresh breeze. Take an umbrella!");
  t.same(pieces, ["In Düsseldorf it is 14.5 degrees,", "with light rain and a fresh breeze.", "Take an umbrella!"]);
  t.ok(firstAfterChars <= 40, `first piece ready after ${firstAfterChars} characters`);
});

t.test("numbers, abbreviations and initials do not end a sentence", async (t) => {
  t.same(stream("Dr. Smith sees you at 3.30 p.m. tomorrow. J. R. will call, e.g. at noon.").pieces, [
    "Dr. Smith sees you at 3.30 p.m. tomorrow.", "J. R. will call, e.g. at noon.",
  ]);
});

t.test("short openings are not cut at a comma; long pieces are; the rest is flushed", async (t) => {
  t.same(stream("Yes, of course. Anything else").pieces, ["Yes, of course.", "Anything else"]);
  const long = `${"word ".repeat(50)}and then, more words`;
  t.equal(stream(long).pieces.length, 2, "a run-on sentence is cut at a clause after the maximum length");
  t.same(stream('He said "fine." Then left.').pieces, ['He said "fine."', "Then left."]);
});
