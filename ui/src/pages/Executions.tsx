/**
 * The executions list: filters (namespace, flow, states, time range, labels) kept in the URL
 * so a view can be shared, server-side paging and sorting, and a refresh every few seconds
 * while the tab is visible. A row opens the execution page.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { api, errorMessage, qs } from "../api";
import { formatDate, formatDuration, useDebounced } from "../hooks";
import { Link, navigate, setQuery, useRoute } from "../router";
import StateBadge from "../components/StateBadge";
import type { Execution, NamespaceInfo, Paged } from "../types";
import { ALL_STATES } from "../types";
import { spanMs } from "./execution/model";
import "./execution/execution.css";

const RANGES: { id: string; label: string; ms: number | null }[] = [
  { id: "", label: "Any time", ms: null },
  { id: "15m", label: "Last 15 minutes", ms: 15 * 60e3 },
  { id: "1h", label: "Last hour", ms: 3600e3 },
  { id: "24h", label: "Last 24 hours", ms: 86400e3 },
  { id: "7d", label: "Last 7 days", ms: 7 * 86400e3 },
  { id: "30d", label: "Last 30 days", ms: 30 * 86400e3 },
  { id: "custom", label: "Custom…", ms: null },
];
const SORTABLE = ["id", "namespace", "flowId", "state", "startDate", "endDate"];
const REFRESH_MS = 5000;

/** A `datetime-local` value (local time, no zone) as an ISO instant, or undefined. */
function localToIso(value: string | null): string | undefined {
  if (!value) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** "env:prod team:data" (spaces or commas) → ["env:prod", "team:data"]. */
export function parseLabelFilter(text: string): string[] {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter((s) => s.includes(":"));
}

export default function Executions() {
  const { query } = useRoute();
  const namespace = query.get("namespace") ?? "";
  const flowId = query.get("flowId") ?? "";
  const states = query.getAll("state");
  const range = query.get("range") ?? "";
  const from = query.get("from");
  const to = query.get("to");
  const labels = query.get("labels") ?? "";
  const page = Math.max(1, Number(query.get("page") ?? "1") || 1);
  const size = Number(query.get("size") ?? "25") || 25;
  const sort = query.get("sort") ?? "startDate:desc";
  const [auto, setAuto] = useState(true);

  // Typing in a text filter must not send a request per key.
  const [nsText, setNsText] = useState(namespace);
  const [flowText, setFlowText] = useState(flowId);
  const [labelText, setLabelText] = useState(labels);
  const nsSettled = useDebounced(nsText, 300);
  const flowSettled = useDebounced(flowText, 300);
  const labelSettled = useDebounced(labelText, 400);
  useEffect(() => {
    if (nsSettled !== namespace || flowSettled !== flowId || labelSettled !== labels) {
      setQuery({ namespace: nsSettled, flowId: flowSettled, labels: labelSettled, page: null });
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [nsSettled, flowSettled, labelSettled]);

  const path = useMemo(() => {
    const preset = RANGES.find((r) => r.id === range);
    let startDate: string | undefined;
    let endDate: string | undefined;
    if (preset?.ms) startDate = new Date(Date.now() - preset.ms).toISOString();
    if (range === "custom") {
      startDate = localToIso(from);
      endDate = localToIso(to);
    }
    return `/executions/search${qs({
      namespace, flowId, state: states, labels: parseLabelFilter(labels), startDate, endDate,
      page, size, sort, taskRuns: false,
    })}`;
    // states is a fresh array each render: key on its content
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [namespace, flowId, states.join(","), range, from, to, labels, page, size, sort]);

  const { data, stale, error, loading, refresh } = usePolled<Paged<Execution>>(path, auto ? REFRESH_MS : null);
  const namespaces = useNamespaces();

  const [field, direction] = sort.split(":");
  const sortBy = (name: string) => setQuery({
    sort: `${name}:${field === name && direction === "desc" ? "asc" : "desc"}`, page: null,
  });
  const header = (name: string, label: string) => (
    <th className={SORTABLE.includes(name) ? "sortable" : ""} onClick={() => SORTABLE.includes(name) && sortBy(name)}
      data-testid={`sort-${name}`}>
      {label}{field === name ? (direction === "desc" ? " ↓" : " ↑") : ""}
    </th>
  );
  const total = data?.total ?? 0;
  const pages = Math.max(1, Math.ceil(total / size));
  const now = Date.now();

  return (
    <div data-testid="executions-page">
      <div className="page-header">
        <div>
          <h1>Executions</h1>
          <div className="sub">{data ? `${total} execution${total === 1 ? "" : "s"}` : " "}</div>
        </div>
        <div className="toolbar">
          <label className="logview-tail">
            <input type="checkbox" checked={auto} onChange={(e) => setAuto(e.target.checked)} data-testid="auto-refresh" />
            Auto-refresh
          </label>
          <button onClick={refresh} disabled={loading} data-testid="refresh">Refresh</button>
        </div>
      </div>
      <div className="exec-filters" data-testid="execution-filters">
        <label>Namespace
          <input list="exec-namespaces" value={nsText} onChange={(e) => setNsText(e.target.value)}
            placeholder="all" data-testid="filter-namespace" />
          <datalist id="exec-namespaces">
            {namespaces.map((n) => <option key={n} value={n} />)}
          </datalist>
        </label>
        <label>Flow
          <input value={flowText} onChange={(e) => setFlowText(e.target.value)} placeholder="all" data-testid="filter-flow" />
        </label>
        <label>State
          <StatePicker chosen={states} onChange={(s) => setQuery({ state: s, page: null })} />
        </label>
        <label>Time range
          <select value={range} onChange={(e) => setQuery({ range: e.target.value, page: null })} data-testid="filter-range">
            {RANGES.map((r) => <option key={r.id} value={r.id}>{r.label}</option>)}
          </select>
        </label>
        {range === "custom" && (
          <>
            <label>From
              <input type="datetime-local" value={from ?? ""} onChange={(e) => setQuery({ from: e.target.value, page: null })}
                data-testid="filter-from" />
            </label>
            <label>To
              <input type="datetime-local" value={to ?? ""} onChange={(e) => setQuery({ to: e.target.value, page: null })}
                data-testid="filter-to" />
            </label>
          </>
        )}
        <label>Labels
          <input value={labelText} onChange={(e) => setLabelText(e.target.value)} placeholder="key:value …"
            data-testid="filter-labels" />
        </label>
        {(namespace || flowId || states.length > 0 || range || labels) && (
          <button className="link" onClick={() => {
            setNsText(""); setFlowText(""); setLabelText("");
            setQuery({ namespace: null, flowId: null, state: null, range: null, from: null, to: null, labels: null, page: null });
          }} data-testid="filter-clear">Clear filters</button>
        )}
      </div>
      {error !== null && <div className="error-box">{errorMessage(error)}</div>}
      <div className="panel">
        <table className={`grid exec-table${stale ? " stale" : ""}`} data-testid="executions-table"
          data-stale={stale ? "true" : "false"}>
          <thead>
            <tr>
              {header("id", "Id")}
              {header("startDate", "Start")}
              {header("endDate", "End")}
              <th>Duration</th>
              {header("namespace", "Namespace")}
              {header("flowId", "Flow")}
              {header("state", "State")}
              <th>Labels</th>
              <th className="num">Task runs</th>
            </tr>
          </thead>
          <tbody>
            {data?.results.map((ex) => {
              const href = `/executions/${encodeURIComponent(ex.id)}`;
              return (
                <tr key={ex.id} onClick={(e) => {
                  if ((e.target as HTMLElement).closest("a")) return;
                  navigate(href);
                }} data-testid="execution-row" data-id={ex.id} data-state={ex.state}>
                  <td className="mono"><Link href={href}>{ex.id.slice(0, 10)}</Link></td>
                  <td>{formatDate(ex.startDate)}</td>
                  <td>{ex.endDate ? formatDate(ex.endDate) : "—"}</td>
                  <td>{formatDuration(spanMs(ex.startDate, ex.endDate, now))}</td>
                  <td>{ex.namespace}</td>
                  <td><Link href={`/flows/${encodeURIComponent(ex.namespace)}/${encodeURIComponent(ex.flowId)}`}>{ex.flowId}</Link></td>
                  <td><StateBadge state={ex.state} /></td>
                  <td>{Object.entries(ex.labels ?? {}).map(([k, v]) => <span key={k} className="tag">{k}:{String(v)}</span>)}</td>
                  <td className="num">{ex.taskRunCount ?? ex.taskRuns?.length ?? 0}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {data && data.results.length === 0 && <div className="empty" data-testid="executions-empty">No execution matches.</div>}
        {!data && loading && <div className="empty"><span className="spinner" /></div>}
        <div className="pager">
          <span className="muted">Rows</span>
          <select value={size} onChange={(e) => setQuery({ size: e.target.value, page: null })} data-testid="page-size">
            {[10, 25, 50, 100].map((n) => <option key={n} value={n}>{n}</option>)}
          </select>
          <button className="small" disabled={page <= 1} onClick={() => setQuery({ page: String(page - 1) })} data-testid="page-prev">‹ Prev</button>
          <span data-testid="page-info">Page {page} of {pages}</span>
          <button className="small" disabled={page >= pages} onClick={() => setQuery({ page: String(page + 1) })} data-testid="page-next">Next ›</button>
        </div>
      </div>
    </div>
  );
}

/** A multi-select of states in a small drop-down of checkboxes. */
function StatePicker({ chosen, onChange }: { chosen: string[]; onChange: (states: string[]) => void }) {
  const [open, setOpen] = useState(false);
  const box = useRef<HTMLDivElement | null>(null);
  useEffect(() => {
    if (!open) return;
    const close = (e: MouseEvent) => {
      if (box.current && !box.current.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener("mousedown", close);
    return () => document.removeEventListener("mousedown", close);
  }, [open]);
  const toggle = (state: string) =>
    onChange(chosen.includes(state) ? chosen.filter((s) => s !== state) : [...chosen, state]);
  return (
    <div className="state-picker" ref={box}>
      <button type="button" onClick={() => setOpen(!open)} data-testid="filter-state">
        {chosen.length === 0 ? "All states" : chosen.length <= 2 ? chosen.join(", ") : `${chosen.length} states`} ▾
      </button>
      {open && (
        <div className="state-picker-menu" data-testid="state-menu">
          {ALL_STATES.map((s) => (
            <label key={s}>
              <input type="checkbox" checked={chosen.includes(s)} onChange={() => toggle(s)} data-testid={`state-option-${s}`} />
              <StateBadge state={s} small />
            </label>
          ))}
        </div>
      )}
    </div>
  );
}

/**
 * GET `path` now, again whenever it changes, and every `every` ms while the page is visible;
 * the previous answer stays on screen while the next one loads (no flicker on refresh).
 */
function usePolled<T>(path: string, every: number | null) {
  const [answer, setAnswer] = useState<{ path: string; value: T } | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const seq = useRef(0);
  const load = useCallback(() => {
    const mine = ++seq.current;
    setLoading(true);
    api<T>(path)
      .then((value) => { if (mine === seq.current) { setAnswer({ path, value }); setError(null); } })
      .catch((reason) => { if (mine === seq.current) setError(reason); })
      .finally(() => { if (mine === seq.current) setLoading(false); });
  }, [path]);

  useEffect(() => {
    load();
    if (every === null) return;
    const timer = window.setInterval(() => {
      if (document.visibilityState === "visible") load();
    }, every);
    const onVisible = () => document.visibilityState === "visible" && load();
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      window.clearInterval(timer);
      document.removeEventListener("visibilitychange", onVisible);
    };
  }, [load, every]);
  // An answer for other filters stays on screen, dimmed, until this one arrives.
  return { data: answer?.value, stale: answer !== undefined && answer.path !== path, error, loading, refresh: load };
}

/** Namespace ids for the filter's suggestions (none if the server can't list them). */
function useNamespaces(): string[] {
  const [ids, setIds] = useState<string[]>([]);
  useEffect(() => {
    api<NamespaceInfo[]>("/namespaces").then((list) => setIds(list.map((n) => n.id))).catch(() => setIds([]));
  }, []);
  return ids;
}
