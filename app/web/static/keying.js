// Keyboard-first data entry (the console's paper forms): Enter moves to the next field of a form marked
// data-enter-advances, as on a data-entry terminal; on the last field (the save button) Enter saves.
// Enter that confirms an IME conversion (kana to kanji) is left to the IME. Without this script Enter
// saves the form and the server lists what is missing.
(function () {
  "use strict";
  var form = document.querySelector("form[data-enter-advances]");
  if (!form) { return; }
  function fields() {
    return Array.prototype.filter.call(form.elements, function (el) {
      return !el.disabled && el.type !== "hidden" && el.tabIndex >= 0 && el.tagName !== "FIELDSET";
    });
  }
  form.addEventListener("keydown", function (ev) {
    if (ev.key !== "Enter" || ev.isComposing || ev.keyCode === 229) { return; }
    var target = ev.target;
    if (target.tagName === "BUTTON" || target.tagName === "TEXTAREA" || target.type === "submit") { return; }
    var list = fields();
    var i = list.indexOf(target);
    if (i < 0 || i === list.length - 1) { return; }
    ev.preventDefault();
    var next = list[i + 1];
    next.focus();
    if (next.type === "text" && next.select) { next.select(); }
  });
})();
