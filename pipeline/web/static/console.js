// The console's only script: copying a URL on purpose, and keyboard shortcuts for the
// common classifications. Everything works without it, only slower.
"use strict";

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text).catch(function () { return copyByHand(text); });
  }
  return copyByHand(text);
}

function copyByHand(text) {
  var area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.appendChild(area);
  area.select();
  try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
  return Promise.resolve();
}

function setupCopy() {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var status = document.getElementById(button.getAttribute("aria-controls"));
      copyText(button.getAttribute("data-copy")).then(function () {
        if (status) { status.textContent = button.getAttribute("data-copied") || "Copied."; }
      });
    });
  });
}

function applyPreset(form, preset) {
  var values = JSON.parse(preset.getAttribute("data-preset"));
  Object.keys(values).forEach(function (name) {
    var field = form.elements.namedItem(name);
    if (field) { field.value = values[name]; }
  });
  form.querySelectorAll("[data-preset]").forEach(function (b) { b.classList.remove("chosen"); });
  preset.classList.add("chosen");
  // Enter now saves and opens the next case.
  var submit = form.querySelector("button[type=submit]");
  if (submit) { submit.focus(); }
}

function setupShortcuts() {
  var form = document.querySelector("form[data-shortcuts]");
  if (!form) { return; }
  form.querySelectorAll("button[data-preset]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      event.preventDefault();
      applyPreset(form, button);
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) {
      if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
        event.preventDefault();
        form.requestSubmit();
      }
      return;
    }
    var target = event.target;
    var tag = target && target.tagName ? target.tagName.toLowerCase() : "";
    if (tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable) {
      return;
    }
    var preset = form.querySelector('button[data-key="' + CSS.escape(event.key) + '"]');
    if (preset) {
      event.preventDefault();
      applyPreset(form, preset);
      return;
    }
    // A letter moves to its field (shown next to each label).
    var field = form.querySelector('[data-field-key="' + CSS.escape(event.key.toLowerCase()) + '"]');
    if (field) {
      event.preventDefault();
      field.focus();
    }
  });
}

function setupConfirm() {
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
}

document.addEventListener("DOMContentLoaded", function () {
  setupCopy();
  setupShortcuts();
  setupConfirm();
});
