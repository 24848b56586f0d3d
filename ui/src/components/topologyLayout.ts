/**
 * Layered layout of a flow graph, computed here so the UI needs no graph library.
 *
 * Flowable tasks are groups: each container (the flow, a flowable, a branch lane inside a
 * flowable) lays out its own children in left-to-right layers, and a group's size is that of
 * its inside. Edges that cross containers are lifted to the two children of their lowest
 * common container for layering, but drawn between the real nodes.
 */
import type { FlowGraph, GraphNode } from "../types";

export const LEAF_W = 200;
export const LEAF_H = 46;
export const TERMINAL = 28;
const LAYER_GAP = 56;
const ROW_GAP = 18;
const GROUP_PAD = 14;
const GROUP_HEAD = 26;
const LANE_PAD = 6;
const LANE_HEAD = 18;

export interface Box {
  id: string;
  kind: "leaf" | "group" | "lane" | "terminal";
  node?: GraphNode;
  label: string;
  x: number;
  y: number;
  w: number;
  h: number;
  depth: number;
}

export interface Layout {
  boxes: Box[];
  byId: Map<string, Box>;
  width: number;
  height: number;
}

interface Item {
  id: string;
  kind: Box["kind"];
  node?: GraphNode;
  label: string;
  parent: Item | null;
  children: Item[];
  w: number;
  h: number;
  x: number; // relative to the parent's content origin
  y: number;
}

const ROOT_ID = "\u0000root";
const SIDE_BRANCHES = new Set(["errors", "finally", "afterExecution"]);

function buildTree(graph: FlowGraph): { root: Item; items: Map<string, Item> } {
  const items = new Map<string, Item>();
  const root: Item = { id: ROOT_ID, kind: "lane", label: "", parent: null, children: [], w: 0, h: 0, x: 0, y: 0 };
  const known = new Set(graph.nodes.map((n) => n.uid));
  for (const node of graph.nodes) {
    const hasChildren = graph.nodes.some((n) => n.parent === node.uid);
    const kind: Box["kind"] =
      node.kind === "start" || node.kind === "end"
        ? "terminal"
        : node.kind === "flowable" || hasChildren
          ? "group"
          : "leaf";
    items.set(node.uid, {
      id: node.uid, kind, node, label: node.label || node.taskId, parent: null, children: [], w: 0, h: 0, x: 0, y: 0,
    });
  }
  // Children go into their parent, in a lane per branch when the parent has branches.
  for (const node of graph.nodes) {
    const item = items.get(node.uid)!;
    const container = node.parent && known.has(node.parent) ? items.get(node.parent)! : root;
    const branched = graph.nodes.some((n) => n.parent === node.parent && n.branch);
    const terminal = node.kind === "start" || node.kind === "end";
    // At the top, only the side branches (errors, finally...) get a lane; the main line stays.
    const direct = !node.branch && (terminal || container === root || node.kind === "trigger");
    if (branched && !direct) {
      const branch = node.branch ?? "tasks";
      const laneId = `${container.id}\u0000lane\u0000${branch}`;
      let lane = items.get(laneId);
      if (!lane) {
        lane = { id: laneId, kind: "lane", label: branch, parent: container, children: [], w: 0, h: 0, x: 0, y: 0 };
        items.set(laneId, lane);
        container.children.push(lane);
      }
      item.parent = lane;
      lane.children.push(item);
    } else {
      item.parent = container;
      container.children.push(item);
    }
  }
  return { root, items };
}

function chain(item: Item): Item[] {
  const path: Item[] = [];
  for (let cur: Item | null = item; cur; cur = cur.parent) path.unshift(cur);
  return path;
}

/** The edges between a container's children that order its layers. */
function liftedEdges(graph: FlowGraph, items: Map<string, Item>): Map<Item, [Item, Item][]> {
  const byContainer = new Map<Item, [Item, Item][]>();
  for (const edge of graph.edges) {
    const s = items.get(edge.source);
    const t = items.get(edge.target);
    if (!s || !t || s === t) continue;
    const ps = chain(s);
    const pt = chain(t);
    let i = 0;
    while (i < ps.length && i < pt.length && ps[i] === pt[i]) i++;
    if (i >= ps.length || i >= pt.length) continue; // one holds the other
    const container = ps[i - 1];
    const list = byContainer.get(container) ?? [];
    list.push([ps[i], pt[i]]);
    byContainer.set(container, list);
  }
  return byContainer;
}

/** Longest-path layers; a cycle (should not happen) is broken in input order. */
function layers(children: Item[], edges: [Item, Item][]): Item[][] {
  const indeg = new Map<Item, number>(children.map((c) => [c, 0]));
  const out = new Map<Item, Item[]>(children.map((c) => [c, []]));
  const seen = new Set<string>();
  for (const [a, b] of edges) {
    const key = `${a.id}\u0000${b.id}`;
    if (seen.has(key) || !out.has(a) || !indeg.has(b)) continue;
    seen.add(key);
    out.get(a)!.push(b);
    indeg.set(b, indeg.get(b)! + 1);
  }
  const layer = new Map<Item, number>();
  const placed = new Set<Item>();
  const queue = children.filter((c) => indeg.get(c) === 0);
  const remaining = new Map(indeg);
  for (const c of queue) layer.set(c, 0);
  while (placed.size < children.length) {
    if (queue.length === 0) {
      const stuck = children.find((c) => !placed.has(c))!;
      layer.set(stuck, layer.get(stuck) ?? 0);
      queue.push(stuck);
      remaining.set(stuck, 0);
    }
    const cur = queue.shift()!;
    if (placed.has(cur)) continue;
    placed.add(cur);
    for (const next of out.get(cur)!) {
      if (placed.has(next)) continue;
      layer.set(next, Math.max(layer.get(next) ?? 0, (layer.get(cur) ?? 0) + 1));
      remaining.set(next, remaining.get(next)! - 1);
      if (remaining.get(next) === 0) queue.push(next);
    }
  }
  const result: Item[][] = [];
  for (const c of children) {
    const l = layer.get(c) ?? 0;
    (result[l] ??= []).push(c);
  }
  const filled = result.filter(Boolean);
  // One barycentre pass: order each layer by where its predecessors sit.
  const position = new Map<Item, number>();
  filled.forEach((row) => row.forEach((c, i) => position.set(c, i)));
  for (let l = 1; l < filled.length; l++) {
    const score = (c: Item) => {
      const preds = edges.filter(([, b]) => b === c).map(([a]) => position.get(a) ?? 0);
      return preds.length ? preds.reduce((s, v) => s + v, 0) / preds.length : position.get(c) ?? 0;
    };
    filled[l].sort((a, b) => score(a) - score(b));
    filled[l].forEach((c, i) => position.set(c, i));
  }
  return filled;
}

function measure(item: Item, edges: Map<Item, [Item, Item][]>): void {
  if (item.kind === "terminal") {
    item.w = TERMINAL;
    item.h = TERMINAL;
    return;
  }
  if (item.children.length === 0 && item.kind !== "lane") {
    item.w = item.kind === "group" ? LEAF_W + 2 * GROUP_PAD : LEAF_W;
    item.h = item.kind === "group" ? LEAF_H + GROUP_HEAD : LEAF_H;
    return;
  }
  for (const child of item.children) measure(child, edges);
  // Side branches (errors, finally...) of a container with a main line go in a row beneath it.
  const hasMain = item.children.some((c) => c.kind !== "lane" && c.kind !== "terminal");
  const side = hasMain ? item.children.filter((c) => c.kind === "lane" && SIDE_BRANCHES.has(c.label)) : [];
  const main = item.children.filter((c) => !side.includes(c));
  const rows = layers(main, edges.get(item) ?? []);
  const lanes = item.children.filter((c) => c.kind === "lane");
  const lanesOnly = lanes.length > 0 && item.children.every((c) => c.kind === "lane" || c.kind === "terminal");
  let x = 0;
  let maxH = 0;
  for (const row of rows) {
    const colW = Math.max(...row.map((c) => c.w));
    const colH = row.reduce((s, c) => s + c.h, 0) + ROW_GAP * (row.length - 1);
    maxH = Math.max(maxH, colH);
    let y = 0;
    for (const c of row) {
      c.x = x + (lanesOnly && c.kind === "lane" ? 0 : (colW - c.w) / 2);
      c.y = y;
      y += c.h + ROW_GAP;
    }
    x += colW + LAYER_GAP;
  }
  let innerW = Math.max(0, x - LAYER_GAP);
  // Centre every column vertically in the container.
  for (const row of rows) {
    const colH = row.reduce((s, c) => s + c.h, 0) + ROW_GAP * (row.length - 1);
    for (const c of row) c.y += (maxH - colH) / 2;
  }
  if (side.length) {
    const firstW = rows.length > 1 ? Math.max(...rows[0].map((c) => c.w)) + LAYER_GAP : 0;
    let sx = firstW;
    const top = maxH + 2 * ROW_GAP;
    let sideH = 0;
    for (const lane of side) {
      lane.x = sx;
      lane.y = top;
      sx += lane.w + LAYER_GAP;
      sideH = Math.max(sideH, lane.h);
    }
    innerW = Math.max(innerW, sx - LAYER_GAP);
    maxH = top + sideH;
  }
  if (item.id === ROOT_ID) {
    item.w = innerW;
    item.h = maxH;
  } else if (item.kind === "lane") {
    for (const c of item.children) {
      c.x += LANE_PAD;
      c.y += LANE_HEAD;
    }
    item.w = innerW + 2 * LANE_PAD;
    item.h = maxH + LANE_HEAD + LANE_PAD;
  } else {
    for (const c of item.children) {
      c.x += GROUP_PAD;
      c.y += GROUP_HEAD;
    }
    item.w = Math.max(innerW + 2 * GROUP_PAD, 160);
    item.h = maxH + GROUP_HEAD + GROUP_PAD;
  }
}

export function layoutGraph(graph: FlowGraph): Layout {
  const { root, items } = buildTree(graph);
  const edges = liftedEdges(graph, items);
  measure(root, edges);
  const boxes: Box[] = [];
  const byId = new Map<string, Box>();
  const place = (item: Item, ox: number, oy: number, depth: number) => {
    for (const child of item.children) {
      const box: Box = {
        id: child.id, kind: child.kind, node: child.node, label: child.label,
        x: ox + child.x, y: oy + child.y, w: child.w, h: child.h, depth,
      };
      boxes.push(box);
      byId.set(box.id, box);
      place(child, box.x, box.y, depth + 1);
    }
  };
  place(root, 0, 0, 0);
  return { boxes, byId, width: root.w, height: root.h };
}
