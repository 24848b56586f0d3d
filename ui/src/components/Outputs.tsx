/**
 * The execution's outputs as a tree: the flow's declared outputs, then each task run's
 * outputs. A `kray://` value gets Preview and Download buttons. Task runs are listed lazily
 * (the first 100, then more on demand) so a 2,000-run ForEach doesn't build 2,000 trees.
 */
import { useMemo, useState } from "react";
import type { Execution } from "../types";
import { valueLabel } from "../pages/execution/model";
import FilePreview, { fileUrl } from "./FilePreview";
import StateBadge from "./StateBadge";
import "./Outputs.css";

const PAGE = 100;

export default function Outputs({ execution }: { execution: Execution }) {
  const [preview, setPreview] = useState<string | null>(null);
  const [search, setSearch] = useState("");
  const [limit, setLimit] = useState(PAGE);
  const withOutputs = useMemo(() => {
    const needle = search.trim().toLowerCase();
    return execution.taskRuns.filter((r) => r.outputs && Object.keys(r.outputs).length > 0 &&
      (!needle || r.taskId.toLowerCase().includes(needle) || valueLabel(r).toLowerCase().includes(needle)));
  }, [execution.taskRuns, search]);
  const open = (uri: string) => setPreview(uri);

  return (
    <div className="outputs" data-testid="outputs">
      <div className="outputs-tree">
        <section className="panel">
          <div className="panel-head"><h3>Flow outputs</h3></div>
          <div className="panel-body">
            {Object.keys(execution.outputs ?? {}).length === 0
              ? <span className="muted">This flow declares no outputs (or they are not set yet).</span>
              : <Tree value={execution.outputs} open={open} executionId={execution.id} depth={0} path="outputs" />}
          </div>
        </section>
        <section className="panel">
          <div className="panel-head">
            <h3>Task outputs <span className="muted">({withOutputs.length})</span></h3>
            <input className="search" placeholder="Filter by task or value" value={search}
              onChange={(e) => setSearch(e.target.value)} data-testid="outputs-search" />
          </div>
          <div className="panel-body">
            {withOutputs.length === 0 && <span className="muted">No task output.</span>}
            {withOutputs.slice(0, limit).map((run) => (
              <details key={run.id} className="outputs-run" open={withOutputs.length <= 12} data-testid="outputs-run" data-task-id={run.taskId}>
                <summary>
                  <strong>{run.taskId}</strong>
                  {valueLabel(run) && <span className="gantt-value">{valueLabel(run)}</span>}
                  <StateBadge state={run.state} small />
                </summary>
                <Tree value={run.outputs} open={open} executionId={execution.id} depth={1} path={run.id} />
              </details>
            ))}
            {withOutputs.length > limit && (
              <button className="small" onClick={() => setLimit(limit + PAGE * 5)}>
                Show more ({withOutputs.length - limit} left)
              </button>
            )}
          </div>
        </section>
      </div>
      {preview && <FilePreview executionId={execution.id} uri={preview} onClose={() => setPreview(null)} />}
    </div>
  );
}

interface TreeProps {
  value: unknown;
  open: (uri: string) => void;
  executionId: string;
  depth: number;
  path: string;
}

function Tree({ value, open, executionId, depth, path }: TreeProps) {
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value)
      ? value.map((v, i) => [String(i), v] as const)
      : Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) return <span className="muted">{Array.isArray(value) ? "[]" : "{}"}</span>;
    return (
      <ul className="outputs-list">
        {entries.slice(0, 500).map(([key, v]) => (
          <li key={key}>
            {v !== null && typeof v === "object" ? (
              <details open={depth < 2}>
                <summary>
                  <span className="outputs-key">{key}</span>
                  <span className="muted"> {Array.isArray(v) ? `[${v.length}]` : `{${Object.keys(v).length}}`}</span>
                </summary>
                <Tree value={v} open={open} executionId={executionId} depth={depth + 1} path={`${path}.${key}`} />
              </details>
            ) : (
              <div className="outputs-leaf">
                <span className="outputs-key">{key}</span>
                <Leaf value={v} open={open} executionId={executionId} />
              </div>
            )}
          </li>
        ))}
        {entries.length > 500 && <li className="muted">… {entries.length - 500} more</li>}
      </ul>
    );
  }
  return <Leaf value={value} open={open} executionId={executionId} />;
}

function Leaf({ value, open, executionId }: { value: unknown; open: (uri: string) => void; executionId: string }) {
  if (typeof value === "string" && value.startsWith("kray://")) {
    return (
      <span className="outputs-value outputs-file">
        <span className="mono" title={value}>{value.slice(value.lastIndexOf("/") + 1)}</span>
        <button className="small" onClick={() => open(value)} data-testid="preview-button">Preview</button>
        <a className="btn small" href={fileUrl(executionId, value)} download>Download</a>
      </span>
    );
  }
  const text = value === null ? "null" : typeof value === "string" ? value : JSON.stringify(value);
  return <span className={`outputs-value mono type-${value === null ? "null" : typeof value}`}>{text}</span>;
}
