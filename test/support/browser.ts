/**
 * Debian's chromium (build/setup.sh installs it) driven by playwright-core, headless, for the
 * call viewer's browser test. Closed at the test's end.
 */
import { chromium, type Browser } from "playwright-core";
import type { Teardown } from "../../build/teardown.js";

export async function openBrowser(t: Teardown): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    // Root in CI has no user namespace for chromium's sandbox; audio plays without a click.
    args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio"],
  });
  t.teardown(() => browser.close());
  return browser;
}
