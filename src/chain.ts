/**
 * An intrusive list in arrival order (oldest at the head), with cursors that survive removals.
 *
 * The registry keeps every open scope and every held lease in one of these, so that walks over
 * them are flat loops (no recursion, whatever the nesting), ordered by age (a walk for "older than
 * X" stops at the first younger node), and resumable: a cursor is a marker node inside the list,
 * so a walk spread over several event-loop turns keeps its place while nodes before and after it
 * come and go. The links (`older`, `newer`) are separate from the `prev`/`next` a scope uses for
 * its parent's list of children, so a node can be in both.
 */

export interface Linked {
  /** @internal */ older: Linked | undefined;
  /** @internal */ newer: Linked | undefined;
}

/** A position in a chain; skipped by every walk. */
class Marker implements Linked {
  older: Linked | undefined = undefined;
  newer: Linked | undefined = undefined;
}

export class Chain<T extends Linked> {
  head: Linked | undefined = undefined;
  tail: Linked | undefined = undefined;
  /** Nodes in the chain, markers not counted. */
  size = 0;

  append(node: T): void {
    this.#link(node);
    this.size++;
  }

  /** Takes `node` out; a node not in the chain (already taken out) is left alone. */
  unlink(node: T): void {
    if (this.#unlink(node)) this.size--;
  }

  /** The oldest node, markers skipped. */
  first(): T | undefined {
    return this.after(undefined);
  }

  /** The node after `node` (after the head when `undefined`), markers skipped. */
  after(node: Linked | undefined): T | undefined {
    let next = node === undefined ? this.head : node.newer;
    while (next instanceof Marker) next = next.newer;
    return next as T | undefined;
  }

  /** Every node, oldest first. Safe against removal of the node being visited. */
  *[Symbol.iterator](): Generator<T> {
    for (let node = this.first(); node !== undefined; ) {
      const next = this.after(node);
      yield node;
      node = next;
    }
  }

  /** A cursor before the oldest node. */
  cursor(): Cursor<T> {
    const marker = new Marker();
    this.#linkFirst(marker);
    return new Cursor(this, marker);
  }

  /** @internal */
  moveAfter(marker: Marker, node: Linked | undefined): void {
    this.#unlink(marker);
    if (node === undefined) this.#linkFirst(marker);
    else {
      const newer = node.newer;
      marker.older = node;
      marker.newer = newer;
      node.newer = marker;
      if (newer === undefined) this.tail = marker;
      else newer.older = marker;
    }
  }

  #link(node: Linked): void {
    const tail = this.tail;
    node.older = tail;
    node.newer = undefined;
    if (tail === undefined) this.head = node;
    else tail.newer = node;
    this.tail = node;
  }

  #linkFirst(node: Linked): void {
    const head = this.head;
    node.older = undefined;
    node.newer = head;
    if (head === undefined) this.tail = node;
    else head.older = node;
    this.head = node;
  }

  #unlink(node: Linked): boolean {
    const { older, newer } = node;
    if (older === undefined && this.head !== node) return false; // not linked
    if (older === undefined) this.head = newer;
    else older.newer = newer;
    if (newer === undefined) this.tail = older;
    else newer.older = older;
    node.older = node.newer = undefined;
    return true;
  }
}

/**
 * A place in a chain that stays valid while nodes are added and removed around it. Walks read
 * `next()` and move the cursor past what they are done with.
 */
export class Cursor<T extends Linked> {
  constructor(
    private readonly chain: Chain<T>,
    private readonly marker: Marker,
  ) {}

  /** The first node after the cursor, or `undefined` at the end. */
  next(): T | undefined {
    return this.chain.after(this.marker);
  }

  /** Moves the cursor just past `node` (which must be in the chain). */
  passed(node: T): void {
    this.chain.moveAfter(this.marker, node);
  }

  /** Moves the cursor back before the oldest node. */
  rewind(): void {
    this.chain.moveAfter(this.marker, undefined);
  }

  /** Moves the cursor past the newest node. */
  toEnd(): void {
    const tail = this.chain.tail;
    if (tail !== this.marker) this.chain.moveAfter(this.marker, tail);
  }
}
