// Bot-Mox settings page: the tenant's agents (GET, read only), the tenant's storage policy (GET, merge,
// PUT of the whole object, as the Bot-Mox frontend does) and one ordinary setting (alerts.warning_days,
// GET + PATCH).
// Vanilla JS, no build step. Configuration comes from /runtime-config.js, written at container start.
"use strict";

(() => {
  const config = window.__BOTMOX_CONFIG__ || {};
  // An empty base URL means "same origin" (a reverse proxy in front of both).
  const apiBaseUrl = typeof config.apiBaseUrl === "string" ? config.apiBaseUrl.replace(/\/+$/, "") : "";
  const TOKEN_KEY = "botmox.apiToken";
  const STORAGE_POLICY_PATH = "/api/v1/settings/storage_policy";
  const ALERTS_PATH = "/api/v1/settings/alerts";
  const AGENTS_PATH = "/api/v1/agents";
  // What the API means by "nothing stored" (data: null), see docs/api.md.
  const DEFAULT_POLICY = Object.freeze({ secrets: "local-only", operational: "cloud", sync: { enabled: false } });

  const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

  class ApiError extends Error {
    constructor(code, message, status, details) {
      super(message);
      this.code = code;
      this.status = status;
      this.details = details;
    }
  }

  // --- token: pasted by the user (kept in sessionStorage), else the demo token from runtime config
  function readStoredToken() {
    try {
      return window.sessionStorage.getItem(TOKEN_KEY);
    } catch {
      return null; // storage disabled: fall back to the runtime-config token
    }
  }

  function storeToken(token) {
    try {
      if (token) window.sessionStorage.setItem(TOKEN_KEY, token);
      else window.sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // Storage disabled: the token still applies until the tab reloads.
    }
    pastedToken = token;
  }

  let pastedToken = readStoredToken();
  const currentToken = () => pastedToken || (typeof config.token === "string" ? config.token : "");

  // --- the API envelope: {success: true, data} | {success: false, error: {code, message, details}}
  async function apiRequest(method, path, body) {
    const headers = { Accept: "application/json" };
    const token = currentToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(`${apiBaseUrl}${path}`, init);
    } catch {
      throw new ApiError("NETWORK_ERROR", `Could not reach the API at ${apiBaseUrl || window.location.origin}`, 0);
    }
    let envelope = null;
    try {
      envelope = await response.json();
    } catch {
      envelope = null; // not JSON: reported below with the HTTP status
    }
    if (response.ok && envelope && envelope.success === true) {
      return envelope.data === undefined ? null : envelope.data;
    }
    const error = envelope && envelope.success === false && envelope.error ? envelope.error : {};
    throw new ApiError(
      typeof error.code === "string" ? error.code : `HTTP_${response.status}`,
      typeof error.message === "string" ? error.message : `Unexpected answer (HTTP ${response.status})`,
      response.status,
      error.details,
    );
  }

  // --- a section's visible state: data-state for tests, a message, and the envelope's error
  function showStatus(section, prefix, state, message, error) {
    byTestId(section).dataset.state = state;
    byTestId(section).setAttribute("aria-busy", state === "loading" || state === "saving" ? "true" : "false");
    byTestId(`${prefix}-message`).textContent = message;
    byTestId(`${prefix}-error-code`).textContent = error ? error.code : "";
    byTestId(`${prefix}-error-message`).textContent = error ? error.message : "";
  }

  const asApiError = (error) =>
    error instanceof ApiError ? error : new ApiError("CLIENT_ERROR", String(error && error.message ? error.message : error), 0);

  // --- storage policy
  const policyForm = document.getElementById("storage-policy-form");
  const policySave = byTestId("storage-policy-save");
  let loadedPolicy = null; // the last document the API gave us (or the defaults)
  // Bumped by every load and save, so an answer that arrives after a newer request is dropped.
  let policyGeneration = 0;

  function normalizePolicy(data) {
    const source = data && typeof data === "object" ? data : {};
    const sync = source.sync && typeof source.sync === "object" ? source.sync : {};
    return { ...DEFAULT_POLICY, ...source, sync: { ...DEFAULT_POLICY.sync, ...sync } };
  }

  function renderPolicy(policy) {
    for (const radio of policyForm.elements.operational) radio.checked = radio.value === policy.operational;
    byTestId("sync-enabled").checked = policy.sync.enabled === true;
    byTestId("secrets").value = "local-only";
    const updated = byTestId("storage-policy-updated");
    if (typeof policy.updated_at === "number") {
      const by = policy.updated_by ? ` by ${policy.updated_by}` : "";
      updated.textContent = `Last saved ${new Date(policy.updated_at).toLocaleString()}${by}`;
    } else {
      updated.textContent = "Not saved yet: showing the defaults";
    }
  }

  function editedPolicy() {
    const base = loadedPolicy || normalizePolicy(null);
    const chosen = policyForm.elements.operational.value || base.operational;
    // Merge the edited fields into the loaded document and send the whole object back.
    return {
      ...base,
      secrets: "local-only",
      operational: chosen,
      sync: { ...base.sync, enabled: byTestId("sync-enabled").checked },
    };
  }

  async function loadStoragePolicy() {
    const generation = ++policyGeneration;
    showStatus("storage-policy", "storage-policy", "loading", "Loading storage policy…", null);
    try {
      const data = await apiRequest("GET", STORAGE_POLICY_PATH);
      if (generation !== policyGeneration) return;
      loadedPolicy = normalizePolicy(data);
      renderPolicy(loadedPolicy);
      showStatus("storage-policy", "storage-policy", "ready", "Storage policy loaded", null);
    } catch (error) {
      if (generation !== policyGeneration) return;
      // Keep the form usable with the defaults, so a save can still be tried (and its error shown).
      loadedPolicy = null;
      renderPolicy(normalizePolicy(null));
      byTestId("storage-policy-updated").textContent = "Showing the defaults: the stored policy could not be read";
      showStatus("storage-policy", "storage-policy", "load-error", "Failed to load storage policy", asApiError(error));
    }
  }

  async function saveStoragePolicy() {
    const body = editedPolicy();
    const generation = ++policyGeneration;
    policySave.disabled = true;
    showStatus("storage-policy", "storage-policy", "saving", "Saving storage policy…", null);
    try {
      const saved = await apiRequest("PUT", STORAGE_POLICY_PATH, body);
      if (generation !== policyGeneration) return;
      loadedPolicy = normalizePolicy(saved || body);
      renderPolicy(loadedPolicy);
      showStatus("storage-policy", "storage-policy", "saved", "Storage policy saved", null);
    } catch (error) {
      if (generation !== policyGeneration) return;
      showStatus("storage-policy", "storage-policy", "save-error", "Failed to save storage policy", asApiError(error));
    } finally {
      policySave.disabled = false;
    }
  }

  // --- alerts.warning_days: an ordinary settings path, to show it works while storage_policy fails
  const alertsSave = byTestId("alerts-save");
  const warningDays = byTestId("warning-days");
  let alertsGeneration = 0;

  async function loadAlerts() {
    const generation = ++alertsGeneration;
    showStatus("alerts", "alerts", "loading", "Loading alerts…", null);
    try {
      const alerts = await apiRequest("GET", ALERTS_PATH);
      if (generation !== alertsGeneration) return;
      const days = alerts && typeof alerts === "object" ? alerts.warning_days : undefined;
      warningDays.value = typeof days === "number" ? String(days) : "";
      showStatus("alerts", "alerts", "ready", "Alerts loaded", null);
    } catch (error) {
      if (generation !== alertsGeneration) return;
      showStatus("alerts", "alerts", "load-error", "Failed to load alerts", asApiError(error));
    }
  }

  async function saveAlerts() {
    const raw = warningDays.value.trim();
    if (raw === "") {
      showStatus("alerts", "alerts", "save-error", "Failed to save alerts",
        new ApiError("INVALID_INPUT", "Enter a number of days", 0));
      return;
    }
    const generation = ++alertsGeneration;
    alertsSave.disabled = true;
    showStatus("alerts", "alerts", "saving", "Saving alerts…", null);
    try {
      // Sent as typed (a number when it parses); the API checks the 1..365 bound.
      const days = Number(raw);
      const saved = await apiRequest("PATCH", ALERTS_PATH, { warning_days: Number.isFinite(days) ? days : raw });
      if (generation !== alertsGeneration) return;
      if (saved && typeof saved.warning_days === "number") warningDays.value = String(saved.warning_days);
      showStatus("alerts", "alerts", "saved", "Alerts saved", null);
    } catch (error) {
      if (generation !== alertsGeneration) return;
      showStatus("alerts", "alerts", "save-error", "Failed to save alerts", asApiError(error));
    } finally {
      alertsSave.disabled = false;
    }
  }

  // --- agents: GET /api/v1/agents (name, online, last_seen_at, version), shown as the API answered
  const agentRows = byTestId("agents-rows");
  let agentsGeneration = 0;

  function agentCell(testId, text) {
    const cell = document.createElement("td");
    cell.dataset.testid = testId;
    cell.textContent = text; // never innerHTML: names come from the agents themselves
    return cell;
  }

  function agentState(agent) {
    if (agent.revoked_at) return "revoked";
    return agent.online === true ? "online" : "offline";
  }

  function lastSeen(agent) {
    if (typeof agent.last_seen_at !== "string") return "never";
    const seen = new Date(agent.last_seen_at);
    return Number.isNaN(seen.getTime()) ? agent.last_seen_at : seen.toLocaleString();
  }

  function renderAgents(agents) {
    const rows = agents.map((agent) => {
      const row = document.createElement("tr");
      const state = agentState(agent);
      row.dataset.testid = "agent-row";
      row.dataset.agentId = typeof agent.id === "string" ? agent.id : "";
      row.dataset.state = state;
      const stateCell = agentCell("agent-state", state);
      stateCell.className = `agent-state agent-${state}`;
      row.append(
        agentCell("agent-name", typeof agent.name === "string" ? agent.name : ""),
        stateCell,
        agentCell("agent-last-seen", lastSeen(agent)),
        agentCell("agent-version", typeof agent.version === "string" ? agent.version : ""),
      );
      return row;
    });
    agentRows.replaceChildren(...rows);
    byTestId("agents-empty").hidden = agents.length > 0;
  }

  async function loadAgents() {
    const generation = ++agentsGeneration;
    showStatus("agents", "agents", "loading", "Loading agents…", null);
    try {
      const data = await apiRequest("GET", AGENTS_PATH);
      if (generation !== agentsGeneration) return;
      const agents = Array.isArray(data) ? data.filter((agent) => agent && typeof agent === "object") : [];
      renderAgents(agents);
      const online = agents.filter((agent) => agentState(agent) === "online").length;
      showStatus("agents", "agents", "ready", `${agents.length} agent(s), ${online} online`, null);
    } catch (error) {
      if (generation !== agentsGeneration) return;
      renderAgents([]);
      byTestId("agents-empty").hidden = true;
      showStatus("agents", "agents", "load-error", "Failed to load agents", asApiError(error));
    }
  }

  // --- wiring
  function loadAll() {
    if (!currentToken()) {
      // Without a token every call would be a 401: ask for one instead.
      const message = "Paste a bearer token above to load the settings";
      showStatus("agents", "agents", "needs-token", message, null);
      showStatus("storage-policy", "storage-policy", "needs-token", message, null);
      showStatus("alerts", "alerts", "needs-token", message, null);
      return Promise.resolve();
    }
    return Promise.all([loadAgents(), loadStoragePolicy(), loadAlerts()]);
  }

  byTestId("api-base-url").textContent = apiBaseUrl || `${window.location.origin} (same origin)`;
  byTestId("api-token").value = currentToken();

  byTestId("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    storeToken(byTestId("api-token").value.trim());
    loadAll();
  });
  policyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    saveStoragePolicy();
  });
  byTestId("storage-policy-reload").addEventListener("click", () => loadStoragePolicy());
  byTestId("agents-reload").addEventListener("click", () => loadAgents());
  document.getElementById("alerts-form").addEventListener("submit", (event) => {
    event.preventDefault();
    saveAlerts();
  });

  loadAll();
})();
