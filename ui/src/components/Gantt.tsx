/**
 * The execution's Gantt: one row per task run (nested under its flowable parent, ForEach
 * values shown), one bar per attempt coloured by its state, a time axis, details on hover.
 * Rows are virtualized (useVirtualRows) so 2,000 task runs render as fast as 20; the time
 * window and rows are recomputed once per execution update, which live.ts batches per frame.
 */
import { memo, useCallback, useMemo, useState, type MouseEvent } from "react";
import { formatDate, formatDuration } from "../hooks";
import type { Execution, TaskRun } from "../types";
import {
  barsOf, ganttRows, tickLabel, tickStep, timeWindow, toMs, valueLabel, type Bar, type GanttRow,
} from "../pages/execution/model";
import StateBadge from "./StateBadge";
import { useVirtualRows } from "./useVirtualRows";
import "./Gantt.css";

const ROW_HEIGHT = 28;

interface Props {
  execution: Execution;
  /** The clock while live (ticks every second), so running bars grow. */
  now: number;
  selected?: string | null;
  onSelect?: (taskRunId: string) => void;
}

interface Hover {
  run: TaskRun;
  bar: Bar | null;
  x: number;
  y: number;
}

export default function Gantt({ execution, now, selected, onSelect }: Props) {
  const [collapsed, setCollapsed] = useState<ReadonlySet<string>>(() => new Set());
  const [hover, setHover] = useState<Hover | null>(null);
  const runs = execution.taskRuns;
  const rows = useMemo(() => ganttRows(runs, collapsed), [runs, collapsed]);
  const window_ = useMemo(() => timeWindow(execution, now), [execution, now]);
  const virtual = useVirtualRows(rows.length, ROW_HEIGHT);

  const toggle = useCallback((id: string) => {
    setCollapsed((old) => {
      const next = new Set(old);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  }, []);

  const span = window_.end - window_.start;
  const step = tickStep(span);
  const ticks: number[] = [];
  for (let t = 0; t <= span && ticks.length < 40; t += step) ticks.push(t);

  const visible = rows.slice(virtual.start, virtual.end);
  return (
    <div className="gantt" data-testid="gantt" data-rows={rows.length}>
      <div className="gantt-head">
        <div className="gantt-label-col">
          Task run <span className="muted">({runs.length})</span>
        </div>
        <div className="gantt-dur-col">Duration</div>
        <div className="gantt-axis" data-testid="gantt-axis">
          {ticks.map((t) => (
            <span key={t} className="gantt-tick" style={{ left: `${(t / span) * 100}%` }}>
              {tickLabel(t)}
            </span>
          ))}
        </div>
      </div>
      <div className="gantt-scroll" ref={virtual.ref} data-testid="gantt-scroll"
        onMouseLeave={() => setHover(null)}>
        {rows.length === 0 && <div className="empty">No task run yet.</div>}
        <div className="gantt-spacer" style={{ height: virtual.height }}>
          {visible.map((row, i) => (
            <GanttRowView
              key={row.run.id}
              row={row}
              top={(virtual.start + i) * ROW_HEIGHT}
              start={window_.start}
              span={span}
              now={now}
              selected={row.run.id === selected}
              onToggle={toggle}
              onSelect={onSelect}
              onHover={setHover}
            />
          ))}
        </div>
      </div>
      {hover && <Tooltip hover={hover} now={now} />}
    </div>
  );
}

interface RowProps {
  row: GanttRow;
  top: number;
  start: number;
  span: number;
  now: number;
  selected: boolean;
  onToggle: (id: string) => void;
  onSelect?: (id: string) => void;
  onHover: (hover: Hover | null) => void;
}

const GanttRowView = memo(function GanttRowView(props: RowProps) {
  const { row, top, start, span, now, selected, onToggle, onSelect, onHover } = props;
  const run = row.run;
  const live = !run.endDate;
  const bars = barsOf(run, live ? now : toMs(run.endDate) ?? now);
  const duration = run.startDate ? (toMs(run.endDate) ?? now) - (toMs(run.startDate) ?? now) : null;
  const value = valueLabel(run);
  const hoverAt = (event: MouseEvent, bar: Bar | null) =>
    onHover({ run, bar, x: event.clientX, y: event.clientY });
  return (
    <div
      className={`gantt-row${selected ? " selected" : ""}`}
      style={{ transform: `translateY(${top}px)` }}
      data-testid="gantt-row"
      data-task-id={run.taskId}
      data-state={run.state}
      onClick={() => onSelect?.(run.id)}
    >
      <div className="gantt-label-col" style={{ paddingLeft: 8 + row.depth * 16 }}
        onMouseMove={(e) => hoverAt(e, null)}>
        {row.children > 0 ? (
          <button
            className="gantt-caret"
            aria-label={row.collapsed ? "Expand" : "Collapse"}
            data-testid="gantt-toggle"
            onClick={(e) => {
              e.stopPropagation();
              onToggle(run.id);
            }}
          >
            {row.collapsed ? "▸" : "▾"}
          </button>
        ) : (
          <span className="gantt-caret-space" />
        )}
        <span className="gantt-dot" style={{ background: stateColor(run.state) }} />
        <span className="gantt-task">{run.taskId}</span>
        {value && <span className="gantt-value" title={String(run.value ?? "")}>{value}</span>}
        {row.children > 0 && <span className="gantt-count">{row.children}</span>}
        {run.attempts.length > 1 && <span className="gantt-count" title="attempts">×{run.attempts.length}</span>}
      </div>
      <div className="gantt-dur-col">{duration === null ? "" : formatDuration(duration)}</div>
      <div className="gantt-track">
        {bars.map((bar) => {
          const left = ((bar.start - start) / span) * 100;
          const width = Math.max(((bar.end - bar.start) / span) * 100, 0);
          return (
            <span
              key={`${bar.kind}${bar.index}`}
              className={`gantt-bar ${bar.kind}${bar.end >= now && live ? " live" : ""}`}
              data-testid="gantt-bar"
              data-state={bar.state}
              style={{ left: `${left}%`, width: `max(${width}%, 3px)`, background: stateColor(bar.state) }}
              onMouseMove={(e) => {
                e.stopPropagation();
                hoverAt(e, bar);
              }}
            />
          );
        })}
      </div>
    </div>
  );
});

function stateColor(state: string): string {
  return `var(--state-${state.toLowerCase()}, var(--state-unknown))`;
}

function Tooltip({ hover, now }: { hover: Hover; now: number }) {
  const { run, bar } = hover;
  const style = {
    left: Math.min(hover.x + 14, window.innerWidth - 340),
    top: Math.min(hover.y + 14, window.innerHeight - 200),
  };
  return (
    <div className="gantt-tooltip" style={style} data-testid="gantt-tooltip">
      <div className="gantt-tooltip-head">
        <strong>{run.taskId}</strong> <StateBadge state={run.state} small />
      </div>
      {run.value !== null && run.value !== undefined && (
        <div className="mono gantt-tooltip-value">{String(typeof run.value === "string" ? run.value : JSON.stringify(run.value))}</div>
      )}
      <div>Started {formatDate(run.startDate)}</div>
      {run.endDate && <div>Ended {formatDate(run.endDate)}</div>}
      <div>Duration {formatDuration((toMs(run.endDate) ?? now) - (toMs(run.startDate) ?? now))}</div>
      {run.attempts.map((a, i) => (
        <div key={i} className={bar?.kind === "attempt" && bar.index === i ? "gantt-tooltip-current" : ""}>
          Attempt {i + 1}: {a.state}, {formatDuration((toMs(a.endDate) ?? now) - (toMs(a.startDate) ?? now))}
          {a.error ? <div className="gantt-tooltip-error">{String(a.error).slice(0, 300)}</div> : null}
        </div>
      ))}
      {run.error && !run.attempts.some((a) => a.error) && (
        <div className="gantt-tooltip-error">{String(run.error).slice(0, 300)}</div>
      )}
    </div>
  );
}
