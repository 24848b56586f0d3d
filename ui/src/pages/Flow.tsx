/**
 * A flow: its YAML in an editor with live validation and completion, save as a new revision,
 * the topology, the revision history with a diff, its executions and its triggers. `/flows/new`
 * (empty namespace and id) opens the editor on a template and creates the flow on save.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { api, ApiError, errorMessage, qs, type Issue } from "../api";
import ExecuteDialog, { type InputDecl } from "../components/ExecuteDialog";
import StateBadge from "../components/StateBadge";
import Topology from "../components/Topology";
import TriggersTable, { type TriggerView } from "../components/TriggersTable";
import YamlEditor from "../components/YamlEditor";
import RevisionDiff from "../components/RevisionDiff";
import type { PluginSchemas } from "../components/yamlCompletion";
import { formatDate, formatDuration, useApi, useDebounced } from "../hooks";
import { Link, navigate, setQuery, useRoute } from "../router";
import type { Execution, Flow, FlowGraph, Paged } from "../types";

export const FLOW_TEMPLATE = `id: hello_world
namespace: company.team

inputs:
  - id: name
    type: STRING
    defaults: world

tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "Hello, {{ inputs.name }}!"
`;

const TABS = ["editor", "topology", "revisions", "executions", "triggers"] as const;
type Tab = (typeof TABS)[number];

interface Validation {
  index: number;
  valid: boolean;
  issues: Issue[];
}

let schemasCache: Promise<PluginSchemas | null> | null = null;

/** The plugins' schemas, fetched once per page load (they change only with the server). */
function loadSchemas(): Promise<PluginSchemas | null> {
  schemasCache ??= api<PluginSchemas>("/plugins/schemas").catch(() => {
    schemasCache = null;
    return null;
  });
  return schemasCache;
}

const YAML_HEADERS = { "Content-Type": "application/x-yaml" };

function flowPath(namespace: string, flowId: string): string {
  return `/flows/${encodeURIComponent(namespace)}/${encodeURIComponent(flowId)}`;
}

export default function FlowPage({ namespace, flowId }: { namespace: string; flowId: string }) {
  const isNew = !namespace || !flowId;
  const { query } = useRoute();
  const tab: Tab = (TABS as readonly string[]).includes(query.get("tab") ?? "") ? (query.get("tab") as Tab) : "editor";
  const flow = useApi<Flow>(isNew ? null : flowPath(namespace, flowId));
  const [text, setText] = useState<string>(isNew ? FLOW_TEMPLATE : "");
  const [saved, setSaved] = useState<string>(isNew ? "" : "");
  const [loaded, setLoaded] = useState(isNew);
  const [issues, setIssues] = useState<Issue[]>([]);
  const [validating, setValidating] = useState(false);
  const [saveError, setSaveError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const [schemas, setSchemas] = useState<PluginSchemas | null>(null);
  const [jump, setJump] = useState<{ line: number; column?: number | null; seq: number } | null>(null);
  const [executing, setExecuting] = useState(false);
  const dirty = text !== saved;

  useEffect(() => {
    void loadSchemas().then(setSchemas);
  }, []);

  useEffect(() => {
    if (flow.data?.source !== undefined && flow.data.source !== null) {
      setText(flow.data.source);
      setSaved(flow.data.source);
      setLoaded(true);
    }
  }, [flow.data]);

  // Live validation: after the text settles, ask the server and mark the issues.
  const settled = useDebounced(text, 400);
  const textRef = useRef(text);
  textRef.current = text;
  useEffect(() => {
    // Only the text that has settled is checked (not a stale one from before it loaded).
    if (!loaded || settled !== textRef.current) return;
    if (!settled.trim()) {
      setIssues([{ message: "the flow is empty", line: 1, column: 1 }]);
      return;
    }
    let live = true;
    setValidating(true);
    api<Validation[]>("/flows/validate", { method: "POST", body: settled, headers: YAML_HEADERS })
      .then((results) => {
        if (live) setIssues(results.flatMap((r) => r.issues));
      })
      .catch((reason) => {
        if (!live) return;
        if (reason instanceof ApiError && reason.issues?.length) setIssues(reason.issues);
        else setIssues([{ message: errorMessage(reason), line: 1, column: 1 }]);
      })
      .finally(() => live && setValidating(false));
    return () => {
      live = false;
    };
  }, [settled, loaded]);

  const save = useCallback(async () => {
    setSaving(true);
    setSaveError(null);
    setNotice(null);
    try {
      const result = isNew
        ? await api<Flow>("/flows", { method: "POST", body: text, headers: YAML_HEADERS })
        : await api<Flow>(flowPath(namespace, flowId), { method: "PUT", body: text, headers: YAML_HEADERS });
      setSaved(text);
      setNotice(`Saved revision ${result.revision}`);
      if (isNew) navigate(flowPath(result.namespace, result.id), { replace: true });
      else flow.reload();
    } catch (reason) {
      setSaveError(errorMessage(reason));
      if (reason instanceof ApiError && reason.issues?.length) setIssues(reason.issues);
    } finally {
      setSaving(false);
    }
  }, [isNew, text, namespace, flowId, flow]);

  const saveRef = useRef(save);
  saveRef.current = save;
  const onSave = useCallback(() => void saveRef.current(), []);

  useEffect(() => {
    const warn = (event: BeforeUnloadEvent) => {
      if (dirty) event.preventDefault();
    };
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [dirty]);

  if (!isNew && flow.error) {
    return (
      <div>
        <div className="error-box" data-testid="flow-error">{errorMessage(flow.error)}</div>
        <Link href="/flows">← Back to flows</Link>
      </div>
    );
  }

  const inputs = (flow.data?.inputs as InputDecl[] | undefined) ?? [];
  const description = typeof flow.data?.description === "string" ? flow.data.description : "";

  return (
    <div data-testid="flow-page">
      <div className="page-header">
        <div>
          <div className="sub">
            <Link href="/flows">Flows</Link> / {isNew ? "new" : namespace}
          </div>
          <h1 data-testid="flow-title">{isNew ? "New flow" : flowId}</h1>
          {description && <div className="sub">{description.split("\n")[0]}</div>}
        </div>
        <div className="toolbar">
          {!isNew && (
            <span className="muted" data-testid="flow-revision">
              revision {flow.data?.revision ?? "…"}
            </span>
          )}
          {!isNew && (
            <button className="primary" data-testid="execute-button" disabled={!flow.data || Boolean(flow.data.disabled)} onClick={() => setExecuting(true)}>
              ▶ Execute
            </button>
          )}
        </div>
      </div>
      <div className="tabs" role="tablist">
        {TABS.filter((t) => !isNew || t === "editor" || t === "topology").map((t) => (
          <button
            key={t}
            role="tab"
            className={t === tab ? "active" : ""}
            data-testid={`tab-${t}`}
            onClick={() => setQuery({ tab: t === "editor" ? null : t })}
          >
            {t[0].toUpperCase() + t.slice(1)}
          </button>
        ))}
      </div>
      {tab === "editor" && (
        <div className="editor-layout">
          <div className="toolbar">
            <button className="primary" data-testid="save-flow" onClick={onSave} disabled={saving || (!dirty && !isNew)}>
              {saving ? "Saving…" : isNew ? "Create" : "Save"}
            </button>
            <span className="status-line" data-testid="editor-status">
              {dirty && <span className="dirty-dot" title="Unsaved changes" />}
              {dirty ? "unsaved changes" : "saved"}
              {" · "}
              {validating ? (
                <span>validating…</span>
              ) : issues.length ? (
                <span style={{ color: "var(--danger)" }} data-testid="validation-summary">
                  {issues.length} problem{issues.length > 1 ? "s" : ""}
                </span>
              ) : (
                <span style={{ color: "var(--ok)" }} data-testid="validation-summary">valid</span>
              )}
              <span className="muted">· Ctrl/⌘+S saves · Ctrl+Space completes</span>
            </span>
          </div>
          {saveError && <div className="error-box" data-testid="save-error">{saveError}</div>}
          {notice && <div className="ok-box" data-testid="save-notice">{notice}</div>}
          {loaded ? (
            <YamlEditor value={text} onChange={setText} issues={issues} schemas={schemas} onSave={onSave} jumpTo={jump} />
          ) : (
            <span className="spinner" />
          )}
          {issues.length > 0 && (
            <div className="panel">
              <ul className="issues-list" data-testid="validation-issues">
                {issues.map((issue, i) => (
                  <li
                    key={i}
                    data-testid="validation-issue"
                    data-line={issue.line ?? ""}
                    onClick={() => issue.line && setJump({ line: issue.line, column: issue.column, seq: Date.now() })}
                  >
                    <span className="loc">{issue.line ? `line ${issue.line}${issue.column ? `:${issue.column}` : ""}` : ""}</span>
                    <span>{issue.path ? <strong>{issue.path}: </strong> : null}{issue.message}</span>
                  </li>
                ))}
              </ul>
            </div>
          )}
        </div>
      )}
      {tab === "topology" && <TopologyTab namespace={namespace} flowId={flowId} text={text} dirty={dirty || isNew} />}
      {tab === "revisions" && !isNew && (
        <RevisionsTab
          namespace={namespace}
          flowId={flowId}
          current={flow.data?.revision}
          onRestore={(source) => {
            setText(source);
            setQuery({ tab: null });
          }}
        />
      )}
      {tab === "executions" && !isNew && <FlowExecutions namespace={namespace} flowId={flowId} />}
      {tab === "triggers" && !isNew && <FlowTriggers namespace={namespace} flowId={flowId} />}
      {executing && flow.data && (
        <ExecuteDialog namespace={namespace} flowId={flowId} inputs={inputs} onClose={() => setExecuting(false)} />
      )}
    </div>
  );
}

function TopologyTab({ namespace, flowId, text, dirty }: { namespace: string; flowId: string; text: string; dirty: boolean }) {
  const [graph, setGraph] = useState<FlowGraph | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    const call = dirty
      ? api<FlowGraph>("/flows/graph", { method: "POST", body: text, headers: YAML_HEADERS })
      : api<FlowGraph>(`${flowPath(namespace, flowId)}/graph`);
    call
      .then((g) => live && (setGraph(g), setError(null)))
      .catch((reason) => {
        if (!live) return;
        const issues = reason instanceof ApiError ? reason.issues ?? [] : [];
        setError([errorMessage(reason), ...issues.map((i) => `line ${i.line ?? "?"}: ${i.message}`)].join("\n"));
      });
    return () => {
      live = false;
    };
  }, [namespace, flowId, text, dirty]);
  return (
    <div>
      {dirty && <div className="muted" style={{ marginBottom: 8 }}>Showing the unsaved text.</div>}
      {error && <div className="error-box" data-testid="topology-error">{error}</div>}
      {graph ? <Topology graph={graph} /> : !error && <span className="spinner" />}
    </div>
  );
}

function RevisionsTab({
  namespace, flowId, current, onRestore,
}: { namespace: string; flowId: string; current?: number; onRestore: (source: string) => void }) {
  const revisions = useApi<Flow[]>(`${flowPath(namespace, flowId)}/revisions`, [current]);
  const list = useMemo(() => [...(revisions.data ?? [])].sort((a, b) => b.revision - a.revision), [revisions.data]);
  const [left, setLeft] = useState<number | null>(null);
  const [right, setRight] = useState<number | null>(null);
  useEffect(() => {
    if (list.length) {
      setRight((r) => r ?? list[0].revision);
      setLeft((l) => l ?? (list[1] ?? list[0]).revision);
    }
  }, [list]);
  const source = (rev: number | null) => list.find((f) => f.revision === rev)?.source ?? "";
  if (revisions.error) return <div className="error-box">{errorMessage(revisions.error)}</div>;
  return (
    <div style={{ display: "grid", gridTemplateColumns: "260px 1fr", gap: 14 }}>
      <div className="panel">
        <table className="grid" data-testid="revisions-table">
          <thead>
            <tr>
              <th>Rev</th>
              <th>Updated</th>
              <th>L</th>
              <th>R</th>
            </tr>
          </thead>
          <tbody>
            {list.map((f) => (
              <tr key={f.revision} data-testid={`revision-${f.revision}`}>
                <td>
                  <strong>{f.revision}</strong>
                  {f.revision === current && <span className="tag" style={{ marginLeft: 6 }}>current</span>}
                </td>
                <td className="muted">{formatDate(f.updated)}</td>
                <td>
                  <input type="radio" name="left" checked={left === f.revision} onChange={() => setLeft(f.revision)} />
                </td>
                <td>
                  <input type="radio" name="right" checked={right === f.revision} onChange={() => setRight(f.revision)} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div className="panel">
        <div className="panel-head">
          <span>
            Revision <strong>{left}</strong> ↔ revision <strong>{right}</strong>
          </span>
          {left !== null && left !== current && (
            <button className="small" data-testid="restore-revision" onClick={() => onRestore(source(left))}>
              Restore revision {left} in the editor
            </button>
          )}
        </div>
        {left !== null && right !== null && <RevisionDiff left={source(left)} right={source(right)} />}
      </div>
    </div>
  );
}

function FlowExecutions({ namespace, flowId }: { namespace: string; flowId: string }) {
  const [page, setPage] = useState(1);
  const size = 25;
  const found = useApi<Paged<Execution>>(`/executions/search${qs({ namespace, flowId, page, size, taskRuns: false })}`);
  const pages = Math.max(1, Math.ceil((found.data?.total ?? 0) / size));
  return (
    <div>
      <div className="toolbar" style={{ marginBottom: 10 }}>
        <span className="muted">{found.data ? `${found.data.total} executions` : ""}</span>
        <span className="grow" />
        <button className="small" onClick={found.reload}>Refresh</button>
        <Link className="btn" href={`/executions${qs({ namespace, flowId })}`}>Open in Executions</Link>
      </div>
      {found.error ? <div className="error-box">{errorMessage(found.error)}</div> : null}
      <div className="panel">
        <table className="grid" data-testid="flow-executions">
          <thead>
            <tr>
              <th>Id</th>
              <th>State</th>
              <th>Start</th>
              <th>Duration</th>
              <th className="num">Rev</th>
            </tr>
          </thead>
          <tbody>
            {(found.data?.results ?? []).map((e) => (
              <tr key={e.id}>
                <td>
                  <Link href={`/executions/${e.id}`} className="mono">{e.id}</Link>
                </td>
                <td><StateBadge state={e.state} /></td>
                <td className="muted">{formatDate(e.startDate)}</td>
                <td className="muted">
                  {e.startDate ? formatDuration((e.endDate ? Date.parse(e.endDate) : Date.now()) - Date.parse(e.startDate)) : "—"}
                </td>
                <td className="num">{e.flowRevision ?? ""}</td>
              </tr>
            ))}
            {found.data && found.data.results.length === 0 && (
              <tr><td colSpan={5} className="empty">No executions yet.</td></tr>
            )}
          </tbody>
        </table>
      </div>
      {pages > 1 && (
        <div className="toolbar" style={{ marginTop: 10, justifyContent: "flex-end" }}>
          <button className="small" disabled={page <= 1} onClick={() => setPage(page - 1)}>‹ Prev</button>
          <span className="muted">page {page} / {pages}</span>
          <button className="small" disabled={page >= pages} onClick={() => setPage(page + 1)}>Next ›</button>
        </div>
      )}
    </div>
  );
}

function FlowTriggers({ namespace, flowId }: { namespace: string; flowId: string }) {
  const found = useApi<Paged<TriggerView>>(`/triggers/${encodeURIComponent(namespace)}/${encodeURIComponent(flowId)}`);
  if (found.error) return <div className="error-box">{errorMessage(found.error)}</div>;
  return <TriggersTable triggers={found.data?.results ?? []} onChanged={found.reload} showFlow={false} />;
}
