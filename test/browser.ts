/**
 * Debian's chromium, headless, driven by playwright-core (no browser download): the dashboard's
 * browser test and scripts/dashboard-screenshot.js. scripts/setup.sh --with-python-torch installs it.
 */
import fs from 'node:fs';
import type { Browser } from 'playwright-core';

export const chromiumPath = '/usr/bin/chromium';

/** Why the browser cannot run here, or false. */
export const noChromium: string | false = fs.existsSync(chromiumPath)
  ? false
  : `skipped: ${chromiumPath} is missing (Debian's chromium; scripts/setup.sh --with-python-torch installs it as root)`;

export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  // a fresh profile of playwright's own; this machine's network is closed: no background
  // connections, no first-run or sync work
  return chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
