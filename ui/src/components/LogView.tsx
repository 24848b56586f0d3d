/**
 * An execution's logs: level filter, text search, per task (run) filter, follow-tail and a
 * download link. Lines come from live.ts's useLogStream (appended in place, once per frame);
 * the filter is applied incrementally to the new lines only, and only the lines in view are
 * rendered, so 50,000 lines stream without freezing the page. Messages are text, never HTML.
 */
import { memo, useEffect, useMemo, useRef, useState } from "react";
import { API_PREFIX } from "../api";
import { useDebounced } from "../hooks";
import type { LogLine, TaskRun } from "../types";
import type { LogStore } from "../pages/execution/live";
import { valueLabel } from "../pages/execution/model";
import { useVirtualRows } from "./useVirtualRows";
import "./LogView.css";

const ROW_HEIGHT = 22;
export const LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] as const;
const RANK: Record<string, number> = { TRACE: 0, DEBUG: 1, INFO: 2, WARN: 3, WARNING: 3, ERROR: 4 };

interface Props {
  executionId: string;
  store: LogStore;
  taskRuns: TaskRun[];
  /** A task run chosen elsewhere (the Gantt): show only its lines. */
  taskRunId?: string | null;
  onClearTaskRun?: () => void;
}

interface Filter {
  minLevel: number;
  text: string;
  taskId: string;
  taskRunId: string;
}

function matches(line: LogLine, f: Filter): boolean {
  if ((RANK[(line.level ?? "INFO").toUpperCase()] ?? 2) < f.minLevel) return false;
  if (f.taskRunId && line.taskRunId !== f.taskRunId) return false;
  if (f.taskId && line.taskId !== f.taskId) return false;
  if (f.text && !(line.message ?? "").toLowerCase().includes(f.text)) return false;
  return true;
}

/** Indexes of the lines that pass `filter`, extended as lines arrive (never rescanned). */
function useFilteredIndexes(lines: LogLine[], version: number, filter: Filter): number[] {
  const memo = useRef<{ key: string; lines: LogLine[]; scanned: number; hits: number[] }>(
    { key: "", lines, scanned: 0, hits: [] });
  const key = JSON.stringify(filter);
  return useMemo(() => {
    let state = memo.current;
    if (state.key !== key || state.lines !== lines || state.scanned > lines.length) {
      state = memo.current = { key, lines, scanned: 0, hits: [] };
    }
    for (let i = state.scanned; i < lines.length; i++) if (matches(lines[i], filter)) state.hits.push(i);
    state.scanned = lines.length;
    return state.hits.slice();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [lines, version, key]);
}

export default function LogView({ executionId, store, taskRuns, taskRunId, onClearTaskRun }: Props) {
  const [level, setLevel] = useState("INFO");
  const [search, setSearch] = useState("");
  const [taskId, setTaskId] = useState("");
  const [tail, setTail] = useState(true);
  const [opened, setOpened] = useState<number | null>(null);
  const text = useDebounced(search.trim().toLowerCase(), 150);
  const filter = { minLevel: RANK[level], text, taskId, taskRunId: taskRunId ?? "" };
  const hits = useFilteredIndexes(store.lines, store.version, filter);
  const virtual = useVirtualRows(hits.length, ROW_HEIGHT, 12);

  const taskIds = useMemo(() => [...new Set(taskRuns.map((r) => r.taskId))], [taskRuns]);
  const runsById = useMemo(() => new Map(taskRuns.map((r) => [r.id, r])), [taskRuns]);
  const chosenRun = taskRunId ? runsById.get(taskRunId) : undefined;

  // Follow the tail: after new lines land, stay pinned to the bottom.
  const { scrollToBottom, atBottom } = virtual;
  useEffect(() => {
    if (tail) scrollToBottom();
  }, [tail, hits.length, scrollToBottom]);

  // Scrolling away from the bottom stops following; scrolling back to it resumes.
  const onScroll = () => {
    const bottom = atBottom();
    if (tail !== bottom) setTail(bottom);
  };

  const download = `${API_PREFIX}/logs/${encodeURIComponent(executionId)}/download` +
    (level !== "TRACE" ? `?minLevel=${level}` : "");
  const shownLine = opened !== null ? store.lines[opened] : null;

  return (
    <div className="logview" data-testid="logs">
      <div className="toolbar logview-toolbar">
        <select value={level} onChange={(e) => setLevel(e.target.value)} data-testid="log-level" aria-label="Lowest level">
          {LEVELS.map((l) => <option key={l} value={l}>{l}</option>)}
        </select>
        <input
          className="search"
          placeholder="Search messages"
          value={search}
          onChange={(e) => setSearch(e.target.value)}
          data-testid="log-search"
        />
        <select value={taskId} onChange={(e) => setTaskId(e.target.value)} data-testid="log-task" aria-label="Task">
          <option value="">All tasks</option>
          {taskIds.map((t) => <option key={t} value={t}>{t}</option>)}
        </select>
        {taskRunId && (
          <span className="tag logview-chip" data-testid="log-taskrun-filter">
            task run {chosenRun ? `${chosenRun.taskId} ${valueLabel(chosenRun)}` : taskRunId}
            <button className="link" onClick={onClearTaskRun} aria-label="Show all task runs">✕</button>
          </span>
        )}
        <label className="logview-tail">
          <input type="checkbox" checked={tail} onChange={(e) => setTail(e.target.checked)} data-testid="log-tail" />
          Follow
        </label>
        <span className="grow" />
        <span className="muted" data-testid="log-count">
          {hits.length === store.lines.length ? `${hits.length} lines` : `${hits.length} of ${store.lines.length} lines`}
          {store.streaming && <span className="logview-live"> · live</span>}
        </span>
        <a className="btn small" href={download} download data-testid="log-download">Download</a>
      </div>
      <div className="logview-scroll" ref={virtual.ref} onScroll={onScroll} data-testid="log-scroll">
        {hits.length === 0 && (
          <div className="empty">{store.lines.length ? "No line matches the filters." : "No logs yet."}</div>
        )}
        <div style={{ height: virtual.height, position: "relative" }}>
          {hits.slice(virtual.start, virtual.end).map((index, i) => (
            <LogRow
              key={index}
              line={store.lines[index]}
              top={(virtual.start + i) * ROW_HEIGHT}
              run={store.lines[index].taskRunId ? runsById.get(store.lines[index].taskRunId!) : undefined}
              onOpen={() => setOpened(index)}
            />
          ))}
        </div>
      </div>
      {shownLine && (
        <div className="logview-detail" data-testid="log-detail">
          <div className="logview-detail-head">
            <span className={`logview-level level-${(shownLine.level ?? "").toLowerCase()}`}>{shownLine.level}</span>
            <span className="mono">{shownLine.timestamp}</span>
            <span>{shownLine.taskId}</span>
            <span className="grow" />
            <button className="small" onClick={() => setOpened(null)}>Close</button>
          </div>
          <pre>{shownLine.message}</pre>
        </div>
      )}
    </div>
  );
}

const LogRow = memo(function LogRow({ line, top, run, onOpen }: {
  line: LogLine; top: number; run?: TaskRun; onOpen: () => void;
}) {
  const message = line.message ?? "";
  const cut = message.indexOf("\n");
  const first = cut >= 0 ? message.slice(0, cut) : message;
  const more = cut >= 0 ? message.split("\n").length - 1 : 0;
  const level = (line.level ?? "INFO").toUpperCase();
  const value = run ? valueLabel(run) : "";
  return (
    <div className="logview-row" style={{ transform: `translateY(${top}px)` }} onClick={onOpen}
      data-testid="log-line" data-level={level}>
      <span className="logview-time">{clock(line.timestamp)}</span>
      <span className={`logview-level level-${level.toLowerCase()}`}>{level}</span>
      <span className="logview-task" title={line.taskId ?? ""}>
        {line.taskId ?? ""}{value ? <span className="logview-value"> {value}</span> : null}
      </span>
      <span className="logview-msg">{first}</span>
      {more > 0 && <span className="logview-more">+{more} lines</span>}
    </div>
  );
});

/** "10:39:34.949": the time of day is what one scans logs by; the date is in the header. */
function clock(timestamp: string | null | undefined): string {
  if (!timestamp) return "";
  const d = new Date(timestamp);
  if (Number.isNaN(d.getTime())) return timestamp;
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
