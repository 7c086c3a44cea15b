// Progressive enhancement of the compose form: each stored image gets a button that
// inserts its Markdown at the cursor of the body. Without scripts the "place at the end
// of the body" checkboxes do the same on save.
(function () {
  "use strict";
  var body = document.getElementById("f-body");
  if (!body) { return; }
  var buttons = document.querySelectorAll("button.insert-image[data-snippet]");
  Array.prototype.forEach.call(buttons, function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var snippet = button.getAttribute("data-snippet") || "";
      var start = body.selectionStart || 0;
      var end = body.selectionEnd || start;
      var before = body.value.slice(0, start);
      var after = body.value.slice(end);
      var lead = before && !/\n\n$/.test(before) ? (/\n$/.test(before) ? "\n" : "\n\n") : "";
      var tail = after && !/^\n/.test(after) ? "\n\n" : "";
      body.value = before + lead + snippet + tail + after;
      var caret = (before + lead + snippet).length;
      body.focus();
      body.setSelectionRange(caret, caret);
    });
  });
})();
