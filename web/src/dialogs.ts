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

export function viewImage(title: string, content: TemplateResult): Promise<unknown> {
  return showDialog(
    title,
    html`<form method="dialog" class="dialog viewer">
      <div class="row between"><h2 class="key">${title}</h2><button value="close" autofocus>Close</button></div>
      ${content}
    </form>`,
  );
}

const TOKEN_KEY = 'pic-search.api-token';

/** Asks for the API token once and keeps it in localStorage; forgets it when the API refuses it. */
export class StoredToken implements TokenSource {
  private asking: Promise<string> | undefined;

  async get(): Promise<string> {
    const stored = localStorage.getItem(TOKEN_KEY);
    if (stored) return stored;
    this.asking ??= this.ask().finally(() => {
      this.asking = undefined;
    });
    return this.asking;
  }

  reject(): void {
    localStorage.removeItem(TOKEN_KEY);
  }

  private async ask(): Promise<string> {
    const { returnValue, form } = await showDialog(
      'API token',
      html`<form method="dialog" class="dialog">
        <h2>API token</h2>
        <p>This deployment needs an API token. It is kept in this browser only.</p>
        <label>Token <input name="token" type="password" autocomplete="off" required autofocus /></label>
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
    localStorage.setItem(TOKEN_KEY, token);
    return token;
  }
}
