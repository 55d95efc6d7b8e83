// The Authorization profiles pages (loaded after console.js; no inline script anywhere).
//
//   The profile form (#profile-form): shows the fields of the chosen authorization type and
//   of the chosen client authentication method, mode and connector, and hides AND disables
//   the others, so they are not sent; marks the mandatory fields with the registry's rules
//   (the form's data-rules, the same as core.validation.required_fields); prefills the
//   endpoints from the issuer's metadata (GET /api/v1/discovery); and sends the form to
//   the API (POST, or for an update PATCH with only what changed: a secret left blank is
//   kept, "Clear" sends null). The API's errors appear beside each field, all at once.
//
//   The Test dialog (#test-dialog): asks for the tenant, the form fields and, for a
//   password profile in user mode, a username and password; runs POST
//   /api/v1/profiles/{id}/test; shows the outcome with the Headers and Response tabs. For
//   an authorization code profile it then runs the real browser flow in a new window (the
//   tester's own connection: the one they have, authorized again, or a new one when they
//   have none, removed again should they give up before the identity provider answered)
//   and polls the connection until the identity provider answered. Form field values go
//   into `fields` by their key (data-map/data-key: a key may hold dots).
"use strict";

(function () {
  const C = window.Console;
  if (!C) return;

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => {
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else if (key === "hidden") node.hidden = true;
      else node.setAttribute(key, value === true ? "" : value);
    });
    (children || []).forEach((child) => { if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child); });
    return node;
  }

  // Buttons that explain why they are off (aria-disabled keeps them focusable, so the
  // explanation shows on keyboard focus as well as on hover).
  document.addEventListener("click", (event) => {
    const off = event.target instanceof Element ? event.target.closest('[aria-disabled="true"]') : null;
    if (off) { event.preventDefault(); event.stopPropagation(); }
  }, true);

  // Escape dismisses a tooltip shown by keyboard focus (WCAG 1.4.13).
  document.addEventListener("keydown", (event) => {
    const tip = event.key === "Escape" && document.activeElement ? document.activeElement.closest(".tip") : null;
    if (tip && document.activeElement instanceof HTMLElement && !document.querySelector("dialog[open]")) document.activeElement.blur();
  });

  // -- the profile form ----------------------------------------------------------------

  const form = document.getElementById("profile-form");
  if (form) setUpProfileForm(form);

  function setUpProfileForm(form) {
    const rules = JSON.parse(form.dataset.rules || "{}");
    const editing = form.dataset.editing === "true";
    const typeSelect = form.querySelector("[data-type-select]");

    function currentType() { return typeSelect ? typeSelect.value : form.dataset.authType; }

    function valueOf(name) {
      const controls = Array.from(form.querySelectorAll('[name="' + CSS.escape(name) + '"]'));
      const radios = controls.filter((c) => c.type === "radio");
      if (radios.length) {
        const checked = radios.find((r) => r.checked);
        return checked ? checked.value : "";
      }
      return controls.length ? controls[0].value : "";
    }

    function satisfied(when) {
      if (!when) return true;
      const [control, allowed] = when.split(":");
      let value = valueOf(control);
      if (control === "client_auth_method" && !value) value = "client_secret_basic";
      return allowed.split(" ").includes(value);
    }

    function requiredFields(type) {
      const typeRules = (rules.types || {})[type];
      if (!typeRules) return new Set();
      const method = valueOf("client_auth_method") || "client_secret_basic";
      const credential = (rules.credential || {})[method] || ["client_secret"];
      const out = [];
      typeRules.mandatory.forEach((name) => { if (name === "client_secret") out.push(...credential); else out.push(name); });
      const mode = valueOf("authorization_mode");
      if (mode && typeRules.in_mode[mode]) out.push(...typeRules.in_mode[mode]);
      if (valueOf("token_test_url").trim()) out.push(...typeRules.with_test_url);
      return new Set(out);
    }

    function setEnabled(wrapper, enabled) {
      wrapper.querySelectorAll("input, select, textarea, button").forEach((control) => {
        if (control.closest("template")) return;
        control.disabled = !enabled;
      });
    }

    // Shows what the type and the choices call for; hides and disables the rest.
    function apply() {
      const type = currentType();
      form.dataset.authType = type;
      form.querySelectorAll("[data-section-types]").forEach((section) => {
        section.hidden = !section.dataset.sectionTypes.split(" ").includes(type);
      });
      form.querySelectorAll("[data-variant]").forEach((variant) => {
        variant.hidden = !variant.dataset.variant.split(" ").includes(type);
      });
      form.querySelectorAll("[data-field]").forEach((wrapper) => {
        const visible = wrapper.dataset.types.split(" ").includes(type) && satisfied(wrapper.dataset.when);
        if (wrapper.hidden === !visible && wrapper.dataset.applied) return;
        wrapper.hidden = !visible;
        wrapper.dataset.applied = "1";
        setEnabled(wrapper, visible);
      });
      const required = requiredFields(type);
      form.querySelectorAll("[data-field]").forEach((wrapper) => {
        const name = wrapper.dataset.field;
        const on = required.has(name);
        wrapper.querySelectorAll("[data-required-mark]").forEach((mark) => { mark.hidden = !on; });
        wrapper.querySelectorAll('[name="' + CSS.escape(name) + '"]').forEach((control) => {
          if (on) control.setAttribute("aria-required", "true"); else control.removeAttribute("aria-required");
        });
      });
    }

    form.addEventListener("change", apply);
    form.addEventListener("input", (event) => {
      if (event.target.name === "token_test_url") apply();
    });

    // A secret typed replaces the stored one; "Clear" removes it: one or the other.
    form.addEventListener("input", (event) => {
      const input = event.target;
      if (!("secretSet" in input.dataset)) return;
      const clear = form.querySelector('[data-clears="' + CSS.escape(input.name) + '"]');
      if (clear && input.value) clear.checked = false;
    });
    form.addEventListener("change", (event) => {
      const clear = event.target;
      if (!clear.dataset || !clear.dataset.clears || !clear.checked) return;
      const input = form.querySelector('[name="' + CSS.escape(clear.dataset.clears) + '"]');
      if (input) input.value = "";
    });

    apply();

    // What the form says, as the API reads it: blanks as null (an update clears them),
    // secrets left blank out (kept).
    function body() {
      const data = C.serialize(form);
      Object.keys(data).forEach((key) => { if (data[key] === "") data[key] = null; });
      return data;
    }

    const initial = editing ? body() : null;

    // An update sends what changed: a value retyped, a field cleared or hidden by a choice
    // (null), and a stored secret the chosen method or mode no longer uses (null).
    function changes(current) {
      const out = {};
      Object.keys(current).forEach((key) => {
        const before = key in initial ? initial[key] : null;
        if (JSON.stringify(current[key]) !== JSON.stringify(before)) out[key] = current[key];
      });
      Object.keys(initial).forEach((key) => { if (!(key in current)) out[key] = null; });
      form.querySelectorAll("[data-field][hidden] [data-secret-set]").forEach((input) => {
        if (input.closest("[data-field]").dataset.types.split(" ").includes(currentType())) out[input.name] = null;
      });
      return out;
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = editing ? changes(body()) : body();
      C.busy(form, true);
      const result = await C.api(form.dataset.method, form.dataset.endpoint, data);
      C.busy(form, false);
      if (!result.ok) {
        C.showProblem(form, result);
        // An error inside closed Advanced Options: open them, so it shows.
        form.querySelectorAll("details").forEach((details) => {
          if (details.querySelector('[aria-invalid="true"]')) details.open = true;
        });
        return;
      }
      C.go(form.dataset.success);
    });

    setUpDiscovery(form, apply);
  }

  // -- prefill from discovery ----------------------------------------------------------

  function setUpDiscovery(form, apply) {
    const box = form.querySelector("[data-discovery]");
    if (!box) return;
    const input = box.querySelector("#discovery-issuer");
    const button = box.querySelector("[data-discover]");
    const error = box.querySelector("#discovery-error");
    const status = box.querySelector("#discovery-status");

    function labelOf(name) {
      const wrapper = form.querySelector('[data-field="' + CSS.escape(name) + '"]');
      const label = wrapper && wrapper.querySelector("label span:not([hidden]), legend span:not([hidden]), .label span:not([hidden])");
      return label ? label.textContent.trim() : name;
    }

    function fill(name, value, filled) {
      if (!value) return;
      const control = form.querySelector('[name="' + CSS.escape(name) + '"]:not(:disabled)');
      if (!control) return;
      control.value = value;
      control.dispatchEvent(new Event("input", { bubbles: true }));
      filled.push(labelOf(name));
    }

    function fail(message) {
      error.textContent = message;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", "discovery-hint discovery-status discovery-error");
      status.textContent = "";
    }

    async function discover() {
      error.textContent = "";
      input.removeAttribute("aria-invalid");
      const issuer = input.value.trim();
      if (!issuer) { fail("Type the issuer URL first, for example https://idp.example.com."); input.focus(); return; }
      button.disabled = true;
      status.textContent = "Reading the issuer's metadata…";
      const result = await C.api("GET", "/api/v1/discovery?issuer=" + encodeURIComponent(issuer));
      button.disabled = false;
      if (!result.ok) {
        const problem = result.data || {};
        const first = (problem.errors || [])[0];
        fail(first ? first.message : C.problemText(problem));
        input.focus();
        return;
      }
      const meta = result.data;
      const filled = [];
      fill("issuer", meta.issuer, filled);
      fill("authorization_url", meta.authorization_url, filled);
      fill("device_authorization_url", meta.device_authorization_url, filled);
      fill("token_url", meta.token_url, filled);
      fill("revocation_url", meta.revocation_url, filled);
      // Between the two ways of sending the secret, the one the identity provider lists
      // (a method chosen for another reason, a key or a public client, is left alone).
      const method = form.querySelector('[name="client_auth_method"]:not(:disabled)');
      const offeredMethods = meta.client_auth_methods || [];
      const secretMethods = ["client_secret_basic", "client_secret_post"];
      if (method && secretMethods.includes(method.value) && !offeredMethods.includes(method.value)) {
        const other = secretMethods.find((m) => m !== method.value);
        if (offeredMethods.includes(other)) { method.value = other; filled.push(labelOf("client_auth_method")); }
      }
      const pkce = form.querySelector('[name="pkce"]:not(:disabled)');
      if (pkce && (meta.code_challenge_methods || []).includes("S256") && !pkce.checked) {
        pkce.checked = true;
        filled.push(labelOf("pkce"));
      }
      offerScopes(form, meta.scopes_supported || []);
      apply();
      status.textContent = filled.length
        ? "Filled from " + meta.source + ": " + filled.join(", ") + "."
        : "The metadata at " + meta.source + " names none of the endpoints this type uses.";
    }

    button.addEventListener("click", discover);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); discover(); }
    });
  }

  // The scopes the identity provider offers, with a button that asks for them all.
  function offerScopes(form, scopes) {
    const input = form.querySelector('[name="scopes"]');
    const holder = form.querySelector("[data-offered-scopes]");
    if (!input || !holder) return;
    holder.textContent = "";
    if (!scopes.length) { holder.hidden = true; return; }
    holder.hidden = false;
    holder.className = "hint offered-scopes";
    holder.appendChild(el("span", { text: "Offered by the identity provider: " + scopes.join(" ") }));
    const use = el("button", { type: "button", className: "button small", text: "Use these scopes" });
    use.addEventListener("click", () => {
      input.value = scopes.join(" ");
      input.dispatchEvent(new Event("input", { bubbles: true }));
      input.focus();
    });
    holder.appendChild(use);
  }

  // -- the Test dialog -----------------------------------------------------------------

  const dialog = document.getElementById("test-dialog");
  if (dialog) setUpTestDialog(dialog);

  function setUpTestDialog(dialog) {
    const testForm = dialog.querySelector("#test-form");
    const inputs = dialog.querySelector("#test-inputs");
    const result = dialog.querySelector("#test-result");
    const subtitle = dialog.querySelector("#test-subtitle");
    const runButton = dialog.querySelector("#test-run");
    let current = null;
    let run = 0;

    function field(id, label, control, hint) {
      const wrapper = el("div", { className: "field" });
      wrapper.appendChild(el("label", { for: id, text: label }));
      control.id = id;
      if (hint) {
        control.setAttribute("aria-describedby", id + "-hint");
      }
      wrapper.appendChild(control);
      if (hint) wrapper.appendChild(el("p", { className: "hint", id: id + "-hint", text: hint }));
      wrapper.appendChild(el("p", { className: "field-error" }));
      return wrapper;
    }

    function buildInputs(setup) {
      inputs.textContent = "";
      if (setup.tenancy) {
        inputs.appendChild(field("test-tenant", "Tenant", el("input", { name: "tenant", type: "text", autocomplete: "off", spellcheck: "false" }),
          "This profile has tenancy: the tenant its {tenant} URLs are made for, for example, acme."));
      }
      setup.formFields.forEach((f, index) => {
        // By its key in the map `fields` (a key may hold dots: not a dotted name).
        const control = el("input", {
          "data-map": "fields",
          "data-key": f.key,
          type: f.type === "password" ? "password" : "text",
          autocomplete: "off",
          readonly: f.visibility === "readonly" ? true : null,
        });
        inputs.appendChild(field("test-field-" + index, f.title + (f.mandatory ? " (mandatory)" : ""), control, f.hint));
      });
      if (setup.userMode) {
        inputs.appendChild(field("test-username", "Username", el("input", { name: "username", type: "text", autocomplete: "off" }),
          "Users authorize for themselves in this profile: try it as one of them."));
        inputs.appendChild(field("test-password", "Password", el("input", { name: "password", type: "password", autocomplete: "off" })));
      }
      return inputs.children.length > 0;
    }

    function open(button) {
      let formFields = [];
      try { formFields = JSON.parse(button.dataset.formFields || "[]"); } catch (error) { formFields = []; }
      current = {
        button: button,
        id: button.dataset.testProfile,
        name: button.dataset.profileName,
        authType: button.dataset.authType,
        tenancy: button.dataset.tenancy === "true",
        userMode: button.dataset.userMode === "true",
        formFields: formFields,
      };
      run += 1;
      subtitle.textContent = "Profile " + current.name + ": the test obtains a token (or, for authorization code, checks the authorization URL and the client) with its settings.";
      result.textContent = "";
      C.clearErrors(testForm);
      const asks = buildInputs(current);
      runButton.textContent = "Test";
      C.openDialog(dialog, button);
      if (!asks) runTest();
    }

    document.addEventListener("click", (event) => {
      const button = event.target instanceof Element ? event.target.closest("[data-test-profile]") : null;
      if (button) { event.preventDefault(); open(button); }
    });
    dialog.addEventListener("close", () => { run += 1; }); // stops a poll still running
    testForm.addEventListener("submit", (event) => { event.preventDefault(); runTest(); });

    async function runTest() {
      const mine = ++run;
      const data = C.serialize(testForm);
      const request = { fields: data.fields || {} };
      if (data.tenant) request.tenant = data.tenant;
      if (data.username) request.username = data.username;
      if (data.password) request.password = data.password;
      current.request = request;
      C.clearErrors(testForm);
      result.textContent = "";
      result.appendChild(el("p", { className: "subtle", text: "Testing " + current.name + "…" }));
      runButton.disabled = true;
      const answer = await C.api("POST", "/api/v1/profiles/" + encodeURIComponent(current.id) + "/test", request);
      runButton.disabled = false;
      if (mine !== run) return;
      result.textContent = "";
      if (!answer.ok) {
        if (answer.data && answer.data.errors && answer.data.errors.length) {
          C.showProblem(testForm, answer);
          return;
        }
        result.appendChild(el("div", { className: "notice error", role: "alert", "data-testid": "test-result", "data-ok": "false" }, [
          el("strong", { text: "Auth Test Failed" }), " " + C.problemText(answer.data),
        ]));
        return;
      }
      showOutcome(answer.data);
    }

    function headersText(headers) {
      return Object.entries(headers || {}).map(([name, value]) => name + ": " + value).join("\n");
    }

    function tabs(outcome) {
      const request = outcome.request;
      const response = outcome.response;
      const box = el("div", { className: "test-tabs" });
      const list = el("div", { role: "tablist", "aria-label": "What was sent and received" });
      const headersTab = el("button", { type: "button", role: "tab", id: "test-tab-headers", "aria-controls": "test-panel-headers", "aria-selected": "true", text: "Headers" });
      const responseTab = el("button", { type: "button", role: "tab", id: "test-tab-response", "aria-controls": "test-panel-response", "aria-selected": "false", tabindex: "-1", text: "Response" });
      list.appendChild(headersTab);
      list.appendChild(responseTab);
      box.appendChild(list);
      const headersPanel = el("div", { role: "tabpanel", id: "test-panel-headers", "aria-labelledby": "test-tab-headers", tabindex: "0", "data-testid": "test-headers" });
      headersPanel.appendChild(el("h3", { text: "Request" }));
      headersPanel.appendChild(el("pre", { className: "block", text: request
        ? request.method + " " + request.url + "\n" + headersText(request.headers)
        : "No request was sent." }));
      headersPanel.appendChild(el("h3", { text: "Response headers" }));
      headersPanel.appendChild(el("pre", { className: "block", text: response
        ? (response.status_code ? "HTTP " + response.status_code + "\n" : (response.error || "No answer") + "\n") + headersText(response.headers)
        : "No answer was received." }));
      const responsePanel = el("div", { role: "tabpanel", id: "test-panel-response", "aria-labelledby": "test-tab-response", tabindex: "0", hidden: true, "data-testid": "test-response" });
      responsePanel.appendChild(el("h3", { text: "Response body" }));
      responsePanel.appendChild(el("pre", { className: "block", text: response
        ? (response.body || (response.error ? response.error : "(an empty body)"))
        : "No answer was received." }));
      if (request && request.body) {
        responsePanel.appendChild(el("h3", { text: "Request body" }));
        responsePanel.appendChild(el("pre", { className: "block", text: request.body }));
      }
      box.appendChild(headersPanel);
      box.appendChild(responsePanel);
      return box;
    }

    const STAGES = {
      token: "Token request",
      token_test: "Token test URL",
      authorization_url: "Authorization URL",
      client_authentication: "Client authentication",
    };

    // The API's detail of an authorization code test ends by saying how to go on through
    // the API; here the dialog goes on itself (offerBrowserFlow).
    function said(detail, outcome) {
      return outcome.next === "authorize" ? detail.replace(/\.?\s*Next: authorize in the browser:.*$/s, ".") : detail;
    }

    function showOutcome(outcome) {
      const ok = outcome.ok;
      const status = !ok && outcome.status_code ? " (HTTP " + outcome.status_code + ")" : "";
      const summary = el("div", { className: "notice " + (ok ? "success" : "error"), role: ok ? "status" : "alert", "data-testid": "test-result", "data-ok": String(ok) }, [
        el("strong", { text: ok ? "Auth Test Succeeded" : "Auth Test Failed" }),
        " " + (STAGES[outcome.stage] || outcome.stage) + status + ": " + said(outcome.detail, outcome),
      ]);
      result.appendChild(summary);
      if (ok && outcome.next === "authorize") offerBrowserFlow();
      if (outcome.steps && outcome.steps.length > 1) {
        const steps = el("ol", { className: "test-steps" });
        outcome.steps.forEach((step) => {
          steps.appendChild(el("li", { text: (step.ok ? "Passed" : "Failed") + " — " + (STAGES[step.stage] || step.stage) + ": " + said(step.detail, outcome) }));
        });
        result.appendChild(steps);
      }
      (outcome.warnings || []).forEach((warning) => result.appendChild(el("p", { className: "notice warning", text: warning })));
      result.appendChild(tabs(outcome));
      const inline = document.querySelector('[data-test-outcome="' + CSS.escape(current.id) + '"]');
      if (inline) inline.textContent = ok ? "Last test passed" : "Last test failed";
      runButton.textContent = "Test again";
    }

    // -- authorization code: the real flow, in a new window -----------------------------

    function offerBrowserFlow() {
      const box = el("div", { className: "test-next", "data-testid": "test-next" });
      box.appendChild(el("p", { text: "Next, sign in at the identity provider in a new window, as a user would: this makes a connection of your own through " + current.name + " and shows here whether the identity provider issued a token." }));
      const go = el("button", { type: "button", className: "button primary", text: "Sign in at the identity provider" });
      const outcome = el("p", { role: "status", "data-testid": "authorize-result" });
      box.appendChild(el("div", {}, [go]));
      box.appendChild(outcome);
      result.appendChild(box);
      go.addEventListener("click", () => browserFlow(go, outcome));
    }

    // The tester's own connection through the profile, authorized again: the one they
    // have for this tenant (active or not) is reused; a new one is made only when there
    // is none. `before`: the connection as it was (null when made now).
    async function ownConnection(userId, request) {
      const tenant = request.tenant ? request.tenant.toLowerCase() : null;
      const query = "/api/v1/connections?profile_id=" + encodeURIComponent(current.id) + "&owner=" + encodeURIComponent(userId);
      const listed = await C.api("GET", query);
      const mine = listed.ok && Array.isArray(listed.data)
        ? listed.data.filter((c) => (c.tenant || null) === tenant)
        : [];
      // The one that works first, then the newest of the others.
      const reusable = mine.find((c) => c.status === "active") || mine[mine.length - 1] || null;
      if (reusable) {
        const again = await C.api("POST", "/api/v1/connections/" + encodeURIComponent(reusable.id) + "/reauthorize");
        if (again.ok || again.status !== 404) return { answer: again, before: reusable };
      }
      const body = { owner: userId, fields: request.fields };
      if (request.tenant) body.tenant = request.tenant;
      return { answer: await C.api("POST", "/api/v1/profiles/" + encodeURIComponent(current.id) + "/connections", body), before: null };
    }

    // The flow under way (one at a time): its connection, and whether this test made it.
    let flow = null;

    // A connection this test made that nobody authorized is of no use: when the person
    // gives up (closes the window or the dialog) and it is still pending, it goes.
    // Resolves true when it went.
    async function abandon(state) {
      if (!state || !state.created || state.finished) return false;
      state.finished = true;
      const path = "/api/v1/connections/" + encodeURIComponent(state.connectionId);
      const now = await C.api("GET", path);
      if (!(now.ok && now.data && now.data.status === "pending")) return false;
      return (await C.api("DELETE", path)).ok;
    }

    dialog.addEventListener("close", () => {
      const state = flow;
      flow = null;
      abandon(state);
    });

    async function browserFlow(button, outcome) {
      const mine = run;
      // Opened now, in the click, so that no popup blocker stops it; sent on below.
      const popup = window.open("", "_blank");
      if (popup) { try { popup.opener = null; } catch (error) { /* cross-origin already */ } }
      button.disabled = true;
      outcome.textContent = "Starting the authorization…";
      const userId = dialog.dataset.userId;
      const { answer, before } = await ownConnection(userId, current.request || { fields: {} });
      const url = answer.ok && answer.data ? C.httpUrl(answer.data.authorization_url) : null;
      if (!url) {
        if (popup) popup.close();
        button.disabled = false;
        outcome.dataset.status = "error";
        outcome.textContent = "Could not start the authorization: " + (answer.ok
          ? "the identity provider's authorization URL is not an http or https address."
          : C.problemText(answer.data));
        if (answer.ok && answer.data && !before) {
          abandon({ connectionId: answer.data.id || answer.data.connection_id, created: true, finished: false });
        }
        return;
      }
      const connectionId = answer.data.id || answer.data.connection_id;
      // Made by this dialog's earlier try (and reused now): still this test's own.
      const madeEarlier = Boolean(flow && flow.connectionId === connectionId && flow.created);
      if (flow && flow.connectionId !== connectionId) abandon(flow);
      const state = { connectionId: connectionId, created: !before || madeEarlier, finished: false };
      flow = state;
      if (mine !== run) {
        // The dialog closed (or the test ran again) meanwhile: nobody waits for this one.
        if (popup) popup.close();
        flow = null;
        abandon(state);
        return;
      }
      if (popup) {
        popup.location.href = url;
        outcome.textContent = "Waiting for the identity provider: sign in in the new window…";
      } else {
        outcome.textContent = "";
        outcome.appendChild(document.createTextNode("Your browser blocked the new window: "));
        outcome.appendChild(el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: "open the identity provider's sign-in page" }));
        outcome.appendChild(document.createTextNode(", then come back here."));
      }
      poll(state, before, popup, outcome, button, mine);
    }

    function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

    // What changes on a connection once the person's authorization completed or failed.
    const WATCHED = ["status", "expires_at", "refreshed_at", "last_error_at"];

    function changed(now, before) {
      return !before || WATCHED.some((key) => (now[key] || null) !== (before[key] || null));
    }

    async function poll(state, before, popup, outcome, button, mine) {
      const started = Date.now();
      let closedPolls = 0;
      const path = "/api/v1/connections/" + encodeURIComponent(state.connectionId);
      while (mine === run && Date.now() - started < 10 * 60 * 1000) {
        await sleep(1000);
        if (mine !== run) return;
        const answer = await C.api("GET", path);
        if (mine !== run) return;
        if (!answer.ok) {
          state.finished = true;
          outcome.dataset.status = "error";
          outcome.textContent = "Could not read the connection: " + C.problemText(answer.data);
          button.disabled = false;
          return;
        }
        const c = answer.data;
        const failedAgain = before && c.last_error_at && c.last_error_at !== before.last_error_at;
        if (c.status === "active" && !failedAgain && changed(c, before)) {
          state.finished = true;
          outcome.dataset.status = "active";
          outcome.className = "notice success";
          outcome.textContent = "Connected: the identity provider issued a token. The connection is yours, listed under OAuth connections.";
          return;
        }
        if ((c.status === "needs_reauth" && !before) || failedAgain) {
          state.finished = true;
          outcome.dataset.status = "needs_reauth";
          outcome.className = "notice error";
          outcome.textContent = "Not connected: " + (c.last_error || "the identity provider did not authorize.");
          button.disabled = false;
          return;
        }
        if (popup && popup.closed) {
          closedPolls += 1;
          if (closedPolls > 2) {
            if (flow === state) flow = null;
            const removed = await abandon(state);
            if (mine !== run) return;
            outcome.dataset.status = "closed";
            outcome.textContent = "The sign-in window was closed before the identity provider answered." +
              (removed ? " The connection this test started was removed." : "");
            button.disabled = false;
            return;
          }
        }
      }
    }
  }
})();
