/** The login page: the only thing a visitor without a session sees. */
import { useState, type FormEvent } from "react";
import { api, errorMessage } from "../api";
import { useAuth } from "../auth";
import { navigate, useRoute } from "../router";

/** Only same-site paths are followed after login, never another origin. */
function safeNext(next: string | null): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/login")) return "/flows";
  return next;
}

export default function Login() {
  const { query } = useRoute();
  const { refresh } = useAuth();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api("/auth/login", { method: "POST", json: { username, password } });
      await refresh();
      navigate(safeNext(query.get("next")), { replace: true });
    } catch (reason) {
      setError(errorMessage(reason));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="login-wrap">
      <form className="login-card" onSubmit={submit} data-testid="login-form">
        <h1>
          <span className="logo" /> kray
        </h1>
        <p className="muted" style={{ marginTop: 0, marginBottom: 18 }}>
          Sign in to manage your flows.
        </p>
        <label className="field">
          <span className="name">Username</span>
          <input
            data-testid="login-username"
            autoComplete="username"
            autoFocus
            value={username}
            onChange={(e) => setUsername(e.target.value)}
            required
          />
        </label>
        <label className="field">
          <span className="name">Password</span>
          <input
            data-testid="login-password"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            required
          />
        </label>
        {error && (
          <div className="error-box" data-testid="login-error">
            {error}
          </div>
        )}
        <button className="primary" type="submit" disabled={busy} data-testid="login-submit">
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </div>
  );
}
