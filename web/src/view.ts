/** The page as lit-html templates of the state: render() patches only what changed. */
import { html, nothing, type TemplateResult } from 'lit-html';
import { ref } from 'lit-html/directives/ref.js';
import type { SearchHit } from './api.ts';
import type { App, State } from './app.ts';
import { dragCrop } from './crop.ts';
import { confirmDialog, liveDialog } from './dialogs.ts';
import { duplicatesView } from './duplicates-view.ts';
import { formatMs, formatScore, plural } from './format.ts';
import { libraryView } from './library-view.ts';
import { SEEDED_WARNING } from './messages.ts';
import { reindexState } from './reindex-banner.ts';
import { type Crop, TOP_K_MAX, type View } from './url-state.ts';

const VIEWS: { view: View; label: string }[] = [
  { view: 'search', label: 'Search' },
  { view: 'library', label: 'Library' },
  { view: 'duplicates', label: 'Duplicates' },
];

export function page(app: App): TemplateResult {
  const s = app.state;
  return html`
    <header class="top">
      <h1><a href="./" @click=${(e: Event) => navigate(e, app, 'search')}>pic-search</a></h1>
      <nav aria-label="Views">
        ${VIEWS.map(
          ({
            view,
            label,
          }) => html`<a href=${`?view=${view}`} aria-current=${s.view === view ? 'page' : 'false'}
            @click=${(e: Event) => navigate(e, app, view)}>${label}</a>`,
        )}
      </nav>
      <p class="status">
        <span id="count">${s.count === undefined ? '…' : plural(s.count, 'image')}</span>
        <span class="muted">· ${app.mode === 'cloud' ? 'cloud' : 'embedded'}</span>
      </p>
    </header>
    ${banners(s)} ${reindexBanner(app)} ${notices(app)}
    <main>
      ${s.view === 'search' ? html`${searchBar(app)} ${results(app)}` : nothing}
      ${s.view === 'library' ? libraryView(app) : nothing} ${s.view === 'duplicates' ? duplicatesView(app) : nothing}
    </main>
    <footer>
      ${s.health ? `Model ${s.health.model.model} (${s.health.model.profile}, ${s.health.model.provider})` : ''}
      · <a href=${app.api.url('/openapi.json')}>API description</a>
    </footer>
  `;
}

function navigate(event: Event, app: App, view: View): void {
  event.preventDefault();
  app.show(view);
}

function banners(s: State): TemplateResult {
  return html`
    ${
      s.healthError
        ? html`<p class="banner error" role="alert">The API is not answering: ${s.healthError}</p>`
        : nothing
    }
    ${
      s.health?.model.pretrained === false
        ? html`<p class="banner warn" id="seeded-banner" role="note">${SEEDED_WARNING}</p>`
        : nothing
    }
  `;
}

/**
 * While the index was built by another model than the one configured: what serves searches meanwhile and,
 * in embedded mode, a button that starts the re-index; while one runs, its progress.
 */
function reindexBanner(app: App): TemplateResult | typeof nothing {
  const state = reindexState(app.state.health, app.state.progress);
  if (!state) return nothing;
  if (state.kind === 'running') {
    return html`<div class="banner warn" id="reindex-banner" role="status">
      <p>
        Re-indexing with model ${state.model}: ${state.done} of ${plural(state.total, 'image')} done${
          state.failed > 0 ? ` (${state.failed} failed)` : ''
        }. Searches use the current index until the new one is complete.
      </p>
      <progress max=${Math.max(state.total, 1)} value=${state.done}></progress>
    </div>`;
  }
  const { index, model } = state;
  return html`<div class="banner warn" id="reindex-banner" role="note">
    <p>
      The index was built by model ${index.model} (${index.dimension} dimensions), but this server embeds with
      ${model.model} (${model.dimension} dimensions). Re-index to rebuild it from the library with the new model;
      the current index keeps answering until the new one is complete.
    </p>
    <button type="button" id="reindex-now" @click=${() => void app.reindex()}>Re-index now</button>
  </div>`;
}

/** Toasts in one corner: over nothing that matters, each message once, gone by itself. */
function notices(app: App): TemplateResult {
  return html`<div class="notices" aria-live="polite">
    ${app.notices.list.map(
      (n) => html`<div class="notice ${n.kind}" role=${n.kind === 'error' ? 'alert' : 'status'}>
        <p>
          <span class="text">${n.text}</span>${n.repeats > 0 ? html` <span class="muted">(×${n.repeats + 1})</span>` : nothing}
          ${n.advice ? html`<span class="advice">${n.advice}</span>` : nothing}
        </p>
        <button type="button" class="icon" aria-label="Dismiss" @click=${() => app.notices.dismiss(n.id)}>×</button>
      </div>`,
    )}
  </div>`;
}

function searchBar(app: App): TemplateResult {
  const s = app.state;
  const pick = (event: Event) => {
    const input = event.target as HTMLInputElement;
    const file = input.files?.[0];
    if (file) void app.searchFile(file, file.name);
    input.value = '';
  };
  return html`<section class="searchbar" aria-labelledby="search-title">
    <h2 id="search-title" class="visually-hidden">Search by image</h2>
    ${s.query ? queryFigure(app) : nothing}
    <div id="dropzone" class="dropzone">
      <p>Drop a photo anywhere, paste one (Ctrl+V / ⌘V), or</p>
      <div class="row">
        <button type="button" class="primary" @click=${() => clickInput('pick-file')}>Choose a photo</button>
        <button type="button" class="camera" @click=${() => clickInput('take-photo')}>Take a photo</button>
      </div>
      <input id="pick-file" class="hidden" type="file" accept="image/*" tabindex="-1" @change=${pick} />
      <input id="take-photo" class="hidden" type="file" accept="image/*" capture="environment" tabindex="-1"
        @change=${pick} />
      <form class="options" @submit=${(e: Event) => {
        e.preventDefault();
        const topK = Number(new FormData(e.target as HTMLFormElement).get('topK'));
        if (app.setTopK(topK, { now: true }) && topK === s.topK) void app.rerun();
      }}>
        <label for="top-k">Top-K</label>
        <input id="top-k" name="topK" type="number" min="1" max=${TOP_K_MAX} step="1" required
          .value=${String(s.topK)} @input=${(e: Event) => {
            const input = e.target as HTMLInputElement;
            if (input.value !== '' && input.checkValidity()) app.setTopK(Number(input.value));
          }} />
        <button id="search-button" type="submit" ?disabled=${s.searching}>${s.searching ? 'Searching…' : 'Search'}</button>
        <label class="check"><input id="orientation" type="checkbox" .checked=${s.orientation === 'any'}
          @change=${(e: Event) => app.setOrientation((e.target as HTMLInputElement).checked ? 'any' : 'upright')} />
          Also find rotated or mirrored copies</label>
      </form>
    </div>
  </section>`;
}

/** The query image; dragging over it selects a part to search with ("search this part"). */
function queryFigure(app: App): TemplateResult {
  const s = app.state;
  const query = s.query as NonNullable<State['query']>;
  const start = (event: PointerEvent) => {
    if (event.button !== 0) return;
    event.preventDefault();
    const frame = event.currentTarget as HTMLElement;
    const box = frame.querySelector<HTMLElement>('.crop-box');
    const show = (crop: Crop | undefined) => {
      if (!box) return;
      box.hidden = !crop;
      placeCropBox(box, crop);
    };
    dragCrop(event, frame, show, (crop) => {
      if (crop) void app.searchPart(crop);
      else show(query.crop);
    });
  };
  return html`<figure class="query">
    <div class="frame" @pointerdown=${start}>
      <img src=${app.imageSrc(query.preview) ?? nothing} alt=${`Query image: ${query.label}`} draggable="false" />
      <div class="crop-box" ?hidden=${!query.crop} ${ref((box) => placeCropBox(box, query.crop))}></div>
    </div>
    <figcaption>
      <span class="key" title=${query.label}>${query.label}${query.crop ? ' (part)' : ''}</span>
      <span class="muted">${query.crop ? html`<button type="button" class="link" @click=${() => void app.searchPart(undefined)}>Search the whole photo</button>` : 'Drag over the photo to search just that part.'}</span>
      ${timings(s)}
    </figcaption>
  </figure>`;
}

/**
 * Through the CSSOM, never a style attribute: the page runs under `style-src 'self'`, which refuses inline
 * style attributes (lit's styleMap writes one on its first render).
 */
function placeCropBox(box: Element | undefined, crop: Crop | undefined): void {
  if (!(box instanceof HTMLElement) || !crop) return;
  const pct = (n: number) => `${(n * 100).toFixed(2)}%`;
  box.style.left = pct(crop.x);
  box.style.top = pct(crop.y);
  box.style.width = pct(crop.w);
  box.style.height = pct(crop.h);
}

function timings(s: State): TemplateResult | typeof nothing {
  if (s.searching) return html`<span class="muted">Searching…</span>`;
  if (!s.search) return nothing;
  const t = s.search.response.timings;
  return html`<span id="timings" class="muted" title=${`decode ${formatMs(t.decodeMs)} · embed ${formatMs(t.embedMs)} · search ${formatMs(t.searchMs)}`}>
    ${formatMs(t.totalMs)} on the server, ${formatMs(s.search.roundTripMs)} in all</span>`;
}

function results(app: App): TemplateResult {
  const s = app.state;
  const hits = s.search?.response.results ?? [];
  return html`<section class="results" aria-labelledby="results-title" aria-busy=${s.searching}>
    <div class="row between">
      <h2 id="results-title">${s.search ? `Results (${hits.length})` : 'Results'}</h2>
      <label class="check" ?hidden=${!calibrated(app)}><input type="checkbox" id="show-scores" .checked=${s.showScores}
        @change=${(e: Event) => app.set({ showScores: (e.target as HTMLInputElement).checked })} /> Show scores</label>
    </div>
    ${
      hits.length > 0
        ? html`<ol class="grid" id="results">${hits.map((hit, i) => card(app, hit, i))}</ol>`
        : html`<p class="empty">${emptyResults(s)}</p>`
    }
  </section>`;
}

function emptyResults(s: State): string {
  if (s.searchError) return [s.searchError.text, s.searchError.advice].filter(Boolean).join(' ');
  if (s.count === 0)
    return 'The library is empty. Load a folder or upload photos under Library, then search with a photo.';
  if (s.search)
    return 'No similar images found. If photos are still being indexed, see Library and search again.';
  return `Drop, paste or choose a photo to find the most similar ones${s.count ? ` among ${plural(s.count, 'image')}` : ''}.`;
}

const LABEL_MEANING: Record<SearchHit['match'], string> = {
  duplicate: 'the same picture, perhaps edited',
  similar: 'probably related',
  weak: 'likely unrelated',
};

/**
 * Labels mean something only under thresholds calibrated for the model; an uncalibrated one labels every
 * hit weak, so its scores are shown instead.
 */
function calibrated(app: App): boolean {
  return app.state.health?.model.matchThresholds !== undefined;
}

function card(app: App, hit: SearchHit, index: number): TemplateResult {
  const remove = () => confirmDelete(app, hit.key);
  return html`<li class="card">
    <button type="button" class="thumb" @click=${() => void openViewer(app, index)} aria-label=${`Open ${hit.key}`}>
      <img src=${app.imageSrc(hit.thumbnailUrl) ?? nothing} alt=${hit.key} loading="lazy" />
    </button>
    <div class="meta">
      <span class="key" title=${hit.key}>${fileName(hit.key)}</span>
      <span class="tags">
        ${calibrated(app) ? html`<span class="label ${hit.match}" title=${`${LABEL_MEANING[hit.match]}; score ${formatScore(hit.score)}`}>${hit.match}</span>` : nothing}
        ${app.state.showScores || !calibrated(app) ? html`<span class="score">${formatScore(hit.score)}</span>` : nothing}
        ${menu(hit.key, [
          { label: 'Open', run: () => void openViewer(app, index) },
          { label: 'More like this', run: () => void app.searchLike(hit) },
          { label: 'Delete…', run: () => void remove(), danger: true },
        ])}
      </span>
    </div>
  </li>`;
}

export interface MenuItem {
  label: string;
  run: () => void;
  danger?: boolean;
}

/** A compact actions menu: a <details> disclosure, closed by Escape or a click elsewhere (main.ts). */
export function menu(key: string, items: MenuItem[]): TemplateResult {
  const choose = (item: MenuItem) => (event: Event) => {
    (event.currentTarget as HTMLElement).closest('details')?.removeAttribute('open');
    item.run();
  };
  return html`<details class="menu">
    <summary aria-label=${`Actions for ${key}`} title="Actions">⋯</summary>
    <div class="menu-items">
      ${items.map(
        (item) =>
          html`<button type="button" class=${item.danger ? 'danger-text' : ''} @click=${choose(item)}>${item.label}</button>`,
      )}
    </div>
  </details>`;
}

export async function confirmDelete(app: App, key: string): Promise<boolean> {
  const { confirmed } = await confirmDialog({
    title: 'Delete this image?',
    body: `${key} is removed from the library and from search results.`,
    confirm: 'Delete',
  });
  return confirmed && (await app.deleteKey(key));
}

/** The full-size viewer over the current results: previous/next (buttons or ←/→), facts, actions. */
async function openViewer(app: App, start: number): Promise<void> {
  let index = start;
  const size = new Map<string, string>();
  const sources = new Map<string, string | undefined>();
  const hits = () => app.state.search?.response.results ?? [];
  await liveDialog('Image viewer', (redraw, close) => {
    const list = hits();
    index = Math.min(index, list.length - 1);
    const hit = list[index];
    if (!hit) {
      queueMicrotask(close);
      return html``;
    }
    if (!sources.has(hit.imageUrl)) {
      sources.set(hit.imageUrl, undefined);
      void app.loadImage(hit.imageUrl).then((src) => {
        sources.set(hit.imageUrl, src);
        redraw();
      });
    }
    const go = (step: number) => {
      index = Math.max(0, Math.min(list.length - 1, index + step));
      redraw();
    };
    const keys = (event: KeyboardEvent) => {
      if (event.key === 'ArrowLeft') go(-1);
      if (event.key === 'ArrowRight') go(1);
    };
    const loaded = (event: Event) => {
      const img = event.target as HTMLImageElement;
      size.set(hit.key, `${img.naturalWidth} × ${img.naturalHeight} px`);
      redraw();
    };
    return html`<div class="viewer" tabindex="-1" @keydown=${keys}>
      <div class="row between">
        <h2 class="key" title=${hit.key}>${hit.key}</h2>
        <button type="button" @click=${close} autofocus>Close</button>
      </div>
      <div class="full-frame">
        <img class="full" src=${sources.get(hit.imageUrl) ?? nothing} alt=${`Full size: ${hit.key}`} @load=${loaded} />
      </div>
      <p class="facts">
        <span>#${index + 1} of ${list.length}</span>
        ${calibrated(app) ? html`<span class="label ${hit.match}">${hit.match}</span>` : nothing}
        <span>score ${formatScore(hit.score)}</span>
        <span id="viewer-size">${size.get(hit.key) ?? ''}</span>
      </p>
      <div class="row">
        <button type="button" ?disabled=${index === 0} @click=${() => go(-1)} aria-keyshortcuts="ArrowLeft">← Previous</button>
        <button type="button" ?disabled=${index >= list.length - 1} @click=${() => go(1)} aria-keyshortcuts="ArrowRight">Next →</button>
        <button type="button" @click=${() => {
          close();
          void app.searchLike(hit);
        }}>More like this</button>
        <button type="button" class="danger" @click=${async () => {
          if (await confirmDelete(app, hit.key)) redraw();
        }}>Delete…</button>
      </div>
    </div>`;
  });
}

/** The last segment of a key: the prefix is in the title and the open button's label. */
function fileName(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}

function clickInput(id: string): void {
  document.getElementById(id)?.click();
}
