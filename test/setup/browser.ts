/**
 * What the browser tests need: Debian's Chromium (installed with apt-get when missing and running as
 * root, otherwise a message that says what to install) and a current build of the web page.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ensureWebBuilt } from '../../web/ensure-built.ts';

export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Flags for a quiet, reproducible headless run: no sandbox (CI runs as root), no GPU, and no background
 * traffic (updates, sync, QUIC) on machines that reach only package registries.
 */
export const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export function ensureChromium(): string {
  if (existsSync(chromiumPath)) return chromiumPath;
  const canInstall = process.getuid?.() === 0 && existsSync('/usr/bin/apt-get') && !process.env.CHROMIUM_PATH;
  if (!canInstall) {
    throw new Error(
      `Chromium is not at ${chromiumPath}. Install Debian's package (sudo apt-get install -y chromium) ` +
        'or set CHROMIUM_PATH to a Chromium or Chrome binary.',
    );
  }
  console.log('Installing Chromium from Debian packages (apt-get install -y chromium)…');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', 'chromium'], { stdio: 'inherit', env });
  if (!existsSync(chromiumPath))
    throw new Error(`apt-get installed chromium but ${chromiumPath} is missing.`);
  return chromiumPath;
}

/** Chromium's path, once it is there and the page is built (the browser suite's beforeAll calls this). */
export async function prepareBrowserTests(): Promise<string> {
  const executablePath = ensureChromium();
  await ensureWebBuilt();
  return executablePath;
}
