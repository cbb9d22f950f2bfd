import type { Logger } from 'pino';

/**
 * ECS task scale-in protection, set through the ECS agent's endpoint in the task
 * (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection-endpoint.html):
 * `PUT $ECS_AGENT_URI/task-protection/v1/state` with `{"ProtectionEnabled": true, "ExpiresInMinutes": n}`
 * while the worker holds messages, `{"ProtectionEnabled": false}` once it holds none, so scaling in never
 * stops a task in the middle of a batch. The protection expires by itself should the worker die; a worker
 * that keeps holding messages renews it once a third of it has passed. Calls are made one at a time.
 */
export class TaskProtection {
  readonly #url: string;
  readonly #expiresInMinutes: number;
  readonly #now: () => number;
  readonly #log: Logger | undefined;
  #protectedAt: number | undefined;
  #last: Promise<void> = Promise.resolve();

  constructor(agentUri: string, options: { expiresInMinutes: number; logger?: Logger; now?: () => number }) {
    this.#url = `${agentUri.replace(/\/$/, '')}/task-protection/v1/state`;
    this.#expiresInMinutes = Math.min(2880, Math.max(1, Math.ceil(options.expiresInMinutes)));
    this.#now = options.now ?? Date.now;
    this.#log = options.logger;
  }

  /** True while this task is protected, as far as this process last set it. */
  get protected(): boolean {
    return this.#protectedAt !== undefined;
  }

  /** Protects the task while `holding`, releases it when not; a no-op when nothing would change. */
  set(holding: boolean): Promise<void> {
    const next = this.#last.then(() => this.#apply(holding));
    this.#last = next.catch(() => undefined);
    return next;
  }

  async #apply(holding: boolean): Promise<void> {
    if (holding) {
      const renewAfter = (this.#expiresInMinutes * 60_000) / 3;
      if (this.#protectedAt !== undefined && this.#now() - this.#protectedAt < renewAfter) return;
      await this.#put({ ProtectionEnabled: true, ExpiresInMinutes: this.#expiresInMinutes });
      this.#protectedAt = this.#now();
      this.#log?.debug({ expiresInMinutes: this.#expiresInMinutes }, 'task protected from scale-in');
    } else if (this.#protectedAt !== undefined) {
      await this.#put({ ProtectionEnabled: false });
      this.#protectedAt = undefined;
      this.#log?.debug('task scale-in protection released');
    }
  }

  async #put(body: Record<string, unknown>): Promise<void> {
    const response = await fetch(this.#url, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    // The agent answers 200 with `failure` or `error` when ECS refused the change.
    const answer = (text ? JSON.parse(text) : {}) as { failure?: unknown; error?: unknown };
    if (!response.ok || answer.failure || answer.error) {
      throw new Error(
        `ECS task protection (${JSON.stringify(body)}) refused: ${response.status} ${text.slice(0, 300)}`,
      );
    }
  }
}
