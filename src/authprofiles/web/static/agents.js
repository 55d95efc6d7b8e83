// The agents pages' own script (agent grants, held calls): loaded after console.js (both
// `defer`), which sends the forms to the API, asks the confirmations and shows the new
// grant's token once. What this adds:
//
//   <input data-uppercase>  its value in upper case when it changes, and before its form
//       is sent (a rule's methods: the API takes GET, not get).
"use strict";

(function () {
  function upper(input) {
    const value = input.value.toUpperCase();
    if (value !== input.value) input.value = value;
  }

  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target instanceof HTMLInputElement && "uppercase" in target.dataset) upper(target);
  });

  // In the capture phase: before console.js (listening as the event bubbles) reads the form.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement) form.querySelectorAll("input[data-uppercase]").forEach(upper);
  }, true);
})();
