/** Boots the page: reads /config.json, then renders the state on every change and wires drop and paste. */
import { render } from 'lit-html';
import { Api, describe, loadConfig, type WebConfig } from './api.ts';
import { App } from './app.ts';
import { StoredToken } from './dialogs.ts';
import { page } from './view.ts';

const root = document.getElementById('app') as HTMLElement;

async function boot(): Promise<void> {
  let config: WebConfig;
  let configError: string | undefined;
  try {
    config = await loadConfig();
  } catch (error) {
    config = { apiUrl: '', mode: 'embedded', auth: { kind: 'none' } };
    configError = `Could not read config.json (${describe(error)}); assuming the API is on this server.`;
  }
  const api = new Api(config, config.auth.kind === 'bearer' ? new StoredToken() : undefined);
  let scheduled = false;
  const app = new App(api, () => {
    // Batch the many state changes of one task into one render.
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(() => {
      scheduled = false;
      render(page(app), root);
      revealResults(app);
    });
  });
  if (configError) app.notify('error', configError);
  wireDropAndPaste(app);
  wireMenus();
  window.addEventListener('popstate', () => window.location.reload());
  root.replaceChildren(); // drop the static "Loading…": lit-html renders beside existing children
  render(page(app), root);
  await app.start();
}

/**
 * After a search, the first result must be in sight without scrolling (on a phone the search bar fills
 * the screen): scroll the results up when their top is below the fold.
 */
function revealResults(app: App): void {
  if (!app.revealResults) return;
  app.revealResults = false;
  const results = document.getElementById('results-title');
  if (!results || results.getBoundingClientRect().top < window.innerHeight * 0.5) return;
  const still = window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  results.scrollIntoView({ block: 'start', behavior: still ? 'auto' : 'smooth' });
}

/** Card menus (<details>) close on Escape and on a click outside them, as menus do. */
function wireMenus(): void {
  const closeAll = (except?: EventTarget | null) => {
    for (const open of Array.from(document.querySelectorAll<HTMLDetailsElement>('details.menu[open]'))) {
      if (except instanceof Node && open.contains(except)) continue;
      open.open = false;
    }
  };
  document.addEventListener('click', (event) => closeAll(event.target));
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    const open = document.querySelector<HTMLDetailsElement>('details.menu[open]');
    if (!open) return;
    closeAll();
    open.querySelector('summary')?.focus();
  });
}

/** The whole window accepts a dropped photo, so a near miss of the drop zone still searches. */
function wireDropAndPaste(app: App): void {
  const zone = () => document.getElementById('dropzone');
  const firstImage = (files: FileList | undefined | null, what: string): File | undefined => {
    const list = Array.from(files ?? []);
    if (list.length === 0) {
      app.notify('error', `The ${what} holds no file: drop or paste a photo.`);
      return undefined;
    }
    if (list.length > 1) {
      app.notify(
        'info',
        `Searching with ${list[0]?.name}; to add many photos to the library, use Upload photos.`,
      );
    }
    return list[0];
  };
  // A file input takes its own drops (many photos onto "Photos to upload"); everything else searches.
  const ownDrop = (event: DragEvent) => (event.target as HTMLElement | null)?.closest?.('input[type=file]');
  window.addEventListener('dragover', (event) => {
    if (ownDrop(event)) return;
    event.preventDefault();
    zone()?.classList.add('dragging');
  });
  window.addEventListener('dragleave', (event) => {
    if (!event.relatedTarget) zone()?.classList.remove('dragging');
  });
  window.addEventListener('drop', (event) => {
    if (ownDrop(event)) return;
    event.preventDefault();
    zone()?.classList.remove('dragging');
    const file = firstImage(event.dataTransfer?.files, 'drop');
    if (file) void app.searchFile(file, file.name);
  });
  document.addEventListener('paste', (event) => {
    const files = event.clipboardData?.files;
    // Text pasted into a field is left alone; only pasted files (or a paste outside fields) search.
    if (!files?.length && (event.target as HTMLElement | null)?.closest('input, textarea')) return;
    const file = firstImage(files, 'clipboard');
    if (file) void app.searchFile(file, file.name || 'pasted image');
  });
}

void boot();
