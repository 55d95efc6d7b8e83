// The console's script: written here, served by the server, loaded with `defer` on
// every console page (the Content-Security-Policy allows no inline script).
//
// Pages are rendered by the server; every change goes through the JSON API with the
// session cookie and the page's CSRF token (<meta name="csrf-token">), so validation,
// permissions and problems are the API's own. What this file gives every page:
//
//   <form data-api="/api/v1/…" [data-method="POST"] [data-success="/console/…?notice=…"]
//         [data-show-once="key"] [data-event="name"]>
//       Sends the form as JSON (see `serialize`); on success goes to data-success
//       ("{id}" there is the answer's id), or first shows the answer's data-show-once
//       field in the shown-once dialog, or fires `data-event` on the form with the
//       answer (event.detail) for the page's own script. On a problem, each error of
//       problem+json `errors` appears beside its field, all at once.
//   <button data-action="DELETE /api/v1/…" [data-confirm="…"] [data-confirm-label="…"]
//         [data-success="…"]>  one call, after a confirmation when asked.
//   <button data-copy="#selector">  copies the element's value or text.
//   <button data-open-dialog="id">  opens that <dialog> (its forms' errors cleared, and
//       the forms reset when they have data-reset-on-open; focus comes back to the
//       button when it closes); [data-close-dialog] inside a dialog closes it.
//   data-once-title / data-once-message on a form or button with data-show-once: the
//       words of the shown-once dialog.
//   <button data-add-row="list"> / <template data-row-template="list"> /
//   <div data-list="list"> rows <div data-item> with inputs named by data-name;
//   <button data-remove-row> removes its row.
//   <input data-map="fields" data-key="org.region"> (no name): the member "org.region"
//       of the object `fields` (a key may hold dots; none reaches a prototype).
//   [role=tablist] tabs; <details class="menu"> closes on Escape or a click elsewhere.
//
// window.Console exposes api, serialize, showProblem, clearErrors, notice, go, busy,
// openDialog, confirmAction, showOnce, problemText, selectTab and httpUrl (an absolute
// http(s) URL, or null) for the pages' own scripts. A page's `?notice=` leaves the
// address once shown.
"use strict";

(function () {
  document.documentElement.classList.add("js");

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Calls the API; resolves to {ok, status, data, headers} whatever the status.
  async function api(method, url, body) {
    const headers = { Accept: "application/json, application/problem+json" };
    if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
    const options = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      return {
        ok: false, status: 0, headers: new Headers(),
        data: { title: "The server could not be reached", detail: String(error) },
      };
    }
    let data = null;
    const text = await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch (error) { data = { detail: text }; }
    }
    if (response.status === 401) {
      // The session ended (signed out elsewhere, or timed out): sign in again, come back.
      window.location.assign("/signin?next=" + encodeURIComponent(location.pathname + location.search));
    }
    return { ok: response.ok, status: response.status, data: data, headers: response.headers };
  }

  // -- form serialisation ------------------------------------------------------------

  function valueOf(element) {
    const kind = element.dataset.kind || "";
    if (element.type === "checkbox" && kind !== "list") return element.checked;
    if (element.multiple) return Array.from(element.selectedOptions, (option) => option.value);
    const raw = element.value;
    if (kind === "bool") return raw === "true";
    if (raw.trim() === "" && !("sendBlank" in element.dataset)) return undefined;
    if (kind === "int") return /^-?\d+$/.test(raw.trim()) ? Number(raw.trim()) : raw;
    if (kind === "list") return raw.split(/[\s,]+/).filter(Boolean);
    if (kind === "json") {
      try { return JSON.parse(raw); } catch (error) { return raw; }
    }
    return raw;
  }

  // Names that would reach an object's prototype rather than the object itself.
  const UNSAFE_PARTS = new Set(["__proto__", "constructor", "prototype"]);

  function own(node, key) { return Object.prototype.hasOwnProperty.call(node, key); }

  // Sets `a.b.c` in `target`, walking (and making) only its own plain objects; a path
  // with an empty part or one naming a prototype is refused (nothing is set).
  function setPath(target, path, value) {
    const parts = String(path).split(".");
    if (parts.some((part) => part === "" || UNSAFE_PARTS.has(part))) return false;
    let node = target;
    for (const part of parts.slice(0, -1)) {
      if (!own(node, part) || typeof node[part] !== "object" || node[part] === null) node[part] = {};
      node = node[part];
    }
    node[parts[parts.length - 1]] = value;
    return true;
  }

  // A map the API gets as a JSON object whose keys are data (they may hold dots, or be
  // "__proto__"): no prototype, so any key is an own member, sent as it is.
  function newMap() { return Object.create(null); }

  function included(element, form) {
    if (element.disabled || "ignore" in element.dataset) return false;
    if (element.type === "radio" && !element.checked) return false;
    if (element.type === "submit" || element.type === "button") return false;
    // Inputs of a list's rows are collected with their list.
    const list = element.closest("[data-list]");
    return !list || !form.contains(list);
  }

  function rowsOf(list) {
    return Array.from(list.querySelectorAll(":scope > [data-item]")).map((row) => {
      const item = {};
      row.querySelectorAll("[data-name]").forEach((element) => {
        if (element.disabled) return;
        if (element.type === "radio" && !element.checked) return;
        const value = valueOf(element);
        if (value !== undefined) setPath(item, element.dataset.name, value);
      });
      return item;
    });
  }

  // The form as the API's JSON: inputs by `name` (dotted names nest), lists by
  // `data-list`, blanks left out (so an update keeps what was not retyped), a checkbox
  // `data-clears="field"` sends that field as null (cleared on purpose), and checkboxes
  // sharing a name with `data-kind="set"` send the array of the checked ones' values
  // (none checked: []). Inputs with `data-map="fields" data-key="org.region"` (and no
  // name) are the members of the map `fields`, by their key as it is (dots and all).
  function serialize(form) {
    const body = {};
    const sets = {};
    const maps = {};
    Array.from(form.elements).forEach((element) => {
      if ("map" in element.dataset && element.dataset.key !== undefined) {
        if (!included(element, form)) return;
        const mapName = element.dataset.map;
        if (!own(maps, mapName)) {
          maps[mapName] = newMap();
          if (!setPath(body, mapName, maps[mapName])) return;
        }
        const value = valueOf(element);
        if (value !== undefined) maps[mapName][element.dataset.key] = value;
        return;
      }
      if (!element.name || !included(element, form)) return;
      if ("clears" in element.dataset) {
        if (element.checked) setPath(body, element.dataset.clears, null);
        return;
      }
      if (element.name === "csrf_token") return;
      if (element.type === "checkbox" && element.dataset.kind === "set") {
        if (!sets[element.name]) setPath(body, element.name, (sets[element.name] = []));
        if (element.checked) sets[element.name].push(element.value);
        return;
      }
      const value = valueOf(element);
      if (value !== undefined) setPath(body, element.name, value);
    });
    form.querySelectorAll("[data-list]").forEach((list) => {
      if (list.closest("[data-list]") !== list || list.closest("[disabled]") || list.hidden) return;
      const rows = rowsOf(list);
      if (list.dataset.as === "map") {
        const map = newMap();
        rows.forEach((row) => { if (row.key !== undefined) map[row.key] = row.value === undefined ? "" : row.value; });
        if (rows.length || !("omitEmpty" in list.dataset)) setPath(body, list.dataset.list, map);
      } else if (rows.length || !("omitEmpty" in list.dataset)) {
        setPath(body, list.dataset.list, rows);
      }
    });
    return body;
  }

  // -- errors beside fields ----------------------------------------------------------

  let errorCount = 0;

  function clearErrors(form) {
    form.querySelectorAll(".field-error[data-generated], [data-form-error]").forEach((node) => node.remove());
    form.querySelectorAll(".field-error").forEach((node) => { node.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((node) => node.removeAttribute("aria-invalid"));
    form.querySelectorAll(".has-error").forEach((node) => node.classList.remove("has-error"));
  }

  // The input an error's `field` names: `name`, `list[2].key`, or a data-error-for slot.
  function inputFor(form, field) {
    const exact = form.querySelector('[name="' + CSS.escape(field) + '"]:not([type=hidden])');
    if (exact) return exact;
    const match = /^([^[\]]+)\[(\d+)\]\.?(.*)$/.exec(field);
    if (match) {
      const list = form.querySelector('[data-list="' + CSS.escape(match[1]) + '"]');
      if (list) {
        const row = list.querySelectorAll(":scope > [data-item]")[Number(match[2])];
        if (row) {
          const rest = match[3].split(".")[0];
          return (rest && row.querySelector('[data-name="' + CSS.escape(rest) + '"]')) || row.querySelector("[data-name]");
        }
      }
    }
    // `fields.org.region`: the input of key `org.region` in the map `fields`.
    const dot = field.indexOf(".");
    if (dot > 0) {
      const member = Array.from(form.querySelectorAll('[data-map="' + CSS.escape(field.slice(0, dot)) + '"]'))
        .find((element) => element.dataset.key === field.slice(dot + 1));
      if (member) return member;
    }
    // `scopes[1]` or `fields.region`: the field they belong to.
    const base = field.split(/[.[]/)[0];
    if (base !== field) return inputFor(form, base);
    return null;
  }

  function slotFor(form, field, input) {
    const named = form.querySelector('[data-error-for="' + CSS.escape(field) + '"]');
    if (named) return named;
    if (!input) return null;
    const holder = input.closest(".field, fieldset, [data-item]") || input.parentElement;
    let slot = Array.from(holder.children).find((child) => child.classList.contains("field-error"));
    if (!slot || (input.closest("[data-item]") && !holder.matches("[data-item], .field"))) {
      slot = document.createElement("p");
      slot.className = "field-error";
      slot.dataset.generated = "";
      input.insertAdjacentElement("afterend", slot);
    }
    return slot;
  }

  function problemText(problem) {
    if (!problem) return "Something went wrong.";
    return problem.detail || problem.title || "Something went wrong.";
  }

  // Shows a problem+json answer on `form`: each error beside its field, the rest (and
  // the problem itself when no field is named) at the top of the form.
  function showProblem(form, result) {
    clearErrors(form);
    const problem = result.data || {};
    const unplaced = [];
    let first = null;
    (problem.errors || []).forEach((error) => {
      const input = inputFor(form, error.field);
      const slot = slotFor(form, error.field, input);
      if (!slot) { unplaced.push(error.field + ": " + error.message); return; }
      slot.textContent = slot.textContent ? slot.textContent + " " + error.message : error.message;
      if (!slot.id) slot.id = "error-" + (++errorCount);
      if (input) {
        input.setAttribute("aria-invalid", "true");
        const described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
        if (!described.includes(slot.id)) described.push(slot.id);
        input.setAttribute("aria-describedby", described.join(" "));
        const holder = input.closest(".field");
        if (holder) holder.classList.add("has-error");
        if (!first) first = input;
      }
    });
    const summary = document.createElement("div");
    summary.className = "notice error";
    summary.dataset.formError = "";
    summary.setAttribute("role", "alert");
    summary.dataset.testid = "form-error";
    const count = (problem.errors || []).length;
    summary.textContent = count ? (count === 1 ? "1 field needs attention" : count + " fields need attention") +
      ": see the messages beside them." : problemText(problem);
    if (unplaced.length) {
      const list = document.createElement("ul");
      unplaced.forEach((text) => { const item = document.createElement("li"); item.textContent = text; list.appendChild(item); });
      summary.appendChild(list);
    }
    form.prepend(summary);
    (first || summary).focus({ preventScroll: false });
    if (!first) summary.setAttribute("tabindex", "-1"), summary.focus();
  }

  // -- notices, navigation, dialogs --------------------------------------------------

  function notice(message, kind) {
    const region = document.getElementById("notice");
    if (!region) return;
    region.textContent = "";
    const paragraph = document.createElement("p");
    paragraph.className = "notice " + (kind || "success");
    paragraph.dataset.testid = "notice";
    paragraph.textContent = message;
    region.appendChild(paragraph);
  }

  function go(url) { window.location.assign(url); }

  // Marks a form (its submit buttons) or a button busy while its call runs.
  function busy(element, on) {
    const buttons = element instanceof HTMLFormElement
      ? element.querySelectorAll("button[type=submit], button:not([type])") : [element];
    buttons.forEach((button) => { button.disabled = on; });
    if (on) element.setAttribute("aria-busy", "true"); else element.removeAttribute("aria-busy");
  }

  function fill(template, data) {
    return template.replace(/\{(\w+)\}/g, (whole, key) => (data && data[key] !== undefined ? encodeURIComponent(data[key]) : whole));
  }

  // Opens a <dialog>; with `opener`, focus goes back to it when the dialog closes.
  function openDialog(dialog, opener) {
    if (opener) dialog.addEventListener("close", () => { if (opener.isConnected) opener.focus(); }, { once: true });
    if (!dialog.open) dialog.showModal();
    const focusable = dialog.querySelector("[autofocus], input:not([type=hidden]):not([readonly]), select, textarea, button");
    if (focusable) focusable.focus();
  }

  // Resolves true when the person confirms (the layout's confirmation dialog).
  function confirmAction(message, label, title) {
    const dialog = document.getElementById("confirm-dialog");
    document.getElementById("confirm-message").textContent = message;
    document.getElementById("confirm-button").textContent = label || "Delete";
    document.getElementById("confirm-title").textContent = title || "Are you sure?";
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
      dialog.showModal();
      dialog.querySelector('button[value="cancel"]').focus();
    });
  }

  // The layout's words of the shown-once dialog, for a source that brings none.
  const onceWords = {};

  // Shows `value` once (copy it now); `then` after Done. `source`: the form or button it
  // came from, whose data-once-title and data-once-message word the dialog.
  function showOnce(value, then, source) {
    const dialog = document.getElementById("shown-once-dialog");
    const input = document.getElementById("shown-once-value");
    [["title", "onceTitle"], ["message", "onceMessage"]].forEach(([part, key]) => {
      const node = document.getElementById("shown-once-" + part);
      if (!(part in onceWords)) onceWords[part] = node.textContent;
      node.textContent = (source && source.dataset[key]) || onceWords[part];
    });
    input.value = value;
    const done = document.getElementById("shown-once-done");
    let finished = false;
    // Only Done closes it: Escape is refused every time, and should the browser close it
    // anyway (it lets a second Escape through without a click between), it opens again.
    dialog.oncancel = (event) => { if (!finished) event.preventDefault(); };
    dialog.onclose = () => { if (!finished) dialog.showModal(); };
    done.onclick = () => {
      finished = true;
      dialog.oncancel = null;
      dialog.onclose = null;
      input.value = "";
      dialog.close();
      if (then) then();
    };
    dialog.showModal();
    input.focus();
    input.select();
  }

  // `value` as an absolute http(s) URL, or null: an address from elsewhere (an identity
  // provider's answer) is linked to or opened only when it is one.
  function httpUrl(value) {
    if (typeof value !== "string" || !value) return null;
    let url;
    try { url = new URL(value); } catch (error) { return null; }
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  }

  // A page reached with `?notice=code` showed its message: the code leaves the address,
  // so reloading the page or coming back to it does not say it again.
  function forgetNotice() {
    const url = new URL(window.location.href);
    if (!url.searchParams.has("notice")) return;
    url.searchParams.delete("notice");
    window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
  }
  forgetNotice();

  // -- behaviours --------------------------------------------------------------------

  async function submitApiForm(form, submitter) {
    const method = (form.dataset.method || "POST").toUpperCase();
    const body = serialize(form);
    busy(form, true);
    const result = await api(method, fill(form.dataset.api, {}), body);
    busy(form, false);
    if (!result.ok) { showProblem(form, result); return; }
    clearErrors(form);
    if (form.dataset.event) {
      form.dispatchEvent(new CustomEvent(form.dataset.event, { detail: result.data, bubbles: true }));
      return;
    }
    const next = form.dataset.success ? fill(form.dataset.success, result.data) : null;
    const shown = form.dataset.showOnce;
    if (shown && result.data && result.data[shown]) {
      showOnce(result.data[shown], next ? () => go(next) : null, form);
      return;
    }
    if (next) go(next); else if (submitter) notice("Saved.");
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.api) return;
    event.preventDefault();
    submitApiForm(form, event.submitter);
  });

  async function runAction(button) {
    const [method, url] = button.dataset.action.split(/\s+/, 2);
    if (button.dataset.confirm) {
      const confirmed = await confirmAction(button.dataset.confirm, button.dataset.confirmLabel, button.dataset.confirmTitle);
      if (!confirmed) { button.focus(); return; }
    }
    button.disabled = true;
    const result = await api(method.toUpperCase(), url, button.dataset.body ? JSON.parse(button.dataset.body) : undefined);
    button.disabled = false;
    if (!result.ok) { notice(problemText(result.data), "error"); return; }
    if (button.dataset.event) {
      button.dispatchEvent(new CustomEvent(button.dataset.event, { detail: result.data, bubbles: true }));
      return;
    }
    if (button.dataset.showOnce && result.data && result.data[button.dataset.showOnce]) {
      const next = button.dataset.success ? fill(button.dataset.success, result.data) : null;
      showOnce(result.data[button.dataset.showOnce], next ? () => go(next) : null, button);
      return;
    }
    if (button.dataset.success) go(fill(button.dataset.success, result.data)); else notice("Done.");
  }

  async function copy(button) {
    const source = document.querySelector(button.dataset.copy);
    if (!source) return;
    const text = "value" in source ? source.value : source.textContent;
    let copied = false;
    try {
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch (error) {
      if ("select" in source) {
        source.select();
        copied = document.execCommand("copy");
      }
    }
    const label = button.textContent;
    button.textContent = copied ? "Copied" : "Press Ctrl+C";
    button.setAttribute("aria-live", "polite");
    setTimeout(() => { button.textContent = label; }, 1600);
  }

  function renumber(list) {
    Array.from(list.querySelectorAll(":scope > [data-item]")).forEach((row, index) => {
      row.querySelectorAll("[id]").forEach((element) => {
        const base = element.id.replace(/-\d+$/, "");
        const old = element.id;
        element.id = base + "-" + index;
        row.querySelectorAll('[for="' + CSS.escape(old) + '"]').forEach((label) => { label.htmlFor = element.id; });
      });
      const number = row.querySelector("[data-row-number]");
      if (number) number.textContent = String(index + 1);
    });
  }

  function addRow(button) {
    const name = button.dataset.addRow;
    const scope = button.closest("form") || document;
    const template = scope.querySelector('template[data-row-template="' + CSS.escape(name) + '"]');
    const list = scope.querySelector('[data-list="' + CSS.escape(name) + '"]');
    if (!template || !list) return;
    const row = template.content.firstElementChild.cloneNode(true);
    list.appendChild(row);
    renumber(list);
    const first = row.querySelector("input, select, textarea");
    if (first) first.focus();
    list.dispatchEvent(new CustomEvent("rows-changed", { bubbles: true }));
  }

  function removeRow(button) {
    const row = button.closest("[data-item]");
    const list = row && row.parentElement;
    if (!row) return;
    const adder = list && list.dataset.list ? document.querySelector('[data-add-row="' + CSS.escape(list.dataset.list) + '"]') : null;
    row.remove();
    if (list) { renumber(list); list.dispatchEvent(new CustomEvent("rows-changed", { bubbles: true })); }
    if (adder) adder.focus();
  }

  function openFrom(opener) {
    const dialog = document.getElementById(opener.dataset.openDialog);
    if (!dialog) return;
    dialog.querySelectorAll("form").forEach((form) => {
      if ("resetOnOpen" in form.dataset) form.reset();
      clearErrors(form);
    });
    openDialog(dialog, opener);
  }

  function selectTab(tab) {
    const tablist = tab.closest('[role="tablist"]');
    tablist.querySelectorAll('[role="tab"]').forEach((other) => {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      const panel = document.getElementById(other.getAttribute("aria-controls"));
      if (panel) panel.hidden = !selected;
    });
  }

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const action = target.closest("[data-action]");
    if (action) { event.preventDefault(); runAction(action); }
    const copier = target.closest("[data-copy]");
    if (copier) { event.preventDefault(); copy(copier); }
    const adder = target.closest("[data-add-row]");
    if (adder) { event.preventDefault(); addRow(adder); }
    const remover = target.closest("[data-remove-row]");
    if (remover) { event.preventDefault(); removeRow(remover); }
    const opener = target.closest("[data-open-dialog]");
    if (opener) { event.preventDefault(); openFrom(opener); }
    const closer = target.closest("[data-close-dialog]");
    const closing = closer && closer.closest("dialog");
    if (closing) { event.preventDefault(); closing.close(); }
    const tab = target.closest('[role="tab"]');
    if (tab) selectTab(tab);
    document.querySelectorAll("details.menu[open]").forEach((menu) => {
      if (!menu.contains(target) || target.closest(".menu-item")) menu.open = false;
    });
  });

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      document.querySelectorAll("details.menu[open]").forEach((menu) => {
        menu.open = false;
        const summary = menu.querySelector("summary");
        if (summary && menu.contains(document.activeElement)) summary.focus();
      });
    }
    const tab = event.target instanceof Element ? event.target.closest('[role="tab"]') : null;
    if (tab && (event.key === "ArrowRight" || event.key === "ArrowLeft")) {
      const tabs = Array.from(tab.closest('[role="tablist"]').querySelectorAll('[role="tab"]'));
      const step = event.key === "ArrowRight" ? 1 : -1;
      const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
      selectTab(next);
      next.focus();
      event.preventDefault();
    }
  });

  window.Console = {
    api: api, serialize: serialize, showProblem: showProblem, clearErrors: clearErrors,
    notice: notice, go: go, busy: busy, openDialog: openDialog, confirmAction: confirmAction,
    showOnce: showOnce, problemText: problemText, selectTab: selectTab, httpUrl: httpUrl,
  };
})();
