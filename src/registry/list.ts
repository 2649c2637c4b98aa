/**
 * An intrusive doubly linked list: the nodes carry their own links, so adding and removing is O(1)
 * and allocates nothing. Scopes keep their resources and their children this way, and the registry
 * its root scopes and unscoped leases. Iteration runs from the tail: newest first, as LIFO wants.
 */

export interface Node {
  /** @internal */ prev: Node | undefined;
  /** @internal */ next: Node | undefined;
}

export interface List<N extends Node> {
  /** @internal */ tail: N | undefined;
}

export function push<N extends Node>(list: List<N>, node: N): void {
  const tail = list.tail;
  node.prev = tail;
  node.next = undefined;
  if (tail !== undefined) tail.next = node;
  list.tail = node;
}

/** Removes `node`; a node that is not in the list (already removed) is left alone. */
export function remove<N extends Node>(list: List<N>, node: N): void {
  const { prev, next } = node;
  if (next !== undefined) next.prev = prev;
  else if (list.tail === node) list.tail = prev as N | undefined;
  else return; // not linked
  if (prev !== undefined) prev.next = next;
  node.prev = node.next = undefined;
}

/** Iterates newest first. Safe against removal of the node being visited. */
export function* newestFirst<N extends Node>(list: List<N>): Generator<N> {
  let node = list.tail;
  while (node !== undefined) {
    const prev = node.prev as N | undefined;
    yield node;
    node = prev;
  }
}
