/** The Library view: load a folder or a prefix, upload photos, follow each job's progress, start again. */
import { html, nothing, type TemplateResult } from 'lit-html';
import { isSettled } from '../../src/app/settle.ts';
import type { App, State } from './app.ts';
import { confirmDialog } from './dialogs.ts';
import { formatDuration, formatRate, formatTime, plural } from './format.ts';
import { type Job, secondsLeft } from './jobs.ts';

export function libraryView(app: App): TemplateResult {
  return html`<div class="columns">${loadPanel(app)} ${progressPanel(app.state)}</div>`;
}

function loadPanel(app: App): TemplateResult {
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
          <button type="submit" class="primary" ?disabled=${s.ingesting}>${s.ingesting ? 'Loading…' : 'Load folder'}</button>
        </form>`
        : html`<form id="prefix-form" class="stack" @submit=${submit((f) => app.backfill(text(f, 'prefix')))}>
          <label>Bucket prefix to index <input name="prefix" placeholder="images/holiday/" /></label>
          <button type="submit" class="primary" ?disabled=${s.ingesting}>${s.ingesting ? 'Queuing…' : 'Index prefix'}</button>
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
    <h3>Start again</h3>
    <button type="button" id="delete-all" class="danger" @click=${async () => {
      const { confirmed, option } = await confirmDialog({
        title: 'Delete everything?',
        body:
          `Every one of the ${plural(s.count ?? 0, 'image')} is removed from the search index at once; ` +
          'records and thumbnails are cleaned up in the background. Photos you keep stay in the bucket but out of ' +
          'the index, also after a restart, until you ingest them again. This cannot be undone.',
        confirm: 'Delete everything',
        option: 'Also delete the stored photos',
      });
      if (confirmed) await app.deleteAll(option);
    }}>Delete everything…</button>
  </section>`;
}

function progressPanel(s: State): TemplateResult {
  const p = s.progress;
  return html`<section class="panel" aria-labelledby="progress-title">
    <h2 id="progress-title">Progress</h2>
    ${s.pollError ? html`<p class="banner error" role="alert">Progress unavailable: ${s.pollError}</p>` : nothing}
    ${s.jobs.length > 0 ? html`<ul class="jobs" id="jobs">${s.jobs.map(jobLine)}</ul>` : nothing}
    ${
      p
        ? html`<h3>Library</h3>
          <p id="progress-counts">
            <strong>${p.indexed}</strong> indexed · <strong>${p.pending}</strong> pending ·
            <strong>${p.failed}</strong> failed of ${p.total}
          </p>
          <p id="progress-state" class="muted">${libraryLine(p)}</p>
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

function jobLine(job: Job): TemplateResult {
  const finished = job.finishedAt !== undefined;
  const left = secondsLeft(job);
  const state = finished
    ? `done in ${formatDuration(((job.finishedAt as number) - job.startedAt) / 1000)}`
    : job.rate === undefined
      ? 'starting…'
      : `${formatRate(job.rate)}${left === undefined ? '' : `, about ${formatDuration(left)} left`}`;
  return html`<li class="job">
    <span class="job-label">${job.label}</span>
    <progress max=${Math.max(1, job.queued)} .value=${finished ? Math.max(1, job.queued) : job.done}
      aria-label=${`${job.label}: ${job.done} of ${job.queued}`}></progress>
    <span class="job-state">${job.done} of ${plural(job.queued, 'image')} · ${state}</span>
  </li>`;
}

function libraryLine(p: NonNullable<State['progress']>): string {
  if (isSettled(p)) {
    return p.total === 0
      ? 'Nothing loaded yet: load a folder or upload photos.'
      : `Done: ${plural(p.indexed, 'image')} indexed.`;
  }
  return `Working: ${p.queue.visible} waiting, ${p.queue.inFlight} in progress.`;
}
