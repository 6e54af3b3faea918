// The broadcast form's live recipient count: whenever the segment changes, ask the
// console how many friends it selects. Only text is written into the page.
(function () {
  "use strict";
  var form = document.getElementById("bc-form");
  if (!form) return;
  var out = document.getElementById("bc-count");
  var words = document.getElementById("bc-audience");
  var url = form.getAttribute("data-count-url");
  var token = form.querySelector('input[name="csrf"]').value;
  var timer = null, seq = 0;

  function count() {
    var mine = ++seq;
    var body = new URLSearchParams(new FormData(form));
    fetch(url, {
      method: "POST",
      headers: { "X-CSRF-Token": token, "Content-Type": "application/x-www-form-urlencoded" },
      body: body,
      credentials: "same-origin"
    }).then(function (res) {
      return res.json();
    }).then(function (ans) {
      if (mine !== seq) return; // a newer question is on its way
      if (ans.error) {
        out.textContent = "-";
        words.textContent = ans.error;
        form.classList.add("seg-invalid");
      } else {
        out.textContent = ans.text;
        words.textContent = ans.audience || "";
        form.classList.remove("seg-invalid");
      }
    }).catch(function () {
      if (mine === seq) out.textContent = "?";
    });
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(count, 250);
  }

  var segment = form.querySelector("fieldset.c-segment");
  segment.addEventListener("change", later);
  segment.addEventListener("input", later);
  count();
})();
