/**
 * A stored file of an execution: a table for CSV/Parquet/JSON (read server-side with DuckDB),
 * the first bytes for text, nothing for binary; always a download link. Cells are text.
 */
import { API_PREFIX, api, errorMessage } from "../api";
import { formatBytes } from "../hooks";
import type { FilePreview as Preview } from "../types";
import { useEffect, useState } from "react";
import "./Outputs.css";

export function fileUrl(executionId: string, uri: string): string {
  return `${API_PREFIX}/executions/${encodeURIComponent(executionId)}/file?path=${encodeURIComponent(uri)}`;
}

export default function FilePreview({ executionId, uri, onClose }: {
  executionId: string; uri: string; onClose?: () => void;
}) {
  const [preview, setPreview] = useState<Preview | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let cancelled = false;
    setPreview(null);
    setError(null);
    api<Preview>(`/executions/${encodeURIComponent(executionId)}/file/preview?path=${encodeURIComponent(uri)}&maxRows=100`)
      .then((p) => !cancelled && setPreview(p))
      .catch((e) => !cancelled && setError(errorMessage(e)));
    return () => {
      cancelled = true;
    };
  }, [executionId, uri]);

  const name = uri.slice(uri.lastIndexOf("/") + 1);
  return (
    <div className="panel file-preview" data-testid="file-preview">
      <div className="panel-head">
        <div>
          <strong className="mono">{name}</strong>
          {preview && (
            <span className="muted"> · {preview.format} · {formatBytes(preview.size)}
              {preview.rows.length > 0 && ` · ${preview.rows.length}${preview.truncated ? "+" : ""} rows`}</span>
          )}
        </div>
        <div className="toolbar">
          <a className="btn small" href={fileUrl(executionId, uri)} download data-testid="file-download">Download</a>
          {onClose && <button className="small" onClick={onClose}>Close</button>}
        </div>
      </div>
      <div className="file-preview-body">
        {error && <div className="error-box">{error}</div>}
        {!preview && !error && <span className="spinner" />}
        {preview && preview.columns.length > 0 && (
          <table className="grid preview-table" data-testid="preview-table">
            <thead>
              <tr>{preview.columns.map((c, i) => <th key={i}>{c}</th>)}</tr>
            </thead>
            <tbody>
              {preview.rows.map((row, r) => (
                <tr key={r}>{row.map((cell, c) => <td key={c}>{cellText(cell)}</td>)}</tr>
              ))}
            </tbody>
          </table>
        )}
        {preview && preview.columns.length === 0 && preview.text !== null && (
          <pre className="file-view" data-testid="preview-text">{preview.text}</pre>
        )}
        {preview && preview.format === "binary" && (
          <div className="empty">A binary file: download it to see it.</div>
        )}
        {preview?.truncated && <div className="muted file-preview-note">Only the first rows are shown.</div>}
      </div>
    </div>
  );
}

function cellText(cell: unknown): string {
  if (cell === null || cell === undefined) return "";
  return typeof cell === "object" ? JSON.stringify(cell) : String(cell);
}
