/** Every trigger: status, last event and errors, enable/disable, backfills. */
import { useState } from "react";
import { errorMessage, qs } from "../api";
import TriggersTable, { type TriggerView } from "../components/TriggersTable";
import { useApi, useDebounced } from "../hooks";
import type { Paged } from "../types";

export default function TriggersPage() {
  const [text, setText] = useState("");
  const q = useDebounced(text, 250);
  const [page, setPage] = useState(1);
  const size = 50;
  const found = useApi<Paged<TriggerView>>(`/triggers/search${qs({ q, page, size })}`);
  const pages = Math.max(1, Math.ceil((found.data?.total ?? 0) / size));
  return (
    <div data-testid="triggers-page">
      <div className="page-header">
        <div>
          <h1>Triggers</h1>
          <div className="sub">{found.data ? `${found.data.total} triggers` : " "}</div>
        </div>
        <button onClick={found.reload}>Refresh</button>
      </div>
      <div className="toolbar" style={{ marginBottom: 12 }}>
        <input className="search" placeholder="Search namespace, flow or trigger…" value={text} onChange={(e) => { setText(e.target.value); setPage(1); }} data-testid="triggers-search" />
        {found.loading && <span className="spinner" />}
      </div>
      {found.error ? <div className="error-box">{errorMessage(found.error)}</div> : null}
      <TriggersTable triggers={found.data?.results ?? []} onChanged={found.reload} />
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
