/** The flows list: grouped by namespace, searchable, with each flow's last execution and triggers. */
import { useEffect, useMemo, useState } from "react";
import { api, errorMessage, qs } from "../api";
import StateBadge from "../components/StateBadge";
import { formatDate, useApi, useDebounced } from "../hooks";
import { Link, navigate, setQuery, useRoute } from "../router";
import type { Execution, Flow, Paged } from "../types";

interface TriggerRow {
  triggerContext: { namespace: string; flowId: string; triggerId: string; disabled: boolean };
}

type LastRuns = Record<string, Execution | null>;

const flowKey = (namespace: string, id: string) => `${namespace}\u0000${id}`;

/** The latest execution of each flow: one search of recent ones, then one call per flow left. */
async function lastExecutions(flows: Flow[]): Promise<LastRuns> {
  const found: LastRuns = {};
  const recent = await api<Paged<Execution>>(`/executions/search${qs({ size: 500, sort: "startDate:desc", taskRuns: false })}`);
  for (const execution of recent.results) {
    const key = flowKey(execution.namespace, execution.flowId);
    if (!(key in found)) found[key] = execution;
  }
  const missing = flows.filter((f) => !(flowKey(f.namespace, f.id) in found)).slice(0, 100);
  if (recent.total > recent.results.length) {
    await Promise.all(
      missing.map(async (flow) => {
        const page = await api<Paged<Execution>>(
          `/executions/search${qs({ namespace: flow.namespace, flowId: flow.id, size: 1, taskRuns: false })}`,
        );
        found[flowKey(flow.namespace, flow.id)] = page.results[0] ?? null;
      }),
    );
  }
  return found;
}

export default function FlowsList() {
  const { query } = useRoute();
  const [text, setText] = useState(query.get("q") ?? "");
  const q = useDebounced(text, 250);
  const namespace = query.get("namespace") ?? "";
  const flows = useApi<Paged<Flow>>(`/flows/search${qs({ q, namespace, size: 1000 })}`);
  const triggers = useApi<Paged<TriggerRow>>(`/triggers/search${qs({ size: 1000 })}`);
  const [lastRuns, setLastRuns] = useState<LastRuns>({});

  useEffect(() => {
    setQuery({ q: q || null });
  }, [q]);

  useEffect(() => {
    const list = flows.data?.results;
    if (!list || list.length === 0) return;
    let live = true;
    lastExecutions(list)
      .then((runs) => live && setLastRuns(runs))
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [flows.data]);

  const triggerCounts = useMemo(() => {
    const counts: Record<string, { total: number; enabled: number }> = {};
    for (const row of triggers.data?.results ?? []) {
      const c = row.triggerContext;
      const key = flowKey(c.namespace, c.flowId);
      counts[key] ??= { total: 0, enabled: 0 };
      counts[key].total++;
      if (!c.disabled) counts[key].enabled++;
    }
    return counts;
  }, [triggers.data]);

  const groups = useMemo(() => {
    const byNamespace = new Map<string, Flow[]>();
    for (const flow of flows.data?.results ?? []) {
      if (flow.deleted) continue;
      const list = byNamespace.get(flow.namespace) ?? [];
      list.push(flow);
      byNamespace.set(flow.namespace, list);
    }
    return [...byNamespace.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([ns, list]) => [ns, list.sort((a, b) => a.id.localeCompare(b.id))] as const);
  }, [flows.data]);

  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const toggle = (ns: string) =>
    setCollapsed((prev) => {
      const next = new Set(prev);
      if (next.has(ns)) next.delete(ns);
      else next.add(ns);
      return next;
    });

  return (
    <div data-testid="flows-page">
      <div className="page-header">
        <div>
          <h1>Flows</h1>
          <div className="sub">{flows.data ? `${flows.data.total} flows in ${groups.length} namespaces` : " "}</div>
        </div>
        <button className="primary" data-testid="create-flow" onClick={() => navigate("/flows/new")}>
          + Create flow
        </button>
      </div>
      <div className="toolbar" style={{ marginBottom: 12 }}>
        <input
          className="search"
          placeholder="Search flows by id or namespace…"
          data-testid="flows-search"
          value={text}
          onChange={(e) => setText(e.target.value)}
        />
        {namespace && (
          <span className="tag">
            namespace: {namespace}{" "}
            <button className="link" onClick={() => setQuery({ namespace: null })}>
              ×
            </button>
          </span>
        )}
        {flows.loading && <span className="spinner" />}
      </div>
      {flows.error ? <div className="error-box">{errorMessage(flows.error)}</div> : null}
      <div className="panel">
        <table className="grid" data-testid="flows-table">
          <thead>
            <tr>
              <th>Flow</th>
              <th>Last execution</th>
              <th>Last run</th>
              <th>Triggers</th>
              <th className="num">Revision</th>
              <th>Updated</th>
            </tr>
          </thead>
          <tbody>
            {groups.map(([ns, list]) => (
              <NamespaceGroup
                key={ns}
                namespace={ns}
                flows={list}
                collapsed={collapsed.has(ns)}
                onToggle={() => toggle(ns)}
                lastRuns={lastRuns}
                triggerCounts={triggerCounts}
              />
            ))}
            {!flows.loading && groups.length === 0 && (
              <tr>
                <td colSpan={6} className="empty">
                  {q ? `No flow matches “${q}”.` : "No flows yet — create one."}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </div>
  );
}

interface GroupProps {
  namespace: string;
  flows: Flow[];
  collapsed: boolean;
  onToggle: () => void;
  lastRuns: LastRuns;
  triggerCounts: Record<string, { total: number; enabled: number }>;
}

function NamespaceGroup({ namespace, flows, collapsed, onToggle, lastRuns, triggerCounts }: GroupProps) {
  return (
    <>
      <tr className="group" data-testid={`namespace-${namespace}`}>
        <td colSpan={6} onClick={onToggle} style={{ cursor: "pointer" }}>
          <span aria-hidden="true">{collapsed ? "▸" : "▾"}</span> {namespace}{" "}
          <span className="muted" style={{ fontWeight: 400 }}>
            ({flows.length})
          </span>
        </td>
      </tr>
      {!collapsed &&
        flows.map((flow) => {
          const key = flowKey(flow.namespace, flow.id);
          const last = lastRuns[key];
          const trig = triggerCounts[key];
          return (
            <tr key={key} data-testid={`flow-row-${flow.namespace}-${flow.id}`}>
              <td style={{ paddingLeft: 28 }}>
                <Link href={`/flows/${encodeURIComponent(flow.namespace)}/${encodeURIComponent(flow.id)}`}>
                  {flow.id}
                </Link>
              </td>
              <td>
                {last ? (
                  <Link href={`/executions/${last.id}`}>
                    <StateBadge state={last.state} />
                  </Link>
                ) : (
                  <span className="muted">—</span>
                )}
              </td>
              <td className="muted">{last ? formatDate(last.startDate) : ""}</td>
              <td>
                {trig ? (
                  <span className="tag" title={`${trig.enabled} enabled`}>
                    {trig.total} ({trig.enabled} on)
                  </span>
                ) : (
                  <span className="muted">—</span>
                )}
              </td>
              <td className="num">{flow.revision}</td>
              <td className="muted">{formatDate(flow.updated)}</td>
            </tr>
          );
        })}
    </>
  );
}
