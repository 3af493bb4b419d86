/**
 * The engine doubles' delay option (the latency benchmark sets them to real engines' times):
 * drawn once per request, counted from the request's arrival, never shortened by the double's
 * own work. Only lower bounds are checked: a busy machine may answer later, never earlier.
 */
import t from "tap";
import { untilDue } from "../../doubles/engine-delay.js";
import { startSttDouble } from "../../doubles/stt-double.js";
import { startPiperDouble } from "../../doubles/piper-double.js";

const multipart = (boundary: string, fields: Record<string, string>, wav: Buffer) =>
  Buffer.concat([
    ...Object.entries(fields).map(([k, v]) => Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`)),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="turn.wav"\r\nContent-Type: audio/wav\r\n\r\n`),
    wav,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);

/** 0.1 s of silence as a 16 kHz mono WAV. */
function silentWav(): Buffer {
  const data = Buffer.alloc(3200);
  const head = Buffer.alloc(44);
  head.write("RIFF", 0);
  head.writeUInt32LE(36 + data.length, 4);
  head.write("WAVEfmt ", 8);
  head.writeUInt32LE(16, 16);
  head.writeUInt16LE(1, 20);
  head.writeUInt16LE(1, 22);
  head.writeUInt32LE(16000, 24);
  head.writeUInt32LE(32000, 28);
  head.writeUInt16LE(2, 32);
  head.writeUInt16LE(16, 34);
  head.write("data", 36);
  head.writeUInt32LE(data.length, 40);
  return Buffer.concat([head, data]);
}

t.test("untilDue waits out the rest of a delay counted from the arrival", async (t) => {
  const arrived = performance.now() - 30; // the double has worked 30 ms already
  await untilDue(arrived, 90);
  t.ok(performance.now() - arrived >= 88, "fixed");
  const drawnAt = performance.now();
  let draws = 0;
  await untilDue(drawnAt, () => (draws++, 60));
  t.ok(performance.now() - drawnAt >= 58, "drawn");
  t.equal(draws, 1);
  await untilDue(performance.now() - 500, 100);
  t.pass("one already due resolves");
});

t.test("STT double: a delay drawn per request, counted from the request", async (t) => {
  const draws: number[] = [];
  const stt = await startSttDouble(t, { phrases: [], models: ["m"], delayMs: () => (draws.push(150), 150) });
  for (let i = 0; i < 2; i++) {
    const boundary = "b0undary";
    const started = performance.now();
    const res = await fetch(`${stt.url}/v1/audio/transcriptions`, {
      method: "POST",
      headers: { "Content-Type": `multipart/form-data; boundary=${boundary}` },
      body: multipart(boundary, { model: "m", language: "en", response_format: "verbose_json" }, silentWav()),
    });
    t.equal(res.status, 200);
    await res.json();
    t.ok(performance.now() - started >= 148, `answer ${i + 1} came after the delay`);
  }
  t.same(draws, [150, 150], "one draw per request");
});

t.test("Piper double: the WAV leaves after the delay; without one, as soon as it is synthesised", async (t) => {
  const slow = await startPiperDouble(t, { delayMs: 400 });
  const started = performance.now();
  const res = await fetch(`${slow.url}/synthesize`, { method: "POST", body: JSON.stringify({ text: "Hello." }) });
  t.equal(res.headers.get("content-type"), "audio/wav");
  t.ok((await res.arrayBuffer()).byteLength > 1000, "a WAV");
  t.ok(performance.now() - started >= 398, "not before the delay");
  const plain = await startPiperDouble(t);
  const res2 = await fetch(`${plain.url}/synthesize`, { method: "POST", body: JSON.stringify({ text: "" }) });
  t.equal(res2.status, 400, "bad input still answered at once with its cause");
  t.equal(await res2.text(), "text is required");
});
