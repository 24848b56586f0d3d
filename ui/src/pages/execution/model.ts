/**
 * Pure functions over an execution document: the Gantt's rows (task runs nested under their
 * flowable parents), time spans, durations and the worst state of a group. Kept free of React
 * so they can be reasoned about (and reused by the Topology colouring and the outputs tree).
 */
import { formatDuration } from "../../hooks";
import type { Attempt, Execution, TaskRun } from "../../types";

/** Parse an ISO timestamp (the server sends microseconds and an offset) to epoch ms. */
export function toMs(value: string | null | undefined): number | null {
  if (!value) return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

/** The duration of something that started and may not have ended yet (then: until `now`). */
export function spanMs(start: string | null | undefined, end: string | null | undefined,
  now: number): number | null {
  const s = toMs(start);
  if (s === null) return null;
  return (toMs(end) ?? now) - s;
}

/** A ForEach value or iteration shown next to the task id; long values are shortened. */
export function valueLabel(run: TaskRun): string {
  const value = run.value;
  if (value === null || value === undefined) {
    return run.iteration !== null && run.iteration !== undefined ? `#${run.iteration}` : "";
  }
  const text = typeof value === "string" ? value : JSON.stringify(value);
  if (text.startsWith("kray://")) return text.slice(text.lastIndexOf("/") + 1);
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}

export interface GanttRow {
  run: TaskRun;
  depth: number;
  /** How many task runs are nested under this one (0 for a leaf). */
  children: number;
  collapsed: boolean;
}

/** The task runs of each parent (key "" for the roots), in creation order. */
export function childrenIndex(runs: readonly TaskRun[]): Map<string, TaskRun[]> {
  const known = new Set(runs.map((r) => r.id));
  const index = new Map<string, TaskRun[]>();
  for (const run of runs) {
    const parent = run.parentTaskRunId && known.has(run.parentTaskRunId) ? run.parentTaskRunId : "";
    let list = index.get(parent);
    if (!list) index.set(parent, (list = []));
    list.push(run);
  }
  return index;
}

/**
 * The visible rows, depth first: a task run, then (unless collapsed) its children. Iterative
 * so a deep or wide execution can't overflow the stack; O(task runs).
 */
export function ganttRows(runs: readonly TaskRun[], collapsed: ReadonlySet<string>): GanttRow[] {
  const index = childrenIndex(runs);
  const rows: GanttRow[] = [];
  const stack: { run: TaskRun; depth: number }[] = [];
  const roots = index.get("") ?? [];
  for (let i = roots.length - 1; i >= 0; i--) stack.push({ run: roots[i], depth: 0 });
  while (stack.length) {
    const { run, depth } = stack.pop()!;
    const kids = index.get(run.id) ?? [];
    const isCollapsed = collapsed.has(run.id);
    rows.push({ run, depth, children: kids.length, collapsed: isCollapsed });
    if (isCollapsed) continue;
    for (let i = kids.length - 1; i >= 0; i--) stack.push({ run: kids[i], depth: depth + 1 });
  }
  return rows;
}

/** The time window the Gantt draws: the execution's start to its end (or now, while live). */
export function timeWindow(execution: Execution, now: number): { start: number; end: number } {
  let start = toMs(execution.startDate);
  let end = toMs(execution.endDate);
  for (const run of execution.taskRuns) {
    const s = toMs(run.startDate);
    if (s !== null && (start === null || s < start)) start = s;
    const e = toMs(run.endDate);
    if (e !== null && end !== null && e > end) end = e;
  }
  if (start === null) start = now;
  if (end === null) end = Math.max(now, start + 1);
  return { start, end: Math.max(end, start + 1) };
}

export interface Bar {
  state: string;
  start: number;
  end: number;
  /** An attempt (a worker ran it) or the task run's own span (a flowable, or no attempt yet). */
  kind: "attempt" | "run";
  index: number;
  error?: string | null;
}

/** The bars of one row: one per attempt, or the task run's own span when it has none. */
export function barsOf(run: TaskRun, now: number): Bar[] {
  const bars: Bar[] = [];
  const attempts: Attempt[] = run.attempts ?? [];
  attempts.forEach((attempt, index) => {
    const start = toMs(attempt.startDate);
    if (start === null) return;
    bars.push({ state: attempt.state, start, end: toMs(attempt.endDate) ?? now, kind: "attempt",
      index, error: attempt.error });
  });
  if (bars.length === 0) {
    const start = toMs(run.startDate);
    if (start !== null) {
      bars.push({ state: run.state, start, end: toMs(run.endDate) ?? now, kind: "run", index: 0 });
    }
  }
  return bars;
}

// Which state wins when several task runs share a node (a task inside a ForEach): the most
// alarming one, so a single failure among 2,000 successes is what the topology shows.
const SEVERITY: Record<string, number> = {
  FAILED: 100, KILLED: 90, KILLING: 85, RUNNING: 80, RETRYING: 75, PAUSED: 70, WARNING: 60,
  RESTARTED: 55, QUEUED: 50, CREATED: 40, RETRIED: 30, CANCELLED: 25, SUCCESS: 20, SKIPPED: 10,
};

/** The most alarming of two states (see SEVERITY). */
export function worseState(a: string | undefined, b: string): string {
  if (a === undefined) return b;
  return (SEVERITY[b] ?? 0) > (SEVERITY[a] ?? 0) ? b : a;
}

/** taskId → the most alarming state among its task runs, for colouring graph nodes. */
export function statesByTaskId(runs: readonly TaskRun[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const run of runs) out[run.taskId] = worseState(out[run.taskId], run.state);
  return out;
}

/** "Nice" tick spacing (1, 2, 5 × 10^n ms) giving about `count` ticks over `span` ms. */
export function tickStep(span: number, count = 8): number {
  const raw = Math.max(span / count, 1);
  const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 15000, 30000,
    60000, 120000, 300000, 600000, 900000, 1800000, 3600000, 7200000, 21600000, 43200000,
    86400000];
  for (const step of steps) if (step >= raw) return step;
  return Math.ceil(raw / 86400000) * 86400000;
}

/** A tick's label: offset from the start ("+1.50s", "+2m 0s"). */
export function tickLabel(offset: number): string {
  return offset === 0 ? "0" : `+${formatDuration(offset)}`;
}

/** Find a task definition by id anywhere in a flow document (tasks, errors, finally, nested). */
export function findTask(flow: unknown, taskId: string): Record<string, unknown> | null {
  const stack: unknown[] = [flow];
  while (stack.length) {
    const node = stack.pop();
    if (Array.isArray(node)) {
      stack.push(...node);
    } else if (node && typeof node === "object") {
      const obj = node as Record<string, unknown>;
      if (obj.id === taskId && typeof obj.type === "string" && obj.type.includes(".")) return obj;
      for (const value of Object.values(obj)) if (value && typeof value === "object") stack.push(value);
    }
  }
  return null;
}
