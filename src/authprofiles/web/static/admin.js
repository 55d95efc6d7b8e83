// The admin pages' own script (users, teams, API keys, webhooks & email, audit): loaded
// after console.js (both `defer`), which does the API calls, confirmations and the
// shown-once dialog. What this adds:
//
//   <button data-open-dialog="id">            opens that <dialog>; [data-close-dialog]
//                                             inside one closes it.
//   <input type=checkbox data-ignore data-collect-into="members" value="ID">
//   <input type=hidden name="members" data-kind="json" data-collect="members">
//                                             the checked boxes' values, as the JSON
//                                             array the API takes.
//   [data-once-title] / [data-once-message]   on a form or button with data-show-once:
//                                             the words of the shown-once dialog.
//   <button data-edit-team="ID" data-team-name data-team-members='[...]'>
//                                             fills and opens the team dialog.
//   events "webhook-tested" and "test-email-sent" (console.js data-event): a notice.
"use strict";

(function () {
  const Console = window.Console;
  if (!Console) return;

  // -- checkbox groups → JSON arrays -------------------------------------------------

  function collect(form) {
    if (!(form instanceof HTMLFormElement)) return;
    form.querySelectorAll("input[type=hidden][data-collect]").forEach((hidden) => {
      const name = hidden.dataset.collect;
      const boxes = form.querySelectorAll('input[type=checkbox][data-collect-into="' + CSS.escape(name) + '"]');
      hidden.value = JSON.stringify(Array.from(boxes).filter((box) => box.checked).map((box) => box.value));
    });
  }

  document.querySelectorAll("form").forEach(collect);
  document.addEventListener("change", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (target && target.matches("[data-collect-into]")) collect(target.closest("form"));
  });

  // The shown-once dialog's words for what this form or button makes; set before
  // console.js's own listeners (capture runs first) call the API.
  function wordShownOnce(source) {
    if (!source || !source.dataset.showOnce) return;
    const title = document.getElementById("shown-once-title");
    const message = document.getElementById("shown-once-message");
    if (title && source.dataset.onceTitle) title.textContent = source.dataset.onceTitle;
    if (message && source.dataset.onceMessage) message.textContent = source.dataset.onceMessage;
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    collect(form);
    wordShownOnce(form);
  }, true);

  // -- dialogs -----------------------------------------------------------------------

  function openDialog(dialog, opener) {
    if (!dialog) return;
    dialog.querySelectorAll("form").forEach((form) => Console.clearErrors(form));
    dialog.addEventListener("close", () => { if (opener && opener.isConnected) opener.focus(); }, { once: true });
    Console.openDialog(dialog);
  }

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const action = target.closest("[data-action][data-show-once]");
    if (action) wordShownOnce(action);
    const opener = target.closest("[data-open-dialog]");
    if (opener) {
      event.preventDefault();
      openDialog(document.getElementById(opener.dataset.openDialog), opener);
      return;
    }
    const closer = target.closest("[data-close-dialog]");
    if (closer) {
      event.preventDefault();
      const dialog = closer.closest("dialog");
      if (dialog) dialog.close();
      return;
    }
    const editor = target.closest("[data-edit-team]");
    if (editor) {
      event.preventDefault();
      editTeam(editor);
    }
  }, true);

  // -- teams -------------------------------------------------------------------------

  function editTeam(button) {
    const dialog = document.getElementById("team-edit-dialog");
    if (!dialog) return;
    const form = dialog.querySelector("form");
    let members = [];
    try { members = JSON.parse(button.dataset.teamMembers || "[]"); } catch (error) { members = []; }
    form.dataset.api = "/api/v1/teams/" + encodeURIComponent(button.dataset.editTeam);
    form.querySelector('[name="name"]').value = button.dataset.teamName || "";
    form.querySelectorAll('input[type=checkbox][data-collect-into="members"]').forEach((box) => {
      box.checked = members.includes(box.value);
    });
    collect(form);
    document.getElementById("team-edit-title").textContent = "Edit team " + (button.dataset.teamName || "");
    openDialog(dialog, button);
  }

  // -- notifications -----------------------------------------------------------------

  document.addEventListener("webhook-tested", (event) => {
    const status = event.detail && event.detail.status_code;
    Console.notice("The webhook accepted the signed test event (HTTP " + status + ").", "success");
  });

  document.addEventListener("test-email-sent", (event) => {
    const detail = event.detail || {};
    Console.notice("Sent a test email to " + detail.to + " through " + detail.server + ".", "success");
  });
})();
