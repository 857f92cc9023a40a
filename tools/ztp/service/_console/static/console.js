// ZTP console: the live byte counter of the configuration editor (issue 18).
// Served from /console/static (the Content-Security-Policy allows only this origin's
// scripts, no inline ones). The server checks the limit again; this is only a guide.
"use strict";
(function () {
  var encoder = new TextEncoder();
  function update(area, counter) {
    var max = parseInt(area.getAttribute("data-max-bytes"), 10);
    var n = encoder.encode(area.value).length;
    counter.textContent = n + " / " + max + " bytes" + (n > max ? " (" + (n - max) + " too many)" : "");
    counter.classList.toggle("over", n > max);
    area.classList.toggle("over", n > max);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var area = document.getElementById("body");
    var counter = document.getElementById("byte-counter");
    if (!area || !counter) { return; }
    area.addEventListener("input", function () { update(area, counter); });
    update(area, counter);
  });
})();
