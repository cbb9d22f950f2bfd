/**
 * Modal <dialog>s: the browser gives them focus trapping, Escape to close and a backdrop, so keyboard
 * and screen-reader use come for free.
 */
import { html, render, type TemplateResult } from 'lit-html';
import { ApiError, type TokenSource } from './api.ts';

/** Shows `content` (a <form method="dialog">) modally; resolves with the form data of the button pressed. */
function showDialog(
  label: string,
  content: TemplateResult,
): Promise<{ returnValue: string; form: FormData }> {
  const dialog = document.createElement('dialog');
  dialog.setAttribute('aria-label', label);
  document.body.append(dialog);
  render(content, dialog);
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      const form = dialog.querySelector('form');
      resolve({ returnValue: dialog.returnValue, form: form ? new FormData(form) : new FormData() });
      dialog.remove();
    });
    dialog.showModal();
  });
}

export async function confirmDialog(options: {
  title: string;
  body: string;
  confirm: string;
  /** An extra opt-in choice, e.g. "also delete the stored photos". */
  option?: string;
}): Promise<{ confirmed: boolean; option: boolean }> {
  const { returnValue, form } = await showDialog(
    options.title,
    html`<form method="dialog" class="dialog">
      <h2>${options.title}</h2>
      <p>${options.body}</p>
      ${options.option ? html`<label class="check"><input type="checkbox" name="option" /> ${options.option}</label>` : ''}
      <div class="row end">
        <button value="cancel" autofocus>Cancel</button>
        <button value="confirm" class="danger">${options.confirm}</button>
      </div>
    </form>`,
  );
  return { confirmed: returnValue === 'confirm', option: form.get('option') === 'on' };
}

/**
 * A modal whose content is rendered again by `draw(redraw)` whenever it calls redraw (the viewer's
 * previous/next); resolves when it closes.
 */
export function liveDialog(
  label: string,
  draw: (redraw: () => void, close: () => void) => TemplateResult,
): Promise<void> {
  const dialog = document.createElement('dialog');
  dialog.setAttribute('aria-label', label);
  dialog.className = 'live';
  document.body.append(dialog);
  const close = () => dialog.close();
  const redraw = () => render(draw(redraw, close), dialog);
  redraw();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve();
    });
    dialog.showModal();
  });
}

const TOKEN_KEY = 'pic-search.api-token';

/**
 * Asks for the API token once and keeps it for this tab only (sessionStorage), or on this device
 * (localStorage) when the person asks to be remembered; forgets it when the API refuses it.
 */
export class StoredToken implements TokenSource {
  private asking: Promise<string> | undefined;

  async get(): Promise<string> {
    const stored = sessionStorage.getItem(TOKEN_KEY) ?? localStorage.getItem(TOKEN_KEY);
    if (stored) return stored;
    this.asking ??= this.ask().finally(() => {
      this.asking = undefined;
    });
    return this.asking;
  }

  reject(): void {
    sessionStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(TOKEN_KEY);
  }

  private async ask(): Promise<string> {
    const { returnValue, form } = await showDialog(
      'API token',
      html`<form method="dialog" class="dialog">
        <h2>API token</h2>
        <p>This deployment needs an API token. It is kept in this tab until you close it.</p>
        <label>Token <input name="token" type="password" autocomplete="off" required autofocus /></label>
        <label class="check"><input type="checkbox" name="remember" /> Remember it on this device</label>
        <div class="row end">
          <button value="cancel" formnovalidate>Cancel</button>
          <button value="save">Save</button>
        </div>
      </form>`,
    );
    const token = String(form.get('token') ?? '').trim();
    if (returnValue !== 'save' || !token) {
      throw new ApiError('No API token given: reload the page to enter one.', 401, 'unauthorized');
    }
    (form.get('remember') === 'on' ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
    return token;
  }
}
