/** The server's JSON shapes (see api/models.py), as the UI reads them. */

export type State =
  | "CREATED"
  | "QUEUED"
  | "RUNNING"
  | "PAUSED"
  | "RESTARTED"
  | "KILLING"
  | "SUCCESS"
  | "WARNING"
  | "FAILED"
  | "KILLED"
  | "CANCELLED"
  | "RETRYING"
  | "RETRIED"
  | "SKIPPED";

export const ALL_STATES: State[] = [
  "CREATED", "QUEUED", "RUNNING", "PAUSED", "RESTARTED", "KILLING", "SUCCESS", "WARNING",
  "FAILED", "KILLED", "CANCELLED", "RETRYING", "RETRIED", "SKIPPED",
];

export const TERMINAL_STATES: ReadonlySet<string> = new Set([
  "SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "RETRIED", "SKIPPED",
]);

export interface Attempt {
  state: State;
  startDate?: string | null;
  endDate?: string | null;
  error?: string | null;
  [key: string]: unknown;
}

export interface TaskRun {
  id: string;
  executionId: string;
  taskId: string;
  parentTaskRunId?: string | null;
  value?: unknown;
  iteration?: number | null;
  state: State;
  startDate?: string | null;
  endDate?: string | null;
  attempts: Attempt[];
  outputs: Record<string, unknown>;
  error?: string | null;
  [key: string]: unknown;
}

export interface Execution {
  id: string;
  namespace: string;
  flowId: string;
  flowRevision?: number | null;
  state: State;
  startDate?: string | null;
  endDate?: string | null;
  inputs: Record<string, unknown>;
  labels: Record<string, unknown>;
  outputs: Record<string, unknown>;
  parentId?: string | null;
  originalId?: string | null;
  error?: string | null;
  taskRuns: TaskRun[];
  /** Only in search results asked with taskRuns=false (taskRuns is then empty). */
  taskRunCount?: number;
  taskRunStates?: Record<string, number>;
  [key: string]: unknown;
}

export interface Paged<T> {
  results: T[];
  total: number;
}

export interface Flow {
  id: string;
  namespace: string;
  revision: number;
  updated?: string | null;
  deleted?: boolean;
  source?: string | null;
  [key: string]: unknown;
}

export interface LogLine {
  executionId: string;
  taskRunId?: string | null;
  taskId?: string | null;
  attempt?: number | null;
  level: string;
  timestamp?: string | null;
  message?: string | null;
  [key: string]: unknown;
}

export interface KVEntry {
  key: string;
  type: string;
  value?: unknown;
  expiresAt?: string | null;
  updated?: string | null;
}

export interface NamespaceFile {
  path: string;
  uri: string;
  size?: number | null;
  [key: string]: unknown;
}

export interface NamespaceInfo {
  id: string;
  flows: number;
}

export type NodeKind = "task" | "flowable" | "trigger" | "start" | "end";

export interface GraphNode {
  uid: string;
  taskId: string;
  type?: string | null;
  kind: NodeKind;
  parent: string | null;
  branch: string | null;
  label?: string | null;
}

export interface GraphEdge {
  source: string;
  target: string;
  relation: string;
}

export interface FlowGraph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export interface FilePreview {
  format: "csv" | "parquet" | "json" | "jsonl" | "text" | "binary";
  columns: string[];
  rows: unknown[][];
  truncated: boolean;
  text: string | null;
  size: number;
}

export interface Me {
  username: string;
  authEnabled: boolean;
}

export interface TriggerInfo {
  namespace: string;
  flowId: string;
  triggerId: string;
  disabled?: boolean;
  [key: string]: unknown;
}
