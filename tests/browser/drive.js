// Drives Debian's chromium for tests/browser/test_browser.py: one browser, one page, commands
// as JSON lines on stdin, one JSON answer line per command on stdout.
//   {"goto": url, "screenshot": path?}  -> {"status", "title", "text", "url"}
//   {"quit": true}
// The browser runs with HOME from the environment: its NSS database ($HOME/.pki/nssdb) holds
// the client certificates, and the AutoSelectCertificateForUrls policy chooses one per URL.
'use strict';
const readline = require('readline');
const { chromium } = require('playwright-core');

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // --no-sandbox: the tests may run as root, where chromium's sandbox refuses to start.
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-features=Translate,OptimizationHints'],
    env: process.env,
  });
  const context = await browser.newContext({ viewport: { width: 1000, height: 1100 } });
  const page = await context.newPage();
  const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const cmd = JSON.parse(line);
    if (cmd.quit) break;
    try {
      const response = await page.goto(cmd.goto, { waitUntil: 'load', timeout: 20000 });
      if (cmd.screenshot) await page.screenshot({ path: cmd.screenshot, fullPage: true });
      out({
        status: response ? response.status() : 0,
        title: await page.title(),
        text: await page.evaluate(() => document.body ? document.body.innerText : ''),
        url: page.url(),
      });
    } catch (e) {
      out({ error: String(e && e.message || e) });
    }
  }
  await browser.close();
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
