/**
 * The web page in a real browser (Debian's headless Chromium driven by playwright-core) against the real
 * local service with the sample photos: load the library with per-job progress, search by a dropped copy,
 * Top-K applied at once, the URL round trip, the viewer, a crop, a phone screen, errors that advise and
 * expire, the duplicates view, the keyboard alone and delete-all. Screenshots of each state go to
 * test-results/screenshots/; UPDATE_DOCS_SCREENSHOT=1 also refreshes docs/screenshot*.png.
 */
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
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
  removeDir,
  repoRoot,
  type Service,
  startService,
} from '../../local/service-process.ts';
import { isImageKey } from '../../src/imaging/formats.ts';
import { SEEDED_WARNING } from '../../web/src/messages.ts';
import { NOTICE_MS } from '../../web/src/notices.ts';
import { chromiumArgs, prepareBrowserTests } from '../setup/browser.ts';

const screenshots = resolve(repoRoot, 'test-results/screenshots');
const original = 'red-vintage-car.jpg';
const notAnImage = {
  name: 'notes.jpg',
  mimeType: 'image/jpeg',
  buffer: Buffer.from('shopping list: eggs, milk'),
};
/** Pairs of one photo among the sample photos (another format, an alpha PNG, an EXIF-rotated JPEG). */
const SAMPLE_DUPLICATE_GROUPS = 3;

/** The sample photos the library is loaded with. */
let sampleCount: number;
let service: Service;
let dataDir: string;
let context: BrowserContext;
let page: Page;
let userDataDir: string;
const pageErrors: string[] = [];
const cspViolations: string[] = [];

/** A near-duplicate: the central 80 % of the photo at 60 % of its width, re-encoded. */
async function transformedCopy(name: string): Promise<Buffer> {
  const { width = 0, height = 0 } = await sharp(join(fixtures, name)).metadata();
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

/** What a person's drag and drop delivers: drop events on the drop zone whose DataTransfer holds the file. */
async function dropFile(target: Page, name: string, bytes: Buffer): Promise<void> {
  await target.evaluate(
    ({ name, base64 }) => {
      const data = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([data], name, { type: 'image/jpeg' }));
      const zone = document.getElementById('dropzone');
      if (!zone) throw new Error('no drop zone');
      for (const kind of ['dragenter', 'dragover', 'drop']) {
        zone.dispatchEvent(new DragEvent(kind, { bubbles: true, cancelable: true, dataTransfer: transfer }));
      }
    },
    { name, base64: bytes.toString('base64') },
  );
}

async function shot(target: Page, name: string, docsName?: string): Promise<void> {
  const path = join(screenshots, `${name}.png`);
  await target.screenshot({ path });
  if (process.env.UPDATE_DOCS_SCREENSHOT && docsName) {
    // Photos compress poorly as PNG: 960 px wide and 128 colours keep each under 200 kB.
    const png = await sharp(path)
      .resize({ width: 960, withoutEnlargement: true })
      .png({ palette: true, colours: 128, quality: 70, compressionLevel: 9, effort: 10 })
      .toBuffer();
    expect(png.length).toBeLessThan(200 * 1024);
    await writeFile(join(repoRoot, 'docs', docsName), png);
  }
}

async function shownCount(target: Page): Promise<number> {
  const text = (await target.locator('#count').textContent()) ?? '';
  return Number(text.replace(/[^\d]/g, ''));
}

/** Searches embed on the CPU and indexing runs in the background: allow seconds, not the default 1 s. */
const eventually = { timeout: 20_000, interval: 200 };

/** Full keys of the results, best first (cards show the file name; the title holds the key). */
const resultKeys = (target: Page = page) =>
  target
    .locator('#results .card .key')
    .evaluateAll((spans) => spans.map((s) => s.getAttribute('title') ?? ''));

/** Waits for the search in flight (if any) to finish and returns the keys shown. */
async function settledResults(target: Page = page): Promise<string[]> {
  await expect.poll(() => target.locator('#search-button').textContent(), eventually).toBe('Search');
  return resultKeys(target);
}

async function newPage(viewport = { width: 1280, height: 800 }): Promise<Page> {
  const opened = await context.newPage();
  await opened.setViewportSize(viewport);
  return opened;
}

describe('web page in Chromium against the local service', () => {
  beforeAll(async () => {
    const executablePath = await prepareBrowserTests();
    sampleCount = (await readdir(fixtures)).filter(isImageKey).length;
    await mkdir(screenshots, { recursive: true });
    dataDir = await makeDataDir();
    service = await startService(dataDir);
    userDataDir = await mkdtemp(join(tmpdir(), 'pic-search-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: chromiumArgs,
      viewport: { width: 1280, height: 800 },
    });
    context.on('weberror', (error) => pageErrors.push(error.error().message));
    context.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
    });
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
  });

  it('loads the sample folder in the Library view, with the job’s own progress beside the library totals', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Library' }).click();
    expect(new URL(page.url()).searchParams.get('view')).toBe('library');

    await page.getByLabel('Folder on the server').fill(fixtures);
    await page.getByRole('button', { name: 'Load folder' }).click();

    const job = page.locator('#jobs .job').first();
    await expect.poll(() => job.locator('.job-label').textContent(), eventually).toBe(`Loading ${fixtures}`);
    await expect
      .poll(() => job.locator('.job-state').textContent(), eventually)
      .toMatch(
        new RegExp(`^\\d+ of ${sampleCount} images · (starting…|[\\d.]+ images/s(, about .+ left)?)$`),
      );
    await shot(page, 'library-loading', 'screenshot-library.png');
    await expect
      .poll(() => job.locator('.job-state').textContent(), { timeout: 180_000, interval: 500 })
      .toMatch(new RegExp(`^${sampleCount} of ${sampleCount} images · done in `));
    await expect
      .poll(() => page.locator('#progress-state').textContent(), eventually)
      .toBe(`Done: ${sampleCount} images indexed.`);
    expect(await shownCount(page)).toBe(sampleCount);
  });

  it('finds the original first when a resized and cropped copy is dropped, results first with labels and compact menus', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Search' }).click();

    await dropFile(page, 'copy-of-car.jpg', await transformedCopy(original));

    await page.locator('#timings').waitFor();
    const keys = await resultKeys();
    expect(keys).toHaveLength(10);
    expect(keys[0]).toBe(`photos/${original}`);
    expect(await page.locator('.query img').getAttribute('alt')).toBe('Query image: copy-of-car.jpg');
    // Labels under calibrated thresholds, scores on demand; an uncalibrated model shows scores instead.
    const health = await getJson<{ model: { matchThresholds?: unknown } }>(`${service.url}/health`);
    const labels = await page.locator('#results .label').allTextContents();
    if (health.model.matchThresholds) {
      expect(labels).toHaveLength(10);
      for (const label of labels) expect(['duplicate', 'similar', 'weak']).toContain(label);
      expect(await page.locator('#results .score').count()).toBe(0);
      await page.getByLabel('Show scores').check();
    } else {
      expect(labels).toEqual([]);
    }
    const scores = (await page.locator('#results .score').allTextContents()).map(Number);
    expect(scores).toHaveLength(10);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    // No delete button on the cards until a menu is opened; the first row is in sight on 1280×800.
    expect(await page.getByRole('button', { name: 'Delete…' }).isVisible()).toBe(false);
    const firstRow = await page.locator('#results .card').first().boundingBox();
    expect((firstRow?.y ?? 999) + (firstRow?.height ?? 999)).toBeLessThanOrEqual(800);
    const shown = () =>
      page
        .locator('#results img')
        .evaluateAll((imgs: HTMLImageElement[]) =>
          imgs
            .filter((img) => img.getBoundingClientRect().top < window.innerHeight)
            .map((img) => img.complete && img.naturalWidth > 0),
        );
    await expect.poll(shown, eventually).not.toContain(false);
    if (health.model.matchThresholds) await page.getByLabel('Show scores').uncheck();
    await shot(page, 'results', 'screenshot.png');
  });

  it('applies Top-K at once: typed before choosing a photo, and back down after a large one', async () => {
    const sent: string[] = [];
    page.on('request', (request) => {
      if (request.url().includes('/search')) sent.push(new URL(request.url()).searchParams.get('topK') ?? '');
    });
    const topK = page.getByLabel('Top-K');

    await topK.fill('4');
    await expect.poll(async () => (await settledResults()).length, eventually).toBe(4);
    await page.locator('#pick-file').setInputFiles(join(fixtures, 'pizza.jpg'));
    await expect.poll(() => page.locator('.query .key').textContent(), eventually).toBe('pizza.jpg');
    expect(await settledResults()).toHaveLength(4);
    await topK.fill('100');
    await expect.poll(async () => (await settledResults()).length, eventually).toBe(sampleCount);
    await topK.fill('10');
    await expect.poll(async () => (await settledResults()).length, eventually).toBe(10);
    await page.locator('#pick-file').setInputFiles(join(fixtures, 'orange-rose.jpg'));
    await expect.poll(() => page.locator('.query .key').textContent(), eventually).toBe('orange-rose.jpg');

    expect(await settledResults()).toHaveLength(10);
    expect(sent.at(-1)).toBe('10');
    expect(sent).not.toContain('1');
    expect(new URL(page.url()).searchParams.get('k')).toBeNull();
  });

  it('keeps a "more like this" search and its options in the URL, without the query itself, across a reload', async () => {
    const second = page.locator('#results .card').nth(1);
    const key = (await second.locator('.key').getAttribute('title')) ?? '';
    await page.getByLabel('Top-K').fill('5');
    await expect.poll(async () => (await settledResults()).length, eventually).toBe(5);
    await page.getByLabel('Also find rotated or mirrored copies').check();

    await second.getByLabel(`Actions for ${key}`).click();
    await second.getByRole('button', { name: 'More like this' }).click();

    await expect.poll(() => page.locator('.query .key').textContent(), eventually).toBe(key);
    const before = await settledResults();
    expect(before).toHaveLength(5);
    expect(before).not.toContain(key);
    const url = new URL(page.url());
    expect([url.searchParams.get('key'), url.searchParams.get('k'), url.searchParams.get('o')]).toEqual([
      key,
      '5',
      'any',
    ]);

    const shared = await newPage();
    await shared.goto(url.toString());
    await expect.poll(() => shared.locator('.query .key').textContent(), eventually).toBe(key);
    await expect.poll(() => settledResults(shared), eventually).toEqual(before);
    expect(await shared.getByLabel('Top-K').inputValue()).toBe('5');
    expect(await shared.getByLabel('Also find rotated or mirrored copies').isChecked()).toBe(true);
    await shared.close();
  });

  it('views results full size with previous/next, key, size and label, and closes on Escape', async () => {
    const keys = await resultKeys();
    await page.locator('#results .thumb').first().click();

    const viewer = page.locator('dialog[open]');
    await expect.poll(() => viewer.locator('h2').textContent(), eventually).toBe(keys[0]);
    await expect
      .poll(() => viewer.locator('#viewer-size').textContent(), eventually)
      .toMatch(/^\d+ × \d+ px$/);
    expect(await viewer.locator('.facts').textContent()).toMatch(/score \d\.\d{3}/);
    await page.keyboard.press('ArrowRight');
    await expect.poll(() => viewer.locator('h2').textContent(), eventually).toBe(keys[1]);
    await viewer.getByRole('button', { name: '← Previous' }).click();
    await expect.poll(() => viewer.locator('h2').textContent(), eventually).toBe(keys[0]);
    await shot(page, 'viewer', 'screenshot-viewer.png');
    await page.keyboard.press('Escape');
    await expect.poll(() => page.locator('dialog').count(), eventually).toBe(0);
  });

  it('searches with a part of the query image dragged out on it, kept in the URL', async () => {
    // Upright only from here on: eight embeddings a query would slow the rest down.
    await page.getByLabel('Also find rotated or mirrored copies').uncheck();
    await page.locator('#pick-file').setInputFiles(join(fixtures, original));
    await expect.poll(() => page.locator('.query .key').textContent(), eventually).toBe(original);
    await settledResults();
    const frame = await page.locator('.query .frame').boundingBox();
    if (!frame) throw new Error('no query frame');

    await page.mouse.move(frame.x + frame.width * 0.1, frame.y + frame.height * 0.2);
    await page.mouse.down();
    await page.mouse.move(frame.x + frame.width * 0.5, frame.y + frame.height * 0.6, { steps: 5 });
    await page.mouse.up();

    await expect.poll(() => page.locator('.query .key').textContent(), eventually).toBe(`${original} (part)`);
    const part = await settledResults();
    expect(part).toHaveLength(5);
    expect(await page.locator('.crop-box').isVisible()).toBe(true);
    const box = await page.locator('.crop-box').boundingBox();
    expect(box?.width).toBeCloseTo(frame.width * 0.4, -1);
    await page.getByRole('button', { name: 'Search the whole photo' }).click();
    await expect.poll(() => page.locator('.query .key').textContent(), eventually).toBe(original);
    expect((await settledResults())[0]).toBe(`photos/${original}`);
  });

  it('shows the first result on a phone after a search, without scrolling by hand', async () => {
    const phone = await newPage({ width: 390, height: 844 });
    await phone.goto(service.url);
    await expect.poll(() => shownCount(phone), eventually).toBeGreaterThan(0);

    await phone.locator('#pick-file').setInputFiles(join(fixtures, original));
    await phone.locator('#timings').waitFor();

    const firstInSight = () =>
      phone
        .locator('#results .card')
        .first()
        .evaluate((card) => {
          const rect = card.getBoundingClientRect();
          return rect.top >= 0 && rect.top + rect.height / 2 <= window.innerHeight;
        });
    await expect.poll(firstInSight, eventually).toBe(true);
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    const camera = phone.locator('#take-photo');
    expect([await camera.getAttribute('accept'), await camera.getAttribute('capture')]).toEqual([
      'image/*',
      'environment',
    ]);
    await shot(phone, 'phone', 'screenshot-phone.png');
    await phone.close();
  });

  it('says once that the server is down, with advice that fits, and lets the message expire', async () => {
    const down = await newPage();
    await down.clock.install();
    await down.goto(service.url);
    await expect.poll(() => shownCount(down), eventually).toBeGreaterThan(0);
    await down.route('**/search?*', (route) => route.abort('connectionrefused'));

    await down.locator('#pick-file').setInputFiles(join(fixtures, 'pizza.jpg'));
    await down.getByRole('button', { name: 'Search', exact: true }).click();

    const alert = down.getByRole('alert').filter({ hasText: 'Search failed' });
    await expect.poll(() => alert.count(), eventually).toBe(1);
    expect(await alert.textContent()).toContain('Check that the server is running');
    expect(await alert.textContent()).not.toContain('Try another photo');
    await expect.poll(() => alert.textContent(), eventually).toContain('(×2)');
    await down.clock.fastForward(NOTICE_MS.error + 1000);
    await expect.poll(() => alert.count(), eventually).toBe(0);
    await down.close();
  });

  it("advises another photo when the query is not an image, in the API's own words", async () => {
    const api = await fetch(`${service.url}/search`, {
      method: 'POST',
      headers: { 'Content-Type': 'image/jpeg' },
      body: notAnImage.buffer,
    });
    const { message } = (await api.json()) as { message: string };

    await page.locator('#pick-file').setInputFiles(notAnImage);

    const alert = page.getByRole('alert').filter({ hasText: 'Search failed' });
    await expect.poll(() => alert.textContent(), eventually).toContain(message);
    expect(await alert.textContent()).toContain('Try another photo');
    expect(api.status).toBe(415);
    await alert.getByRole('button', { name: 'Dismiss' }).click();
    await expect.poll(() => alert.count(), eventually).toBe(0);
  });

  it('lists the sample duplicates, keeps the best of a group (the count drops) and dismisses another for good', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Duplicates' }).click();
    const groups = page.locator('#groups .group');
    await expect.poll(() => groups.count(), eventually).toBe(SAMPLE_DUPLICATE_GROUPS);
    await shot(page, 'duplicates', 'screenshot-duplicates.png');
    const before = await shownCount(page);
    const first = groups.first();
    const keep = (await first.locator('.member.keep .key').getAttribute('title')) ?? '';
    const other = (await first.locator('.member:not(.keep) .key').getAttribute('title')) ?? '';

    await first.getByRole('button', { name: /^Keep the first, delete 1 other$/ }).click();
    await page.locator('dialog').getByRole('button', { name: 'Delete 1 copy' }).click();

    await expect.poll(() => groups.count(), eventually).toBe(SAMPLE_DUPLICATE_GROUPS - 1);
    await expect.poll(() => shownCount(page), eventually).toBe(before - 1);
    expect((await fetch(`${service.url}/images/${keyPath(other)}`)).status).toBe(404);
    expect((await fetch(`${service.url}/images/${keyPath(keep)}`)).status).toBe(200);

    await groups.first().getByRole('button', { name: 'Not duplicates' }).click();
    await expect.poll(() => groups.count(), eventually).toBe(SAMPLE_DUPLICATE_GROUPS - 2);
    await page.reload();
    await expect
      .poll(() => page.locator('#duplicates-summary').textContent(), eventually)
      .toContain('1 group');
    // The count loads on its own after a reload: poll it too.
    await expect.poll(() => shownCount(page), eventually).toBe(before - 1);
  });

  it('shows why a bad file in an upload was refused and still adds the good ones', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Library' }).click();
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
    await expect.poll(() => alert.textContent(), eventually).toContain('not an image');
    await expect.poll(() => shownCount(page), { timeout: 60_000 }).toBe(before + 1);
    await expect
      .poll(() => page.locator('#jobs .job').first().locator('.job-state').textContent(), eventually)
      .toMatch(/^1 of 1 image · done in /);
  });

  it('searches with the keyboard alone: choose a photo, set top-K, press Search', async () => {
    const keyboard = await newPage();
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
    const search = await tabTo('search-button');
    await keyboard.keyboard.press('Enter');

    expect(choose.outline).not.toBe('none');
    expect(search.outline).not.toBe('none');
    await expect.poll(async () => keyboard.locator('#results .card').count(), eventually).toBe(3);
    await keyboard.close();
  });

  it('keeps the API token for this tab only, unless asked to remember it on this device', async () => {
    // The page as a bearer-token deployment configures it; the service behind it is the real one.
    const withToken = async (remember: boolean) => {
      const opened = await newPage();
      await opened.route('**/config.json', (route) =>
        route.fulfill({ json: { apiUrl: '', mode: 'embedded', auth: { kind: 'bearer' } } }),
      );
      const sent = new Set<string>();
      opened.on('request', (request) => {
        const authorization = request.headers().authorization;
        if (authorization) sent.add(authorization);
      });
      await opened.goto(service.url);
      const dialog = opened.locator('dialog[open]');
      await dialog.getByLabel('Token', { exact: true }).fill(`token-${remember}`);
      if (remember) await dialog.getByLabel('Remember it on this device').check();
      await dialog.getByRole('button', { name: 'Save' }).click();
      await expect.poll(() => opened.locator('#count').textContent(), eventually).toMatch(/^\d+ images?$/);
      const stored = await opened.evaluate(() => ({
        session: sessionStorage.getItem('pic-search.api-token'),
        local: localStorage.getItem('pic-search.api-token'),
      }));
      await opened.evaluate(() => localStorage.clear());
      await opened.close();
      return { sent: [...sent], stored };
    };

    expect(await withToken(false)).toEqual({
      sent: ['Bearer token-false'],
      stored: { session: 'token-false', local: null },
    });
    expect(await withToken(true)).toEqual({
      sent: ['Bearer token-true'],
      stored: { session: null, local: 'token-true' },
    });
  });

  it('deletes everything only after an explicit confirmation, with no page error or CSP violation on the way', async () => {
    const before = await shownCount(page);
    await page.getByRole('button', { name: 'Delete everything…' }).click();
    await page.locator('dialog').getByRole('button', { name: 'Cancel' }).click();
    await page.waitForTimeout(300);
    expect(await shownCount(page)).toBe(before);

    await page.getByRole('button', { name: 'Delete everything…' }).click();
    await page.locator('dialog').getByRole('button', { name: 'Delete everything' }).click();

    await expect.poll(() => shownCount(page), eventually).toBe(0);
    expect(pageErrors).toEqual([]);
    const served = await fetch(`${service.url}/`);
    expect(served.headers.get('content-security-policy')).toMatch(/script-src 'self'; style-src 'self'/);
    expect(served.headers.get('content-security-policy')).not.toMatch(/unsafe-inline|unsafe-eval/);
    expect(cspViolations).toEqual([]);
  });
});
