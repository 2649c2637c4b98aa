/**
 * A tiny in-memory connection pool for the demo. At most `max` connections are out at once; when
 * all are out, `connect()` waits `acquireTimeoutMs` for one to come back and then fails the way
 * real pools do. `outstanding` is the number the demo watches.
 */
import type { TrackOptions } from '../src/index.js';

/** A fake database connection: `query(id)` answers with a user's name, or undefined. */
export interface Connection {
  readonly id: number;
  query(userId: number): Promise<string | undefined>;
}

export class FakePool {
  readonly max: number;
  readonly acquireTimeoutMs: number;
  #created = 0;
  #free: Connection[] = [];
  #out = new Set<Connection>();
  #waiters: ((conn: Connection) => void)[] = [];

  /** `track()` options that give a connection back to this pool: `track(await pool.connect(), pool.lease)`. */
  readonly lease: TrackOptions<Connection> = { release: (conn) => this.release(conn), kind: 'db connection' };

  constructor(options: { max?: number; acquireTimeoutMs?: number } = {}) {
    this.max = options.max ?? 10;
    this.acquireTimeoutMs = options.acquireTimeoutMs ?? 20;
  }

  /** Connections handed out and not given back. */
  get outstanding(): number {
    return this.#out.size;
  }

  connect(): Promise<Connection> {
    const conn = this.#free.pop() ?? (this.#created < this.max ? this.#create() : undefined);
    if (conn !== undefined) {
      this.#out.add(conn);
      return Promise.resolve(conn);
    }
    return new Promise((resolve, reject) => {
      const waiter = (given: Connection) => {
        clearTimeout(timer);
        resolve(given);
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(new Error('timeout acquiring a connection, the pool is probably full'));
      }, this.acquireTimeoutMs);
      this.#waiters.push(waiter);
    });
  }

  release(conn: Connection): void {
    if (!this.#out.has(conn)) return; // a double release is harmless
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter(conn);
    else {
      this.#out.delete(conn);
      this.#free.push(conn);
    }
  }

  #create(): Connection {
    const id = ++this.#created;
    return {
      id,
      // Even user ids exist; odd ones do not. Each query takes a couple of milliseconds.
      query: (userId) => new Promise((resolve) => setTimeout(() => resolve(userId % 2 === 0 ? `user ${userId}` : undefined), 2)),
    };
  }
}
