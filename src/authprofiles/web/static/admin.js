// The admin pages' own script (users, teams, API keys, webhooks & email, audit): loaded
// after console.js (both `defer`), which does the API calls, confirmations, dialogs,
// checkbox sets (data-kind="set") and the shown-once dialog. What this adds:
//
//   <button data-edit-team="ID" data-team-name data-team-members='[...]'>
//                                             fills and opens the team dialog.
//   events "webhook-tested" and "test-email-sent" (console.js data-event): a notice.
"use strict";

(function () {
  const Console = window.Console;
  if (!Console) return;

  // -- teams -------------------------------------------------------------------------

  function editTeam(button) {
    const dialog = document.getElementById("team-edit-dialog");
    if (!dialog) return;
    const form = dialog.querySelector("form");
    let members = [];
    try { members = JSON.parse(button.dataset.teamMembers || "[]"); } catch (error) { members = []; }
    form.dataset.api = "/api/v1/teams/" + encodeURIComponent(button.dataset.editTeam);
    form.querySelector('[name="name"]').value = button.dataset.teamName || "";
    form.querySelectorAll('input[type=checkbox][name="members"]').forEach((box) => {
      box.checked = members.includes(box.value);
    });
    document.getElementById("team-edit-title").textContent = "Edit team " + (button.dataset.teamName || "");
    Console.clearErrors(form);
    Console.openDialog(dialog, button);
  }

  document.addEventListener("click", (event) => {
    const editor = event.target instanceof Element ? event.target.closest("[data-edit-team]") : null;
    if (editor) {
      event.preventDefault();
      editTeam(editor);
    }
  });

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
