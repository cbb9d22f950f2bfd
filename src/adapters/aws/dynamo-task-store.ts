import {
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { IndexGenerations, Task, TaskKind, TaskStore } from '../../domain/ports.ts';
import { decodeTask, encodeTask } from '../../domain/tasks.ts';

/** The item of the library's emptying, newest tasks and index generations. */
export const LIBRARY_PK = 'library';

const taskPk = (id: string) => `task#${id}`;

/**
 * Background tasks in the catalogue's table (catalogue-table.ts): `task#<id>` holds a task as JSON;
 * `library` holds the last emptying (`clearedAt`), the newest task id of each kind and which vector index
 * generation is live (`indexGenerations`, so a re-index's switch is one item write). Two writes, not a
 * transaction (moto copies the whole table for each transaction item: see dynamo-catalogue.ts): the task
 * first, so a crash between them leaves only a task nobody points at.
 */
export class DynamoTaskStore implements TaskStore {
  readonly #db: DynamoDBClient;
  readonly #table: string;

  constructor(db: DynamoDBClient, tableName: string) {
    this.#db = db;
    this.#table = tableName;
  }

  async clearedAt(): Promise<Date | undefined> {
    const item = await this.#get(LIBRARY_PK);
    return item?.clearedAt?.N ? new Date(Number(item.clearedAt.N)) : undefined;
  }

  async start(task: Task, clearedAt?: Date): Promise<void> {
    await this.save(task);
    await this.#db.send(
      new UpdateItemCommand({
        TableName: this.#table,
        Key: { pk: { S: LIBRARY_PK } },
        UpdateExpression: `SET #latest = :id${clearedAt ? ', clearedAt = :clearedAt' : ''}`,
        ExpressionAttributeNames: { '#latest': `latest_${task.kind}` },
        ExpressionAttributeValues: {
          ':id': { S: task.id },
          ...(clearedAt ? { ':clearedAt': { N: String(clearedAt.getTime()) } } : {}),
        },
      }),
    );
  }

  async save(task: Task): Promise<void> {
    await this.#db.send(
      new PutItemCommand({
        TableName: this.#table,
        Item: { pk: { S: taskPk(task.id) }, body: { S: encodeTask(task) } },
      }),
    );
  }

  async get(id: string): Promise<Task | undefined> {
    const body = (await this.#get(taskPk(id)))?.body?.S;
    return body === undefined ? undefined : decodeTask(body);
  }

  async latest(kind: TaskKind): Promise<Task | undefined> {
    const id = (await this.#get(LIBRARY_PK))?.[`latest_${kind}`]?.S;
    return id === undefined ? undefined : this.get(id);
  }

  async indexGenerations(): Promise<IndexGenerations | undefined> {
    const body = (await this.#get(LIBRARY_PK))?.indexGenerations?.S;
    return body === undefined ? undefined : (JSON.parse(body) as IndexGenerations);
  }

  async saveIndexGenerations(generations: IndexGenerations): Promise<void> {
    await this.#db.send(
      new UpdateItemCommand({
        TableName: this.#table,
        Key: { pk: { S: LIBRARY_PK } },
        UpdateExpression: 'SET indexGenerations = :generations',
        ExpressionAttributeValues: { ':generations': { S: JSON.stringify(generations) } },
      }),
    );
  }

  async #get(pk: string) {
    const out = await this.#db.send(
      new GetItemCommand({ TableName: this.#table, Key: { pk: { S: pk } }, ConsistentRead: true }),
    );
    return out.Item;
  }
}
