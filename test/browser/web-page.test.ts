/**
 * The web page in a real browser (Debian's headless Chromium driven by playwright-core) against the real
 * local service with the fixture photos: load a folder, watch progress, search by a dropped copy, "more
 * like this", delete, a bad upload, a phone screen and the keyboard alone. Screenshots of each state go
 * to test-results/screenshots/; UPDATE_DOCS_SCREENSHOT=1 also refreshes docs/screenshot.png.
 */
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fixturesDir as fixtures,
  getJson,
  keyPath,
  makeDataDir,
  type ProgressBody,
  removeDir,
  repoRoot,
  type Service,
  startService,
} from '../../local/service-process.ts';
import { SEEDED_WARNING } from '../../web/src/messages.ts';
import { chromiumArgs, prepareBrowserTests } from '../setup/browser.ts';

const screenshots = resolve(repoRoot, 'test-results/screenshots');
const original = 'red-vintage-car.jpg';
const notAnImage = {
  name: 'notes.jpg',
  mimeType: 'image/jpeg',
  buffer: Buffer.from('shopping list: eggs, milk'),
};

let service: Service;
let dataDir: string;
let context: BrowserContext;
let page: Page;
let userDataDir: string;
const pageErrors: string[] = [];

/** A near-duplicate: the central 80 % of the photo at 60 % of its width, re-encoded. */
async function transformedCopy(name: string): Promise<Buffer> {
  const input = sharp(join(fixtures, name));
  const { width = 0, height = 0 } = await input.metadata();
  return sharp(join(fixtures, name))
    .extract({
      left: Math.round(width * 0.1),
      top: Math.round(height * 0.1),
      width: Math.round(width * 0.8),
      height: Math.round(height * 0.8),
    })
    .resize({ width: Math.round(width * 0.6) })
    .jpeg({ quality: 80 })
    .toBuffer();
}

/**
 * What a person's drag and drop (or paste) delivers: a drop event on the drop zone (or a paste event on
 * the page) whose DataTransfer holds the file.
 */
async function giveFile(target: Page, how: 'drop' | 'paste', name: string, bytes: Buffer): Promise<void> {
  await target.evaluate(
    ({ how, name, base64 }) => {
      const data = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([data], name, { type: 'image/jpeg' }));
      const init = { bubbles: true, cancelable: true };
      if (how === 'paste') {
        document.body.dispatchEvent(new ClipboardEvent('paste', { ...init, clipboardData: transfer }));
        return;
      }
      const zone = document.getElementById('dropzone');
      if (!zone) throw new Error('no drop zone');
      for (const kind of ['dragenter', 'dragover', 'drop']) {
        zone.dispatchEvent(new DragEvent(kind, { ...init, dataTransfer: transfer }));
      }
    },
    { how, name, base64: bytes.toString('base64') },
  );
}

async function shot(target: Page, name: string, fullPage = false): Promise<string> {
  const path = join(screenshots, `${name}.png`);
  await target.screenshot({ path, fullPage });
  return path;
}

async function shownCount(target: Page): Promise<number> {
  const text = (await target.locator('#count').textContent()) ?? '';
  return Number(text.replace(/[^\d]/g, ''));
}

/** Searches embed on the CPU and indexing runs in the background: allow seconds, not the default 1 s. */
const eventually = { timeout: 20_000, interval: 200 };

const resultKeys = () => page.locator('#results .card .key').allTextContents();

describe('web page in Chromium against the local service', () => {
  beforeAll(async () => {
    const executablePath = await prepareBrowserTests();
    await mkdir(screenshots, { recursive: true });
    dataDir = await makeDataDir();
    service = await startService(dataDir);
    userDataDir = await mkdtemp(join(tmpdir(), 'pic-search-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: chromiumArgs,
      viewport: { width: 1280, height: 900 },
    });
    context.on('weberror', (error) => pageErrors.push(error.error().message));
    page = context.pages()[0] ?? (await context.newPage());
  });

  afterAll(async () => {
    await context?.close();
    await service?.stop();
    if (dataDir) await removeDir(dataDir);
    if (userDataDir) await removeDir(userDataDir);
  });

  it('opens on an empty library, says what to do next and warns about seeded weights', async () => {
    await page.goto(service.url);

    await expect.poll(() => page.locator('#count').textContent(), eventually).toBe('0 images');
    await expect
      .poll(() => page.locator('.empty').textContent(), eventually)
      .toContain('The library is empty');
    const health = await getJson<{ model: { pretrained: boolean } }>(`${service.url}/health`);
    expect(await page.locator('#seeded-banner').isVisible()).toBe(!health.model.pretrained);
    if (!health.model.pretrained)
      expect(await page.locator('#seeded-banner').textContent()).toBe(SEEDED_WARNING);
    await shot(page, 'empty');
  });

  it('loads the fixture folder and shows progress until every image is indexed', async () => {
    await page.getByLabel('Folder on the server').fill(fixtures);
    await page.getByRole('button', { name: 'Load folder' }).click();

    await expect.poll(() => page.locator('#last-ingest').textContent(), eventually).toMatch(/queued/);
    await expect
      .poll(() => page.locator('#progress-state').textContent(), eventually)
      .toMatch(
        /^(Starting: speed and time left|Indexing at [\d.]+ images\/s, (about .+ left|time left unknown))/,
      );
    await shot(page, 'progress');
    await expect
      .poll(() => page.locator('#progress-state').textContent(), { timeout: 180_000, interval: 500 })
      .toMatch(/^Done:/);
    const progress = await getJson<ProgressBody>(`${service.url}/progress`);
    expect(progress.indexed).toBeGreaterThanOrEqual(24);
    await expect.poll(() => shownCount(page), eventually).toBe(progress.indexed);
    expect(await page.locator('#progress-counts').textContent()).toContain(`${progress.indexed} indexed`);
    await shot(page, 'progress-done');
  });

  it('finds the original first when a resized and cropped copy is dropped', async () => {
    await giveFile(page, 'drop', 'copy-of-car.jpg', await transformedCopy(original));

    await page.locator('#timings').waitFor();
    const keys = await resultKeys();
    expect(keys.length).toBe(10);
    expect(keys[0]).toMatch(new RegExp(`(^|/)${original}$`));
    const scores = (await page.locator('#results .score').allTextContents()).map(Number);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    expect(await page.locator('.query img').getAttribute('alt')).toBe('Query image: copy-of-car.jpg');
    const shownThumbnails = () =>
      page
        .locator('#results img')
        .evaluateAll((imgs: HTMLImageElement[]) =>
          imgs
            .filter((img) => img.getBoundingClientRect().top < window.innerHeight)
            .map((img) => img.complete && img.naturalWidth > 0),
        );
    await expect.poll(shownThumbnails, eventually).not.toContain(false);
    expect((await shownThumbnails()).length).toBeGreaterThan(0);
    const path = await shot(page, 'results');
    if (process.env.UPDATE_DOCS_SCREENSHOT) {
      const png = await sharp(path).png({ palette: true, quality: 80, compressionLevel: 9 }).toBuffer();
      expect(png.length).toBeLessThan(300 * 1024);
      await mkdir(join(repoRoot, 'docs'), { recursive: true });
      await writeFile(join(repoRoot, 'docs/screenshot.png'), png);
    }
  });

  it('opens a result full size and closes it again', async () => {
    const first = page.locator('#results .card').first();
    const key = (await first.locator('.key').textContent()) ?? '';

    await first.getByRole('button', { name: `Open ${key} full size` }).click();

    const full = page.locator('dialog[open] img.full');
    await expect
      .poll(() => full.evaluate((img: HTMLImageElement) => (img.complete ? img.naturalWidth : 0)), eventually)
      .toBeGreaterThan(0);
    expect(await full.getAttribute('alt')).toBe(`Full size: ${key}`);
    await shot(page, 'full-size');
    await page.keyboard.press('Escape');
    await expect.poll(() => page.locator('dialog').count(), eventually).toBe(0);
  });

  it('searches with an image pasted from the clipboard', async () => {
    await giveFile(page, 'paste', 'pasted.jpg', await readFile(join(fixtures, 'pizza.jpg')));

    await expect.poll(() => page.locator('.query .key').textContent(), eventually).toBe('pasted.jpg');
    await expect.poll(async () => (await resultKeys())[0], eventually).toMatch(/(^|\/)pizza\.jpg$/);
  });

  it('searches with a result\'s stored vector on "More like this"', async () => {
    const second = page.locator('#results .card').nth(1);
    const key = (await second.locator('.key').textContent()) ?? '';

    await second.getByRole('button', { name: /^More like this/ }).click();

    await expect.poll(() => page.locator('.query .key').textContent(), eventually).toBe(key);
    await expect.poll(async () => (await resultKeys())[0], eventually).toBe(key);
    expect(Number(await page.locator('#results .score').first().textContent())).toBeGreaterThan(0.99);
  });

  it('deletes one image from a result and the count drops', async () => {
    const before = await shownCount(page);
    const card = page.locator('#results .card').nth(1);
    const key = (await card.locator('.key').textContent()) ?? '';

    await card.getByRole('button', { name: `Delete ${key}` }).click();
    await page.locator('dialog').getByRole('button', { name: 'Delete', exact: true }).click();

    await expect.poll(() => shownCount(page), eventually).toBe(before - 1);
    expect(await resultKeys()).not.toContain(key);
    const answer = await fetch(`${service.url}/images/${keyPath(key)}`);
    expect(answer.status).toBe(404);
  });

  it("shows the API's error in plain words when the query is not an image", async () => {
    const api = await fetch(`${service.url}/search`, {
      method: 'POST',
      headers: { 'Content-Type': 'image/jpeg' },
      body: notAnImage.buffer,
    });
    const { message } = (await api.json()) as { message: string };

    await page.locator('#pick-file').setInputFiles(notAnImage);

    const alert = page.getByRole('alert').filter({ hasText: 'Search failed' });
    await expect.poll(() => alert.textContent(), eventually).toContain(message);
    expect(api.status).toBe(415);
    await shot(page, 'bad-query');
  });

  it('shows why a bad file in an upload was refused and still adds the good ones', async () => {
    const form = new FormData();
    form.append('files', new Blob([notAnImage.buffer], { type: notAnImage.mimeType }), notAnImage.name);
    const { message } = (await (
      await fetch(`${service.url}/images`, { method: 'POST', body: form })
    ).json()) as {
      message: string;
    };
    const before = await shownCount(page);

    const pizza = {
      name: 'pizza.jpg',
      mimeType: 'image/jpeg',
      buffer: await readFile(join(fixtures, 'pizza.jpg')),
    };
    await page.getByLabel('Photos to upload').setInputFiles([pizza, notAnImage]);
    await page.getByLabel('Key prefix (optional)', { exact: true }).fill('uploads/');
    await page.getByRole('button', { name: 'Upload photos' }).click();

    const alert = page.getByRole('alert').filter({ hasText: `Upload of ${notAnImage.name} failed` });
    await expect.poll(() => alert.textContent(), eventually).toContain(message);
    await expect.poll(() => shownCount(page), { timeout: 60_000 }).toBe(before + 1);
    await shot(page, 'bad-upload', true);
  });

  it('fits a phone screen without sideways scrolling', async () => {
    const phone = await context.newPage();
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(service.url);
    await expect.poll(() => shownCount(phone), eventually).toBeGreaterThan(0);

    await giveFile(phone, 'drop', original, await readFile(join(fixtures, original)));
    await phone.locator('#timings').waitFor();

    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    const camera = phone.locator('#take-photo');
    expect([await camera.getAttribute('accept'), await camera.getAttribute('capture')]).toEqual([
      'image/*',
      'environment',
    ]);
    await shot(phone, 'phone', true);
    await phone.close();
  });

  it('searches with the keyboard alone: choose a photo, set top-K, press Search', async () => {
    const keyboard = await context.newPage();
    // Listening before the page loads turns file-chooser interception on in time for the key press.
    const chooser = keyboard.waitForEvent('filechooser');
    await keyboard.goto(service.url);
    await expect.poll(() => shownCount(keyboard), eventually).toBeGreaterThan(0);
    const tabTo = async (name: string) => {
      for (let i = 0; i < 30; i++) {
        await keyboard.keyboard.press('Tab');
        const focused = await keyboard.evaluate(() => {
          const el = document.activeElement as HTMLElement;
          return { text: el.id || el.textContent?.trim(), outline: getComputedStyle(el).outlineStyle };
        });
        if (focused.text === name) return focused;
      }
      throw new Error(`Tab never reached ${name}`);
    };

    const choose = await tabTo('Choose a photo');
    await keyboard.keyboard.press('Enter');
    await (await chooser).setFiles(join(fixtures, original));
    await keyboard.locator('#timings').waitFor();
    await tabTo('top-k');
    await keyboard.keyboard.press('ControlOrMeta+A');
    await keyboard.keyboard.type('3');
    expect(await keyboard.locator('#top-k').inputValue()).toBe('3');
    const search = await tabTo('search-button');
    await keyboard.keyboard.press('Enter');

    expect(choose.outline).not.toBe('none');
    expect(search.outline).not.toBe('none');
    await expect.poll(async () => keyboard.locator('#results .card').count(), eventually).toBe(3);
    await keyboard.close();
  });

  it('deletes everything only after an explicit confirmation', async () => {
    const before = await shownCount(page);
    await page.getByRole('button', { name: 'Delete everything…' }).click();
    await page.locator('dialog').getByRole('button', { name: 'Cancel' }).click();
    await page.waitForTimeout(500);
    expect(await shownCount(page)).toBe(before);

    await page.getByRole('button', { name: 'Delete everything…' }).click();
    await page.locator('dialog').getByRole('button', { name: 'Delete everything' }).click();

    await expect.poll(() => shownCount(page), eventually).toBe(0);
    await expect
      .poll(() => page.locator('.empty').textContent(), eventually)
      .toContain('The library is empty');
    expect(pageErrors).toEqual([]);
  });
});
