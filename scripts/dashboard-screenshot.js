// Screenshot of `arcface dashboard` over a folder of runs, as README's picture was made:
//   node scripts/dashboard-screenshot.js work_dirs docs/dashboard.png [--height 760]
// The page in headless Debian chromium (test/browser.ts), every run ticked, once its charts are drawn.
import path from 'node:path';
import { createDashboardServer } from '../dist/src/dashboard/server.js';
import { launchChromium, noChromium } from '../dist/test/browser.js';

const [folder, out, ...rest] = process.argv.slice(2);
if (!folder || !out) {
  console.error('usage: node scripts/dashboard-screenshot.js <runs folder> <out.png> [--height px]');
  process.exit(2);
}
if (noChromium) {
  console.error(noChromium);
  process.exit(1);
}
const height = rest[0] === '--height' ? Number(rest[1]) : undefined;
const server = createDashboardServer([folder]);
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: height ?? 900 } });
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForSelector('tr.run');
  for (const box of await page.$$('tr.run input:not(:checked)')) await box.check();
  await page.waitForSelector('.chart[data-chart="loss"] canvas');
  await page.waitForTimeout(500);  // the last run's fetch and draw
  await page.screenshot({ path: out, fullPage: height === undefined });
  console.log(`${path.resolve(out)}`);
} finally {
  await browser.close();
  server.closeAllConnections();
  server.close();
}
