import type { Task } from './ports.ts';

/** A task as JSON text, the form both task stores keep it in (dates as ISO strings). */
export function encodeTask(task: Task): string {
  return JSON.stringify(task);
}

export function decodeTask(text: string): Task {
  const raw = JSON.parse(text) as Omit<Task, 'startedAt' | 'updatedAt' | 'finishedAt'> & {
    startedAt: string;
    updatedAt: string;
    finishedAt?: string;
  };
  const { finishedAt, ...rest } = raw;
  return {
    ...rest,
    startedAt: new Date(raw.startedAt),
    updatedAt: new Date(raw.updatedAt),
    ...(finishedAt ? { finishedAt: new Date(finishedAt) } : {}),
  };
}
