// The connection pages (My settings > OAuth connections, a profile's Sharing): connect,
// reconnect in place, and the device code screen. Runs after console.js (both `defer`)
// and uses its window.Console (which also opens the dialogs asking what connecting needs,
// and sends the invitations form).
//
//   <button data-start="/api/v1/…" data-flow="redirect|device|password|client"
//           [data-body='{"owner": "…"}'] [data-reauth] data-success="/console/…?notice=…">
//   <form data-start=… (same attributes)>  the form's inputs are added to the body.
//
// What the API answers decides what follows: an `authorization_url` sends the browser to
// the identity provider (it comes back to /oauth/callback); a `user_code` opens the device
// code screen, which polls the connection until it is authorized or the attempt ends;
// anything else is the connection, done: on to data-success.
"use strict";

(function () {
  const Console = window.Console;
  if (!Console) return;

  // How often the device code screen asks this server about the connection (the server
  // itself polls the identity provider at the interval it asked for).
  const POLL_MS = 1500;
  // What changes on a connection once a person's authorization completed or failed.
  const WATCHED = ["status", "expires_at", "refreshed_at", "last_error_at"];

  function bodyOf(element) {
    let body = {};
    if (element.dataset.body) {
      try { body = JSON.parse(element.dataset.body); } catch (error) { body = {}; }
    }
    if (element instanceof HTMLFormElement) Object.assign(body, Console.serialize(element));
    return body;
  }

  async function start(element) {
    const form = element instanceof HTMLFormElement ? element : null;
    if (form) Console.clearErrors(form);
    Console.busy(element, true);
    const result = await Console.api("POST", element.dataset.start, bodyOf(element));
    if (!result.ok) {
      Console.busy(element, false);
      if (form) Console.showProblem(form, result);
      else Console.notice(Console.problemText(result.data), "error");
      return;
    }
    const data = result.data || {};
    if (data.authorization_url) {
      // To the identity provider's login page; it sends the person back to /oauth/callback.
      // Only to an http(s) address: whatever else an answer holds is not followed.
      const url = Console.httpUrl(data.authorization_url);
      Console.busy(element, false);
      if (!url) {
        Console.notice("The identity provider's authorization URL is not an http or https address: check the profile.", "error");
        return;
      }
      Console.notice("Taking you to the identity provider…", "info");
      window.location.assign(url);
      return;
    }
    const dialog = element.closest("dialog");
    if (dialog && dialog.open) dialog.close();
    Console.busy(element, false);
    if (data.user_code) {
      device(data, element);
      return;
    }
    Console.go(element.dataset.success || window.location.pathname);
  }

  // -- the device code screen (RFC 8628) -------------------------------------------------

  let polling = null;

  function stopPolling() {
    if (polling) { clearTimeout(polling.timer); polling = null; }
  }

  function deviceStatus(text, kind) {
    const status = document.getElementById("device-status");
    status.className = "notice " + kind;
    status.textContent = text;
  }

  function device(data, element) {
    const dialog = document.getElementById("device-dialog");
    if (!dialog) return;
    // The identity provider's page is linked only when it is an http(s) address; any
    // other is shown as text, to type in (never a link the browser would follow).
    const shown = data.verification_uri || data.verification_uri_complete || "";
    const link = Console.httpUrl(data.verification_uri_complete) || Console.httpUrl(data.verification_uri);
    document.getElementById("device-code").value = data.user_code;
    const anchor = document.getElementById("device-link");
    const open = document.getElementById("device-open");
    anchor.textContent = shown || "the verification page";
    if (link) {
      anchor.href = link;
      open.href = link;
      open.hidden = false;
    } else {
      anchor.removeAttribute("href");
      open.removeAttribute("href");
      open.hidden = true;
    }
    const expiry = document.getElementById("device-expiry");
    const expires = data.expires_at ? new Date(data.expires_at) : null;
    expiry.textContent = expires ? "The code expires at " + expires.toLocaleTimeString() + "." : "";
    deviceStatus("Waiting for your approval…", "info");
    const cancel = document.getElementById("device-cancel");
    cancel.textContent = "Cancel";

    const created = !("reauth" in element.dataset);
    const before = data.connection || {};
    const state = { id: data.id, created: created, done: false, timer: null };
    stopPolling();
    polling = state;

    async function finish(abandon) {
      stopPolling();
      if (dialog.open) dialog.close();
      if (abandon && state.created && !state.done) {
        // A connection nobody authorized is of no use: it goes now, not later.
        await Console.api("DELETE", "/api/v1/connections/" + encodeURIComponent(state.id));
        window.location.reload();
      }
    }
    cancel.onclick = () => finish(true);
    dialog.oncancel = (event) => { event.preventDefault(); finish(true); };

    async function poll() {
      if (polling !== state) return;
      const result = await Console.api("GET", "/api/v1/connections/" + encodeURIComponent(state.id));
      if (polling !== state) return;
      if (result.status === 404) {
        state.done = true;
        stopPolling();
        deviceStatus("This authorization ended without a connection. Start again.", "error");
        cancel.textContent = "Close";
        return;
      }
      const now = result.ok ? result.data : null;
      if (now && WATCHED.some((key) => (now[key] || null) !== (before[key] || null))) {
        state.done = true;
        stopPolling();
        if (now.status === "active" && !now.last_error) {
          deviceStatus("Approved. Connected.", "success");
          Console.go(element.dataset.success || window.location.pathname);
        } else {
          deviceStatus("The authorization did not complete: " + (now.last_error || now.status) + ".", "error");
          cancel.textContent = "Close";
        }
        return;
      }
      if (expires && expires.getTime() < Date.now()) {
        state.done = true;
        stopPolling();
        deviceStatus("The code expired before it was approved. Start again.", "error");
        cancel.textContent = "Close";
        return;
      }
      state.timer = setTimeout(poll, POLL_MS);
    }

    Console.openDialog(dialog);
    (link ? open : document.getElementById("device-code")).focus();
    state.timer = setTimeout(poll, POLL_MS);
  }

  // -- wiring ------------------------------------------------------------------------------

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const starter = target.closest("button[data-start]");
    if (starter) { event.preventDefault(); start(starter); }
  });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (form.dataset.start) { event.preventDefault(); start(form); }
  });
})();
