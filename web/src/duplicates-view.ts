/** The Duplicates view: groups of near-copies, the one to keep first, and what to do with the rest. */
import { html, nothing, type TemplateResult } from 'lit-html';
import type { DuplicateGroupView, DuplicatesView } from './api.ts';
import type { App } from './app.ts';
import { confirmDialog } from './dialogs.ts';
import { formatBytes, formatScore, plural } from './format.ts';

export function duplicatesView(app: App): TemplateResult {
  const d = app.state.duplicates;
  const page = d.page;
  const threshold = d.threshold ?? page?.threshold;
  return html`<section class="panel duplicates" aria-labelledby="duplicates-title" aria-busy=${d.loading}>
    <div class="row between">
      <h2 id="duplicates-title">Duplicates</h2>
      <form class="options" @submit=${(e: Event) => {
        e.preventDefault();
        app.setDuplicateThreshold(Number(new FormData(e.target as HTMLFormElement).get('threshold')));
      }}>
        <label for="threshold">Similarity from</label>
        <input id="threshold" name="threshold" type="number" min="0.5" max="1" step="0.001" required
          .value=${threshold === undefined ? '' : String(threshold)} />
        <button type="submit">Apply</button>
      </form>
    </div>
    ${
      page
        ? html`<p id="duplicates-summary" class="muted">
            ${page.totalGroups === 0 ? 'No duplicates at this similarity.' : `${plural(page.totalGroups, 'group')} of near-identical photos; the suggested copy to keep (most pixels, then largest file, then oldest) comes first.`}
          </p>`
        : html`<p class="muted">${d.loading ? 'Looking for duplicates…' : (d.error ?? '')}</p>`
    }
    ${page?.scan ? scanLine(app, page.scan) : nothing}
    <ol class="groups" id="groups">${page?.groups.map((group) => groupCard(app, group)) ?? nothing}</ol>
    ${
      page && (page.nextCursor || d.previous.length > 0)
        ? html`<div class="row">
            <button type="button" ?disabled=${d.previous.length === 0 && !d.cursor} @click=${() => void app.previousDuplicates()}>← Previous page</button>
            <button type="button" ?disabled=${!page.nextCursor} @click=${() => void app.nextDuplicates()}>Next page →</button>
          </div>`
        : nothing
    }
  </section>`;
}

/** Cloud mode: the groups come from the last scan, which the worker runs on request. */
function scanLine(app: App, scan: NonNullable<DuplicatesView['scan']>): TemplateResult {
  const last = scan.finishedAt
    ? `From the scan of ${new Date(scan.finishedAt).toLocaleString()} at similarity ${scan.threshold}.`
    : 'No scan yet.';
  return html`<p id="duplicates-scan" class="row muted">
    ${scan.running ? `${last} A scan is running.` : last}
    <button type="button" ?disabled=${scan.running} @click=${() => void app.scanDuplicates()}>Scan now</button>
  </p>`;
}

function groupCard(app: App, group: DuplicateGroupView): TemplateResult {
  const others = group.members.filter((m) => m.key !== group.keep);
  const keepBest = async () => {
    const { confirmed } = await confirmDialog({
      title: `Delete ${plural(others.length, 'copy', 'copies')}?`,
      body: `Keep ${group.keep} and delete ${others.map((m) => m.key).join(', ')} from the library and the disk.`,
      confirm: `Delete ${plural(others.length, 'copy', 'copies')}`,
    });
    if (confirmed) await app.keepBest(group);
  };
  return html`<li class="group">
    <ul class="members">
      ${group.members.map(
        (m) => html`<li class=${m.key === group.keep ? 'member keep' : 'member'}>
          <img src=${app.imageSrc(m.thumbnailUrl) ?? nothing} alt=${m.key} loading="lazy" />
          <span class="key" title=${m.key}>${m.key}</span>
          <span class="muted">${m.width} × ${m.height} · ${formatBytes(m.bytes)}</span>
          <span class=${m.key === group.keep ? 'label duplicate' : 'muted'}>${m.key === group.keep ? 'keep' : `similarity ${formatScore(m.score)}`}</span>
        </li>`,
      )}
    </ul>
    <div class="row">
      <button type="button" class="danger" @click=${keepBest}>Keep the first, delete ${plural(others.length, 'other')}</button>
      <button type="button" @click=${() => void app.notDuplicates(group)}>Not duplicates</button>
    </div>
  </li>`;
}
