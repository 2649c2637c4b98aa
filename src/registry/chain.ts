/**
 * An intrusive list in arrival order (oldest at the head), with cursors that survive removals.
 *
 * The registry keeps every open scope and every held lease in one of these, so that walks over
 * them are flat loops (no recursion, whatever the nesting), ordered by age (a walk for "older than
 * X" stops at the first younger node), and resumable: a cursor remembers the last node a walk is
 * done with, and when that node leaves the chain the cursor steps back to the one before it, so a
 * walk spread over several event-loop turns keeps its place while nodes come and go. (Marker nodes
 * inside the chain would do the same, but a marker stored in a scope's link field changes that
 * field's type, and V8 then migrates every scope object: 5 µs each, seconds for 100,000.)
 *
 * The links (`older`, `newer`) are separate from the `prev`/`next` a scope uses for its parent's
 * list of children, so a node can be in both.
 */

export interface Linked {
  /** @internal */ older: Linked | undefined;
  /** @internal */ newer: Linked | undefined;
}

export class Chain<T extends Linked> {
  head: T | undefined = undefined;
  tail: T | undefined = undefined;
  size = 0;
  readonly #cursors: Cursor<T>[] = [];

  append(node: T): void {
    const tail = this.tail;
    node.older = tail;
    node.newer = undefined;
    if (tail === undefined) this.head = node;
    else tail.newer = node;
    this.tail = node;
    this.size++;
  }

  /** Puts `node` just before `ref` (which must be in the chain). */
  insertBefore(node: T, ref: T): void {
    const older = ref.older;
    node.older = older;
    node.newer = ref;
    ref.older = node;
    if (older === undefined) this.head = node;
    else older.newer = node;
    this.size++;
  }

  /** True when `node` is in this chain (a node is in one chain of a kind at a time). */
  has(node: T): boolean {
    return node.older !== undefined || this.head === node;
  }

  /** Takes `node` out; returns false for a node not in the chain (already taken out), which is left alone. */
  unlink(node: T): boolean {
    const { older, newer } = node;
    if (older === undefined && this.head !== node) return false; // not linked
    for (const cursor of this.#cursors) if (cursor.last === node) cursor.last = older as T | undefined;
    if (older === undefined) this.head = newer as T | undefined;
    else older.newer = newer;
    if (newer === undefined) this.tail = older as T | undefined;
    else newer.older = older;
    node.older = node.newer = undefined;
    this.size--;
    return true;
  }

  /** Every node, oldest first. Safe against removal of the node being visited. */
  *[Symbol.iterator](): Generator<T> {
    for (let node = this.head; node !== undefined;) {
      const next = node.newer as T | undefined;
      yield node;
      node = next;
    }
  }

  /** A cursor before the oldest node. Every removal checks every cursor: keep a few, and drop those done with. */
  cursor(): Cursor<T> {
    const cursor = new Cursor<T>(this);
    this.#cursors.push(cursor);
    return cursor;
  }

  /** Forgets a cursor. */
  dropCursor(cursor: Cursor<T>): void {
    const i = this.#cursors.indexOf(cursor);
    if (i !== -1) this.#cursors.splice(i, 1);
  }
}

/** A place in a chain that stays valid while nodes are added and removed around it. */
export class Cursor<T extends Linked> {
  /** @internal The last node the walk is done with; `undefined`: before the head. */
  last: T | undefined = undefined;

  constructor(private readonly chain: Chain<T>) {}

  /** The first node after the cursor, or `undefined` at the end. */
  next(): T | undefined {
    return this.last === undefined ? this.chain.head : (this.last.newer as T | undefined);
  }

  /** Moves the cursor just past `node` (which must be in the chain). */
  passed(node: T): void {
    this.last = node;
  }

  /** Moves the cursor back before the oldest node. */
  rewind(): void {
    this.last = undefined;
  }
}
