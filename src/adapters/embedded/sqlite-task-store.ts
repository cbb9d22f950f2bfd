import type Database from 'better-sqlite3';
import type { IndexGenerations, Task, TaskKind, TaskStore } from '../../domain/ports.ts';
import { decodeTask, encodeTask } from '../../domain/tasks.ts';
import { openSqlite } from './sqlite.ts';

/** Background tasks and the library's last emptying, in their own SQLite file. */
export class SqliteTaskStore implements TaskStore {
  readonly #db: Database.Database;
  readonly #stmt;

  constructor(dbPath: string) {
    this.#db = openSqlite(dbPath);
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS tasks (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        body TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS tasks_by_kind ON tasks (kind, started_at);
      CREATE TABLE IF NOT EXISTS library (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS index_generations (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL);`);
    this.#stmt = {
      clearedAt: this.#db.prepare<[], { value: number }>(
        "SELECT value FROM library WHERE name = 'cleared_at'",
      ),
      setClearedAt: this.#db.prepare("INSERT OR REPLACE INTO library (name, value) VALUES ('cleared_at', ?)"),
      save: this.#db.prepare(
        `INSERT INTO tasks (id, kind, started_at, body) VALUES (@id, @kind, @startedAt, @body)
         ON CONFLICT (id) DO UPDATE SET body = excluded.body`,
      ),
      get: this.#db.prepare<[string], { body: string }>('SELECT body FROM tasks WHERE id = ?'),
      generations: this.#db.prepare<[], { body: string }>('SELECT body FROM index_generations WHERE id = 1'),
      saveGenerations: this.#db.prepare('INSERT OR REPLACE INTO index_generations (id, body) VALUES (1, ?)'),
      latest: this.#db.prepare<[string], { body: string }>(
        'SELECT body FROM tasks WHERE kind = ? ORDER BY started_at DESC, rowid DESC LIMIT 1',
      ),
    };
  }

  async clearedAt(): Promise<Date | undefined> {
    const row = this.#stmt.clearedAt.get();
    return row ? new Date(row.value) : undefined;
  }

  async start(task: Task, clearedAt?: Date): Promise<void> {
    this.#db.transaction(() => {
      this.#write(task);
      if (clearedAt) this.#stmt.setClearedAt.run(clearedAt.getTime());
    })();
  }

  async save(task: Task): Promise<void> {
    this.#write(task);
  }

  async get(id: string): Promise<Task | undefined> {
    const row = this.#stmt.get.get(id);
    return row && decodeTask(row.body);
  }

  async latest(kind: TaskKind): Promise<Task | undefined> {
    const row = this.#stmt.latest.get(kind);
    return row && decodeTask(row.body);
  }

  async indexGenerations(): Promise<IndexGenerations | undefined> {
    const row = this.#stmt.generations.get();
    return row && (JSON.parse(row.body) as IndexGenerations);
  }

  async saveIndexGenerations(generations: IndexGenerations): Promise<void> {
    this.#stmt.saveGenerations.run(JSON.stringify(generations));
  }

  close(): void {
    this.#db.close();
  }

  #write(task: Task): void {
    this.#stmt.save.run({
      id: task.id,
      kind: task.kind,
      startedAt: task.startedAt.getTime(),
      body: encodeTask(task),
    });
  }
}
