// SPDX-License-Identifier: Apache-2.0
// The nstance dashboard: plain JavaScript, no framework, no build step. It polls GET /overview
// with the operator's bearer token (kept in sessionStorage, sent only in the Authorization
// header, never in a URL), updates the tables in place so focus and typed values survive a
// refresh, shows an instance's decisions from GET /instance/status, and scales groups through
// POST /group/scale. Every text from the server is set with
// textContent, never parsed as HTML.

(() => {
  const TOKEN_KEY = "nstance-admin-token";
  const REFRESH_MS = 3000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    conn: $("conn"),
    logout: $("logout"),
    login: $("login"),
    loginForm: $("login-form"),
    token: $("token"),
    loginError: $("login-error"),
    app: $("app"),
    notice: $("notice"),
    shards: $("shards").tBodies[0],
    groups: $("groups").tBodies[0],
    groupsEmpty: $("groups-empty"),
    instances: $("instances").tBodies[0],
    instancesEmpty: $("instances-empty"),
    instancesCount: $("instances-count"),
    showDeleted: $("show-deleted"),
    history: $("history"),
    historyTitle: $("history-title"),
    historyInstance: $("history-instance"),
    historyList: $("history-list"),
    historyEmpty: $("history-empty"),
    historyClose: $("history-close"),
    updated: $("updated"),
  };

  let timer;
  let lastOverview;
  /** The instance whose history is open: {shard, id, opener}. */
  let selected;
  let connState = "";

  // ---- helpers -------------------------------------------------------------------------------

  /** Creates an element with attributes/properties and children (strings become text nodes). */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k in node && typeof v !== "string") node[k] = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== undefined && c !== null) node.append(c);
    return node;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  /** "45s", "3m 20s", "2h 5m", "3d 4h". */
  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }

  function badge(text, tone) {
    return el("span", { class: `badge ${tone || ""}`.trim(), text });
  }

  function healthTone(health) {
    return health === "healthy" ? "ok" : health === "unhealthy" ? "bad" : "warn";
  }

  function statusTone(status) {
    if (status === "running") return "ok";
    if (status === "deleted" || status === "deleting" || status === "stopped") return "bad";
    return "warn";
  }

  function setConn(text, isError) {
    if (connState === text) return;
    connState = text;
    ui.conn.textContent = text;
    ui.conn.classList.toggle("is-error", Boolean(isError));
  }

  function notify(text, isError) {
    ui.notice.textContent = text;
    ui.notice.classList.toggle("is-error", Boolean(isError));
  }

  /**
   * Keeps `tbody`'s rows in step with `items` by key: existing rows are updated in place (so a
   * focused input keeps its focus and value), new ones created, vanished ones removed.
   */
  function syncRows(tbody, items, keyOf, create, update) {
    const existing = new Map();
    for (const tr of tbody.rows) existing.set(tr.dataset.key, tr);
    items.forEach((item, i) => {
      const key = keyOf(item);
      let tr = existing.get(key);
      if (tr) existing.delete(key);
      else {
        tr = create(item);
        tr.dataset.key = key;
      }
      update(tr, item);
      if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] || null);
    });
    for (const tr of existing.values()) tr.remove();
  }

  // ---- API -----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, retryAfter) {
      super(message);
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  async function api(method, path, body) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) throw new ApiError(401, "not signed in");
    const headers = { authorization: `Bearer ${token}`, accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch {
      throw new ApiError(0, "cannot reach the admin server");
    }
    let json;
    try {
      json = await res.json();
    } catch {
      json = undefined;
    }
    if (!res.ok && !(json && Array.isArray(json.results))) {
      const message = json?.error ? json.error.message : `HTTP ${res.status}`;
      throw new ApiError(res.status, message, Number(res.headers.get("retry-after")) || 0);
    }
    return { status: res.status, json };
  }

  // ---- rendering -----------------------------------------------------------------------------

  function renderShards(shards) {
    syncRows(
      ui.shards,
      shards,
      (s) => s.shard,
      () =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }),
          el("td", { class: "mono" }),
          el("td"),
          el("td"),
          el("td", { class: "num" }),
          el("td"),
        ),
      (tr, s) => {
        const [name, address, status, leader, term, servers] = tr.cells;
        setText(name, s.shard);
        setText(address, s.address);
        status.replaceChildren(
          s.ok ? badge("reachable", "ok") : badge("unreachable", "bad"),
          s.ok ? "" : el("span", { class: "evidence", text: ` ${s.error?.message ?? ""}` }),
        );
        const l = s.leadership;
        if (l) {
          setText(leader, `${l.leader_id}${l.released ? " (released)" : ""}`);
          setText(term, String(l.term));
        } else {
          setText(leader, s.leadership_error ? `unknown: ${s.leadership_error}` : "unknown");
          setText(term, "–");
        }
        setText(
          servers,
          s.servers.length === 0
            ? "–"
            : s.servers.map((v) => `${v.id} (${v.role}${v.stale ? ", stale" : ""})`).join(", "),
        );
      },
    );
  }

  function groupState(g) {
    if (g.actual_size < g.size) return badge("scaling up", "warn");
    if (g.actual_size > g.size) return badge("scaling down", "warn");
    return badge("steady", "ok");
  }

  function createGroupRow(g) {
    const id = `size-${g._shard}-${g.key}`.replace(/[^A-Za-z0-9_-]/g, "_");
    const input = el("input", {
      id,
      type: "number",
      min: "0",
      step: "1",
      required: true,
      inputmode: "numeric",
      oninput: (e) => {
        e.target.dataset.dirty = "1";
      },
    });
    const form = el(
      "form",
      { class: "scale-form", onsubmit: (e) => onScale(e, g._shard, g.key) },
      el("label", {
        for: id,
        class: "visually-hidden",
        text: `Desired size of ${g.key} on ${g._shard}`,
      }),
      input,
      el("button", { type: "submit", text: "Scale" }),
    );
    return el(
      "tr",
      {},
      el("td"),
      el("th", { scope: "row" }),
      el("td"),
      el("td", { class: "num" }),
      el("td", { class: "num" }),
      el("td"),
      el("td", {}, form),
    );
  }

  function renderGroups(shards) {
    const groups = shards.flatMap((s) => s.groups.map((g) => ({ ...g, _shard: s.shard })));
    syncRows(
      ui.groups,
      groups,
      (g) => `${g._shard}/${g.key}`,
      createGroupRow,
      (tr, g) => {
        const [shard, key, template, desired, actual, state, scale] = tr.cells;
        setText(shard, g._shard);
        setText(key, g.key);
        setText(template, g.template);
        setText(desired, String(g.size));
        setText(actual, String(g.actual_size));
        state.replaceChildren(groupState(g));
        const input = scale.querySelector("input");
        if (!input.dataset.dirty && document.activeElement !== input) {
          input.value = String(g.size);
        }
      },
    );
    ui.groupsEmpty.hidden = groups.length > 0;
  }

  function renderInstances(overview) {
    const generatedAt = Date.parse(overview.generated_at);
    const showDeleted = ui.showDeleted.checked;
    const instances = overview.shards
      .flatMap((s) => s.instances.map((i) => ({ ...i, _shard: s.shard })))
      .filter((i) => showDeleted || i.status !== "deleted");
    syncRows(
      ui.instances,
      instances,
      (i) => `${i._shard}/${i.instance_id}`,
      (i) =>
        el(
          "tr",
          {},
          el("th", { scope: "row", class: "mono" }),
          el("td"),
          el("td"),
          el("td"),
          el("td"),
          el("td", { class: "num" }),
          el("td"),
          el(
            "td",
            {},
            el("button", {
              type: "button",
              class: "secondary",
              text: "History",
              "aria-label": `Decision history of ${i.instance_id}`,
              onclick: (e) => openHistory(i._shard, i.instance_id, e.currentTarget),
            }),
          ),
        ),
      (tr, i) => {
        const [id, shard, group, status, health, age, report] = tr.cells;
        setText(id, i.instance_id);
        setText(shard, i._shard);
        setText(group, i.group);
        status.replaceChildren(badge(i.status, statusTone(i.status)));
        health.replaceChildren(badge(i.health, healthTone(i.health)));
        setText(age, duration(i.age_seconds));
        if (i.last_report_at) {
          const ago = (generatedAt - Date.parse(i.last_report_at)) / 1000;
          report.replaceChildren(
            el("time", {
              datetime: i.last_report_at,
              title: i.last_report_at,
              text: `${duration(ago)} ago`,
            }),
          );
        } else setText(report, "never");
        tr.classList.toggle(
          "is-selected",
          Boolean(selected && selected.shard === i._shard && selected.id === i.instance_id),
        );
      },
    );
    ui.instancesEmpty.hidden = instances.length > 0;
    setText(ui.instancesCount, `(${instances.length})`);
  }

  function render(overview) {
    lastOverview = overview;
    renderShards(overview.shards);
    renderGroups(overview.shards);
    renderInstances(overview);
    ui.updated.dateTime = overview.generated_at;
    ui.updated.textContent = new Date(overview.generated_at).toLocaleTimeString();
  }

  async function renderHistory() {
    if (!selected) return;
    const { shard, id } = selected;
    const q = new URLSearchParams({ shard, instance_id: id });
    const { json } = await api("GET", `/instance/status?${q}`);
    if (!selected || selected.id !== id) return;
    const result = json.results[0];
    if (!result?.ok) {
      ui.historyList.replaceChildren();
      ui.historyEmpty.hidden = false;
      ui.historyEmpty.textContent = result ? result.error.message : "no answer";
      return;
    }
    const entries = result.instance.history;
    ui.historyList.replaceChildren(
      ...entries.map((d) =>
        el(
          "li",
          {},
          el("time", { datetime: d.at || "", text: d.at ? new Date(d.at).toLocaleString() : "" }),
          " ",
          el("strong", { text: d.decision }),
          d.reason ? ` — ${d.reason}` : "",
          Object.keys(d.evidence).length > 0
            ? el("div", {
                class: "evidence",
                text: Object.entries(d.evidence)
                  .map(([k, v]) => `${k}=${v}`)
                  .join("  "),
              })
            : undefined,
        ),
      ),
    );
    ui.historyEmpty.textContent = "No decisions recorded yet.";
    ui.historyEmpty.hidden = entries.length > 0;
  }

  // ---- actions -------------------------------------------------------------------------------

  async function refresh() {
    clearTimeout(timer);
    let delay = REFRESH_MS;
    try {
      const { json } = await api("GET", "/overview");
      render(json);
      if (selected) await renderHistory();
      const down = json.shards.filter((s) => !s.ok).length;
      setConn(down === 0 ? "Connected" : `Connected; ${down} shard(s) unreachable`, down > 0);
    } catch (err) {
      if (err.status === 401) {
        signOut("Your token was refused; sign in again.");
        return;
      }
      if (err.status === 429 && err.retryAfter) delay = err.retryAfter * 1000;
      setConn(`Connection problem: ${err.message}; retrying`, true);
    }
    timer = setTimeout(refresh, delay);
  }

  async function onScale(event, shard, group) {
    event.preventDefault();
    const form = event.currentTarget;
    const input = form.querySelector("input");
    const button = form.querySelector("button");
    const size = Number(input.value);
    if (input.value.trim() === "" || !Number.isInteger(size) || size < 0) {
      notify(`Enter a whole number of instances for ${group}.`, true);
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      const q = new URLSearchParams({ shard });
      const { json } = await api("POST", `/group/scale?${q}`, { group, size });
      const r = json.results[0];
      if (r?.ok) {
        delete input.dataset.dirty;
        notify(`Scaled ${group} on ${shard} to ${r.group.size}.`);
      } else
        notify(`Scaling ${group} on ${shard} failed: ${r ? r.error.message : "no answer"}`, true);
    } catch (err) {
      if (err.status === 401) {
        signOut("Your token was refused; sign in again.");
        return;
      }
      notify(`Scaling ${group} on ${shard} failed: ${err.message}`, true);
    } finally {
      button.disabled = false;
    }
    await refresh();
  }

  function openHistory(shard, id, opener) {
    selected = { shard, id, opener };
    ui.historyInstance.textContent = id;
    ui.historyList.replaceChildren();
    ui.historyEmpty.hidden = true;
    ui.history.hidden = false;
    if (lastOverview) renderInstances(lastOverview);
    ui.historyTitle.focus();
    renderHistory().catch((err) => notify(`History of ${id}: ${err.message}`, true));
  }

  function closeHistory() {
    const opener = selected?.opener;
    selected = undefined;
    ui.history.hidden = true;
    if (lastOverview) renderInstances(lastOverview);
    if (opener?.isConnected) opener.focus();
  }

  function showApp() {
    ui.login.hidden = true;
    ui.app.hidden = false;
    ui.logout.hidden = false;
    setConn("Connecting…");
    refresh();
  }

  function signOut(message) {
    clearTimeout(timer);
    sessionStorage.removeItem(TOKEN_KEY);
    ui.app.hidden = true;
    ui.logout.hidden = true;
    ui.login.hidden = false;
    ui.loginError.textContent = message || "";
    setConn("Not signed in");
    // Focus moves to the token field only when the user was signed out, not on page load.
    if (message) ui.token.focus();
  }

  async function onLogin(event) {
    event.preventDefault();
    const token = ui.token.value.trim();
    if (!token) {
      ui.loginError.textContent = "Enter a token.";
      ui.token.focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    ui.token.value = "";
    try {
      await api("GET", "/shards");
    } catch (err) {
      if (err.status === 401) {
        signOut("That token was refused.");
        return;
      }
    }
    ui.loginError.textContent = "";
    showApp();
  }

  ui.loginForm.addEventListener("submit", onLogin);
  ui.logout.addEventListener("click", () => signOut("Signed out."));
  ui.historyClose.addEventListener("click", closeHistory);
  ui.showDeleted.addEventListener("change", () => {
    if (lastOverview) renderInstances(lastOverview);
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && selected) closeHistory();
  });

  if (sessionStorage.getItem(TOKEN_KEY)) showApp();
  else signOut("");
})();
