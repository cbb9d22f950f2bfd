/** The whole page as one lit-html template of the state: render() patches only what changed. */
import { html, nothing, type TemplateResult } from 'lit-html';
import { isSettled } from '../../src/app/settle.ts';
import type { SearchHit } from './api.ts';
import { type App, type State, TOP_K_MAX } from './app.ts';
import { confirmDialog, viewImage } from './dialogs.ts';
import { formatDuration, formatMs, formatRate, formatScore, formatTime, plural } from './format.ts';
import { SEEDED_WARNING } from './messages.ts';

export function page(app: App): TemplateResult {
  const s = app.state;
  return html`
    <header class="top">
      <h1>pic-search</h1>
      <p class="status">
        ${app.mode === 'cloud' ? 'Cloud' : 'Embedded'} mode ·
        <span id="count">${s.count === undefined ? '…' : plural(s.count, 'image')}</span> searchable
      </p>
    </header>
    ${banners(s)} ${notices(app)}
    <main>
      ${searchPanel(app)} ${resultsPanel(app)}
      <div class="columns">${libraryPanel(app)} ${progressPanel(s)}</div>
    </main>
    <footer>
      ${s.health ? `Model ${s.health.model.model} (${s.health.model.profile}, ${s.health.model.provider})` : ''}
      · <a href=${app.api.url('/openapi.json')}>API description</a>
    </footer>
  `;
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

function notices(app: App): TemplateResult {
  return html`<div class="notices">
    ${app.state.notices.map(
      (n) => html`<div class="notice ${n.kind}" role=${n.kind === 'error' ? 'alert' : 'status'}>
        <span>${n.text}</span>
        <button class="icon" aria-label="Dismiss" @click=${() => app.dismiss(n.id)}>×</button>
      </div>`,
    )}
  </div>`;
}

function searchPanel(app: App): TemplateResult {
  const s = app.state;
  const pick = (event: Event) => {
    const input = event.target as HTMLInputElement;
    const file = input.files?.[0];
    if (file) void app.searchFile(file, file.name);
    input.value = '';
  };
  return html`<section class="panel" aria-labelledby="search-title">
    <h2 id="search-title">Search by image</h2>
    <div class="search-grid">
      <div id="dropzone" class="dropzone">
        <p>Drop a photo here, paste one (Ctrl+V or ⌘V), or</p>
        <div class="row center">
          <button type="button" @click=${() => clickInput('pick-file')}>Choose a photo</button>
          <button type="button" class="camera" @click=${() => clickInput('take-photo')}>Take a photo</button>
        </div>
        <input id="pick-file" class="hidden" type="file" accept="image/*" tabindex="-1" @change=${pick} />
        <input id="take-photo" class="hidden" type="file" accept="image/*" capture="environment" tabindex="-1"
          @change=${pick} />
        <form class="row center" @submit=${(e: Event) => {
          e.preventDefault();
          const topK = new FormData(e.target as HTMLFormElement).get('topK');
          if (app.setTopK(Number(topK))) void app.rerun();
        }}>
          <label for="top-k">Top-K</label>
          <input id="top-k" name="topK" type="number" min="1" max=${TOP_K_MAX} step="1" required
            .value=${String(s.topK)} />
          <button id="search-button" type="submit" class="primary" ?disabled=${s.searching}>
            ${s.searching ? 'Searching…' : 'Search'}
          </button>
        </form>
      </div>
      ${
        s.query
          ? html`<figure class="query">
            <img src=${app.imageSrc(s.query.preview) ?? nothing} alt=${`Query image: ${s.query.label}`} />
            <figcaption>
              <span class="key">${s.query.label}</span>
              ${timings(s)}
            </figcaption>
          </figure>`
          : nothing
      }
    </div>
  </section>`;
}

function timings(s: State): TemplateResult | typeof nothing {
  if (s.searching) return html`<span class="muted">Searching…</span>`;
  if (!s.search) return nothing;
  const t = s.search.response.timings;
  return html`<span id="timings" class="muted">
    decode ${formatMs(t.decodeMs)} · embed ${formatMs(t.embedMs)} · search ${formatMs(t.searchMs)} · total
    ${formatMs(t.totalMs)} (${formatMs(s.search.roundTripMs)} in the browser)
  </span>`;
}

function resultsPanel(app: App): TemplateResult {
  const s = app.state;
  const results = s.search?.response.results ?? [];
  return html`<section class="panel" aria-labelledby="results-title" aria-busy=${s.searching}>
    <h2 id="results-title">Results</h2>
    ${
      results.length > 0
        ? html`<ol class="grid" id="results">
          ${results.map((hit, i) => card(app, hit, i))}
        </ol>`
        : html`<p class="empty">${emptyResults(s)}</p>`
    }
  </section>`;
}

function emptyResults(s: State): string {
  if (s.searchError) return `${s.searchError} Try another photo.`;
  if (s.count === 0) {
    return 'The library is empty. Load a folder or upload photos below, then search with a photo.';
  }
  if (s.search) {
    return 'No similar images found. If photos are still being indexed, watch Progress and search again.';
  }
  return `Drop, paste or choose a photo to find the most similar ones${s.count ? ` among ${plural(s.count, 'image')}` : ''}.`;
}

function card(app: App, hit: SearchHit, index: number): TemplateResult {
  const open = async () => {
    const src = await app.loadImage(hit.imageUrl);
    await viewImage(hit.key, html`<img class="full" src=${src ?? nothing} alt=${`Full size: ${hit.key}`} />`);
  };
  const remove = async () => {
    const { confirmed } = await confirmDialog({
      title: 'Delete this image?',
      body: `${hit.key} is removed from the library and from search results.`,
      confirm: 'Delete',
    });
    if (confirmed) await app.deleteHit(hit);
  };
  return html`<li class="card">
    <button type="button" class="thumb" @click=${open} aria-label=${`Open ${hit.key} full size`}>
      <img src=${app.imageSrc(hit.thumbnailUrl) ?? nothing} alt=${hit.key} loading="lazy" />
    </button>
    <div class="meta">
      <span class="rank">#${index + 1}</span>
      <span class="score" title="Cosine similarity: 1 is the same picture">${formatScore(hit.score)}</span>
    </div>
    <p class="key" title=${hit.key}>${hit.key}</p>
    <div class="row">
      <button type="button" class="more" @click=${() => void app.searchLike(hit)}
        aria-label=${`More like this: ${hit.key}`}>More like this</button>
      <button type="button" class="danger delete" @click=${remove} aria-label=${`Delete ${hit.key}`}>Delete</button>
    </div>
  </li>`;
}

function libraryPanel(app: App): TemplateResult {
  const s = app.state;
  const submit =
    (action: (form: FormData) => Promise<void>, reset = false) =>
    async (event: Event) => {
      event.preventDefault();
      const form = event.target as HTMLFormElement;
      await action(new FormData(form));
      if (reset) form.reset();
    };
  const text = (form: FormData, name: string) => String(form.get(name) ?? '');
  return html`<section class="panel" aria-labelledby="library-title">
    <h2 id="library-title">Load a library</h2>
    ${
      app.mode === 'embedded'
        ? html`<form id="folder-form" class="stack" @submit=${submit((f) => app.ingestFolder(text(f, 'path'), text(f, 'prefix')))}>
          <label>Folder on the server <input name="path" required placeholder="/home/me/Pictures" /></label>
          <label>Key prefix (optional; default: the folder's name) <input name="prefix" placeholder="holiday/" /></label>
          <button type="submit" ?disabled=${s.ingesting}>${s.ingesting ? 'Loading…' : 'Load folder'}</button>
        </form>`
        : html`<form id="prefix-form" class="stack" @submit=${submit((f) => app.backfill(text(f, 'prefix')))}>
          <label>Bucket prefix to index <input name="prefix" placeholder="images/holiday/" /></label>
          <button type="submit" ?disabled=${s.ingesting}>${s.ingesting ? 'Queuing…' : 'Index prefix'}</button>
        </form>`
    }
    <form id="upload-form" class="stack" @submit=${submit(
      (f) =>
        app.upload(
          f.getAll('files').filter((v): v is File => v instanceof File && v.size > 0),
          text(f, 'prefix'),
        ),
      true,
    )}>
      <label>Photos to upload <input name="files" type="file" accept="image/*" multiple required /></label>
      <label>Key prefix (optional) <input name="prefix" placeholder="uploads/" /></label>
      <button type="submit" ?disabled=${Boolean(s.upload)}>
        ${s.upload ? `Uploading ${s.upload.done} of ${s.upload.total}…` : 'Upload photos'}
      </button>
    </form>
    ${s.lastIngest ? html`<p class="muted" id="last-ingest">${s.lastIngest}</p>` : nothing}
    <h3>Start again</h3>
    <button type="button" id="delete-all" class="danger" @click=${async () => {
      const { confirmed, option } = await confirmDialog({
        title: 'Delete everything?',
        body: `Every one of the ${plural(s.count ?? 0, 'image')} is removed from the search index. This cannot be undone.`,
        confirm: 'Delete everything',
        option: 'Also delete the stored photos',
      });
      if (confirmed) await app.deleteAll(option);
    }}>Delete everything…</button>
  </section>`;
}

function progressPanel(s: State): TemplateResult {
  const p = s.progress;
  const done = p ? p.indexed + p.failed : 0;
  const pct = (n: number) => (p && p.total > 0 ? (100 * n) / p.total : 0);
  return html`<section class="panel" aria-labelledby="progress-title">
    <h2 id="progress-title">Progress</h2>
    ${s.pollError ? html`<p class="banner error" role="alert">Progress unavailable: ${s.pollError}</p>` : nothing}
    ${
      p
        ? html`<div class="bar" role="progressbar" aria-label="Indexing progress" aria-valuemin="0"
            aria-valuemax=${p.total} aria-valuenow=${done}>
            <span class="ok" style="width:${pct(p.indexed)}%"></span>
            <span class="bad" style="width:${pct(p.failed)}%"></span>
          </div>
          <p id="progress-counts">
            <strong>${p.indexed}</strong> indexed · <strong>${p.pending}</strong> pending ·
            <strong>${p.failed}</strong> failed of ${p.total}
          </p>
          <p id="progress-state" class="muted">${progressLine(p)}</p>
          ${
            p.recentFailures.length > 0
              ? html`<h3>Failures</h3>
                <ul class="failures" id="failures">
                  ${p.recentFailures.map(
                    (f) => html`<li><span class="key">${f.key}</span> — ${f.reason}
                      <time datetime=${f.at}>${formatTime(f.at)}</time></li>`,
                  )}
                </ul>`
              : nothing
          }`
        : html`<p class="muted">Waiting for the first progress report…</p>`
    }
  </section>`;
}

function progressLine(p: NonNullable<State['progress']>): string {
  if (isSettled(p)) {
    return p.total === 0
      ? 'Nothing loaded yet: load a folder or upload photos.'
      : `Done: ${plural(p.indexed, 'image')} indexed.`;
  }
  const queue = `Queue: ${p.queue.visible} waiting, ${p.queue.inFlight} in progress.`;
  if (p.throughput <= 0)
    return `Starting: speed and time left show once the first images are indexed. ${queue}`;
  const eta = p.etaSeconds === null ? 'time left unknown' : `about ${formatDuration(p.etaSeconds)} left`;
  return `Indexing at ${formatRate(p.throughput)}, ${eta}. ${queue}`;
}

function clickInput(id: string): void {
  document.getElementById(id)?.click();
}
